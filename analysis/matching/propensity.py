"""Propensity scores by logistic regression, with a common-support summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from analysis.matching.formula import (
    fast_design_matrix,
    resolve_weights,
    split_formula,
    treatment_vector,
)
from survey.errors import ConfigError, PopevalError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PropensityScoreResult", "fit_logit", "logit_newton", "propensity_score"]


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
        ``"numpy"`` (design matrix and Newton-Raphson in numpy) or ``"statsmodels"`` (patsy
        and statsmodels' GLM); both give the same maximum-likelihood fit.
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


def _expit(eta: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-eta))``, as statsmodels' logit link computes it (overflow gives 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-eta))


def _linear_predictor(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``x @ beta`` summed column by column, so identical rows get bit-identical values.

    A BLAS matrix-vector product may round rows differently depending on where they fall in
    its blocks; units with the same covariates must get exactly the same score, because ties
    in the score decide matches.
    """
    eta = x[:, 0] * beta[0]
    for j in range(1, beta.size):
        eta += x[:, j] * beta[j]
    return eta


def logit_newton(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Maximum-likelihood (optionally weighted) logistic regression by Newton-Raphson.

    For the canonical logit link Newton-Raphson is IRLS.  It starts as statsmodels' GLM does
    (``mu = (y + 1/2) / 2``) and stops when the largest absolute change of a coefficient is below
    ``tol``; as convergence is quadratic the result is the optimum to rounding error.

    Parameters
    ----------
    x
        ``(n, p)`` design matrix of full column rank.
    y
        0/1 response.
    weights
        Prior weights (R's ``glm(weights=)``, statsmodels' ``var_weights``), or None.
    maxiter
        Maximum number of Newton steps.
    tol
        Convergence threshold on the maximum absolute step.

    Returns
    -------
    tuple of numpy.ndarray, or None
        Coefficients, their model-based standard errors (inverse of the observed information
        ``X'WX``, scale 1) and the linear predictor; None when the fit does not converge, the
        information matrix is (nearly) singular or values are not finite, so that the caller can
        use a more general fitter.
    """
    x = np.asfortranarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    pw = np.ones(y.size) if weights is None else np.asarray(weights, dtype=float)

    def information(mu: np.ndarray) -> np.ndarray:
        return (x * (pw * mu * (1.0 - mu))[:, None]).T @ x

    def solve(h: np.ndarray, g: np.ndarray) -> np.ndarray | None:
        d = np.sqrt(np.diag(h))
        if not np.all(np.isfinite(h)) or not np.all(d > 0):
            return None
        scaled = h / np.outer(d, d)
        if np.linalg.cond(scaled) > 1e10:
            return None
        return np.linalg.solve(scaled, g / d) / d

    # first step from statsmodels' starting values: a weighted least-squares fit of the
    # working response z = eta + (y - mu) / (mu (1 - mu)) with weights pw mu (1 - mu)
    mu = (y + 0.5) / 2.0
    eta = np.log(mu / (1.0 - mu))
    wk = pw * mu * (1.0 - mu)
    beta = solve((x * wk[:, None]).T @ x, x.T @ (wk * eta + pw * (y - mu)))
    if beta is None:
        return None
    for _ in range(maxiter):
        eta = _linear_predictor(x, beta)
        mu = _expit(eta)
        step = solve(information(mu), x.T @ (pw * (y - mu)))
        if step is None or not np.all(np.isfinite(step)):
            return None
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        return None
    eta = _linear_predictor(x, beta)
    mu = _expit(eta)
    h = information(mu)
    d = np.sqrt(np.diag(h))
    cov = np.linalg.inv(h / np.outer(d, d)) / np.outer(d, d)
    return beta, np.sqrt(np.diag(cov)), eta


def _irls_deviance(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, maxiter: int, tol: float
) -> np.ndarray | None:
    """IRLS stopped when the deviance settles, as statsmodels' GLM stops (quasi-separation).

    Least-squares steps (minimum norm), so a nearly singular information matrix does not stop
    it; returns the linear predictor, or None when values stop being finite.
    """
    y = np.asarray(y, dtype=float)
    pw = np.ones(y.size) if weights is None else np.asarray(weights, dtype=float)
    mu = (y + 0.5) / 2.0
    eta = np.log(mu / (1.0 - mu))
    dev_old = np.inf
    for _ in range(maxiter):
        wk = pw * mu * (1.0 - mu)
        z = eta + (y - mu) / (mu * (1.0 - mu))
        sw = np.sqrt(wk)
        beta = np.linalg.lstsq(x * sw[:, None], z * sw, rcond=None)[0]
        eta = _linear_predictor(x, beta)
        mu = np.clip(_expit(eta), 1e-300, 1 - 1e-16)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2.0 * float(np.sum(pw * (np.where(y > 0, y * np.log(y / mu), 0.0)
                                           + np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0))))
        if not np.isfinite(dev) or not np.all(np.isfinite(eta)):
            return None
        if abs(dev - dev_old) <= tol:
            return eta
        dev_old = dev
    return eta


def fit_logit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
    newton_maxiter: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """A (weighted) logistic regression on a design matrix: fitted probabilities and logits.

    The array path of :func:`propensity_score`: :func:`logit_newton`, and where it does not
    converge (e.g. quasi-separation, a rank-deficient design) statsmodels' GLM, as
    :func:`propensity_score` falls back to it (here as numpy IRLS with statsmodels' deviance
    criterion, and the GLM itself if that fails).  Used by the end-to-end replicates.  Newton's
    method converges in a handful of steps where the maximum exists, so it gets at most
    ``newton_maxiter`` of them before the fit is handed over.

    Returns
    -------
    (score, linear_predictor)
    """
    fitted = logit_newton(x, y, weights, maxiter=min(maxiter, newton_maxiter), tol=tol)
    eta = fitted[2] if fitted is not None else _irls_deviance(x, y, weights, maxiter, tol)
    if eta is None:
        import statsmodels.api as sm

        kwargs = {} if weights is None else {"var_weights": np.asarray(weights, dtype=float)}
        try:
            fit = sm.GLM(np.asarray(y, dtype=float), x, family=sm.families.Binomial(), **kwargs).fit(
                maxiter=maxiter, tol=tol
            )
        except Exception as exc:
            raise PopevalError(
                "The propensity-score model could not be fitted",
                hint="check for perfect separation or constant covariates", detail=str(exc),
            ) from exc
        eta = np.asarray(fit.predict(which="linear"), dtype=float)
    return _expit(eta), eta


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
        about 1e-8.  The numpy engine stops when no coefficient moves by more than ``tol``,
        statsmodels when the deviance changes by less than ``tol``.
    engine
        ``"auto"``: when the right-hand side is an intercept plus plain columns and ``C(column)``
        terms (numeric, boolean, string or categorical, no missing values), build the design
        matrix with numpy and fit by Newton-Raphson (:func:`logit_newton`), which is much faster
        on large data; otherwise, or if that fit fails, use patsy and statsmodels' GLM.
        ``"statsmodels"``: always the latter.  Both give the same coefficients, names and scores
        (to about 1e-10).

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
    fast = None
    if engine == "auto":
        design = fast_design_matrix(df, rhs)
        if design is not None:
            x, names = design
            fitted = logit_newton(x, treat, w, maxiter=maxiter, tol=tol)
            if fitted is not None:
                fast = (fitted, names)
    if fast is not None:
        (beta, se, eta), names = fast
        params = pd.Series(beta, index=names)
        bse = pd.Series(se, index=names)
        score_arr = _expit(eta)
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
