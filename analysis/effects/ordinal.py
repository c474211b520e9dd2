"""Weighted proportional-odds (ordered logit) model with sandwich standard errors.

statsmodels' ``OrderedModel`` takes no weights, so the weighted likelihood is written here:

    log L = sum_i w_i log[F(zeta_{y_i} - x_i'beta) - F(zeta_{y_i - 1} - x_i'beta)],

with ``F`` the logistic CDF, ``zeta_0 = -inf`` and ``zeta_K = +inf`` (R's ``MASS::polr`` and
``survey::svyolr`` parametrisation: ``logit P(Y <= k) = zeta_k - x'beta``).  The covariance is the
sandwich ``A^{-1} B A^{-1}`` with ``A`` the weighted information and ``B`` the design-based
variance of the weighted score totals: ``G/(G-1) sum_g (S_g - mean S)(S_g - mean S)'`` over
clusters ``g`` (each unit its own cluster by default), which is what ``svyolr`` computes for
``svydesign(ids=~1, weights=~w)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.effects.results import EffectEstimate
from survey.errors import DataValidationError, PopevalError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OrderedLogitResult", "ordered_logit", "ordered_logit_fit", "treatment_probability_shifts"]


def _cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def _pdf(x: np.ndarray) -> np.ndarray:
    p = _cdf(x)
    return p * (1 - p)


def _cuts(zeta: np.ndarray) -> np.ndarray:
    return np.concatenate([[-np.inf], zeta, [np.inf]])


def _scores(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-observation log-likelihood and score in (beta, zeta)."""
    p = X.shape[1]
    beta, zeta = theta[:p], theta[p:]
    c = _cuts(zeta)
    eta = X @ beta
    a = c[y + 1] - eta
    b = c[y] - eta
    prob = np.clip(_cdf(a) - _cdf(b), 1e-300, None)
    fa = np.where(np.isfinite(a), _pdf(np.where(np.isfinite(a), a, 0.0)), 0.0)
    fb = np.where(np.isfinite(b), _pdf(np.where(np.isfinite(b), b, 0.0)), 0.0)
    s = np.zeros((X.shape[0], p + K - 1))
    s[:, :p] = -X * ((fa - fb) / prob)[:, None]
    n = X.shape[0]
    upper = y < K - 1
    s[np.flatnonzero(upper), p + y[upper]] += fa[upper] / prob[upper]
    lower = y > 0
    s[np.flatnonzero(lower), p + y[lower] - 1] -= fb[lower] / prob[lower]
    del n
    return np.log(prob), s


