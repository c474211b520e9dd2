"""Propensity scores by logistic regression, with a common-support summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.matching._design import resolve_weights, split_formula, treatment_vector
from survey.errors import PopevalError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PropensityScoreResult", "propensity_score"]


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
            f"nobs = {self.nobs}; survey-weighted: {self.weighted}",
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


def propensity_score(
    df: pd.DataFrame,
    formula: str,
    weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    *,
    maxiter: int = 100,
    tol: float = 1e-10,
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
        IRLS controls; the tolerance is tighter than R's default so scores agree with R's to about
        1e-8.

    Returns
    -------
    PropensityScoreResult
    """
    import pandas as pd
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    lhs, _ = split_formula(formula)
    treat = treatment_vector(df, lhs)
    w = resolve_weights(df, weights, param="weights")
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
    score = pd.Series(np.asarray(fit.fittedvalues, dtype=float), index=df.index, name="distance")
    lin = pd.Series(np.asarray(fit.predict(which="linear"), dtype=float), index=df.index)
    return PropensityScoreResult(
        formula=formula,
        score=score,
        linear_predictor=lin.rename("logit"),
        treat=pd.Series(treat, index=df.index, name=lhs),
        params=fit.params.copy(),
        bse=fit.bse.copy(),
        weighted=w is not None,
        support=_support_table(score.to_numpy(), treat),
        nobs=int(fit.nobs),
    )
