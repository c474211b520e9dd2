"""Propensity scores by logistic regression, with a common-support summary."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from analysis.matching.formula import (
    design_matrix,
    resolve_weights,
    split_formula,
    treatment_vector,
)
from survey.errors import ConfigError, PopevalError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Gram",
    "PropensityScoreResult",
    "expit",
    "identified_columns",
    "leave_out",
    "logit_fit",
    "logit_fit_stacked",
    "logit_newton",
    "merged_rows",
    "propensity_score",
    "scaled_solve",
    "stacked_columns",
]


@dataclass(frozen=True)
class PropensityScoreResult:
    """A fitted propensity-score model (logistic regression).

    Attributes
    ----------
    formula
        The model formula, treatment on the left.
    score
        Fitted probability of treatment, aligned with the data's index.
    linear_predictor
        The fitted logit.
    treat
        The 0/1 treatment.
    params, bse
        Coefficients and their model-based standard errors.
    weighted
        Whether survey weights entered the fit (as GLM ``var_weights``).
    support
        Common-support summary: one row per group with min and max of the score, and the number
        of units of that group outside the other group's [min, max] range.
    nobs
        Number of observations.
    engine
        ``"numpy"`` (:func:`logit_fit`) or ``"statsmodels"`` (patsy and statsmodels' GLM, a
        cross-check); both give the same maximum-likelihood fit.
    """

    formula: str
    score: pd.Series
    linear_predictor: pd.Series
    treat: pd.Series
    params: pd.Series
    bse: pd.Series
    weighted: bool
    support: pd.DataFrame
    nobs: int
    engine: str = "statsmodels"

    @property
    def n_outside_support(self) -> int:
        """Units outside the common support (either group)."""
        return int(self.support["n_outside"].sum())

    def to_frame(self) -> pd.DataFrame:
        """Coefficients with standard errors."""
        import pandas as pd

        return pd.DataFrame({"coef": self.params, "std err": self.bse})

    def summary(self) -> str:
        """A plain-text report of the model and the common support."""
        lines = [
            f"Propensity score (logit): {self.formula}",
            f"nobs = {self.nobs}; survey-weighted: {self.weighted}; fitted by {self.engine}",
            "",
            self.to_frame().to_string(float_format=lambda v: f"{v:.6g}"),
            "",
            "Common support (score range per group; units outside the other group's range):",
            self.support.to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        return "\n".join(lines)


def _support_table(score: np.ndarray, treat: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    s1, s0 = score[treat == 1], score[treat == 0]
    rows = []
    for name, own, other in (("treated", s1, s0), ("control", s0, s1)):
        lo, hi = other.min(), other.max()
        rows.append(
            {
                "group": name,
                "n": own.size,
                "min": own.min(),
                "max": own.max(),
                "n_outside": int(((own < lo) | (own > hi)).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("group")


def expit(eta: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-eta))``, as statsmodels' logit link computes it (overflow gives 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-eta))


def _linear_predictor(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``x @ beta`` summed column by column, so identical rows get bit-identical values.

    A BLAS matrix-vector product may round rows differently depending on where they fall in
    its blocks; units with the same covariates must get exactly the same score, because ties
    in the score decide matches.  Stacked ``beta`` (R, p) gives every row's predictor (R, n).
    """
    b = beta.reshape(-1, beta.shape[-1])
    eta = b[:, :1] * x[None, :, 0]
    for j in range(1, b.shape[1]):
        eta += b[:, j : j + 1] * x[None, :, j]
    return eta if beta.ndim == 2 else eta[0]


#: statsmodels' clipping of probabilities in the logit link and the binomial variance
_FLOAT_EPS = float(np.finfo(float).eps)

#: Under separation each Newton step moves the separated rows' logits by about one unit (towards
#: plus or minus infinity); where the maximum exists the steps shrink quadratically.  A fit whose
#: deviance settled while a logit still moved by more than this has no maximum-likelihood estimate.
SEPARATION_STEP = 0.5


