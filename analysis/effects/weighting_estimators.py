"""IPW and AIPW (doubly robust) estimators of the ATE and ATT, with M-estimation SEs.

Propensity model: logit (default) or probit of the treatment on the covariates; outcome model
(AIPW): a linear regression fitted separately in each treatment arm.  With survey weights every
estimating equation is multiplied by the unit's weight.  Standard errors come from stacking the
estimating equations of the propensity model, the outcome models and the potential-outcome means
and taking the sandwich ``A^{-1} B A^{-T} / n`` (``A`` by numerical differentiation), so they
account for the estimation of the nuisance models, as Stata's ``teffects`` does.

Estimators (``p`` the propensity score, ``m_t`` the arm-``t`` outcome regression):

* IPW, ATE: normalised (Hajek) weights ``T/p`` and ``(1-T)/(1-p)``.
* IPW, ATT: treated mean versus controls weighted by ``p/(1-p)`` (normalised).
* AIPW, ATE: ``mean[T (y - m_1)/p + m_1] - mean[(1-T)(y - m_0)/(1-p) + m_0]``.
* AIPW, ATT: ``sum T (y - m_0) - sum (1-T) p/(1-p) (y - m_0)``, divided by ``sum T``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from analysis.effects.regression import wls_params
from analysis.effects.results import EffectEstimate
from survey.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["aipw", "att_aipw", "att_ipw", "att_regression", "controls_model", "ipw", "mean_difference", "regression_att"]


# --------------------------------------------------------------------------- the estimators on arrays
# One implementation of each point estimator: the formula interfaces below (with their stacked
# sandwich SEs) and the study's end-to-end replicates call these.  Each is invariant to merging
# identical rows (same outcome, treatment and covariates) into one with their summed weight.


def _predict(X: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``X b`` for coefficients ``b`` (p,), or every row of stacked coefficients (R, p)."""
    return np.asarray(X @ b if b.ndim == 1 else b @ X.T)