@dataclass(frozen=True)
class OrderedLogitResult:
    """A fitted weighted ordered logit.

    Attributes
    ----------
    params, bse
        Coefficients (``beta``) followed by the cut-points (``"1|2"``, ``"2|3"``, ...).
    cov
        Sandwich covariance of ``params``.
    nobs
        Number of observations.
    llf
        Weighted log-likelihood.
    categories
        Outcome categories, in order.
    treat
        Name of the treatment term, or None.
    prob_shifts
        With a treatment: the average marginal effect of treatment on P(Y = k) among the treated
        (weighted), per category (index ``category``; columns ``shift``, ``bse``, ``lower``,
        ``upper``): the shift, its delta-method standard error and 95% interval, or None.
    """

    params: pd.Series
    bse: pd.Series
    cov: pd.DataFrame
    nobs: int
    llf: float
    categories: tuple
    treat: str | None
    prob_shifts: pd.DataFrame | None

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Normal-based confidence intervals."""
        import pandas as pd
        from scipy.special import ndtri

        q = ndtri(1 - alpha / 2)
        return pd.DataFrame({"lower": self.params - q * self.bse,
                             "upper": self.params + q * self.bse})

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided normal p-values."""
        from scipy.special import ndtr

        return 2 * ndtr(-np.abs(self.params / self.bse))

    def effect(self, outcome: str = "y") -> EffectEstimate:
        """The treatment coefficient (log odds ratio) as an :class:`EffectEstimate`."""
        if self.treat is None:
            raise PopevalError("No treatment term was named", param="treat")
        return EffectEstimate(
            outcome=outcome, estimand="ATT (conditional log odds ratio)",
            method="weighted ordered logit", params=self.params, bse=self.bse, term=self.treat,
            nobs=self.nobs, vcov_type="sandwich (design-based)",
            extra={} if self.prob_shifts is None else {"probability shifts": self.prob_shifts},
        )

    def to_frame(self) -> pd.DataFrame:
        """Coefficients, SEs, p-values and intervals."""
        import pandas as pd

        ci = self.conf_int()
        return pd.DataFrame({"coef": self.params, "std err": self.bse,
                             "P>|z|": self.pvalues, "lower": ci["lower"], "upper": ci["upper"]})

    def summary(self) -> str:
        """Plain-text report, including the probability shifts."""
        lines = [
            "Weighted ordered logit (proportional odds), sandwich SEs",
            f"nobs = {self.nobs}; weighted log-likelihood = {self.llf:.6g}",
            "",
            self.to_frame().to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        if self.prob_shifts is not None:
            lines += ["", "Average effect of treatment on P(Y = k) among the treated:",
                      self.prob_shifts.to_string(float_format=lambda v: f"{v:.4f}")]
        return "\n".join(lines)


def ordered_logit(
    df: pd.DataFrame,
    formula: str,
    weights: str | Sequence[float] | np.ndarray | None = None,
    *,
    treat: str | None = None,
    cluster: str | None = None,
    categories: Sequence | None = None,
) -> OrderedLogitResult:
    """Fit a weighted proportional-odds logit.

    Parameters
    ----------
    df
        The data.
    formula
        ``"y ~ treat + x1 + x2"``; no intercept is estimated (the cut-points take its place).
    weights
        Survey or survey x matching weights.
    treat
        Name of a 0/1 treatment term in the formula; when given, the average marginal effect of
        treatment on each P(Y = k) among the treated is reported (predicted probabilities with
        treatment set to 1 minus set to 0, averaged over treated units with their weights).  Its
        SE is by the delta method with the sandwich covariance, conditional on the covariates.
    cluster
        Column with cluster labels (e.g. the matching subclass) for the sandwich; default: each
        unit its own cluster.
    categories
        Ordered outcome categories (default: sorted unique values).

    Returns
    -------
    OrderedLogitResult
    """
    import pandas as pd

    from analysis.matching.formula import design_matrix, resolve_weights

    lhs, rhs = (s.strip() for s in formula.split("~"))
    # with an intercept term patsy codes factors with a reference level; the intercept itself is
    # dropped (the cut-points take its place), so no dummy set is collinear with the cut-points
    X_all, all_names = design_matrix(df, f"1 + {rhs}")
    keep = [j for j, c in enumerate(all_names) if c != "Intercept"]
    X = np.ascontiguousarray(X_all[:, keep])
    X_df = pd.DataFrame(X, columns=[all_names[j] for j in keep], index=df.index)
    yraw = df[lhs]
    if yraw.isna().any():
        raise DataValidationError("The outcome has missing values", column=lhs)
    cats = tuple(sorted(yraw.unique().tolist())) if categories is None else tuple(categories)
    code = {c: i for i, c in enumerate(cats)}
    try:
        y = np.array([code[v] for v in yraw], dtype=np.int64)
    except KeyError as exc:
        raise DataValidationError("Outcome value outside the categories", column=lhs,
                                  expected=repr(cats), found=repr(exc.args[0])) from exc
    K = len(cats)
    if K < 3:
        raise DataValidationError("An ordered logit needs at least three categories",
                                  column=lhs, found=repr(cats))
    w = resolve_weights(df, weights, param="weights")
    w = np.ones(len(df)) if w is None else w

    try:
        theta = ordered_logit_fit(X, y, w, K)
    except PopevalError as exc:
        raise PopevalError("The ordered logit did not converge", param="formula",
                           found=formula, detail=exc.detail) from exc
    ll, s = _scores(theta, X, y, K)
    A = -_hessian(theta, X, y, K, w)
    ws = s * w[:, None]
    if cluster is not None:
        _, gidx = np.unique(df[cluster].to_numpy(), return_inverse=True)
        S = np.zeros((int(gidx.max()) + 1, ws.shape[1]))
        np.add.at(S, gidx, ws)
    else:
        S = ws
    G = S.shape[0]
    Sc = S - S.mean(axis=0)
    B = Sc.T @ Sc * G / (G - 1)
    Ainv = np.linalg.inv(A)
    V = Ainv @ B @ Ainv
    names = [str(c) for c in X_df.columns] + [f"{cats[k]}|{cats[k + 1]}" for k in range(K - 1)]
    params = pd.Series(theta, index=names)
    var = np.diag(V)
    # a negative sandwich variance (a nearly unidentified threshold) has no SE: NaN, stated as such
    bse = pd.Series(np.sqrt(np.where(var >= 0, var, np.nan)), index=names)
    shifts = None
    if treat is not None:
        if treat not in X_df.columns:
            raise DataValidationError("The treatment is not a term of the formula", column=treat,
                                      param="treat", found=repr(list(X_df.columns)))
        j = list(X_df.columns).index(treat)

        def ame(th: np.ndarray) -> np.ndarray:
            return treatment_probability_shifts(th, X, w, j)

        est = ame(theta)
        eps = 1e-6
        J = np.column_stack([(ame(theta + eps * e) - ame(theta - eps * e)) / (2 * eps)
                             for e in np.eye(theta.size)])
        se = np.sqrt(np.diag(J @ V @ J.T))
        shifts = pd.DataFrame({"shift": est, "bse": se, "lower": est - 1.959963984540054 * se,
                               "upper": est + 1.959963984540054 * se},
                              index=pd.Index(cats, name="category"))
    return OrderedLogitResult(
        params=params, bse=bse, cov=pd.DataFrame(V, index=names, columns=names),
        nobs=len(y), llf=float((w * ll).sum()), categories=cats, treat=treat,
        prob_shifts=shifts,
    )


def treatment_probability_shifts(theta: np.ndarray, X: np.ndarray, w: np.ndarray, j: int) -> np.ndarray:
    """Average effect of treatment on every P(Y = k) among the treated, on arrays.

    For the treated units (``X[:, j] == 1``), the predicted probabilities of each category with
    the treatment column set to 1 minus set to 0, averaged with the weights ``w``; ``theta`` is
    (beta, cut-points) of :func:`ordered_logit_fit` on ``X``.  Invariant to merging identical
    rows into one with their summed weight.  Stacked ``theta`` (R, k) and weights (R, n) give
    every row's shifts, (R, K).
    """
    p = X.shape[1]
    sel = X[:, j] == 1
    if theta.ndim == 2:  # the treated units' distinct rows, with their summed weights
        from analysis.matching.propensity import merged_rows

        first, _, to_rows = merged_rows(X[sel])
        Xt = X[sel][first]
        ws = np.asarray((to_rows @ w[:, sel].T).T)
        X1, X0 = Xt.copy(), Xt.copy()
        X1[:, j], X0[:, j] = 1.0, 0.0
        # P(Y = k) = F(zeta_k - x'beta) - F(zeta_{k-1} - x'beta) with F = 0 and 1 at the ends: the
        # weighted mean of the shifts is the difference of the means of the F
        D = _cut_cdf(theta[:, :p] @ X1.T, theta[:, p:])
        D -= _cut_cdf(theta[:, :p] @ X0.T, theta[:, p:])
        mean = np.einsum("rn,rnk->rk", ws / ws.sum(axis=1, keepdims=True), D)
        zero = np.zeros((theta.shape[0], 1))
        return np.diff(np.concatenate([zero, mean, zero], axis=1), axis=1)
    X1, X0 = X[sel].copy(), X[sel].copy()
    X1[:, j], X0[:, j] = 1.0, 0.0
    c = _cuts(theta[p:])
    P1 = np.diff(_cdf(c[None, :] - (X1 @ theta[:p])[:, None]), axis=1)
    P0 = np.diff(_cdf(c[None, :] - (X0 @ theta[:p])[:, None]), axis=1)
    ww = w[sel] / w[sel].sum()
    return np.asarray(ww @ (P1 - P0))


def ordered_logit_fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, K: int, *, separated: float | None = None) -> np.ndarray:
    """Maximum-likelihood (beta, cut-points) of a weighted proportional-odds logit on arrays.

    ``X`` has no intercept, ``y`` holds category codes 0..K-1.  Newton's method with the analytic
    Hessian and step halving (the log-likelihood is concave in (beta, cut-points), Pratt 1981),
    started at beta = 0 and the cut-points of the weighted cumulative proportions
    (:func:`_newton`, on one row of weights; with collinear columns the steps are minimum-norm);
    should it fail to converge, BFGS in an unconstrained parametrisation of increasing
    cut-points, then Newton steps.  Either way the result must pass the same gradient check.

    Stacked weights ``w`` of shape ``(R, n)`` fit ``R`` models on the same ``X`` and ``y`` at
    once (:func:`_ordered_logit_stacked`) and return ``(R, p + K - 1)``: row ``r`` is the fit
    with weights ``w[r]`` on the columns of ``X`` that are not 0 on every row of positive weight
    (the others' coefficients 0; with collinear columns, on the columns of
    :func:`analysis.matching.propensity.stacked_columns`), NaN where that fit fails or a
    category has no weight.  A row whose stacked steps fail (a singular Hessian, the step
    halving exhausted, no convergence: mostly a (quasi-)separated fit) is fitted alone, BFGS
    included.  With ``separated`` such a row is left NaN instead, and so is a row whose first
    coefficient runs beyond ``separated`` in magnitude (its steps stop there): for a caller that
    redoes these fits in its own way (the end-to-end replicates one by one).
    """
    if np.ndim(w) == 2:
        return _ordered_logit_stacked(X, y, np.asarray(w, dtype=float), K, separated)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=np.int64)
    w = np.asarray(w, dtype=float)
    p = X.shape[1]
    # start: beta = 0, cut-points from cumulative weighted proportions (the MLE at beta = 0)
    totals = np.bincount(y, weights=w, minlength=K)
    cum = np.cumsum(totals)[:-1] / w.sum()
    zeta0 = np.log(cum / (1 - cum))
    theta0 = np.concatenate([np.zeros(p), zeta0])
    theta = theta0[None, :].copy()
    state = -1
    if np.all(totals > 0):  # every category weighted: the cut-points start increasing
        order = np.argsort(y, kind="stable")  # every category's units one slice
        state = int(_newton(_Ordinal.of(X[order], y[order], K), theta, w[None, order], None, min_norm=True)[0])
    if state == 1:  # it passed the gradient check below in _newton
        return np.asarray(theta[0])
    theta_b, detail = _bfgs(theta0, X, y, K, w, 1e-10 * max(1.0, float(w.sum())))
    _ll, s = _scores(theta_b, X, y, K)
    g = (s * w[:, None]).sum(axis=0)
    if not np.all(np.isfinite(theta_b)) or np.max(np.abs(g)) > 1e-5 * max(1.0, w.sum()):
        raise PopevalError("The ordered logit did not converge", detail=detail)
    return theta_b