def _deviance(y: np.ndarray, mu: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """The binomial deviance of every row of ``mu`` and ``pw`` (R, n), as statsmodels' ``Binomial``
    family computes it (scale 1)."""
    with np.errstate(divide="ignore"):
        d = y * np.log(np.clip(y / (mu + 1e-20), _FLOAT_EPS, None)) + (1.0 - y) * np.log(
            np.clip((1.0 - y) / (1.0 - mu + 1e-20), _FLOAT_EPS, None)
        )
    return np.asarray(2.0 * np.sum(pw * d, axis=1))


class Gram:
    """``x' diag(w[r]) x`` for every row of stacked weights ``w`` (R, n): (R, p, p).

    One matrix product per row for a few rows; for many, one product of ``w`` with the ``n`` rows'
    products of pairs of columns (each pair once, computed at the first call and kept), which
    costs about half the batch of products.

    Parameters
    ----------
    x
        The ``(n, p)`` matrix.
    """

    #: up to this many rows, a product per row
    ROWS = 4

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=float)
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The (R, p, p) matrices of the rows of ``w``."""
        x = self.x
        if w.shape[0] <= self.ROWS:
            return np.asarray(np.matmul(x.T * w[:, None, :], x))
        if self._pairs is None:
            i, j = np.triu_indices(x.shape[1])
            self._pairs = i, j, x[:, i] * x[:, j]
        i, j, terms = self._pairs
        u = w @ terms
        h = np.empty((w.shape[0], x.shape[1], x.shape[1]))
        h[:, i, j] = u
        h[:, j, i] = u
        return h


def leave_out(h: np.ndarray, used: np.ndarray | None, diagonal: float) -> np.ndarray:
    """Stacked matrices ``h`` (R, k, k) with the columns not ``used`` (R, k) in a row left out:
    their rows and columns 0 and ``diagonal`` on the diagonal, so that a solve gives them 0 (with
    a right-hand side 0 there).  ``h`` itself where every column is used (``used`` None)."""
    if used is None or used.all():
        return h
    k = h.shape[1]
    h = h * (used[:, :, None] & used[:, None, :])
    h[~used[:, :, None] & np.eye(k, dtype=bool)] = diagonal
    return h


def scaled_solve(h: np.ndarray, g: np.ndarray, used: np.ndarray | None, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """``h[r]^-1 g[r]`` of stacks ``h`` (R, p, p), ``g`` (R, p) of symmetric positive (semi)definite
    (Gram) matrices through the unit-diagonal scaling of every ``h[r]``, and the rows where it
    is not defined: not finite, a diagonal not positive, or a condition number (of the scaled
    matrix) above ``limit``, where the solution is 0.  The columns not ``used`` in a row are left out
    (their solution 0).

    The scaled matrices are inverted; ``p ||S^-1||_F`` bounds the condition number of such an
    ``S`` (unit diagonal, so ``||S||_2 <= p``) from above, and only where that bound exceeds
    ``limit`` are the eigenvalues computed.
    """
    p = h.shape[1]
    if used is not None:
        h = leave_out(h, used, 1.0)
        g = np.where(used, g, 0.0)
    dd = np.einsum("rjj->rj", h)
    # a Gram matrix is finite where its diagonal is: |h_ij| <= sqrt(h_ii h_jj)
    bad = ~((dd > 0).all(axis=1) & np.isfinite(dd.sum(axis=1) + g.sum(axis=1)))
    some = bool(bad.any())
    d = np.sqrt(np.where(bad[:, None], 1.0, dd) if some else dd)
    scaled = h / (d[:, :, None] * d[:, None, :])
    if some:
        scaled[bad] = np.eye(p)
    try:
        inv = np.linalg.inv(scaled)
        check = ~(np.einsum("rij,rij->r", inv, inv) <= (limit / p) ** 2)
    except np.linalg.LinAlgError:  # an exactly singular one
        inv, check = np.zeros_like(scaled), np.ones(h.shape[0], dtype=bool)
    if check.any():
        ev = np.linalg.eigvalsh(scaled[check])
        bad[check] |= ~(ev[:, -1] <= limit * ev[:, 0])
        redo = check & ~bad
        if redo.any():
            inv[redo] = np.linalg.inv(scaled[redo])
        some = bool(bad.any())
    sol = np.einsum("rij,rj->ri", inv, g / d) / d
    if some:
        sol[bad] = 0.0
    return sol, bad


def _lstsq(x: np.ndarray, sw: np.ndarray, z: np.ndarray, used: np.ndarray | None) -> np.ndarray:
    """``numpy.linalg.lstsq(x * sw[r][:, None], z[r], rcond=-1)`` for every row ``r`` of ``sw`` and
    ``z`` (R, n), the columns not ``used`` in a row fixed at 0.

    By the triangular factor of the QR decomposition of ``[x * sw[r], z[r]]`` (whose last column
    holds ``Q' z[r]``; ``Q`` itself is not formed), with a unit row for every column left out
    (which fixes its coefficient at 0).  A row whose triangular factor is numerically
    rank-deficient by lstsq's cutoff (machine precision times the largest singular value) is
    solved by the singular value decomposition, dropping those directions, as lstsq does: of
    the triangular factor (it has the singular values of ``x * sw[r]``), or of ``x * sw[r]``
    where columns are left out.
    """
    R, n = sw.shape
    p = x.shape[1]
    partial = np.zeros(R, dtype=bool) if used is None else ~used.all(axis=1)
    m = np.zeros((R, n + p if partial.any() else n, p + 1))
    m[:, :n, :p] = x[None, :, :] * sw[:, :, None]
    m[:, :n, p] = z
    if used is not None and partial.any():
        m[:, :n, :p] *= used[:, None, :]
        m[:, n:, :p] = (~used)[:, :, None] * np.eye(p)[None]
    tz = np.asarray(np.linalg.qr(m, mode="r"))
    t, c = tz[:, :p, :p], tz[:, :p, p]
    d = np.abs(np.einsum("rjj->rj", t))
    # the triangular factor's diagonal bounds the singular values within a factor of about p
    low = ~(d.min(axis=1) > 4 * p * _FLOAT_EPS * d.max(axis=1))
    if not low.any():
        return np.asarray(np.linalg.solve(t, c[:, :, None])[:, :, 0])
    step = np.zeros((R, p))
    high, tri, full = ~low, low & ~partial, low & partial
    if high.any():
        step[high] = np.linalg.solve(t[high], c[high][:, :, None])[:, :, 0]
    if tri.any():
        step[tri] = _svd_solve(t[tri], c[tri])
    if full.any():
        step[full] = _svd_solve(m[full, :n, :p], z[full])
    return step


def _svd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm solutions of stacked ``a`` (R, m, p), ``b`` (R, m) dropping the singular values
    below machine precision times the largest (lstsq's ``rcond=-1``)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > _FLOAT_EPS * s[:, :1]
    coef = np.where(keep, np.einsum("rnk,rn->rk", u, b) / np.where(keep, s, 1.0), 0.0)
    return np.asarray(np.einsum("rkp,rk->rp", vt, coef))


@dataclass(frozen=True)
class _Irls:
    """Stacked logit fits of :func:`_irls`: per row of the weights the coefficients, the fitted
    probabilities, the working weights of the last step (by the deviance criterion), and whether
    the fit failed (values not finite, or a step not defined), converged and is (quasi-)separated."""

    beta: np.ndarray
    mu: np.ndarray
    wk: np.ndarray
    failed: np.ndarray
    converged: np.ndarray
    separated: np.ndarray


def _irls(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, used: np.ndarray | None, *, maxiter: int, tol: float,
    by_deviance: bool, gram: Gram | None = None,
) -> _Irls:
    """The Newton-Raphson (IRLS) steps of :func:`logit_newton` for every row of ``weights`` (R, n).

    The one loop of the package's logit: a single fit is a stack of one row.  Every row starts
    at ``mu = (y + 1/2) / 2`` and stops at its own convergence (``by_deviance``: statsmodels'
    deviance criterion and minimum-norm steps; otherwise Newton's steps on the scaled
    information and the step criterion); the rows still running are the only ones computed.
    ``used`` (R, p): the columns each row fits (the others stay 0), or None for all of them.
    The units with weight 0 do not count in a row's separation checks.
    """
    R, n = weights.shape
    p = x.shape[1]
    gram = Gram(x) if gram is None else gram
    pos = weights > 0
    mu0 = (y + 0.5) / 2.0
    eta = np.tile(np.log(mu0 / (1.0 - mu0)), (R, 1))
    mu = np.tile(mu0, (R, 1))
    beta = np.zeros((R, p))
    wk = np.zeros((R, n))
    dev = _deviance(y, mu, weights) if by_deviance else np.zeros(R)
    failed = np.zeros(R, dtype=bool)
    converged = np.zeros(R, dtype=bool)
    separated = np.zeros(R, dtype=bool)
    a = np.arange(R)
    for it in range(maxiter):
        if a.size == 0:
            break
        every = a.size == R  # no row has stopped yet: no copies
        w_a, mu_a, eta_a = (weights, mu, eta) if every else (weights[a], mu[a], eta[a])
        used_a = used if used is None or every else used[a]
        # the step fits the working residual; the first fits the working response from mu's start
        m = np.clip(mu_a, _FLOAT_EPS, 1.0 - _FLOAT_EPS) if by_deviance else mu_a
        v = m * (1.0 - m)
        wk_a = w_a * v
        if by_deviance:
            sw = np.sqrt(wk_a)
            z = sw * ((y - mu_a) / v + (eta_a if it == 0 else 0.0))
            step = _lstsq(x, sw, z, used_a)
            bad = np.zeros(a.size, dtype=bool)
        else:
            rhs = w_a * (y - mu_a) + (wk_a * eta_a if it == 0 else 0.0)
            step, bad = scaled_solve(gram(wk_a), rhs @ x, used_a, 1e10)
        beta_a = beta[a] + step
        eta_new = beta_a @ x.T  # the returned predictors are summed column by column
        mu_new = expit(eta_new)
        bad |= ~(np.all(np.isfinite(step), axis=1) & np.all(np.isfinite(eta_new), axis=1))
        if by_deviance:
            pos_a = pos if every else pos[a]
            dev_new = _deviance(y, mu_new, w_a)
            separated[a] |= np.all(~pos_a | (np.abs(mu_new - y) <= 1e-8), axis=1)  # statsmodels' perfect prediction
            conv = np.abs(dev_new - dev[a]) <= tol
            moved = np.max(np.where(pos_a, np.abs(eta_new - eta_a), 0.0), axis=1) > SEPARATION_STEP
            separated[a] |= conv & moved
            dev[a] = dev_new
        else:
            conv = (it > 0) & (np.max(np.abs(step), axis=1) < tol)
        beta[a], mu[a] = beta_a, mu_new
        if by_deviance:  # Newton's steps need the predictors at the start only, and no working weights
            eta[a], wk[a] = eta_new, wk_a
        converged[a] = conv & ~bad
        failed[a[bad]] = True
        stop = bad | conv
        if stop.any():
            a = a[~stop]
    return _Irls(beta, mu, wk, failed, converged, separated)


def _information_se(gram: Gram, wk: np.ndarray, used: np.ndarray | None, failed: np.ndarray, pinv: np.ndarray) -> np.ndarray:
    """Model-based standard errors (R, p) from the information ``x' diag(wk[r]) x`` of every row:
    the inverse of its unit-diagonal scaling (a pseudo-inverse where ``pinv``), NaN for the
    columns not ``used`` and the rows that ``failed``."""
    p = gram.x.shape[1]
    h = leave_out(gram(wk), used, 1.0)
    d = np.sqrt(np.einsum("rjj->rj", h))
    d[failed | ~np.isfinite(d).all(axis=1) | (d <= 0).any(axis=1)] = 1.0
    scaled = h / (d[:, :, None] * d[:, None, :])
    scaled[failed] = np.eye(p)
    inv = np.empty_like(scaled)
    if (~pinv).any():
        inv[~pinv] = np.linalg.inv(scaled[~pinv])
    if pinv.any():
        inv[pinv] = np.linalg.pinv(scaled[pinv])
    with np.errstate(invalid="ignore"):
        bse = np.sqrt(np.einsum("rjj->rj", inv) / d**2)
    if used is not None:
        bse[~used] = np.nan
    bse[failed] = np.nan
    return bse


def _warn_fit(maxiter: int, separated: bool, converged: bool, stacklevel: int) -> None:
    """The warnings of a logit fitted by the deviance criterion: quasi- or perfect separation, no
    convergence (statsmodels' categories), attributed ``stacklevel`` frames up from the caller."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    if separated:
        warnings.warn("Quasi- or perfect separation: the logit has no maximum-likelihood "
                      "estimate; fitted by IRLS until the deviance settled",
                      PerfectSeparationWarning, stacklevel=stacklevel + 1)
    if not converged:
        warnings.warn(f"The logit did not converge in {maxiter} IRLS steps", ConvergenceWarning,
                      stacklevel=stacklevel + 1)


def logit_newton(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
    tol_criterion: Literal["params", "deviance"] = "params",
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Maximum-likelihood (optionally weighted) logistic regression by Newton-Raphson (IRLS).

    For the canonical logit link Newton-Raphson is iteratively reweighted least squares: each
    step is the weighted least-squares fit of the working residual ``(y - mu) / (mu (1 - mu))``
    with weights ``w mu (1 - mu)``.  The first step starts, as statsmodels' GLM does, from
    ``mu = (y + 1/2) / 2``.  The fit stops by ``tol_criterion`` (statsmodels' names):

    ``"params"``
        when no coefficient moves by more than ``tol``; as convergence is quadratic the result is
        the optimum to rounding error.  The steps solve the (scaled) information matrix; where it
        is nearly singular (a rank-deficient design, or a separated sample, whose maximum does
        not exist) or ``maxiter`` steps do not converge, the fit stops and returns None, so that
        the caller can hand it over.
    ``"deviance"``
        when the deviance changes by at most ``tol``, as statsmodels' GLM stops, with its
        minimum-norm least-squares steps and its clipping of probabilities: the fit equals
        statsmodels' GLM to rounding, also on a quasi-separated sample (where the deviance
        settles while the separated coefficients drift towards infinity).  A sample that is
        quasi- or perfectly separated (the deviance settled while some logit still moved by more
        than :data:`SEPARATION_STEP`, or every fitted probability equals its outcome) warns once
        with statsmodels' ``PerfectSeparationWarning``; ``maxiter`` steps without convergence warn
        with its ``ConvergenceWarning`` (the last step is returned).  Both are counted by
        :func:`analysis.fitwarnings.expected_fit_warnings` where the caller counts fit warnings.

    The steps are those of every stacked fit (:func:`_irls`, on one row of weights).  Units with
    weight 0 do not count.

    Parameters
    ----------
    x
        ``(n, p)`` design matrix (of full column rank for ``"params"``).
    y
        0/1 response.
    weights
        Prior weights (R's ``glm(weights=)``, statsmodels' ``var_weights``), or None.
    maxiter
        Maximum number of steps.
    tol
        Convergence threshold on the maximum absolute step of a coefficient (``"params"``) or on
        the absolute change of the deviance (``"deviance"``).
    tol_criterion
        ``"params"`` or ``"deviance"``, as above.

    Returns
    -------
    tuple of numpy.ndarray, or None
        Coefficients, their model-based standard errors (inverse of the observed information
        ``X'WX``, scale 1; a pseudo-inverse for ``"deviance"``) and the linear predictor; None
        when the fit stops as above or values are not finite.
    """
    if tol_criterion not in ("params", "deviance"):
        raise ConfigError("Unknown convergence criterion", param="tol_criterion",
                          expected="'params' or 'deviance'", found=repr(tol_criterion))
    by_deviance = tol_criterion == "deviance"
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    pw = np.ones((1, y.size)) if weights is None else np.asarray(weights, dtype=float).reshape(1, -1)
    gram = Gram(x)
    fit = _irls(x, y, pw, None, maxiter=maxiter, tol=tol, by_deviance=by_deviance, gram=gram)
    converged = bool(fit.converged[0])
    if fit.failed[0] or not (converged or by_deviance):
        return None
    if by_deviance:
        _warn_fit(maxiter, bool(fit.separated[0]), converged, stacklevel=2)
        wk = fit.wk  # the information at statsmodels' weights of its last step
    else:
        wk = pw * fit.mu * (1.0 - fit.mu)  # at the fitted values
    bse = _information_se(gram, wk, None, fit.failed, np.array([by_deviance]))[0]
    return fit.beta[0], bse, _linear_predictor(x, fit.beta[0])


def logit_fit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
    newton_maxiter: int = 12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The package's (weighted) logistic regression on a design matrix.

    :func:`logit_newton` to the optimum (``tol_criterion="params"``), and where that does not
    converge (quasi-separation, a rank-deficient design) the same Newton-Raphson (IRLS) steps
    until the deviance settles (``tol_criterion="deviance"``), which is statsmodels' GLM fit to
    rounding and warns of the separation as statsmodels' ``PerfectSeparationWarning``.  Newton's
    method converges in a handful of steps where the maximum exists, so the first fit gets at
    most ``newton_maxiter`` of them.

    Stacked weights (``weights`` of shape ``(R, n)``, e.g. the replicates of a bootstrap) fit
    ``R`` logits on the same ``x`` and ``y`` at once (:func:`logit_fit_stacked`): row ``r`` of
    every result is the fit with weights ``weights[r]`` on a basis of the columns of ``x`` that
    are identified among the rows with positive weight (:func:`identified_columns`; the other
    coefficients are 0 with NaN SEs, the linear predictor does not depend on the basis).

    Returns
    -------
    (params, bse, linear_predictor)
        Shapes ``(p,)``, ``(p,)``, ``(n,)``, or ``(R, p)``, ``(R, p)``, ``(R, n)`` for stacked
        weights (a row whose fit failed is NaN).

    Raises
    ------
    PopevalError
        When values stop being finite (one set of weights).
    """
    if weights is not None and np.ndim(weights) == 2:
        params, bse, eta, warned = logit_fit_stacked(x, y, np.asarray(weights, dtype=float), maxiter=maxiter,
                                                     tol=tol, newton_maxiter=newton_maxiter)
        for w in (w for row in warned for w in row):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return params, bse, eta
    fitted = logit_newton(x, y, weights, maxiter=min(maxiter, newton_maxiter), tol=tol)
    if fitted is None:
        fitted = logit_newton(x, y, weights, maxiter=maxiter, tol=tol, tol_criterion="deviance")
    if fitted is None:
        raise PopevalError(
            "The propensity-score model could not be fitted",
            expected="finite fitted values", found="non-finite values in the logit's IRLS steps",
            hint="check for constant covariates or extreme weights",
        )
    return fitted


def identified_columns(x: np.ndarray) -> np.ndarray:
    """Positions of linearly independent columns of ``x`` spanning its column space.

    A (replicate) sample may lack a covariate category, or its reference category; the
    formula-built designs of the point estimate then have fewer columns.  The fitted values do
    not depend on which basis of the column space is used (QR with column pivoting picks one).
    """
    from scipy.linalg import qr

    _, r, piv = qr(x, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int((d > d[0] * 1e-10).sum()) if d.size else 0
    return np.sort(piv[:rank])


def merged_rows(x: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """Identical rows of ``x`` (and of the ``keys``, e.g. the response) merged into one.

    Returns the first row of every group, the group of every row and the sparse (groups, rows)
    matrix that sums the rows' weights into their groups (``(m @ w.T).T``).  A weighted fit
    (least squares, a logit, an ordered logit) is the same on the merged rows with summed
    weights.
    """
    from scipy import sparse

    n = x.shape[0]
    key = np.column_stack([x, *keys]) if keys else x
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    return first, inverse, sparse.csr_matrix((np.ones(n), (inverse, np.arange(n))), shape=(first.size, n))


def stacked_columns(x: np.ndarray, pos: np.ndarray, *, constant: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``x`` for stacked fits on the rows ``pos[r]`` (R, n) of every fit ``r``.

    Returns ``basis``, the :func:`identified_columns` of the rows any fit uses (a collinearity
    there is one of every fit), and ``used`` (R, len(basis)): per fit, the basis columns that
    are identified on its own rows (a column 0 on all of them, or, where the rest is still
    collinear, the columns :func:`identified_columns` keeps).  ``constant``: the fits have a
    constant of their own (the cut-points of an ordered logit), so the columns are chosen
    independent of it.
    """
    anyrow = pos.any(axis=0)
    xu = x[anyrow]
    if not anyrow.any():
        return np.arange(x.shape[1]), np.zeros((pos.shape[0], x.shape[1]), dtype=bool)
    basis = identified_columns(xu - xu.mean(axis=0) if constant else xu)
    xb = x[:, basis]
    p = basis.size
    pf = pos.astype(float)
    used = (pf @ (xb != 0).astype(float)) > 0
    z = np.hstack([np.ones((x.shape[0], 1)), xb]) if constant else xb
    uz = np.hstack([np.ones((pos.shape[0], 1), dtype=bool), used]) if constant else used
    gram = leave_out(Gram(z)(pf), uz, 1.0)
    d = np.sqrt(np.einsum("rjj->rj", gram))
    ev = np.linalg.eigvalsh(gram / (d[:, :, None] * d[:, None, :]))
    for r in np.flatnonzero(~(ev[:, -1] <= 1e10 * ev[:, 0])):
        xr = xb[pos[r]]
        used[r] = np.isin(np.arange(p), identified_columns(xr - xr.mean(axis=0) if constant else xr))
    return basis, used


def logit_fit_stacked(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, *, maxiter: int = 100, tol: float = 1e-10, newton_maxiter: int = 12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[warnings.WarningMessage]]]:
    """:func:`logit_fit` for every row of ``weights`` (R, n) at once, and each row's warnings.

    The steps of :func:`logit_fit` (:func:`_irls` by Newton's criterion, then by the deviance
    criterion for the rows where that fails, the same information and warnings) on all rows
    together, on the rows of ``x`` and ``y`` merged where they are identical (:func:`merged_rows`,
    their weights summed) and the columns of :func:`stacked_columns` (the columns a row does not
    identify are left out there: their coefficient 0 and SE NaN, which is the fit without them).
    A row whose fit fails (values not finite) is fitted alone by :func:`logit_fit` on its
    :func:`identified_columns`, and is NaN if that fails too.  The warnings a row's fit gives
    (quasi-separation, no convergence) are recorded, not raised: :func:`logit_fit` raises them,
    a caller that keeps some rows only raises theirs (``warnings.warn_explicit``).

    Returns
    -------
    (params, bse, linear_predictor, warnings)
        ``(R, p)``, ``(R, p)``, ``(R, n)`` and a list of the recorded warnings of every row.
    """
    x_all = np.asarray(x, dtype=float)
    y_all = np.asarray(y, dtype=float)
    R, p_all = weights.shape[0], x_all.shape[1]
    pos_all = weights > 0
    # rows with the same covariates and response merged (the likelihood is the same)
    first, _, to_groups = merged_rows(x_all, y_all)
    w_all, weights = weights, np.asarray((to_groups @ weights.T).T)
    y = y_all[first]
    basis, used = stacked_columns(x_all[first], weights > 0)
    x = x_all[first][:, basis]
    gram = Gram(x)
    fit = _irls(x, y, weights, used, maxiter=min(maxiter, newton_maxiter), tol=tol, by_deviance=False, gram=gram)
    beta, failed = fit.beta, fit.failed | ~fit.converged
    wk = weights * fit.mu * (1.0 - fit.mu)  # the information at the fitted values
    warned: list[list[warnings.WarningMessage]] = [[] for _ in range(R)]
    by_dev = np.flatnonzero(failed)
    pinv = np.zeros(R, dtype=bool)
    if by_dev.size:
        dv = _irls(x, y, weights[by_dev], used[by_dev], maxiter=maxiter, tol=tol, by_deviance=True, gram=gram)
        beta[by_dev], wk[by_dev] = dv.beta, dv.wk  # by the deviance criterion, at the last step's weights
        failed[by_dev] = dv.failed
        pinv[by_dev] = ~dv.failed
        for i in np.flatnonzero(~dv.failed & (dv.separated | ~dv.converged)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _warn_fit(maxiter, bool(dv.separated[i]), bool(dv.converged[i]), stacklevel=1)
            warned[by_dev[i]] = list(caught)
    bse = _information_se(gram, wk, used, failed, pinv)
    params = np.zeros((R, p_all))
    params[:, basis] = beta
    se = np.full((R, p_all), np.nan)
    se[:, basis] = bse
    eta = _linear_predictor(x_all[:, basis], beta)
    for r in np.flatnonzero(failed):
        rows = np.flatnonzero(pos_all[r])
        params[r], se[r], eta[r] = np.nan, np.nan, np.nan
        if rows.size == 0:
            continue
        cols = identified_columns(x_all[rows])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                b_r, se_r, _ = logit_fit(x_all[rows][:, cols], y_all[rows], w_all[r, rows], maxiter=maxiter, tol=tol,
                                         newton_maxiter=newton_maxiter)
            except PopevalError:
                continue
        warned[r] = list(caught)
        params[r], params[r, cols], se[r, cols] = 0.0, b_r, se_r
        eta[r] = _linear_predictor(x_all[:, cols], b_r)
    return params, se, eta, warned


def propensity_score(
    df: pd.DataFrame,
    formula: str,
    weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
    engine: Literal["auto", "statsmodels"] = "auto",
) -> PropensityScoreResult:
    """Fit a logistic propensity-score model from a formula.

    Parameters
    ----------
    df
        The data; the treatment (left of ``~``) must be coded 0/1.
    formula
        A patsy formula, e.g. ``"pop ~ age_band + educ + sector"``; string columns become
        treatment-coded factors (first level alphabetically is the reference, as in R).
    weights
        Optional survey weights (column name or array).  They enter the binomial GLM as
        ``var_weights`` (R's ``glm(weights=)``, i.e. prior weights), so the point estimates solve
        the weighted score equations; the reported ``bse`` are model-based and *not* design-based.
    maxiter, tol
        Iteration controls; the tolerance is tighter than R's default so scores agree with R's to
        about 1e-8.  Newton's method stops when no coefficient moves by more than ``tol``; where
        it does not converge (quasi-separation, a rank-deficient design), and in statsmodels,
        the fit stops when the deviance changes by less than ``tol``.
    engine
        ``"auto"``: the design matrix of :func:`analysis.matching.formula.design_matrix` (numpy
        for plain columns and ``C(column)`` terms, patsy otherwise) fitted by the package's
        logit, :func:`logit_fit`, which warns of a quasi- or perfect separation with
        statsmodels' ``PerfectSeparationWarning`` (counted where the caller counts fit
        warnings).  ``"statsmodels"``: patsy and statsmodels' GLM, as a cross-check (it warns
        only of a perfect separation).  Both give the same coefficients, names and scores (to
        about 1e-10).

    Returns
    -------
    PropensityScoreResult
    """
    import pandas as pd

    if engine not in ("auto", "statsmodels"):
        raise ConfigError(
            "Unknown propensity-score engine", param="engine",
            expected="'auto' or 'statsmodels'", found=repr(engine),
        )
    lhs, rhs = split_formula(formula)
    treat = treatment_vector(df, lhs)
    w = resolve_weights(df, weights, param="weights")
    if engine == "auto":
        x, names = _design(df, rhs, formula)
        beta, se, eta = logit_fit(x, treat, w, maxiter=maxiter, tol=tol, newton_maxiter=maxiter)
        params = pd.Series(beta, index=names)
        bse = pd.Series(se, index=names)
        score_arr = expit(eta)
        lin_arr = eta
        nobs = len(df)
        used = "numpy"
    else:
        params, bse, score_arr, lin_arr, nobs = _fit_statsmodels(
            df, formula, lhs, treat, w, maxiter, tol
        )
        used = "statsmodels"
    score = pd.Series(score_arr, index=df.index, name="distance")
    return PropensityScoreResult(
        formula=formula,
        score=score,
        linear_predictor=pd.Series(lin_arr, index=df.index, name="logit"),
        treat=pd.Series(treat, index=df.index, name=lhs),
        params=params,
        bse=bse,
        weighted=w is not None,
        support=_support_table(score_arr, treat),
        nobs=nobs,
        engine=used,
    )


def _design(df: pd.DataFrame, rhs: str, formula: str) -> tuple[np.ndarray, list[str]]:
    """The propensity model's design matrix (:func:`analysis.matching.formula.design_matrix`)."""
    try:
        return design_matrix(df, rhs)
    except Exception as exc:
        import patsy  # only here: the numpy path of simple formulas never loads it

        if not isinstance(exc, patsy.PatsyError):
            raise
        missing = bool(df.isna().to_numpy().any())
        raise PopevalError(
            "The propensity-score model could not be built", param="formula", found=formula,
            hint="drop or impute missing covariates before fitting" if missing
            else "check the formula's column names and terms",
            detail=str(exc).splitlines()[0],
        ) from exc


def _fit_statsmodels(
    df: pd.DataFrame,
    formula: str,
    lhs: str,
    treat: np.ndarray,
    w: np.ndarray | None,
    maxiter: int,
    tol: float,
) -> tuple[pd.Series, pd.Series, np.ndarray, np.ndarray, int]:
    """Patsy + statsmodels GLM: params, bse, fitted scores, linear predictor, nobs."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = df.copy(deep=False)
    data[lhs] = treat
    kwargs = {} if w is None else {"var_weights": w}
    try:
        model = smf.glm(formula, data, family=sm.families.Binomial(), **kwargs)
        fit = model.fit(maxiter=maxiter, tol=tol)
    except Exception as exc:
        raise PopevalError(
            "The propensity-score model could not be fitted", param="formula", found=formula,
            hint="check for perfect separation or constant covariates", detail=str(exc),
        ) from exc
    if len(fit.fittedvalues) != len(df):
        raise PopevalError(
            "Rows were dropped while fitting the propensity score (missing values?)",
            param="formula", expected=f"{len(df)} rows", found=f"{len(fit.fittedvalues)}",
            hint="drop or impute missing covariates before fitting",
        )
    return (
        fit.params.copy(),
        fit.bse.copy(),
        np.asarray(fit.fittedvalues, dtype=float),
        np.asarray(fit.predict(which="linear"), dtype=float),
        int(fit.nobs),
    )
