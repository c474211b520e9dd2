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
from typing import TYPE_CHECKING

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
    rows into one with their summed weight.
    """
    p = X.shape[1]
    sel = X[:, j] == 1
    c = _cuts(theta[p:])
    X1, X0 = X[sel].copy(), X[sel].copy()
    X1[:, j], X0[:, j] = 1.0, 0.0
    P1 = np.diff(_cdf(c[None, :] - (X1 @ theta[:p])[:, None]), axis=1)
    P0 = np.diff(_cdf(c[None, :] - (X0 @ theta[:p])[:, None]), axis=1)
    ww = w[sel] / w[sel].sum()
    return np.asarray(ww @ (P1 - P0))


def ordered_logit_fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, K: int) -> np.ndarray:
    """Maximum-likelihood (beta, cut-points) of a weighted proportional-odds logit on arrays.

    ``X`` has no intercept, ``y`` holds category codes 0..K-1.  Newton's method with the analytic
    Hessian and step halving (the log-likelihood is concave in (beta, cut-points), Pratt 1981),
    started at beta = 0 and the cut-points of the weighted cumulative proportions; should it fail
    to converge, BFGS in an unconstrained parametrisation of increasing cut-points, then Newton
    steps.  Either way the result must pass the same gradient check.
    """
    p = X.shape[1]
    # start: beta = 0, cut-points from cumulative weighted proportions (the MLE at beta = 0)
    cum = np.cumsum(np.bincount(y, weights=w, minlength=K))[:-1] / w.sum()
    zeta0 = np.log(cum / (1 - cum))
    theta0 = np.concatenate([np.zeros(p), zeta0])
    tol = 1e-10 * max(1.0, float(w.sum()))
    theta = _newton(theta0, X, y, K, w, tol)
    detail = "Newton's method did not converge"
    if theta is None:
        theta, detail = _bfgs(theta0, X, y, K, w, tol)
    _ll, s = _scores(theta, X, y, K)
    g = (s * w[:, None]).sum(axis=0)
    if not np.all(np.isfinite(theta)) or np.max(np.abs(g)) > 1e-5 * max(1.0, w.sum()):
        raise PopevalError("The ordered logit did not converge", detail=detail)
    return theta


def _newton(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int, w: np.ndarray, tol: float,
            max_iter: int = 100) -> np.ndarray | None:
    """Newton-Raphson with step halving on the weighted log-likelihood; None if it fails.

    With collinear columns the steps are minimum-norm (the likelihood is then flat along the
    collinear directions; the identified coefficients are unique).
    """
    p = X.shape[1]
    ll, s = _scores(theta, X, y, K)
    f = float((w * ll).sum())
    for _ in range(max_iter):
        g = (s * w[:, None]).sum(axis=0)
        if np.max(np.abs(g)) < tol:
            return theta
        try:
            # least squares: with collinear columns (a rank-deficient sample) the minimum-norm step
            step = np.linalg.lstsq(_hessian_analytic(theta, X, y, K, w), g, rcond=None)[0]
        except np.linalg.LinAlgError:
            return None
        t = 1.0
        for _half in range(40):
            cand = theta - t * step
            if np.all(np.diff(cand[p:]) > 0):
                ll_c, s_c = _scores(cand, X, y, K)
                f_c = float((w * ll_c).sum())
                if np.isfinite(f_c) and f_c >= f - 1e-12 * abs(f):
                    break
            t /= 2
        else:
            return None
        if np.max(np.abs(cand - theta)) < 1e-13:
            theta, s = cand, s_c
            g = (s * w[:, None]).sum(axis=0)
            return theta if np.max(np.abs(g)) < 1e-5 * max(1.0, float(w.sum())) else None
        theta, ll, s, f = cand, ll_c, s_c, f_c
    return None


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


def _hessian_analytic(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int, w: np.ndarray) -> np.ndarray:
    """Analytic Hessian of the weighted log-likelihood in (beta, zeta).

    Per unit, ``l = log(F(a) - F(b))`` with ``a = zeta_y - x'beta`` and ``b = zeta_{y-1} - x'beta``
    (``F`` logistic, ``f = F(1 - F)``, ``f' = f(1 - 2F)``; an infinite cut-point contributes 0).
    """
    p = X.shape[1]
    k = theta.size
    beta, zeta = theta[:p], theta[p:]
    c = _cuts(zeta)
    eta = X @ beta
    a = c[y + 1] - eta
    b = c[y] - eta
    fin_a, fin_b = np.isfinite(a), np.isfinite(b)
    Fa = np.where(fin_a, _cdf(np.where(fin_a, a, 0.0)), 1.0)
    Fb = np.where(fin_b, _cdf(np.where(fin_b, b, 0.0)), 0.0)
    fa = np.where(fin_a, Fa * (1 - Fa), 0.0)
    fb = np.where(fin_b, Fb * (1 - Fb), 0.0)
    P = np.clip(Fa - Fb, 1e-300, None)
    haa = fa * (1 - 2 * Fa) / P - (fa / P) ** 2
    hbb = -fb * (1 - 2 * Fb) / P - (fb / P) ** 2
    hab = fa * fb / P**2
    n = X.shape[0]
    Ga = np.zeros((n, k))
    Gb = np.zeros((n, k))
    Ga[:, :p] = -X
    Gb[:, :p] = -X
    up, lo = np.flatnonzero(y < K - 1), np.flatnonzero(y > 0)
    Ga[up, p + y[up]] = 1.0
    Gb[lo, p + y[lo] - 1] = 1.0
    Hab = (Ga * (w * hab)[:, None]).T @ Gb
    return (Ga * (w * haa)[:, None]).T @ Ga + (Gb * (w * hbb)[:, None]).T @ Gb + Hab + Hab.T


def _hessian(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int, w: np.ndarray) -> np.ndarray:
    """Hessian of the weighted log-likelihood by central differences of the analytic score."""
    k = theta.size
    H = np.empty((k, k))
    for i in range(k):
        h = 1e-5 * max(1.0, abs(theta[i]))
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        gp = (_scores(tp, X, y, K)[1] * w[:, None]).sum(axis=0)
        gm = (_scores(tm, X, y, K)[1] * w[:, None]).sum(axis=0)
        H[:, i] = (gp - gm) / (2 * h)
    return (H + H.T) / 2
