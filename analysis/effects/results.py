"""Immutable result objects of :mod:`analysis.effects`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EffectEstimate"]


@dataclass(frozen=True)
class EffectEstimate:
    """One treatment-effect estimate with its uncertainty.

    Attributes
    ----------
    outcome
        The outcome's name.
    estimand
        ``"ATT"`` or ``"ATE"``.
    method
        How it was estimated (e.g. ``"matched WLS"``, ``"IPW"``, ``"AIPW"``).
    params
        All estimated parameters; the effect is the one named ``term``.
    bse
        Standard errors of ``params``.
    term
        Name of the effect parameter in ``params``.
    nobs
        Number of observations used.
    vcov_type
        How the standard errors were computed.
    df_resid
        Residual degrees of freedom for t-based inference, or None for normal-based.
    extra
        Anything else worth keeping (e.g. probability shifts, sample sizes).
    """

    outcome: str
    estimand: str
    method: str
    params: pd.Series
    bse: pd.Series
    term: str
    nobs: int
    vcov_type: str
    df_resid: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def estimate(self) -> float:
        """The treatment effect."""
        return float(self.params[self.term])

    @property
    def tvalues(self) -> pd.Series:
        """Estimate over standard error."""
        return self.params / self.bse

    def _sf(self, x: np.ndarray) -> np.ndarray:
        """Upper tail of the reference distribution: t with ``df_resid`` when set, else normal."""
        # scipy.stats' norm.sf and t.sf, without loading scipy.stats
        from scipy.special import ndtr, stdtr

        return np.asarray(ndtr(-x) if self.df_resid is None else stdtr(self.df_resid, -x))

    def _ppf(self, q: float) -> float:
        """Quantile of the reference distribution."""
        from scipy.special import ndtri, stdtrit

        return float(ndtri(q) if self.df_resid is None else stdtrit(self.df_resid, q))

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values (t with ``df_resid`` when set, else normal)."""
        import pandas as pd

        p = 2 * self._sf(np.abs(self.tvalues.to_numpy()))
        return pd.Series(p, index=self.params.index)

    @property
    def pvalue(self) -> float:
        """Two-sided p-value of the effect."""
        return float(self.pvalues[self.term])

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Confidence intervals (columns ``lower``, ``upper``)."""
        import pandas as pd

        q = self._ppf(1 - alpha / 2)
        return pd.DataFrame(
            {"lower": self.params - q * self.bse, "upper": self.params + q * self.bse}
        )

    def to_frame(self) -> pd.DataFrame:
        """One row: outcome, estimand, method, estimate, SE, CI, p-value, nobs."""
        import pandas as pd

        lower, upper = (float(v) for v in self.conf_int().loc[self.term, ["lower", "upper"]].to_numpy())
        return pd.DataFrame(
            [
                {
                    "outcome": self.outcome,
                    "estimand": self.estimand,
                    "method": self.method,
                    "estimate": self.estimate,
                    "bse": float(self.bse[self.term]),
                    "ci_lower": lower,
                    "ci_upper": upper,
                    "pvalue": self.pvalue,
                    "nobs": self.nobs,
                    "vcov_type": self.vcov_type,
                }
            ]
        )

    def summary(self) -> str:
        """Plain-text report of the estimate and all parameters."""
        import pandas as pd

        ci = self.conf_int()
        tab = pd.DataFrame(
            {
                "coef": self.params,
                "std err": self.bse,
                "P>|z|" if self.df_resid is None else "P>|t|": self.pvalues,
                "[0.025": ci["lower"],
                "0.975]": ci["upper"],
            }
        )
        lines = [
            f"{self.method}: {self.estimand} of '{self.term}' on '{self.outcome}'",
            f"estimate = {self.estimate:.6g} (SE {float(self.bse[self.term]):.6g}, p = {self.pvalue:.4g}); "
            f"nobs = {self.nobs}; SE: {self.vcov_type}",
            "",
            tab.to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        for key, value in self.extra.items():
            if hasattr(value, "to_string"):
                lines += ["", f"{key}:", value.to_string()]
        return "\n".join(lines)
