"""Calibration engines and the calibration records used for linearisation.

* :func:`ipf` - iterative proportional fitting on integer cell codes (``np.bincount``),
  vectorised over replicate weight columns.
* :func:`grake` - Newton solver for calibration with a distance function (linear, raking,
  logit with bounds), the algorithm of Deville & Sarndal (1992) as implemented in R's
  ``survey::grake``.
* Calibration *steps* (post-stratification, raking, GREG) that replace linearised values by
  calibration residuals, exactly as R's ``svyrecvar`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.weighting._margins import Margin, cell_sums
from survey.errors import ConfigError

__all__ = [
    "CALFUNS",
    "GregStep",
    "IPFResult",
    "PostStratStep",
    "RakingStep",
    "Step",
    "blas_single_thread",
    "grake",
    "ipf",
    "joint_cells",
    "linear_calibration",
    "residualise",
]


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Run tall-and-skinny matrix products (n x p with p small) on one BLAS thread.

    They are memory-bound; multi-threaded BLAS gains little on them and slows down by an
    order of magnitude when the cores are busy.  Uses ``threadpoolctl`` when it is installed
    and does nothing otherwise.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --------------------------------------------------------------------------------------------
# IPF


@dataclass(frozen=True, eq=False)
class IPFResult:
    """Outcome of :func:`ipf`."""

    weights: np.ndarray
    iterations: int
    converged: bool
    max_rel_error: float
    worst_margin: str
    worst_category: str


def ipf(
    weights: np.ndarray,
    margins: Sequence[Margin],
    *,
    tol: float,
    max_iter: int,
) -> IPFResult:
    """Rake ``weights`` (shape (n,) or (n, r)) to the margins by IPF.

    Every row of a joint cell of the raking variables receives the same factors, so IPF runs
    on the table of weighted joint-cell totals (one ``np.bincount`` over the rows) and the
    fitted cell factors are mapped back to the rows once; the result is identical to
    row-level IPF.  One iteration adjusts every margin in turn; iteration stops when every
    margin cell is within ``tol`` (relative) of its target.
    """
    w = np.asarray(weights, dtype=float)
    joint = joint_cells(margins)
    if joint is None:  # too many joint cells to index: rake the rows directly
        return _ipf_rows(w, margins, tol=tol, max_iter=max_iter)
    inv, ncell, cell_codes = joint
    table = cell_sums(inv, ncell, w)
    cell_margins = [
        Margin(m.name, m.columns, m.labels, codes, m.totals, m.counts)
        for m, codes in zip(margins, cell_codes, strict=True)
    ]
    fitted = _ipf_rows(table, cell_margins, tol=tol, max_iter=max_iter)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(table > 0, fitted.weights / table, 1.0)
    out = w * factor[inv]
    return IPFResult(
        out,
        fitted.iterations,
        fitted.converged,
        fitted.max_rel_error,
        fitted.worst_margin,
        fitted.worst_category,
    )


def joint_cells(
    margins: Sequence[Margin],
) -> tuple[np.ndarray, int, list[np.ndarray]] | None:
    """Joint-cell index of every row, number of occupied cells, and each margin's code per cell."""
    sizes = [m.ncells for m in margins]
    if float(np.prod(np.asarray(sizes, dtype=float))) > 2.0**62:
        return None
    strides = np.cumprod([1, *sizes[:-1]]).astype(np.int64)
    n = len(margins[0].codes)
    code = np.zeros(n, dtype=np.int64)
    for m, st in zip(margins, strides, strict=True):
        code += m.codes.astype(np.int64) * st
    total = int(np.prod(sizes))
    if total <= max(4 * n, 1 << 20):
        occupied = np.flatnonzero(np.bincount(code, minlength=total))
        remap = np.full(total, -1, dtype=np.intp)
        remap[occupied] = np.arange(len(occupied))
        inv = remap[code]
        cells = occupied.astype(np.int64)
    else:
        cells, inv = np.unique(code, return_inverse=True)
        inv = inv.astype(np.intp)
    cell_codes = [
        np.asarray((cells // st) % k, dtype=np.intp) for st, k in zip(strides, sizes, strict=True)
    ]
    return inv, len(cells), cell_codes


def _ipf_rows(
    weights: np.ndarray,
    margins: Sequence[Margin],
    *,
    tol: float,
    max_iter: int,
) -> IPFResult:
    """Plain IPF on rows (or on joint cells, which are rows of the cell table).

    With several weight columns each column stops at its own convergence (its later factors are
    1), so every column is raked exactly as it would be alone.
    """
    w = np.array(weights, dtype=float, copy=True)
    targets = [m.totals if w.ndim == 1 else m.totals[:, None] for m in margins]
    active = None if w.ndim == 1 else np.ones(w.shape[1], dtype=bool)
    iterations = 0
    converged = False
    for iterations in range(1, max_iter + 1):  # noqa: B007
        for m, t in zip(margins, targets, strict=True):
            s = m.sums(w)
            with np.errstate(divide="ignore", invalid="ignore"):
                f = np.where(s > 0, t / s, 1.0)
            if active is not None:
                f[:, ~active] = 1.0
            w *= f[m.codes]
        if active is None:
            err, _, _ = _margin_error(w, margins)
            if err < tol:
                converged = True
                break
        else:
            active &= column_errors(w, margins) >= tol
            if not active.any():
                converged = True
                break
    err, wm, wc = _margin_error(w, margins)
    return IPFResult(w, iterations, converged, err, wm, wc)


def column_errors(w: np.ndarray, margins: Sequence[Margin]) -> np.ndarray:
    """Largest relative margin error of every weight column of ``w`` (n, r)."""
    worst = np.zeros(w.shape[1])
    for m in margins:
        t = m.totals[:, None]
        rel = np.abs(m.sums(w) - t) / np.where(t > 0, t, 1.0)
        worst = np.maximum(worst, rel.max(axis=0))
    return worst


def _margin_error(w: np.ndarray, margins: Sequence[Margin]) -> tuple[float, str, str]:
    worst, wm, wc = 0.0, "", ""
    for m in margins:
        s = m.sums(w)
        t = m.totals if w.ndim == 1 else m.totals[:, None]
        rel = np.abs(s - t) / np.where(t > 0, t, 1.0)
        if rel.ndim == 2:
            rel = rel.max(axis=1)
        i = int(np.argmax(rel))
        if rel[i] > worst or not wm:
            worst, wm, wc = float(rel[i]), m.name, m.labels[i]
    return worst, wm, wc


# --------------------------------------------------------------------------------------------
# calibration functions (g = 1 + Fm1(u), dF = derivative), as R's cal.linear/cal.raking/cal.logit


def _linear_fm1(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(u + 1.0, lo), hi) - 1.0


def _linear_df(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((u < hi - 1.0) & (u > lo - 1.0)).astype(float)


def _raking_fm1(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.minimum(np.maximum(np.exp(u), lo), hi) - 1.0


def _raking_df(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(u)
    return np.where((e < hi) & (e > lo), e, 0.0)


def _logit_parts(u: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float]:
    a = (hi - lo) / ((hi - 1.0) * (1.0 - lo))
    with np.errstate(over="ignore"):
        return np.exp(a * u), a


def _logit_fm1(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    e, _ = _logit_parts(u, lo, hi)
    with np.errstate(invalid="ignore"):
        g = (lo * (hi - 1.0) + hi * (1.0 - lo) * e) / (hi - 1.0 + (1.0 - lo) * e)
    g = np.where(np.isinf(e), hi, g)
    return g - 1.0


def _logit_df(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    e, a = _logit_parts(u, lo, hi)
    with np.errstate(invalid="ignore", over="ignore"):
        d = (hi - 1.0 + (1.0 - lo) * e) ** 2
        out = a * (1.0 - lo) * (hi - 1.0) * (hi - lo) * e / d
    return np.where(np.isfinite(out), out, 0.0)


CALFUNS = {
    "linear": (_linear_fm1, _linear_df),
    "raking": (_raking_fm1, _raking_df),
    "logit": (_logit_fm1, _logit_df),
}


@dataclass(frozen=True, eq=False)
class GrakeResult:
    """Outcome of :func:`grake`."""

    g: np.ndarray
    iterations: int
    converged: bool
    max_rel_misfit: float
    worst_index: int


def grake(
    mm: np.ndarray,
    ww: np.ndarray,
    population: np.ndarray,
    *,
    calfun: str,
    bounds: tuple[float, float],
    epsilon: float,
    maxit: int,
) -> GrakeResult:
    """Newton iterations for the g-weights, following R's ``survey::grake``.

    Convergence: every ``|population - achieved| / (1 + |population|) < epsilon``.
    """
    fm1, dfun = CALFUNS[calfun]
    lo, hi = bounds
    if calfun == "logit" and not (np.isfinite(lo) and np.isfinite(hi)):
        raise ConfigError(
            "Logit calibration needs finite bounds",
            param="bounds",
            expected="(lower, upper) with lower < 1 < upper",
            found=repr(bounds),
        )
    ww = np.asarray(ww, dtype=float)
    sample_total = mm.T @ ww
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = population / sample_total
    scale = None
    if np.min(scales) > 20:  # R rescales very small weights before iterating
        scale = float(np.mean(scales))
        ww = ww * scale
        sample_total = sample_total * scale
    eta = np.zeros(mm.shape[1])
    xeta = mm @ eta
    deriv = dfun(xeta, lo, hi)
    it = 1
    converged = False
    misfit = population - sample_total
    while True:
        b = mm * np.sqrt(ww * deriv)[:, None]
        tmat = b.T @ b
        misfit = population - sample_total - mm.T @ (ww * fm1(xeta, lo, hi))
        deta = np.linalg.pinv(tmat, rcond=256 * np.finfo(float).eps) @ misfit
        eta = eta + deta
        xeta = mm @ eta
        g = 1.0 + fm1(xeta, lo, hi)
        deriv = dfun(xeta, lo, hi)
        while it < maxit and not (np.all(np.isfinite(g)) and np.all(np.isfinite(deriv))):
            it += 1
            deta = deta / 2
            eta = eta - deta
            xeta = mm @ eta
            g = 1.0 + fm1(xeta, lo, hi)
            deriv = dfun(xeta, lo, hi)
        misfit = population - sample_total - mm.T @ (ww * fm1(xeta, lo, hi))
        rel = np.abs(misfit) / (1.0 + np.abs(population))
        if np.all(rel < epsilon):
            converged = True
            break
        it += 1
        if it > maxit:
            break
    g = 1.0 + fm1(xeta, lo, hi)
    if scale is not None:
        g = g * scale
    worst = int(np.argmax(rel))
    return GrakeResult(g, it, converged, float(rel[worst]), worst)


def linear_calibration(mm: np.ndarray, ww: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Closed-form GREG g-weights (R's ``regcalibrate``); ``ww`` may be (n,) or (n, r)."""
    if ww.ndim == 1:
        b = mm * np.sqrt(ww)[:, None]
        tmat = b.T @ b
        return 1.0 + mm @ np.linalg.solve(tmat, population - mm.T @ ww)
    out = np.empty_like(ww)
    for j in range(ww.shape[1]):
        out[:, j] = linear_calibration(mm, ww[:, j], population)
    return out


# --------------------------------------------------------------------------------------------
# calibration records for linearisation (R's design$postStrata)


class Step:
    """A calibration record; :meth:`residualise` maps linearised values to residuals."""

    def residualise(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class PostStratStep(Step):
    """Post-stratification: remove post-stratum means (R's ``svyrecvar``, plain postStrata)."""

    codes: np.ndarray
    ncells: int
    new_weights: np.ndarray
    old_weights: np.ndarray

    def residualise(self, x: np.ndarray) -> np.ndarray:
        psw = self.new_weights.copy()
        oldw = self.old_weights
        psw[(psw == 0) & (oldw == 0)] = 1.0
        num = cell_sums(self.codes, self.ncells, x * (oldw / psw)[:, None])
        den = np.bincount(self.codes, weights=oldw, minlength=self.ncells)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(den[:, None] > 0, num / den[:, None], 0.0)
        return x - means[self.codes] * psw[:, None]


@dataclass(frozen=True, eq=False)
class RakingStep(Step):
    """Raking: ten sweeps of backfitting over the margins, as R's ``svyrecvar`` does."""

    margins: tuple[Margin, ...]
    weights: np.ndarray
    sweeps: int = 10

    def residualise(self, x: np.ndarray) -> np.ndarray:
        psw = self.weights[:, None]
        x = x.copy()
        for _ in range(self.sweeps):
            for m in self.margins:
                z = x / psw
                means = cell_sums(m.codes, m.ncells, z) / m.counts[:, None]
                x -= psw * means[m.codes]
        return x


@dataclass(frozen=True, eq=False)
class GregStep(Step):
    """Generalised regression calibration: residuals of the weighted regression on ``mm``.

    Residuals of ``x / w`` on ``a = mm * sqrt(w0)`` (columns scaled to unit norm) by the
    normal equations with a pseudo-inverse, applied twice (one step of iterative refinement);
    this is R's ``qr.resid`` without an O(n p^2) orthogonalisation of the tall matrix.
    """

    a: np.ndarray  # mm * sqrt(w0), columns scaled to unit length
    gram_pinv: np.ndarray  # pseudo-inverse of a'a
    w: np.ndarray  # g * sqrt(w0)

    @classmethod
    def build(cls, mm: np.ndarray, w0: np.ndarray, g: np.ndarray) -> GregStep:
        """Record a calibration with model matrix ``mm``, initial weights ``w0``, g-weights ``g``."""
        whalf = np.sqrt(w0)
        a = mm * whalf[:, None]
        norms = np.sqrt(np.einsum("ij,ij->j", a, a))
        a = a / np.where(norms > 0, norms, 1.0)
        vals, vecs = np.linalg.eigh(a.T @ a)
        keep = vals > vals.max() * 1e-12
        gram_pinv = (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
        return cls(a=a, gram_pinv=gram_pinv, w=g * whalf)

    def residualise(self, x: np.ndarray) -> np.ndarray:
        w = self.w[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(w > 0, x / w, 0.0)
        for _ in range(2):
            z = z - self.a @ (self.gram_pinv @ (self.a.T @ z))
        return z * w


def residualise(x: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Apply the calibration records in order (R's ``svyrecvar`` loop over ``postStrata``)."""
    for step in steps:
        x = step.residualise(x)
    return x
