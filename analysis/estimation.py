"""The study's estimator, from an analysis frame to the POP effects, and its end-to-end variance.

The **main estimator** of the study (documented in the report's methods appendix):

1. *Weighting.*  Respondents start from their design weight (population count over invited count in
   their sampling stratum, POP or no POP) and are raked to the administrative population margins
   (by default POP x education, age band, sex, sector and company size).
2. *Design.*  A survey-weighted logistic propensity score ``pop ~ covariates`` and greedy 1:1
   nearest-neighbour matching on it (with replacement, caliper 0.2 SD by default); matched controls
   keep their own survey weight (Austin et al. 2018) or inherit their treated unit's (Lenis et al.
   2019).  This stage never reads an outcome.
3. *Outcomes.*  For each outcome, weighted least squares of the outcome on POP and the covariates on
   the matched sample with survey x matching weights: the ATT in Likert points (Likert as interval)
   and, with the top-2-box indicator (4 or 5), as a risk difference.
4. *Variance.*  End-to-end replicates: a Rao-Wu rescaling bootstrap of respondents within the
   sampling strata (POP / no POP); every replicate is re-raked to the margins, the propensity score
   re-fitted and the matching redone.  A finite-population correction is available but off by
   default: the ATT among *all* POP users includes the unobserved Y(0) of the POP users who did not
   respond, a variance component no replicate reproduces and that roughly offsets the correction.

Alternatives reported next to it: regression adjustment on the whole weighted sample, IPW and AIPW
(doubly robust) with survey weights, the weighted ordered logit (category shifts), and the naive
unweighted difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import EffectsConfig, MatchingConfig, WeightingConfig
from survey.errors import ConfigError, DataValidationError

__all__ = [
    "DesignResult",
    "EstimatorSpec",
    "StudyEstimates",
    "design_stage",
    "end_to_end_variance",
    "estimate_point",
    "outcome_stage",
    "rao_wu_weights",
    "weight_stage",
]

MarginSpec = Mapping[str | tuple[str, ...], Mapping[Hashable, float]]


@dataclass(frozen=True)
class EstimatorSpec:
    """What the estimator does (built from the study configuration; defaults are the configuration's)."""

    covariates: tuple[str, ...] = MatchingConfig.covariates
    margins: tuple[tuple[str, ...], ...] = WeightingConfig.margins
    weighting: str = WeightingConfig.method
    min_cell: int = WeightingConfig.min_cell
    trim_upper: float | None = WeightingConfig.trim_upper
    ratio: int = MatchingConfig.ratio
    replace: bool = MatchingConfig.replace
    caliper: float | None = MatchingConfig.caliper
    m_order: str = MatchingConfig.m_order
    exact: tuple[str, ...] = MatchingConfig.exact
    distance: str = MatchingConfig.distance
    survey_weights: str = MatchingConfig.survey_weights
    weighted_propensity: bool = MatchingConfig.weighted_propensity
    ties: str = MatchingConfig.ties
    tie_tolerance: float = MatchingConfig.tie_tolerance
    outcomes: tuple[str, ...] = EffectsConfig.outcomes
    estimand: str = EffectsConfig.estimand
    methods: tuple[str, ...] = ("matching", "regression", "ipw", "aipw", "ologit")
    top_box: int = 4
    seed: int = 2023

    @property
    def ps_formula(self) -> str:
        """``pop ~ C(x1) + C(x2) + ...``."""
        return "pop ~ " + " + ".join(f"C({c})" for c in self.covariates)

    @property
    def rhs(self) -> str:
        """Covariate adjustment right-hand side."""
        return " + ".join(f"C({c})" for c in self.covariates)

    @classmethod
    def from_config(cls, cfg: Any) -> EstimatorSpec:
        """From a :class:`analysis.config.StudyConfig`."""
        return cls(
            covariates=tuple(cfg.matching.covariates),
            margins=tuple(cfg.weighting.margins),
            weighting=cfg.weighting.method,
            min_cell=cfg.weighting.min_cell,
            trim_upper=cfg.weighting.trim_upper,
            ratio=cfg.matching.ratio,
            replace=cfg.matching.replace,
            caliper=cfg.matching.caliper,
            m_order=cfg.matching.m_order,
            exact=tuple(cfg.matching.exact),
            distance=cfg.matching.distance,
            survey_weights=cfg.matching.survey_weights,
            weighted_propensity=cfg.matching.weighted_propensity,
            ties=cfg.matching.ties,
            tie_tolerance=cfg.matching.tie_tolerance,
            outcomes=tuple(cfg.effects.outcomes),
            estimand=cfg.effects.estimand,
            methods=tuple(cfg.effects.methods),
            seed=cfg.study.seed,
        )


# --------------------------------------------------------------------------- weighting


def _margin_subset(margins: MarginSpec, keys: Sequence[tuple[str, ...]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k in keys:
        key: str | tuple[str, ...] = k[0] if len(k) == 1 else tuple(k)
        if key not in margins:
            raise ConfigError(
                "A weighting margin is not in the population margins",
                param="weighting.margins",
                expected=", ".join(map(str, margins)),
                found=str(key),
                hint="compute the margin from the admin population (analysis.population) or drop it",
            )
        out[key] = margins[key]
    return out


def weight_stage(frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec, base_weights: np.ndarray | None = None) -> Any:
    """Weight respondents to the population margins; returns the weighted ``SurveyDesign``.

    ``frame`` needs ``w_design`` (or ``base_weights``) and the margin variables.
    """
    from analysis.weighting import SurveyDesign, calibrate, poststratify, rake, trim

    df = frame.copy()
    df["_w0"] = frame["w_design"].to_numpy(dtype=float) if base_weights is None else np.asarray(base_weights, dtype=float)
    d = SurveyDesign(df, weights="_w0")
    m = _margin_subset(margins, spec.margins)
    if spec.weighting == "none":
        out = d
    elif spec.weighting == "rake":
        out = rake(d, m, min_cell=spec.min_cell, max_iter=500)
    elif spec.weighting == "poststratify":
        if len(m) != 1:
            raise ConfigError(
                "Post-stratification takes one (joint) margin",
                param="weighting.margins",
                expected="exactly one margin, e.g. [['pop', 'educ']]",
                found=str(list(m)),
                hint="use method = 'rake' for several margins",
            )
        out = poststratify(d, m)
    else:
        out = calibrate(d, m, calfun="linear" if spec.weighting == "linear" else "logit")
    if spec.trim_upper is not None:
        out = trim(out, upper=spec.trim_upper)
    return out


# --------------------------------------------------------------------------- design


@dataclass(frozen=True)
class DesignResult:
    """The locked design: weights, propensity score, matching and balance (no outcomes)."""

    weights: pd.Series
    match: Any
    balance: Any
    n_treated: int
    n_control: int
    n_matched_treated: int
    n_matched_control: int
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph."""
        return (
            f"Design: {self.n_treated} POP and {self.n_control} non-POP respondents; matched "
            f"{self.n_matched_treated} POP with {self.n_matched_control} controls."
        )

    def to_frame(self) -> pd.DataFrame:
        """Per respondent: survey weight, propensity, matching weight, subclass."""
        m = self.match
        return pd.DataFrame(
            {
                "w_survey": self.weights,
                "propensity": m.distance,
                "w_matching": m.weights,
                "w_analysis": m.combined_weights,
                "subclass": m.subclass,
            }
        )


def design_stage(frame: pd.DataFrame, weights: pd.Series | np.ndarray, spec: EstimatorSpec, *, with_balance: bool = True) -> DesignResult:
    """Propensity score, matching and balance on the weighted respondents; reads no outcome."""
    from analysis.matching import balance, match

    cols = ["pop", *spec.covariates]
    df = frame.loc[:, cols].copy()
    w = np.asarray(weights, dtype=float)
    df["_sw"] = w
    keep = w > 0
    sub = df.loc[keep]
    if sub["pop"].nunique() < 2:
        raise DataValidationError(
            "Cannot match: the respondents are all POP users or all non-POP users",
            column="pop",
            expected="both groups present",
            found=f"{int(sub['pop'].sum())} POP of {len(sub)}",
            hint="check the linkage of respondents to the admin population",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = match(
            sub,
            spec.ps_formula,
            ratio=spec.ratio,
            replace=spec.replace,
            caliper=spec.caliper,
            m_order=spec.m_order,  # type: ignore[arg-type]
            exact=list(spec.exact) or None,
            distance=spec.distance,  # type: ignore[arg-type]
            s_weights="_sw",
            survey_weight_strategy=spec.survey_weights,  # type: ignore[arg-type]
            seed=spec.seed,
            ties=spec.ties,  # type: ignore[arg-type]
            tie_tolerance=spec.tie_tolerance,
        )
    bal = balance(m, sub, spec.rhs.replace("C(", "").replace(")", "")) if with_balance else None
    t = sub["pop"].to_numpy() == 1
    mw = m.weights.to_numpy()
    return DesignResult(
        weights=pd.Series(w, index=frame.index),
        match=m,
        balance=bal,
        n_treated=int(t.sum()),
        n_control=int((~t).sum()),
        n_matched_treated=int(((mw > 0) & t).sum()),
        n_matched_control=int(((mw > 0) & ~t).sum()),
    )


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class StudyEstimates:
    """Point estimates of every (outcome, method, scale) with their model-based SEs."""

    table: pd.DataFrame
    category_shifts: pd.DataFrame
    details: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The effects table as text."""
        return self.table.to_string(index=False)

    def to_frame(self) -> pd.DataFrame:
        """The effects table."""
        return self.table.copy()

    def vector(self) -> pd.Series:
        """Estimates keyed by (outcome, method, scale)."""
        return self.table.set_index(["outcome", "method", "scale"])["estimate"]


def _row(outcome: str, method: str, estimand: str, scale: str, est: float, se: float, nt: int, nc: int) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "method": method,
        "estimand": estimand,
        "scale": scale,
        "estimate": float(est),
        "std_error": float(se),
        "n_treated": int(nt),
        "n_control": int(nc),
    }


def outcome_stage(
    frame: pd.DataFrame,
    design: DesignResult,
    spec: EstimatorSpec,
    *,
    methods: Sequence[str] | None = None,
) -> StudyEstimates:
    """Effects of POP on every outcome under every method."""
    methods = tuple(methods or spec.methods)
    rows: list[dict[str, Any]] = []
    shifts: list[pd.DataFrame] = []
    w = design.weights.to_numpy()
    base = frame.loc[w > 0].copy()
    base["_sw"] = w[w > 0]
    m = design.match
    for outcome in spec.outcomes:
        y = base[outcome].astype(float)
        ok = y.notna().to_numpy()
        d = base.loc[ok].copy()
        d[outcome] = y[ok]
        d[f"{outcome}_top2"] = (y[ok] >= spec.top_box).astype(float)
        t = d["pop"].to_numpy() == 1
        if "matching" in methods:
            cw = m.combined_weights.reindex(d.index).fillna(0.0).to_numpy()
            sel = cw > 0
            dm = d.loc[sel]
            if spec.replace:
                vc, cl = "HC3", None
            else:
                vc, cl = "cluster", m.subclass.reindex(dm.index).to_numpy()
            for scale, col in (("likert", outcome), ("top2", f"{outcome}_top2")):
                est, se = _wls_effect(dm, col, spec.rhs, cw[sel], vc, cl)
                rows.append(_row(outcome, "matching", "ATT", scale, est, se, (sel & t).sum(), (sel & ~t).sum()))
        if "regression" in methods:
            for scale, col in (("likert", outcome), ("top2", f"{outcome}_top2")):
                est, se = _wls_effect(d, col, spec.rhs, d["_sw"].to_numpy(), "HC3", None)
                rows.append(_row(outcome, "regression", "conditional", scale, est, se, t.sum(), (~t).sum()))
        for method in ("ipw", "aipw"):
            if method not in methods:
                continue
            from analysis.effects.weighting_estimators import aipw, ipw

            for scale, col in (("likert", outcome), ("top2", f"{outcome}_top2")):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if method == "ipw":
                        e = ipw(d, col, spec.ps_formula, estimand=spec.estimand, weights=d["_sw"].to_numpy())  # type: ignore[arg-type]
                    else:
                        e = aipw(d, f"{col} ~ {spec.rhs}", spec.ps_formula, estimand=spec.estimand, weights=d["_sw"].to_numpy())  # type: ignore[arg-type]
                rows.append(_row(outcome, method, spec.estimand, scale, e.estimate, e.se, t.sum(), (~t).sum()))
        if "absorbed" in methods:
            from analysis.effects import absorbed_effect

            d2 = d.assign(_domain=d["train_domain"].astype(str) if "train_domain" in d else "unknown")
            for scale, col in (("likert", outcome), ("top2", f"{outcome}_top2")):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e = absorbed_effect(d2, col, "pop", [], ["_domain", *spec.covariates], weights="_sw")
                rows.append(_row(outcome, "absorbed", "conditional", scale, e.estimate, e.se, t.sum(), (~t).sum()))
        if "naive" in methods:
            for scale, col in (("likert", outcome), ("top2", f"{outcome}_top2")):
                a, b = d.loc[t, col], d.loc[~t, col]
                se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
                rows.append(_row(outcome, "naive", "unadjusted", scale, a.mean() - b.mean(), se, len(a), len(b)))
        if "ologit" in methods:
            from analysis.effects.ordinal import ordered_logit

            sub_m = _restrict_match(m, d.index)
            mw = sub_m.combined_weights.reindex(d.index).fillna(0.0)
            dm = d.loc[mw > 0].copy()
            dm["_mw"] = mw[mw > 0]
            dm[outcome] = dm[outcome].astype(int)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ordered_logit(dm, f"{outcome} ~ pop + {spec.rhs}", weights="_mw", treat="pop", categories=[1, 2, 3, 4, 5])
            rows.append(_row(outcome, "ologit", "ATT", "log_odds", res.params["pop"], res.bse["pop"], (dm["pop"] == 1).sum(), (dm["pop"] == 0).sum()))
            if res.prob_shifts is not None:
                sh = res.prob_shifts.reset_index().rename(columns={"se": "std_error", "lower": "ci_lower", "upper": "ci_upper"})
                sh.insert(0, "outcome", outcome)
                shifts.append(sh)
    table = pd.DataFrame(rows)
    cs = pd.concat(shifts, ignore_index=True) if shifts else pd.DataFrame(columns=["outcome", "category", "shift", "std_error", "ci_lower", "ci_upper"])
    return StudyEstimates(table=table, category_shifts=cs)


def _wls_effect(d: pd.DataFrame, col: str, rhs: str, w: np.ndarray, vcov: str, cluster: np.ndarray | None) -> tuple[float, float]:
    """Coefficient of ``pop`` (and its sandwich SE) in the WLS fit of ``col ~ pop + rhs``."""
    import patsy

    from analysis.effects.regression import weighted_ols

    X = patsy.dmatrix("pop + " + rhs, d, return_type="dataframe")
    beta, cov = weighted_ols(d[col].to_numpy(dtype=float), X.to_numpy(), np.asarray(w, dtype=float), vcov=vcov, cluster=cluster)  # type: ignore[arg-type]
    j = list(X.columns).index("pop")
    return float(beta[j]), float(np.sqrt(cov[j, j]))


def _restrict_match(m: Any, index: pd.Index) -> Any:
    """The matching restricted to rows with an observed outcome (weights of others set to 0)."""
    keep = m.weights.index.isin(index)
    return replace(
        m,
        weights=m.weights.where(keep, 0.0),
        combined_weights=m.combined_weights.where(keep, 0.0),
    )


# --------------------------------------------------------------------------- variance


def rao_wu_weights(
    strata: np.ndarray,
    population_sizes: Mapping[Any, float] | None,
    n_replicates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rao-Wu rescaling bootstrap adjustment factors (n x R), with finite-population correction.

    Within each stratum h with n_h units, m_h = n_h - 1 units are drawn with replacement; unit i's
    factor is ``1 - lam + lam * n_h / m_h * r_hi`` with ``lam = sqrt(m_h (1 - f_h) / (n_h - 1))``,
    ``f_h = n_h / N_h`` (Rao, Wu & Yue 1992).  Multiply the base weights by these factors.
    """
    strata = np.asarray(strata)
    n = len(strata)
    out = np.empty((n, n_replicates))
    for h in np.unique(strata):
        idx = np.flatnonzero(strata == h)
        nh = len(idx)
        if nh < 2:
            out[idx, :] = 1.0
            continue
        mh = nh - 1
        fh = 0.0 if not population_sizes else min(1.0, nh / float(population_sizes[h]))
        lam = np.sqrt(mh * (1 - fh) / (nh - 1))
        draws = rng.integers(0, nh, size=(n_replicates, mh))
        counts = np.zeros((n_replicates, nh))
        np.add.at(counts, (np.repeat(np.arange(n_replicates), mh), draws.ravel()), 1.0)
        out[idx, :] = (1 - lam + lam * (nh / mh) * counts).T
    return out


@dataclass(frozen=True)
class _Prepared:
    """Arrays that stay fixed across replicates (only the weights change)."""

    treat: np.ndarray
    X: np.ndarray  # intercept + covariate dummies
    pop_col: int
    Xo: np.ndarray  # intercept, pop, dummies
    outcomes: tuple[str, ...]
    y: np.ndarray  # n x K (NaN = missing)
    top2: np.ndarray
    tiebreak: np.ndarray  # rank of the respondent labels (tie rule 'label')


def _prepare(frame: pd.DataFrame, spec: EstimatorSpec) -> _Prepared:
    dummies = pd.get_dummies(frame.loc[:, list(spec.covariates)].astype(str), drop_first=True, dtype=float)
    ones = np.ones((len(frame), 1))
    X = np.hstack([ones, dummies.to_numpy()])
    treat = frame["pop"].to_numpy(dtype=float)
    Xo = np.hstack([ones, treat[:, None], dummies.to_numpy()])
    y = np.column_stack([frame[o].to_numpy(dtype=float) for o in spec.outcomes])
    top2 = np.where(np.isnan(y), np.nan, (y >= spec.top_box).astype(float))
    from analysis.matching._algorithms import label_ranks

    return _Prepared(treat=treat, X=X, pop_col=1, Xo=Xo, outcomes=tuple(spec.outcomes), y=y,
                     top2=top2, tiebreak=label_ranks(frame.index))


def _weighted_logit(X: np.ndarray, t: np.ndarray, w: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Weighted logistic regression by Newton-Raphson (the quasi-likelihood fit of svyglm/glm)."""
    beta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        g = X.T @ (w * (t - p))
        H = (X * (w * p * (1 - p))[:, None]).T @ X
        step = np.linalg.lstsq(H, g, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -30, 30)))


def _fast_point(prep: _Prepared, sw: np.ndarray, spec: EstimatorSpec) -> pd.Series:
    """Propensity score, matching and matched WLS on arrays: the replicate fast path.

    It reproduces :func:`design_stage` + :func:`outcome_stage` (method ``matching``) for a
    propensity-score distance without exact matching (checked by the tests).
    """
    from analysis.matching._algorithms import (
        combined_weights,
        nn_sorted,
        nn_sorted_all,
        tie_canonical,
        weights_from_mm,
    )
    from analysis.matching.nearest import _processing_order

    keep = sw > 0
    idx = np.flatnonzero(keep)
    t = prep.treat[idx]
    w = sw[idx]
    score = _weighted_logit(prep.X[idx], t, w)
    ti = t.astype(int)
    ind1 = np.flatnonzero(ti == 1)
    tol = float(spec.tie_tolerance)
    score_c = tie_canonical(score, tol)
    tb = None if spec.ties == "matchit" else prep.tiebreak[idx]
    cal = None if spec.caliper is None else float(spec.caliper) * float(np.std(score, ddof=1))
    if spec.ties == "all":
        mm = nn_sorted_all(score_c, ti, spec.ratio, cal, tol)
    else:
        ord1 = _processing_order(score_c[ind1], spec.m_order, np.random.default_rng(spec.seed),
                                 None if tb is None else tb[ind1])
        mm = nn_sorted(score_c, ti, ord1, spec.ratio, spec.replace, cal, tiebreak=tb, tol=tol)
    mw = weights_from_mm(mm, ti, ind1)
    comb = combined_weights(mm, ti, ind1, w, mw, spec.survey_weights)
    out: dict[tuple[str, str, str], float] = {}
    Xo = prep.Xo[idx]
    for k, o in enumerate(prep.outcomes):
        for scale, yy in (("likert", prep.y[idx, k]), ("top2", prep.top2[idx, k])):
            sel = (comb > 0) & ~np.isnan(yy)
            sq = np.sqrt(comb[sel])
            beta = np.linalg.lstsq(Xo[sel] * sq[:, None], yy[sel] * sq, rcond=None)[0]
            out[(o, "matching", scale)] = float(beta[prep.pop_col])
    s = pd.Series(out)
    s.index = s.index.set_names(["outcome", "method", "scale"])
    return s


def estimate_point(
    frame: pd.DataFrame,
    margins: MarginSpec,
    spec: EstimatorSpec,
    base_weights: np.ndarray | None = None,
    prepared: _Prepared | None = None,
) -> pd.Series:
    """Weight, match and estimate once (one replicate) with the main estimator.

    Returns estimates keyed by (outcome, 'matching', scale).
    """
    design = weight_stage(frame, margins, spec, base_weights=base_weights)
    prep = prepared if prepared is not None else _prepare(frame, spec)
    return _fast_point(prep, design.weights.to_numpy(dtype=float), spec)


def _replicate_worker(args: tuple[pd.DataFrame, Any, EstimatorSpec, np.ndarray, _Prepared]) -> pd.Series | None:
    import logging

    frame, margins, spec, w, prep = args
    wlog = logging.getLogger("analysis.weighting")
    level = wlog.level
    wlog.setLevel(logging.ERROR)  # the full-sample weighting already reported its collapsed cells
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return estimate_point(frame, margins, spec, base_weights=w, prepared=prep)
    except Exception:  # a replicate that cannot be estimated is counted, not fatal
        return None
    finally:
        wlog.setLevel(level)


def end_to_end_variance(
    frame: pd.DataFrame,
    margins: MarginSpec,
    spec: EstimatorSpec,
    *,
    n_replicates: int = 100,
    population_sizes: Mapping[Any, float] | None = None,
    strata_column: str = "pop",
    workers: int = 1,
    rng: np.random.Generator | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Replicate standard errors in which every replicate re-weights, re-fits and re-matches.

    Returns
    -------
    pd.DataFrame
        Index (outcome, method, scale); columns ``replicate_se``, ``n_replicates`` (successful) and
        ``n_failed``.
    """
    rng = rng or np.random.default_rng(spec.seed)
    factors = rao_wu_weights(frame[strata_column].to_numpy(), population_sizes, n_replicates, rng)
    base = frame["w_design"].to_numpy(dtype=float)
    if spec.distance != "glm" or spec.exact:
        raise ConfigError(
            "End-to-end replicates support propensity-score matching without exact matching",
            param="matching.distance",
            expected="distance = 'glm' and exact = []",
            found=f"distance = {spec.distance!r}, exact = {list(spec.exact)!r}",
            hint="use the model-based standard errors for this specification",
        )
    prep = _prepare(frame, spec)
    jobs = [(frame, margins, spec, base * factors[:, r], prep) for r in range(n_replicates)]
    results: list[pd.Series | None]
    if workers > 1:
        import os
        from concurrent.futures import ProcessPoolExecutor

        from analysis.processes import worker_initializer

        # workers die with this process (even on SIGKILL) and leave Ctrl-C to it
        with ProcessPoolExecutor(max_workers=workers, initializer=worker_initializer, initargs=(os.getpid(),)) as ex:
            it = ex.map(_replicate_worker, jobs, chunksize=max(1, n_replicates // (4 * workers)))
            results = list(_progress(it, n_replicates, progress))
    else:
        results = [_replicate_worker(j) for j in _progress(iter(jobs), n_replicates, progress)]
    good = [r for r in results if r is not None]
    if len(good) < max(2, n_replicates // 2):
        raise DataValidationError(
            "Too many replicates failed",
            expected=f"at least half of {n_replicates} replicates estimable",
            found=f"{len(good)} succeeded",
            hint="the sample may be too small for the matching specification; loosen the caliper or exact matching",
        )
    mat = pd.concat(good, axis=1)
    se = mat.std(axis=1, ddof=1)
    return pd.DataFrame({"replicate_se": se, "n_replicates": len(good), "n_failed": n_replicates - len(good)})


def _progress(it: Any, total: int, show: bool) -> Any:
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="replicates", unit="rep", leave=False)