def _value(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else np.asarray(x)


def controls_model(y: np.ndarray, X: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients ``b_0`` of the controls' outcome regression ``m_0 = X b_0`` (WLS).

    Stacked weights ``w`` (R, n) (and outcomes ``y`` (n,) or (R, n)) give every row's
    coefficients (R, p) (:func:`analysis.effects.regression.wls_params`).
    """
    c = t == 0
    return wls_params(y[..., c], X[c], w[..., c])


def _att_regression(
    y: np.ndarray, X: np.ndarray, t: np.ndarray, w: np.ndarray, b0: np.ndarray | None = None
) -> tuple[float | np.ndarray, np.ndarray]:
    """The regression ATT and the controls' coefficients, for weights (n,) or stacked (R, n)."""
    b0 = controls_model(y, X, t, w) if b0 is None else b0
    tr = t == 1
    return _value((w[..., tr] * (y[..., tr] - _predict(X[tr], b0))).sum(axis=-1) / w[..., tr].sum(axis=-1)), b0


def att_regression(
    y: np.ndarray, X: np.ndarray, t: np.ndarray, w: np.ndarray, b0: np.ndarray | None = None
) -> float | np.ndarray:
    """ATT by regression adjustment (g-computation over the treated) on arrays.

    The weighted mean over the treated of ``y - X b_0``, with ``b_0`` the weighted least-squares
    fit of ``y`` on ``X`` among the controls (see :func:`regression_att`).

    Parameters
    ----------
    y, X, t, w
        Outcome, covariate design matrix (with intercept), 0/1 treatment and weights.  Stacked
        weights ``w`` (R, n) (outcomes ``y`` (n,) or (R, n)) give the ATT of every row, (R,);
        rows of weight 0 count for nothing.
    b0
        The controls' regression (:func:`controls_model`) when already fitted.
    """
    return _att_regression(y, X, t, w, b0)[0]


def _ipw_att_means(y: np.ndarray, t: np.ndarray, w: np.ndarray, score: np.ndarray) -> tuple[float | np.ndarray, float | np.ndarray]:
    """The treated's weighted mean and the controls' odds-weighted mean, for weights and scores
    (n,) or stacked (R, n)."""
    tr, c = t == 1, t == 0
    a0 = w[..., c] * score[..., c] / (1 - score[..., c])
    return (_value((w[..., tr] * y[..., tr]).sum(axis=-1) / w[..., tr].sum(axis=-1)),
            _value((a0 * y[..., c]).sum(axis=-1) / a0.sum(axis=-1)))


def att_ipw(y: np.ndarray, t: np.ndarray, w: np.ndarray, score: np.ndarray) -> float | np.ndarray:
    """IPW estimate of the ATT on arrays: the treated's weighted mean minus the controls' mean
    weighted by ``w p / (1 - p)`` (normalised), ``p`` the propensity ``score``.

    Stacked weights ``w`` and scores (R, n) (outcomes (n,) or (R, n)) give every row's ATT; rows
    of weight 0 count for nothing (their score must be below 1).
    """
    mu1, mu0 = _ipw_att_means(y, t, w, score)
    return mu1 - mu0


def att_aipw(
    y: np.ndarray, X: np.ndarray, t: np.ndarray, w: np.ndarray, score: np.ndarray, b0: np.ndarray | None = None
) -> float | np.ndarray:
    """AIPW (doubly robust) estimate of the ATT on arrays.

    ``[sum_T w (y - m_0) - sum_C w p/(1-p) (y - m_0)] / sum_T w`` with ``m_0 = X b_0`` the
    controls' weighted least-squares outcome regression (:func:`controls_model`, or ``b0`` when
    already fitted) and ``p`` the propensity ``score``.  Stacked weights and scores (R, n) give
    every row's ATT, as for :func:`att_ipw`.
    """
    b0 = controls_model(y, X, t, w) if b0 is None else b0
    r0 = y - _predict(X, b0)
    tr, c = t == 1, t == 0
    odds = score[..., c] / (1 - score[..., c])
    return _value(((w[..., tr] * r0[..., tr]).sum(axis=-1) - (w[..., c] * odds * r0[..., c]).sum(axis=-1))
                  / w[..., tr].sum(axis=-1))


def mean_difference(y: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """Difference of the (weighted) means of ``y`` between treated and controls.

    Stacked weights ``w`` (R, n) (outcomes (n,) or (R, n)) give every row's difference (NaN
    where a group has no weight).
    """
    tr = t == 1
    ww = np.ones(y.size) if w is None else np.asarray(w, dtype=float)
    if ww.ndim == 2:
        yy = np.broadcast_to(y, ww.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray((ww[:, tr] * yy[:, tr]).sum(axis=1) / ww[:, tr].sum(axis=1)
                              - (ww[:, ~tr] * yy[:, ~tr]).sum(axis=1) / ww[:, ~tr].sum(axis=1))
    return float(np.average(y[tr], weights=ww[tr]) - np.average(y[~tr], weights=ww[~tr]))


def _link(kind: str):  # type: ignore[no-untyped-def]
    from scipy.special import expit, ndtr  # ndtr: the standard normal CDF (scipy.stats not loaded)

    if kind == "logit":
        return expit
    if kind == "probit":
        return ndtr
    raise ConfigError("Unknown propensity link", param="ps_link", expected="'logit' or 'probit'",
                      found=repr(kind))


def _prepare(df: pd.DataFrame, treat_formula: str, outcome_formula: str | None,
             weights: str | Sequence[float] | np.ndarray | None):  # type: ignore[no-untyped-def]
    from analysis.matching.formula import (
        design_matrix,
        resolve_weights,
        split_formula,
        treatment_vector,
    )

    lhs, rhs = split_formula(treat_formula)
    t = treatment_vector(df, lhs).astype(float)
    Z, _ = design_matrix(df, rhs)
    out = None
    if outcome_formula is not None:
        ylhs, yrhs = split_formula(outcome_formula, param="outcome_formula")
        Xo, _ = design_matrix(df, yrhs)
        out = (ylhs, df[ylhs].to_numpy(dtype=float), Xo)
    w = resolve_weights(df, weights, param="weights")
    return lhs, t, Z, out, (np.ones(t.size) if w is None else w)


#: A separated probit's coefficients drift towards infinity in steps that shrink only slowly (the
#: probit's tail is thinner than the logit's, so its deviance settles while they still move by
#: about 0.1); where the maximum exists the steps shrink quadratically, far below this, by the
#: time the deviance settles.
PROBIT_SEPARATION_STEP = 0.01


def _fit_ps(t: np.ndarray, Z: np.ndarray, w: np.ndarray, link: str) -> np.ndarray:
    """Propensity-model coefficients: the package's logit
    (:func:`analysis.matching.propensity.logit_fit`), statsmodels' GLM for a probit.

    Both warn of a quasi- or perfect separation with statsmodels' ``PerfectSeparationWarning``:
    the probit when its linear predictor still moved by more than :data:`PROBIT_SEPARATION_STEP`
    in the step at which the deviance settled (statsmodels itself warns only of a perfect
    separation)."""
    from analysis.matching.propensity import logit_fit

    if link == "logit":
        return np.asarray(logit_fit(Z, t, w, maxiter=200, tol=1e-12)[0])
    import warnings

    import statsmodels.api as sm  # only for the probit (its import is slow)
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    fam = sm.families.Binomial(link=sm.families.links.Probit())
    fit = sm.GLM(t, Z, family=fam, var_weights=w).fit(tol=1e-12, maxiter=200)
    steps = fit.fit_history["params"]
    if len(steps) > 1 and np.max(np.abs(Z @ (np.asarray(steps[-1]) - np.asarray(steps[-2])))) > PROBIT_SEPARATION_STEP:
        warnings.warn("Quasi- or perfect separation: the probit has no maximum-likelihood "
                      "estimate; fitted by IRLS until the deviance settled",
                      PerfectSeparationWarning, stacklevel=2)
    return np.asarray(fit.params)


def _ps_ee(gamma: np.ndarray, t: np.ndarray, Z: np.ndarray, link: str) -> np.ndarray:
    eta = Z @ gamma
    p = _link(link)(eta)
    if link == "logit":
        return Z * (t - p)[:, None]
    f = np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)  # the standard normal density
    return Z * ((t - p) * f / (p * (1 - p)))[:, None]


def _sandwich(ee, theta: np.ndarray, w: np.ndarray, jac=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The stacked M-estimation sandwich ``A^-1 B A^-T / n`` of the estimating equations ``ee``.

    ``A`` is the weighted mean Jacobian of ``ee`` at ``theta``: ``jac(theta)`` (the summed weighted
    Jacobian) when given, else central differences of ``ee``.
    """
    n = w.sum()
    from analysis.effects.numdiff import central_jacobian

    psi = ee(theta) * w[:, None]
    if jac is not None:
        A = np.asarray(jac(theta), dtype=float) / n
    else:
        A = central_jacobian(ee, theta, 1e-6, w) / n
    B = psi.T @ psi / n
    Ainv = np.linalg.pinv(A)  # a covariate category absent from one arm leaves A singular
    return Ainv @ B @ Ainv.T / n


def _ipw_logit_jacobian(y: np.ndarray, t: np.ndarray, Z: np.ndarray, w: np.ndarray, estimand: str):  # type: ignore[no-untyped-def]
    """The summed weighted Jacobian of :func:`ipw`'s estimating equations with a logit score.

    ``theta = (tau, mu0, gamma)``; with ``p = expit(Z gamma)`` and ``odds = p / (1 - p)`` the ATT's
    equations are ``t (y - tau - mu0)``, ``(1 - t) odds (y - mu0)`` and ``Z (t - p)``, the ATE's
    ``t / p (y - tau - mu0)``, ``(1 - t) / (1 - p) (y - mu0)`` and ``Z (t - p)``.
    """
    from scipy.special import expit

    def jac(theta: np.ndarray) -> np.ndarray:
        tau, mu0, gamma = theta[0], theta[1], theta[2:]
        p = expit(Z @ gamma)
        k = theta.size
        J = np.zeros((k, k))
        if estimand == "ATE":
            d1 = w * t / p  # d e1 / d(tau, mu0) = -t / p
            J[0, 0] = J[0, 1] = -d1.sum()
            J[0, 2:] = -(w * t * (y - tau - mu0) * (1 - p) / p) @ Z
            d0 = w * (1 - t) / (1 - p)
            J[1, 1] = -d0.sum()
            J[1, 2:] = (w * (1 - t) * (y - mu0) * p / (1 - p)) @ Z
        else:
            J[0, 0] = J[0, 1] = -(w * t).sum()
            odds = p / (1 - p)
            J[1, 1] = -(w * (1 - t) * odds).sum()
            J[1, 2:] = (w * (1 - t) * odds * (y - mu0)) @ Z
        J[2:, 2:] = -(Z * (w * p * (1 - p))[:, None]).T @ Z
        return J

    return jac


def ipw(
    df: pd.DataFrame,
    outcome: str,
    treat_formula: str,
    *,
    estimand: Literal["ATT", "ATE"] = "ATT",
    weights: str | Sequence[float] | np.ndarray | None = None,
    ps_link: Literal["logit", "probit"] = "logit",
) -> EffectEstimate:
    """Inverse-probability-weighted estimate of the ATT or ATE.

    Parameters
    ----------
    df
        The data.
    outcome
        Outcome column.
    treat_formula
        Propensity model, ``"treat ~ x1 + x2"``.
    estimand
        ``"ATT"`` (default) or ``"ATE"``.
    weights
        Survey weights.
    ps_link
        ``"logit"`` or ``"probit"``.

    Returns
    -------
    EffectEstimate
        ``params``: the effect (``"effect"``), the control potential-outcome mean (``"POmean0"``)
        and the propensity coefficients.
    """
    import pandas as pd

    tname, t, Z, _, w = _prepare(df, treat_formula, None, weights)
    if estimand not in ("ATT", "ATE"):
        raise ConfigError("Unknown estimand", param="estimand", expected="'ATT' or 'ATE'",
                          found=repr(estimand))
    y = df[outcome].to_numpy(dtype=float)
    gamma = _fit_ps(t, Z, w, ps_link)
    kz = Z.shape[1]
    F = _link(ps_link)

    def ee(theta: np.ndarray) -> np.ndarray:
        tau, mu0 = theta[0], theta[1]
        p = F(Z @ theta[2:])
        mu1 = tau + mu0
        if estimand == "ATE":
            e1 = t / p * (y - mu1)
            e0 = (1 - t) / (1 - p) * (y - mu0)
        else:
            e1 = t * (y - mu1)
            e0 = (1 - t) * p / (1 - p) * (y - mu0)
        return np.column_stack([e1, e0, _ps_ee(theta[2:], t, Z, ps_link)])

    p = F(Z @ gamma)
    if estimand == "ATE":
        a1, a0 = w * t / p, w * (1 - t) / (1 - p)
        mu1 = (a1 * y).sum() / a1.sum()
        mu0 = (a0 * y).sum() / a0.sum()
    else:
        mu1, mu0 = _ipw_att_means(y, t, w, p)
    theta = np.concatenate([[mu1 - mu0, mu0], gamma])
    V = _sandwich(ee, theta, w, jac=_ipw_logit_jacobian(y, t, Z, w, estimand) if ps_link == "logit" else None)
    names = ["effect", "POmean0"] + [f"ps:{i}" for i in range(kz)]
    return EffectEstimate(
        outcome=outcome, estimand=estimand, method=f"IPW ({ps_link} propensity)",
        params=pd.Series(theta, index=names), bse=pd.Series(np.sqrt(np.diag(V)), index=names),
        term="effect", nobs=int(t.size), vcov_type="M-estimation sandwich (stacked)",
        extra={"treatment": tname},
    )


def aipw(
    df: pd.DataFrame,
    outcome_formula: str,
    treat_formula: str,
    *,
    estimand: Literal["ATT", "ATE"] = "ATT",
    weights: str | Sequence[float] | np.ndarray | None = None,
    ps_link: Literal["logit", "probit"] = "logit",
) -> EffectEstimate:
    """Augmented IPW (doubly robust) estimate of the ATT or ATE.

    Parameters
    ----------
    df
        The data.
    outcome_formula
        Outcome model ``"y ~ x1 + x2"`` (fitted by weighted least squares in each arm).
    treat_formula
        Propensity model ``"treat ~ x1 + x2"``.
    estimand, weights, ps_link
        As for :func:`ipw`.

    Returns
    -------
    EffectEstimate
    """
    import pandas as pd

    tname, t, Z, out, w = _prepare(df, treat_formula, outcome_formula, weights)
    if estimand not in ("ATT", "ATE"):
        raise ConfigError("Unknown estimand", param="estimand", expected="'ATT' or 'ATE'",
                          found=repr(estimand))
    if out is None:  # pragma: no cover - always set when outcome_formula is given
        raise ConfigError("An outcome model is required", param="outcome_formula")
    yname, y, X = out
    gamma = _fit_ps(t, Z, w, ps_link)
    kz, kx = Z.shape[1], X.shape[1]
    F = _link(ps_link)

    b1, b0 = wls_params(y, X, w * (t == 1)), controls_model(y, X, t, w)

    def ee(theta: np.ndarray) -> np.ndarray:
        tau, mu0 = theta[0], theta[1]
        g = theta[2:2 + kz]
        c1 = theta[2 + kz:2 + kz + kx]
        c0 = theta[2 + kz + kx:]
        p = F(Z @ g)
        m1, m0 = X @ c1, X @ c0
        if estimand == "ATE":
            e1 = t * (y - m1) / p + m1 - (tau + mu0)
            e0 = (1 - t) * (y - m0) / (1 - p) + m0 - mu0
        else:
            r0 = y - m0
            e1 = t * (y - m0) - (1 - t) * p / (1 - p) * r0 - t * tau
            e0 = t * (m0 - mu0)
        return np.column_stack([
            e1, e0, _ps_ee(g, t, Z, ps_link),
            X * (t * (y - m1))[:, None], X * ((1 - t) * (y - m0))[:, None],
        ])

    p = F(Z @ gamma)
    m1, m0 = X @ b1, X @ b0
    if estimand == "ATE":
        mu1 = np.average(t * (y - m1) / p + m1, weights=w)
        mu0 = np.average((1 - t) * (y - m0) / (1 - p) + m0, weights=w)
        tau = mu1 - mu0
    else:
        tau = att_aipw(y, X, t, w, p, b0)
        mu0 = (w * t * m0).sum() / (w * t).sum()
    theta = np.concatenate([[tau, mu0], gamma, b1, b0])
    V = _sandwich(ee, theta, w)
    names = (["effect", "POmean0"] + [f"ps:{i}" for i in range(kz)]
             + [f"m1:{i}" for i in range(kx)] + [f"m0:{i}" for i in range(kx)])
    return EffectEstimate(
        outcome=yname, estimand=estimand, method=f"AIPW ({ps_link} propensity, linear outcome)",
        params=pd.Series(theta, index=names), bse=pd.Series(np.sqrt(np.diag(V)), index=names),
        term="effect", nobs=int(t.size), vcov_type="M-estimation sandwich (stacked)",
        extra={"treatment": tname},
    )


def regression_att(
    df: pd.DataFrame,
    outcome_formula: str,
    treat: str,
    *,
    weights: str | Sequence[float] | np.ndarray | None = None,
) -> EffectEstimate:
    """ATT by regression adjustment (g-computation over the treated).

    The outcome model ``y ~ covariates`` is fitted by weighted least squares on the controls; the
    ATT is the weighted mean, over the treated, of ``y - m_0(x)``: each treated unit's outcome
    minus its predicted outcome without treatment.  Unlike the coefficient of the treatment in
    one pooled regression (a variance-weighted average of the effects), this is the ATT when the
    effect varies with the covariates.  The SE stacks the outcome model's normal equations with
    the ATT's estimating equation (sandwich), as for :func:`aipw`.

    Parameters
    ----------
    df
        The data.
    outcome_formula
        ``"y ~ x1 + x2"``.
    treat
        0/1 treatment column.
    weights
        Survey weights.

    Returns
    -------
    EffectEstimate
    """
    import pandas as pd

    tname, t, X, out, w = _prepare(df, f"{treat} ~ 1", outcome_formula, weights)
    if out is None:  # pragma: no cover - always set when outcome_formula is given
        raise ConfigError("An outcome model is required", param="outcome_formula")
    yname, y, X = out
    kx = X.shape[1]
    tau, b0 = _att_regression(y, X, t, w)

    def ee(theta: np.ndarray) -> np.ndarray:
        m0 = X @ theta[1:]
        return np.column_stack([t * (y - m0 - theta[0]), X * ((1 - t) * (y - m0))[:, None]])

    theta = np.concatenate([[tau], b0])
    V = _sandwich(ee, theta, w)
    names = ["effect"] + [f"m0:{i}" for i in range(kx)]
    return EffectEstimate(
        outcome=yname, estimand="ATT", method="regression adjustment (g-computation over the treated)",
        params=pd.Series(theta, index=names), bse=pd.Series(np.sqrt(np.diag(V)), index=names),
        term="effect", nobs=int(t.size), vcov_type="M-estimation sandwich (stacked)",
        extra={"treatment": tname},
    )
