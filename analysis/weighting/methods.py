"""Weighting methods: raking, post-stratification, calibration and trimming.

Each function takes a :class:`SurveyDesign` and returns a new one (the input is never
modified) whose ``diagnostics`` describe the step.  Replicate designs have every replicate
re-weighted the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from analysis.weighting._calibration import (
    GregStep,
    IPFResult,
    PostStratStep,
    RakingStep,
    blas_single_thread,
    grake,
    ipf,
    joint_cells,
    linear_calibration,
)
from analysis.weighting._margins import CollapseRecord, Margin, MarginSpec, prepare_margins
from analysis.weighting.design import ReplicateWeights, SurveyDesign
from analysis.weighting.diagnostics import build_diagnostics
from survey.errors import ConfigError, PopevalError

__all__ = ["WeightingConvergenceError", "calibrate", "poststratify", "rake", "raking_not_converged", "trim"]

logger = logging.getLogger(__name__)

_TOTALS_RTOL = 1e-6


class WeightingConvergenceError(PopevalError, RuntimeError):
    """Raking or calibration did not reach the margins within the iteration limit."""


def _check_design(design: SurveyDesign) -> None:
    if not isinstance(design, SurveyDesign):
        raise ConfigError(
            "Expected a SurveyDesign",
            param="design",
            expected="analysis.weighting.SurveyDesign",
            found=type(design).__name__,
        )


def _check_tol(tol: float, max_iter: int) -> None:
    if not (isinstance(tol, int | float) and 0 < tol < 1):
        raise ConfigError(
            "tol must be in (0, 1)", param="tol", expected="e.g. 1e-10", found=repr(tol)
        )
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(
            "max_iter must be a positive integer", param="max_iter", found=repr(max_iter)
        )


def _check_grand_totals(margins: list[Margin], extra: dict[str, float] | None = None) -> None:
    totals = {m.name: float(m.totals.sum()) for m in margins}
    if extra:
        totals.update(extra)
    if len(totals) < 2:
        return
    values = np.array(list(totals.values()))
    if np.ptp(values) > _TOTALS_RTOL * values.max():
        raise ConfigError(
            "The margins describe populations of different sizes",
            param="margins",
            expected="the same grand total in every categorical margin",
            found=", ".join(f"{k}: {v:.10g}" for k, v in totals.items()),
            hint="the margins must come from the same population (and reference date)",
        )


def raking_not_converged(res: IPFResult, tol: float, max_iter: int) -> WeightingConvergenceError:
    """The error of a raking (an :func:`ipf` result ``res``) that did not converge."""
    return WeightingConvergenceError(
        "Raking did not converge",
        param="margins",
        expected=f"all margins within relative tolerance {tol:g} after {max_iter} iterations",
        found=f"worst margin '{res.worst_margin}', category {res.worst_category!r}: "
        f"relative error {res.max_rel_error:.3g}",
        hint="raise max_iter, check that the margins are consistent, or collapse sparse cells (min_cell)",
    )


def rake(
    design: SurveyDesign,
    margins: MarginSpec,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    min_cell: int = 5,
    collapse: bool = True,
) -> SurveyDesign:
    """Rake the weights to population margins by iterative proportional fitting.

    Parameters
    ----------
    design
        The design to weight.
    margins
        ``{column: {category: population total}}``; a key may be a tuple of columns for a
        joint margin, whose categories are then tuples (e.g. ``("age_band", "sex")``).
    tol
        Convergence tolerance: relative discrepancy of every achieved margin cell.
    max_iter
        Maximum number of IPF sweeps (one sweep adjusts every margin once).
    min_cell
        Cells with fewer respondents are collapsed with a neighbour (see the package README).
    collapse
        If False, empty or sparse cells raise ``DataValidationError`` instead.

    Returns
    -------
    SurveyDesign
        New design; variance by linearisation uses the raking residuals as R's ``svyrecvar``.

    Raises
    ------
    WeightingConvergenceError
        If the margins are not reached; the message names the worst margin and category.
    """
    _check_design(design)
    _check_tol(tol, max_iter)
    ms, _, records = prepare_margins(design.data, margins, min_cell=min_cell, collapse=collapse)
    _check_grand_totals(ms)
    w0 = np.asarray(design.weight_array)
    res = ipf(w0, ms, tol=tol, max_iter=max_iter)
    if not res.converged:
        raise raking_not_converged(res, tol, max_iter)
    reps = design.replicates
    new_reps = (
        False
        if reps is None
        else reps.with_weights(_rake_replicates(reps.weights, ms, tol, max_iter))
    )
    diag = build_diagnostics(
        "rake", w0, res.weights, ms, converged=True, iterations=res.iterations, collapsed=records
    )
    step = RakingStep(margins=tuple(ms), weights=res.weights)
    return design.derive(
        weights=res.weights, steps=(*design.steps, step), replicates=new_reps, diagnostics=diag
    )


def _empty_cell_replicates(W: np.ndarray, ms: list[Margin]) -> np.ndarray:
    """Replicates in which some margin cell has no weight at all (R gives NaN there)."""
    bad = np.zeros(W.shape[1], dtype=bool)
    for m in ms:
        bad |= (m.sums(W) <= 0).any(axis=0)
    if bad.any():
        logger.warning(
            "%d of %d replicate(s) leave a margin cell without respondents; they are set to NaN "
            "and left out of the variance, as in R",
            int(bad.sum()),
            W.shape[1],
        )
    return bad


def _rake_replicates(W: np.ndarray, ms: list[Margin], tol: float, max_iter: int) -> np.ndarray:
    out = np.full_like(W, np.nan)
    keep = ~_empty_cell_replicates(W, ms)
    if not keep.any():
        return out
    rr = ipf(W[:, keep], ms, tol=tol, max_iter=max_iter)
    out[:, keep] = rr.weights
    if not rr.converged:
        bad = np.zeros(int(keep.sum()), dtype=bool)
        for m in ms:
            rel = np.abs(m.sums(rr.weights) - m.totals[:, None]) / m.totals[:, None]
            bad |= rel.max(axis=0) >= tol
        logger.warning(
            "raking: %d of %d replicate(s) did not reach the margins (worst %r %r, rel. error %.3g)",
            int(bad.sum()),
            W.shape[1],
            rr.worst_margin,
            rr.worst_category,
            rr.max_rel_error,
        )
    return out


def poststratify(
    design: SurveyDesign,
    margin: MarginSpec,
    *,
    min_cell: int = 5,
    collapse: bool = True,
) -> SurveyDesign:
    """Post-stratify to population cell totals (R's ``postStratify``).

    Parameters
    ----------
    design
        The design to weight.
    margin
        One margin: ``{column: {category: total}}`` or ``{(col1, col2): {(a, b): total}}``.
    min_cell, collapse
        Sparse-cell rule, as in :func:`rake`.
    """
    _check_design(design)
    if not isinstance(margin, Mapping) or len(margin) != 1:
        raise ConfigError(
            "poststratify takes exactly one margin",
            param="margin",
            expected="{column: {category: total}} (use a tuple of columns for crossed cells)",
            found=f"{len(margin) if isinstance(margin, Mapping) else type(margin).__name__} margin(s)",
            hint="use rake() for several margins",
        )
    ms, _, records = prepare_margins(design.data, margin, min_cell=min_cell, collapse=collapse)
    m = ms[0]
    w0 = np.asarray(design.weight_array)
    w = _poststrat_weights(w0, m)
    reps = design.replicates
    new_reps = False if reps is None else reps.with_weights(_poststrat_weights(reps.weights, m))
    diag = build_diagnostics(
        "poststratify", w0, w, ms, converged=True, iterations=1, collapsed=records
    )
    step = PostStratStep(codes=m.codes, ncells=m.ncells, new_weights=w, old_weights=w0)
    return design.derive(
        weights=w, steps=(*design.steps, step), replicates=new_reps, diagnostics=diag
    )


def _poststrat_weights(w: np.ndarray, m: Margin) -> np.ndarray:
    s = m.sums(w)
    t = m.totals if w.ndim == 1 else m.totals[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(s > 0, t / s, 1.0)
    if w.ndim == 1 and np.any(s <= 0):
        raise WeightingConvergenceError(
            "A post-stratum has respondents but zero total weight",
            param=m.name,
            found=f"category {m.labels[int(np.argmin(s))]!r}",
        )
    out = w * f[m.codes]
    if w.ndim == 2:
        empty = _empty_cell_replicates(w, [m])
        out[:, empty] = np.nan
    return out


def calibrate(
    design: SurveyDesign,
    margins: MarginSpec,
    *,
    calfun: str = "linear",
    bounds: tuple[float, float] | None = None,
    population_size: float | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
    min_cell: int = 5,
    collapse: bool = True,
) -> SurveyDesign:
    """Calibrate the weights to categorical and numeric population totals.

    This is survey calibration (Deville & Sarndal 1992; R's ``survey::calibrate``), not
    propensity-score calibration.

    Parameters
    ----------
    design
        The design to weight.
    margins
        ``{column: {category: total}}`` for categorical variables (tuples of columns for joint
        cells) and ``{column: total}`` for numeric variables.
    calfun
        Distance function: ``"linear"`` (GREG), ``"raking"`` (multiplicative) or ``"logit"``
        (bounded; needs ``bounds``).
    bounds
        ``(lower, upper)`` bounds on the g-weights (ratio of new to old weight).
    population_size
        Population size; adds an intercept (needed when all margins are numeric).
    tol
        Convergence: ``|target - achieved| / (1 + |target|) < tol`` for every total (R's rule).
    max_iter
        Maximum Newton iterations.
    min_cell, collapse
        Sparse-cell rule for categorical margins, as in :func:`rake`.
    """
    _check_design(design)
    _check_tol(tol, max_iter)
    if calfun not in ("linear", "raking", "logit"):
        raise ConfigError(
            "Unknown calibration function",
            param="calfun",
            expected="'linear', 'raking' or 'logit'",
            found=repr(calfun),
        )
    if bounds is None:
        if calfun == "logit":
            raise ConfigError(
                "Logit calibration needs bounds",
                param="bounds",
                expected="(lower, upper) with lower < 1 < upper, e.g. (0.5, 2.0)",
                found="None",
            )
        lo, hi = -np.inf, np.inf
    else:
        lo, hi = (float(b) for b in bounds)
        if not lo < 1.0 < hi:
            raise ConfigError(
                "Calibration bounds must enclose 1",
                param="bounds",
                expected="lower < 1 < upper",
                found=repr(bounds),
            )
    ms, numeric, records = prepare_margins(
        design.data, margins, min_cell=min_cell, collapse=collapse, allow_numeric=True
    )
    extra = None if population_size is None else {"population_size": float(population_size)}
    _check_grand_totals(ms, extra)
    with blas_single_thread():
        return _calibrate(
            design, ms, numeric, records, calfun, bounds, (lo, hi), population_size, tol, max_iter
        )


def _calibrate(
    design: SurveyDesign,
    ms: list[Margin],
    numeric: dict[str, tuple[str, float]],
    records: list[CollapseRecord],
    calfun: str,
    bounds: tuple[float, float] | None,
    lohi: tuple[float, float],
    population_size: float | None,
    tol: float,
    max_iter: int,
) -> SurveyDesign:
    lo, hi = lohi
    mm, pop, names = _model_matrix(design, ms, numeric, population_size)
    w0 = np.asarray(design.weight_array)
    # rows with identical calibration variables get identical g-weights: without numeric
    # totals, solve on the table of joint cells (exactly the same equations, far fewer rows)
    inv, mm_c = _compress(ms, mm) if not numeric else (None, mm)

    def pooled(w: np.ndarray) -> np.ndarray:
        return w if inv is None else np.bincount(inv, weights=w, minlength=len(mm_c))

    def expand(g_c: np.ndarray) -> np.ndarray:
        return g_c if inv is None else g_c[inv]

    if calfun == "linear" and bounds is None:
        g = expand(linear_calibration(mm_c, pooled(w0), pop))
        iterations, converged = 1, True
    else:
        res = grake(
            mm_c, pooled(w0), pop, calfun=calfun, bounds=(lo, hi), epsilon=tol, maxit=max_iter
        )
        if not res.converged:
            raise WeightingConvergenceError(
                "Calibration did not converge",
                param="margins",
                expected=f"every total within {tol:g} (relative) after {max_iter} iterations",
                found=f"worst total {names[res.worst_index]}: relative misfit {res.max_rel_misfit:.3g}",
                hint="loosen the bounds, raise max_iter, or check that the totals are consistent",
            )
        g, iterations, converged = expand(res.g), res.iterations, True
    w = w0 * g
    reps = design.replicates
    new_reps: ReplicateWeights | bool = False
    if reps is not None:
        W = reps.weights
        G = np.full_like(W, np.nan)
        failed = 0
        for j in range(W.shape[1]):
            if not np.all(np.isfinite(W[:, j])):
                continue  # a replicate already left out (NaN) stays out
            if calfun == "linear" and bounds is None:
                try:
                    G[:, j] = expand(linear_calibration(mm_c, pooled(W[:, j]), pop))
                except np.linalg.LinAlgError:
                    failed += 1  # singular: the replicate lost every respondent of a category
            else:
                rj = grake(
                    mm_c,
                    pooled(W[:, j]),
                    pop,
                    calfun=calfun,
                    bounds=(lo, hi),
                    epsilon=tol,
                    maxit=max_iter,
                )
                failed += not rj.converged
                G[:, j] = expand(rj.g)
        if failed:
            logger.warning("calibrate: %d replicate(s) did not converge", failed)
        new_reps = reps.with_weights(W * G)
    num = [
        (name, np.asarray(design.data[col], dtype=float), total)
        for name, (col, total) in numeric.items()
    ]
    diag = build_diagnostics(
        f"calibrate({calfun})",
        w0,
        w,
        ms,
        converged=converged,
        iterations=iterations,
        collapsed=records,
        numeric=num,
    )
    step = GregStep.build(mm, w0, g)
    return design.derive(
        weights=w, steps=(*design.steps, step), replicates=new_reps, diagnostics=diag
    )


def _compress(ms: list[Margin], mm: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Joint-cell index of every row and the model-matrix row of every cell (or no compression)."""
    joint = joint_cells(ms)
    if joint is None:
        return None, mm
    inv, ncell, _ = joint
    first = np.empty(ncell, dtype=np.intp)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    return inv, mm[first]


def _model_matrix(
    design: SurveyDesign,
    ms: list[Margin],
    numeric: dict[str, tuple[str, float]],
    population_size: float | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Full-rank calibration matrix: intercept or first margin in full, later margins minus a level."""
    n = design.nobs
    pop: list[float] = []
    names: list[str] = []
    fill: list[tuple[int, Margin, int]] = []  # (first column, margin, first level used)
    p = 0
    if population_size is not None:
        pop.append(float(population_size))
        names.append("(population size)")
        p = 1
    for i, m in enumerate(ms):
        start = 0 if (i == 0 and population_size is None) else 1
        fill.append((p, m, start))
        for k in range(start, m.ncells):
            pop.append(float(m.totals[k]))
            names.append(f"{m.name}={m.labels[k]}")
        p += m.ncells - start
    for name, (_, total) in numeric.items():
        pop.append(total)
        names.append(name)
    mm = np.zeros((n, p + len(numeric)))
    if population_size is not None:
        mm[:, 0] = 1.0
    rows = np.arange(n)
    for first, m, start in fill:
        sel = m.codes >= start
        mm[rows[sel], first + m.codes[sel] - start] = 1.0
    for j, (col, _) in enumerate(numeric.values()):
        mm[:, p + j] = np.asarray(design.data[col], dtype=float)
    return mm, np.asarray(pop), names


def trim(
    design: SurveyDesign,
    upper: float = np.inf,
    lower: float = -np.inf,
    *,
    strict: bool = False,
    redistribute: bool = True,
    max_iter: int = 100,
) -> SurveyDesign:
    """Trim weights to ``[lower, upper]`` (R's ``trimWeights``).

    The amount trimmed is shared *equally* (additively) among the untrimmed weights, so the
    sum of weights is unchanged.  With ``strict=True`` this is repeated until no weight lies
    outside the bounds (redistribution can push weights over the bound again).  Calibration
    records of earlier steps are kept for the variance, as R does.

    Parameters
    ----------
    design
        The design.
    upper, lower
        Bounds on the weights themselves (not on g-weights).
    strict
        Repeat until every weight is within the bounds.
    redistribute
        Share the trimmed amount among the other weights (False: just clip).
    max_iter
        Maximum repetitions with ``strict``.
    """
    _check_design(design)
    if not lower < upper:
        raise ConfigError(
            "trim bounds must satisfy lower < upper",
            param="upper",
            found=f"lower={lower}, upper={upper}",
        )
    w0 = np.asarray(design.weight_array)
    w, count, it = _trim_vector(w0, upper, lower, strict, redistribute, max_iter)
    if strict and ((w > upper) | (w < lower)).any():
        raise WeightingConvergenceError(
            "Strict trimming did not converge",
            param="upper",
            expected=f"every weight within [{lower}, {upper}]",
            found=f"{int(((w > upper) | (w < lower)).sum())} weight(s) still outside after {max_iter} rounds",
            hint="the bounds may be infeasible for the sum of weights: widen them",
        )
    reps = design.replicates
    new_reps: ReplicateWeights | bool = False
    if reps is not None:
        W = np.array(reps.weights)
        for j in range(W.shape[1]):
            pos = W[:, j] > 0
            W[pos, j], _, _ = _trim_vector(W[pos, j], upper, lower, strict, redistribute, max_iter)
        new_reps = reps.with_weights(W)
    diag = build_diagnostics("trim", w0, w, [], converged=True, iterations=it, trimmed=count)
    return design.derive(weights=w, replicates=new_reps, diagnostics=diag)


def _trim_vector(
    pw: np.ndarray, upper: float, lower: float, strict: bool, redistribute: bool, max_iter: int
) -> tuple[np.ndarray, int, int]:
    w = np.array(pw, dtype=float)
    ever = np.zeros(len(w), dtype=bool)
    it = 0
    while it < max_iter:
        outside = (w < lower) | (w > upper)
        if not outside.any():
            break
        it += 1
        ever |= outside
        new = np.clip(w, lower, upper)
        if redistribute and (~outside).any():
            new[~outside] += (w - new).sum() / (~outside).sum()
        w = new
        if not strict:
            break
    return w, int(ever.sum()), it
