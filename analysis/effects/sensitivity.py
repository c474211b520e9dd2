"""Sensitivity to unmeasured confounding: E-values and Rosenbaum bounds.

E-value (VanderWeele & Ding 2017): the minimum strength of association, on the risk-ratio
scale, that an unmeasured confounder would need with both treatment and outcome to explain away
an estimate: ``E = RR + sqrt(RR (RR - 1))`` for ``RR >= 1`` (use ``1/RR`` below 1).  Conversions
to the risk-ratio scale:

* standardised mean difference ``d`` (mean difference / outcome SD): ``RR ~= exp(0.91 d)``
  (VanderWeele 2017's approximation), applied to the estimate and to the confidence limits;
* risk difference ``RD`` with baseline (control) risk ``p0``: ``RR = (p0 + RD) / p0``, also at the
  confidence limits (``p0`` treated as fixed);
* odds ratio: as a risk ratio when the outcome is rare (< 15%), else ``sqrt(OR)``.

The E-value of the confidence interval uses the limit closest to the null; it is 1 when the
interval contains the null.

Rosenbaum bounds: for matched-pair differences, the Wilcoxon signed-rank statistic's upper-bound
one-sided p-value under hidden bias ``Gamma`` (normal approximation, ties handled with mid-ranks
and zero differences dropped), as in Rosenbaum (2002) and R's ``rbounds::psens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EValue", "RosenbaumBounds", "e_value", "rosenbaum_bounds"]


def _e(rr: float) -> float:
    rr = 1.0 / rr if rr < 1 else rr
    return float(rr + np.sqrt(rr * (rr - 1.0)))


@dataclass(frozen=True)
class EValue:
    """E-value of an estimate and of its confidence limit.

    Attributes
    ----------
    scale
        Scale of the input (``"SMD"``, ``"RD"``, ``"RR"``, ``"OR"``).
    rr, rr_lower, rr_upper
        The estimate and limits on the risk-ratio scale.
    e_value, e_value_ci
        E-values of the estimate and of the confidence limit closest to the null.
    """

    scale: str
    rr: float
    rr_lower: float
    rr_upper: float
    e_value: float
    e_value_ci: float

    def to_frame(self) -> pd.DataFrame:
        """One row with all fields."""
        import pandas as pd

        return pd.DataFrame([self.__dict__])

    def summary(self) -> str:
        """One-line report."""
        return (f"E-value ({self.scale} converted to RR = {self.rr:.3f} "
                f"[{self.rr_lower:.3f}, {self.rr_upper:.3f}]): {self.e_value:.3f}; "
                f"for the confidence limit: {self.e_value_ci:.3f}")


def e_value(
    estimate: float,
    lower: float,
    upper: float,
    *,
    scale: Literal["SMD", "RD", "RR", "OR"] = "SMD",
    sd: float | None = None,
    baseline_risk: float | None = None,
    rare: bool = True,
) -> EValue:
    """E-value for an effect (VanderWeele & Ding 2017).

    Parameters
    ----------
    estimate, lower, upper
        The effect and its confidence limits on the input scale.
    scale
        ``"SMD"``: a mean difference, standardised by ``sd`` (give ``sd``, the outcome SD, or
        pass an already standardised difference with ``sd=1``); ``"RD"``: a risk difference, with
        ``baseline_risk``; ``"RR"``; ``"OR"`` (``rare`` says whether the outcome is rare).
    sd, baseline_risk, rare
        See ``scale``.

    Returns
    -------
    EValue
    """
    if not lower <= estimate <= upper:
        raise ConfigError("The estimate must lie within its confidence limits", param="estimate",
                          found=f"{estimate} not in [{lower}, {upper}]")
    if scale == "SMD":
        if sd is None or sd <= 0:
            raise ConfigError("A positive outcome SD is needed for scale='SMD'", param="sd",
                              found=repr(sd), hint="use sd=1 for an already standardised effect")
        rr, lo, hi = (float(np.exp(0.91 * v / sd)) for v in (estimate, lower, upper))
    elif scale == "RD":
        if baseline_risk is None or not 0 < baseline_risk < 1:
            raise ConfigError("A baseline risk in (0, 1) is needed for scale='RD'",
                              param="baseline_risk", found=repr(baseline_risk))
        vals = [(baseline_risk + v) / baseline_risk for v in (estimate, lower, upper)]
        if min(vals) <= 0:
            raise ConfigError("Risk difference below minus the baseline risk", param="lower")
        rr, lo, hi = vals
    elif scale == "RR":
        rr, lo, hi = estimate, lower, upper
    elif scale == "OR":
        f = (lambda v: v) if rare else np.sqrt
        rr, lo, hi = (float(f(v)) for v in (estimate, lower, upper))
    else:
        raise ConfigError("Unknown scale", param="scale", expected="'SMD', 'RD', 'RR' or 'OR'",
                          found=repr(scale))
    e_ci = 1.0 if lo <= 1 <= hi else _e(lo if rr > 1 else hi)
    return EValue(scale=scale, rr=rr, rr_lower=lo, rr_upper=hi, e_value=_e(rr), e_value_ci=e_ci)


@dataclass(frozen=True)
class RosenbaumBounds:
    """Rosenbaum bounds for the Wilcoxon signed-rank test on matched pairs.

    Attributes
    ----------
    table
        Upper-bound one-sided p-value per Gamma.
    gamma_critical
        The smallest Gamma at which the upper-bound p-value exceeds ``alpha`` (significance is
        lost), or ``inf`` if it never does within the search range; 1.0 if it is not significant
        even without hidden bias.
    alpha
        Significance level.
    n_pairs
        Number of non-zero pair differences.
    """

    table: pd.DataFrame
    gamma_critical: float
    alpha: float
    n_pairs: int

    def to_frame(self) -> pd.DataFrame:
        """The Gamma table."""
        return self.table.copy()

    def summary(self) -> str:
        """Plain-text report."""
        return "\n".join([
            f"Rosenbaum bounds, Wilcoxon signed-rank, {self.n_pairs} pairs",
            self.table.to_string(float_format=lambda v: f"{v:.4g}"),
            f"Significance at {self.alpha} is lost at Gamma = {self.gamma_critical:.4g}",
        ])


def _upper_p(ranks: np.ndarray, positive: np.ndarray, gamma: float) -> float:
    from scipy.special import ndtr

    t_plus = ranks[positive].sum()
    pp = gamma / (1 + gamma)
    mean = pp * ranks.sum()
    var = pp * (1 - pp) * (ranks**2).sum()
    return float(ndtr(-(t_plus - mean) / np.sqrt(var)))


def rosenbaum_bounds(
    differences: Sequence[float] | np.ndarray,
    *,
    gammas: Sequence[float] | np.ndarray | None = None,
    alpha: float = 0.05,
    gamma_max: float = 20.0,
) -> RosenbaumBounds:
    """Rosenbaum bounds for matched-pair differences (treated minus control).

    Parameters
    ----------
    differences
        One difference per matched pair (for k:1 matching use the treated value minus the mean
        of its controls).  A positive effect is tested (``H1: effect > 0``); negate the
        differences for a negative effect.
    gammas
        Gammas to tabulate (default 1, 1.1, ..., 3).
    alpha
        Significance level for the critical Gamma.
    gamma_max
        Upper end of the search for the critical Gamma.

    Returns
    -------
    RosenbaumBounds
    """
    import pandas as pd
    from scipy import optimize, stats

    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not np.isfinite(d).all():
        raise DataValidationError("Pair differences must be a finite 1-D array",
                                  param="differences")
    d = d[d != 0]
    if d.size < 2:
        raise DataValidationError("Too few non-zero pair differences", param="differences",
                                  found=str(d.size))
    ranks = stats.rankdata(np.abs(d))
    pos = d > 0
    grid = np.round(np.arange(1.0, 3.01, 0.1), 10) if gammas is None else np.asarray(gammas)
    table = pd.DataFrame({"gamma": grid, "p_upper": [_upper_p(ranks, pos, g) for g in grid]})
    if _upper_p(ranks, pos, 1.0) > alpha:
        crit = 1.0
    elif _upper_p(ranks, pos, gamma_max) <= alpha:
        crit = float("inf")
    else:
        crit = float(optimize.brentq(lambda g: _upper_p(ranks, pos, g) - alpha, 1.0, gamma_max,
                                     xtol=1e-10))
    return RosenbaumBounds(table=table, gamma_critical=crit, alpha=alpha, n_pairs=int(d.size))