@dataclass(frozen=True, eq=False)
class _Ordinal:
    """The fixed parts of ordered logits on one ``X`` and ``y`` (codes 0..K-1, the units sorted by
    category: every category's units are one slice), for one or many rows of weights."""

    X: np.ndarray
    y: np.ndarray
    K: int
    starts: np.ndarray  # the first unit of every category
    Xd: np.ndarray  # the distinct rows of X (with merge; else X)
    upper: np.ndarray  # per unit with an upper cut-point: (its row of Xd) * (K - 1) + that cut-point
    lower: np.ndarray  # per unit with a lower cut-point, likewise
    gram: Any  # analysis.matching.propensity.Gram of Xd
    to_rows: Any  # sparse (m, n): sums over the units of every distinct row, or None (every row)

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray, K: int, *, merge: bool = False) -> _Ordinal:
        """From units sorted by category, every category present; ``merge``: the units' values
        are computed once per distinct row of ``X`` (for many rows of weights)."""
        from analysis.matching.propensity import Gram, merged_rows

        n = y.size
        if np.any(np.diff(y) < 0):
            raise ValueError("units must be sorted by category")
        Xd, rows, to_rows = X, np.arange(n), None
        if merge:
            first, rows, to_rows = merged_rows(X)
            Xd = X[first]
        up, lo = y < K - 1, y > 0
        return cls(X, y, K, np.searchsorted(y, np.arange(K)), Xd, rows[up] * (K - 1) + y[up],
                   rows[lo] * (K - 1) + y[lo] - 1, Gram(Xd), to_rows)

    def sums(self, v: np.ndarray) -> np.ndarray:
        """Sums of ``v`` (R, n) over every category's units: (R, K)."""
        return np.add.reduceat(v, self.starts, axis=1)

    def blocks(self, R: int) -> list[slice]:
        """Blocks of the ``R`` rows of weights of about :data:`BLOCK` values of the units each: the
        elementwise work of a block stays in the processor's cache."""
        step = max(1, BLOCK // max(1, self.y.size))
        return [slice(i, min(i + step, R)) for i in range(0, R, step)]

    def parts(self, theta: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
        """Weighted log-likelihood of every row of ``theta`` (R, k), and the units' ``F(a)``,
        ``F(b)`` and ``f(a) / P``, ``f(b) / P`` (R, n), as :func:`_scores` computes them."""
        R, n = theta.shape[0], self.y.size
        f = np.empty(R)
        Fa, Fb, ra, rb = (np.empty((R, n)) for _ in range(4))
        for b in self.blocks(R):
            f[b] = self._parts(theta[b], w[b], Fa[b], Fb[b], ra[b], rb[b])
        return f, Fa, Fb, ra, rb

    def _parts(self, theta: np.ndarray, w: np.ndarray, Fa: np.ndarray, Fb: np.ndarray, ra: np.ndarray,
               rb: np.ndarray) -> np.ndarray:
        """:meth:`parts` of a block of rows, into ``Fa``, ``Fb``, ``ra``, ``rb``.

        ``F(zeta_j - x'beta) = 1 / (1 + exp(x'beta) exp(-zeta_j))`` once for every distinct row
        and cut-point (``exp(x'beta - zeta_j)`` in a row where an exponent exceeds 300), then
        taken for every unit.
        """
        p, K = self.X.shape[1], self.K
        C, m = theta.shape[0], self.Xd.shape[0]
        F = _cut_cdf(theta[:, :p] @ self.Xd.T, theta[:, p:]).reshape(C, m * (K - 1))
        G = 1.0 - F
        G *= F  # f = F (1 - F)
        # F(a) = 1 where there is no upper cut-point, F(b) = 0 where there is no lower: f = 0
        top, low = int(self.starts[K - 1]), int(self.starts[1])
        np.take(F, self.upper, axis=1, out=Fa[:, :top], mode="clip")
        Fa[:, top:] = 1.0
        np.take(F, self.lower, axis=1, out=Fb[:, low:], mode="clip")
        Fb[:, :low] = 0.0
        prob = Fa - Fb
        np.maximum(prob, 1e-300, out=prob)
        np.take(G, self.upper, axis=1, out=ra[:, :top], mode="clip")
        ra[:, top:] = 0.0
        ra /= prob
        np.take(G, self.lower, axis=1, out=rb[:, low:], mode="clip")
        rb[:, :low] = 0.0
        rb /= prob
        lp = np.log(prob, out=prob)
        lp *= w
        return np.asarray(lp.sum(axis=1))

    def gradient(self, ra: np.ndarray, rb: np.ndarray, w: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Score totals (R, k) of :func:`_scores`; of the ``rows`` of the arrays only, if given."""
        R = w.shape[0] if rows is None else rows.size
        out = np.empty((R, self.X.shape[1] + self.K - 1))
        for b in self.blocks(R):
            i = b if rows is None else rows[b]
            wa, wb = w[i] * ra[i], w[i] * rb[i]
            out[b, self.X.shape[1] :] = self.sums(wa)[:, :-1] - self.sums(wb)[:, 1:]
            wb -= wa
            out[b, : self.X.shape[1]] = wb @ self.X
        return out

    def hessian(self, Fa: np.ndarray, Fb: np.ndarray, ra: np.ndarray, rb: np.ndarray, w: np.ndarray,
                rows: np.ndarray | None = None) -> np.ndarray:
        """The analytic Hessian of the weighted log-likelihood of every row (R, k, k), block by block.

        Per unit, ``l = log(F(a) - F(b))`` with ``a = zeta_y - x'beta`` and ``b = zeta_{y-1} -
        x'beta`` (``F`` logistic, ``f = F(1 - F)``, ``f' = f(1 - 2F)``; an infinite cut-point
        contributes 0).  With ``r_a = f(a) / P``, ``r_b = f(b) / P`` the second derivatives in
        ``a`` and ``b`` are ``c_aa = w r_a (1 - 2 F(a) - r_a)``, ``c_bb = -w r_b (1 - 2 F(b) +
        r_b)``, ``c_ab = w r_a r_b``.  Of the ``rows`` of the arrays only, if given.
        """
        K, p = self.K, self.X.shape[1]
        R = w.shape[0] if rows is None else rows.size
        H = np.zeros((R, p + K - 1, p + K - 1))
        cx = np.empty((R, self.y.size)) if self.to_rows is None else np.empty((self.y.size, R))  # (n, R) for to_rows
        bounds = [*self.starts.tolist(), self.y.size]
        z = np.arange(K - 1)
        for blk in self.blocks(R):
            i = blk if rows is None else rows[blk]
            rai, rbi = ra[i], rb[i]
            wa, wb = w[i] * rai, w[i] * rbi
            s = rai - rbi
            # u_a = c_aa + c_ab = w r_a (1 - 2 F(a) - r_a + r_b), u_b = c_bb + c_ab likewise
            ua = Fa[i] * -2.0
            ua += 1.0
            ua -= s
            ua *= wa
            ub = Fb[i] * 2.0
            ub -= 1.0
            ub += s
            ub *= wb
            cab = wa
            cab *= rbi
            np.add(ua, ub, out=cx[blk] if self.to_rows is None else cx[:, blk].T)  # c_aa + c_bb + 2 c_ab
            # X' diag(u_a) E_a + X' diag(u_b) E_b, E the indicators of the cut-points: cut-point k
            # is the upper one of category k's units and the lower one of k + 1's
            for k in range(K - 1):
                a, b = slice(bounds[k], bounds[k + 1]), slice(bounds[k + 1], bounds[k + 2])
                xz = -(ua[:, a] @ self.X[a] + ub[:, b] @ self.X[b])
                H[blk, :p, p + k] = xz
                H[blk, p + k, :p] = xz
            sab = self.sums(cab)
            H[blk, p + z, p + z] = (self.sums(ua) - sab)[:, :-1] + (self.sums(ub) - sab)[:, 1:]
            if K > 2:
                off = sab[:, 1 : K - 1]  # (k, k - 1) for the units of category k, 0 < k < K - 1
                H[blk, p + z[1:], p + z[:-1]] = off
                H[blk, p + z[:-1], p + z[1:]] = off
        H[:, :p, :p] = self.gram(cx if self.to_rows is None else np.asarray(self.to_rows @ cx).T)
        return H


#: Values of the units per block of rows of weights in :meth:`_Ordinal.parts` and the like
BLOCK = 1 << 15


def _cut_cdf(eta: np.ndarray, zeta: np.ndarray) -> np.ndarray:
    """``F(zeta_j - eta_i)`` (R, m, K - 1) of linear predictors ``eta`` (R, m) and cut-points
    ``zeta`` (R, K - 1): ``1 / (1 + exp(eta_i) exp(-zeta_j))``, one exponential per predictor and
    cut-point (``exp(eta_i - zeta_j)`` in a row where an exponent exceeds 300)."""
    # exp(eta_i) exp(-zeta_j) overflows only where an exponent exceeds 300; exp(eta_i - zeta_j)
    # overflows where F is 0 (as the logistic function gives it)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.exp(eta)[:, :, None] * np.exp(-zeta)[:, None, :]
        big = ~((np.abs(eta).max(axis=1) <= 300) & (np.abs(zeta).max(axis=1) <= 300))
        if big.any():
            t[big] = np.exp(eta[big][:, :, None] - zeta[big][:, None, :])
    t += 1.0
    return np.divide(1.0, t, out=t)


def _step(H: np.ndarray, g: np.ndarray, used: np.ndarray | None, *, min_norm: bool) -> tuple[np.ndarray, np.ndarray]:
    """The Newton steps ``H^-1 g`` of stacked Hessians (the columns not ``used`` left out) and the
    rows where they are not well defined.

    ``min_norm`` (a design that may be collinear, a single fit): least squares' minimum-norm
    steps (``numpy.linalg.lstsq``), not defined where that fails.  Otherwise (stacked fits on
    identified columns) the solves of the unit-diagonal scaled matrices, which are lstsq's steps
    as long as the matrix is far from singular: not defined where it is not finite, exactly
    singular or gives a step above 1e8 (a fit without a maximum, left to a fit alone).
    """
    from analysis.matching.propensity import leave_out

    k = H.shape[1]
    if min_norm:
        step = np.zeros(g.shape)
        bad = np.zeros(g.shape[0], dtype=bool)
        for r in range(g.shape[0]):
            try:
                step[r] = np.linalg.lstsq(H[r], g[r], rcond=None)[0]
            except np.linalg.LinAlgError:
                bad[r] = True
        return step, bad | ~np.all(np.isfinite(step), axis=1)
    H = leave_out(H, used, -1.0)
    if used is not None:
        g = np.where(used, g, 0.0)
    d = np.sqrt(np.abs(np.einsum("rjj->rj", H)))
    bad = ~(np.all(np.isfinite(H), axis=(1, 2)) & np.all(d > 0, axis=1) & np.all(np.isfinite(g), axis=1))
    d[bad] = 1.0
    S = -H / (d[:, :, None] * d[:, None, :])
    S[bad] = np.eye(k)
    g = np.where(bad[:, None], 0.0, g)
    try:
        step = -np.linalg.solve(S, (g / d)[:, :, None])[:, :, 0] / d
    except np.linalg.LinAlgError:  # an exactly singular one: find it
        ev = np.linalg.eigvalsh(S)
        bad |= ~(ev[:, -1] <= 1e12 * ev[:, 0])
        S[bad] = np.eye(k)
        g = np.where(bad[:, None], 0.0, g)
        step = -np.linalg.solve(S, (g / d)[:, :, None])[:, :, 0] / d
    bad |= ~np.all(np.isfinite(step), axis=1) | (np.max(np.abs(step), axis=1) > 1e8)
    return step, bad


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[idx]`` for sorted distinct row positions, without a copy when they are all the rows."""
    return a if idx.size == a.shape[0] else a[idx]


def _newton(m: _Ordinal, theta: np.ndarray, w: np.ndarray, used: np.ndarray | None, *, min_norm: bool,
            max_iter: int = 100, stop_beyond: float | None = None) -> np.ndarray:
    """Newton-Raphson with step halving on the weighted log-likelihood of every row of ``theta``
    (R, k) and ``w`` (R, n): the one loop of the ordered logit (a single fit is one row).

    Every row stops at its own convergence (the gradient below ``1e-10 max(1, sum w)``, or a step
    that no longer moves while the gradient is below ``1e-5 max(1, sum w)``); the rows still
    running are the only ones computed.  ``used``, ``min_norm``: as in :func:`_step`.  Returns
    per row 1 (converged, ``theta`` updated in place), -1 (failed: a step not defined, the step
    halving exhausted; or, with ``stop_beyond``, the first coefficient beyond it in magnitude) or 0
    (no convergence in ``max_iter`` steps).
    """
    p = m.X.shape[1]
    wsum = w.sum(axis=1)
    tol = 1e-10 * np.maximum(1.0, wsum)
    gtol = 1e-5 * np.maximum(1.0, wsum)
    f, *state_parts = m.parts(theta, w)  # F(a), F(b), f(a) / P, f(b) / P of every row
    g = m.gradient(state_parts[2], state_parts[3], w)
    if used is not None:
        g = np.where(used, g, 0.0)
    state = np.zeros(theta.shape[0], dtype=np.int8)
    for _ in range(max_iter):
        act = np.flatnonzero(state == 0)
        conv = np.max(np.abs(g[act]), axis=1) < tol[act]
        state[act[conv]] = 1
        act = act[~conv]
        if stop_beyond is not None:
            off = np.abs(theta[act, 0]) > stop_beyond
            state[act[off]] = -1
            act = act[~off]
        if act.size == 0:
            break
        every = act.size == theta.shape[0]
        Fa, Fb, ra, rb = state_parts
        step, bad = _step(m.hessian(Fa, Fb, ra, rb, w, None if every else act), g[act], None if used is None else used[act],
                          min_norm=min_norm)
        state[act[bad]] = -1
        # step halving, every row with its own step length
        todo = np.flatnonzero(~bad)
        t = np.ones(act.size)
        for _half in range(40):
            if todo.size == 0:
                break
            rows = act[todo]
            cand = theta[rows] - t[todo, None] * step[todo]
            inc = np.all(np.diff(cand[:, p:], axis=1) > 0, axis=1)
            f_c = np.full(todo.size, -np.inf)
            parts: list[np.ndarray] = []
            if inc.any():
                f_c[inc], *parts = m.parts(cand[inc], _take(w, rows[inc]))
            ok = inc & np.isfinite(f_c) & (f_c >= f[rows] - 1e-12 * np.abs(f[rows]))
            if ok.any():
                acc, sub = rows[ok], ok[inc]
                tiny = np.max(np.abs(cand[ok] - theta[acc]), axis=1) < 1e-13
                theta[acc], f[acc] = cand[ok], f_c[ok]
                if acc.size == theta.shape[0]:
                    state_parts = parts
                else:
                    for v, new in zip(state_parts, parts, strict=True):
                        v[acc] = new[sub]
                g_acc = m.gradient(state_parts[2], state_parts[3], w, None if acc.size == theta.shape[0] else acc)
                g[acc] = g_acc if used is None else np.where(used[acc], g_acc, 0.0)
                fin = acc[tiny]
                state[fin] = np.where(np.max(np.abs(g[fin]), axis=1) < gtol[fin], 1, -1)
            todo = todo[~ok]
            t[todo] /= 2
        state[act[todo]] = -1
    return state


def _ordered_logit_stacked(X: np.ndarray, y: np.ndarray, w: np.ndarray, K: int, separated: float | None = None) -> np.ndarray:
    """:func:`ordered_logit_fit` for every row of ``w`` (R, n) at once.

    The steps of :func:`_newton` (the same start, Newton steps with step halving, each row
    stopping at its own convergence) on all rows together, on the units merged where their
    covariates and category are identical (their weights summed) and the columns of
    :func:`analysis.matching.propensity.stacked_columns`.  A row whose steps fail (a singular
    Hessian, the step halving exhausted, no convergence) is fitted alone by
    :func:`ordered_logit_fit` (BFGS included), or left NaN with ``separated`` (see there).  Where a coefficient is (quasi-)separated (no
    maximum, the coefficient runs off) its value, where the steps stop, depends on rounding;
    the other coefficients and the fitted probabilities do not.
    """
    from analysis.matching.propensity import merged_rows, stacked_columns

    X_full = np.asarray(X, dtype=float)
    y_full = np.asarray(y, dtype=np.int64)
    R, p_all = w.shape[0], X_full.shape[1]
    out = np.full((R, p_all + K - 1), np.nan)
    pos = w > 0
    # units with the same covariates and category merged (the likelihood is the same)
    first, _, to_groups = merged_rows(X_full, y_full)
    order = np.argsort(y_full[first], kind="stable")  # every category's units one slice
    X_all, y = X_full[first[order]], y_full[first[order]]
    wm = np.asarray((to_groups @ w.T).T)[:, order]
    totals = np.stack([wm[:, y == k].sum(axis=1) for k in range(K)], axis=1)
    fit = np.flatnonzero(np.all(totals > 0, axis=1))
    if fit.size == 0:
        return out
    basis, used_x = stacked_columns(X_all, wm[fit] > 0, constant=True)
    m = _Ordinal.of(X_all[:, basis], y, K, merge=True)
    p = basis.size
    used = np.concatenate([used_x, np.ones((fit.size, K - 1), dtype=bool)], axis=1)
    ww = wm[fit]
    cum = np.cumsum(totals[fit], axis=1)[:, :-1] / ww.sum(axis=1, keepdims=True)
    theta = np.concatenate([np.zeros((fit.size, p)), np.log(cum / (1 - cum))], axis=1)
    with np.errstate(all="ignore"):
        stop = separated if separated is not None and basis.size and basis[0] == 0 else None  # the first column's coefficient
        good = _newton(m, theta, ww, used, min_norm=False, stop_beyond=stop) == 1
    theta[:, :p][~used_x] = 0.0
    out[fit[good], :p_all] = 0.0
    out[np.ix_(fit[good], basis)] = theta[good, :p]
    out[fit[good], p_all:] = theta[good, p:]
    for r in fit[~good] if separated is None else ():
        rows_r = np.flatnonzero(pos[r])
        cols = np.flatnonzero(np.any(X_full[rows_r] != 0, axis=0))
        try:
            th = ordered_logit_fit(X_full[rows_r][:, cols], y_full[rows_r], w[r, rows_r], K)
        except (PopevalError, np.linalg.LinAlgError):
            continue
        out[r, :p_all] = 0.0
        out[r, cols] = th[: cols.size]
        out[r, p_all:] = th[cols.size :]
    return out


def _bfgs(theta0: np.ndarray, X: np.ndarray, y: np.ndarray, K: int, w: np.ndarray, tol: float) -> tuple[np.ndarray, str]:
    """BFGS in an unconstrained parametrisation of increasing cut-points, then Newton polish."""
    from scipy import optimize

    p = X.shape[1]

    def unpack(u: np.ndarray) -> np.ndarray:
        z = np.cumsum(np.concatenate([[u[p]], np.exp(u[p + 1:])]))
        return np.concatenate([u[:p], z])

    def negll(u: np.ndarray) -> tuple[float, np.ndarray]:
        theta = unpack(u)
        ll, s = _scores(theta, X, y, K)
        g = (s * w[:, None]).sum(axis=0)
        # chain rule to the unconstrained parameters
        gu = g.copy()
        gz = g[p:]
        tail = np.cumsum(gz[::-1])[::-1]  # d/du_j of zeta_k for k >= j
        gu[p] = tail[0]
        gu[p + 1:] = tail[1:] * np.exp(u[p + 1:])
        return -float((w * ll).sum()), -gu

    zeta0 = theta0[p:]
    u0 = np.concatenate([np.zeros(p), [zeta0[0]], np.log(np.diff(zeta0))])
    opt = optimize.minimize(negll, u0, jac=True, method="BFGS", options={"gtol": 1e-10,
                                                                          "maxiter": 2000})
    theta = unpack(opt.x)
    # Newton polish in the natural parametrisation
    for _ in range(5):
        g = (_scores(theta, X, y, K)[1] * w[:, None]).sum(axis=0)
        if np.max(np.abs(g)) < tol:
            break
        H = _hessian(theta, X, y, K, w)
        step = np.linalg.solve(H, g)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-12:
            break
    return theta, str(opt.message)


def _hessian(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int, w: np.ndarray) -> np.ndarray:
    """Hessian of the weighted log-likelihood by central differences of the analytic score."""
    from analysis.effects.numdiff import central_jacobian

    H = central_jacobian(lambda th: _scores(th, X, y, K)[1], theta, 1e-5, w)
    return (H + H.T) / 2
