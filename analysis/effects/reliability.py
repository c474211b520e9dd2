"""Reliability of the outcome items and standardised effect sizes.

Cronbach's alpha with Feldt's F-based interval and Hedges' g with the usual small-sample correction,
computed here in a few lines of numpy (checked against pingouin's implementations in the tests):
importing pingouin cost about two seconds of every run, for two formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from survey.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Reliability", "cronbach_alpha", "hedges_g"]


@dataclass(frozen=True)
class Reliability:
    """Cronbach's alpha of a set of items.

    Attributes
    ----------
    alpha
        Cronbach's alpha.
    ci
        95% confidence interval (Feldt's F-based interval).
    items
        The items used.
    nobs
        Complete cases used.
    """

    alpha: float
    ci: tuple[float, float]
    items: tuple[str, ...]
    nobs: int

    def to_frame(self) -> pd.DataFrame:
        """One row."""
        import pandas as pd

        return pd.DataFrame([{"alpha": self.alpha, "ci_lower": self.ci[0],
                              "ci_upper": self.ci[1], "items": ", ".join(self.items),
                              "nobs": self.nobs}])

    def summary(self) -> str:
        """One line."""
        return (f"Cronbach's alpha of {len(self.items)} items = {self.alpha:.3f} "
                f"[{self.ci[0]:.3f}, {self.ci[1]:.3f}], n = {self.nobs}")


def cronbach_alpha(df: pd.DataFrame, items: Sequence[str], level: float = 0.95) -> Reliability:
    """Cronbach's alpha of Likert items (complete cases) with Feldt's F-based interval.

    ``alpha = k / (k - 1) * (1 - sum of the item variances / variance of the sum)`` (variances with
    ``ddof=1``); the interval is ``1 - (1 - alpha) * F`` at the F distribution's quantiles with
    ``n - 1`` and ``(n - 1)(k - 1)`` degrees of freedom (Feldt 1965), as pingouin and R's psych give.
    """
    from scipy.special import fdtri  # F quantiles without loading scipy.stats

    missing = [c for c in items if c not in df.columns]
    if missing:
        raise DataValidationError("Items are missing from the data", column=missing[0])
    x = df[list(items)].dropna().to_numpy(dtype=float)
    n, k = x.shape
    if k < 2 or n < 2:
        raise DataValidationError("Cronbach's alpha needs at least two items and two complete cases", found=f"{k} item(s), {n} complete case(s)")
    alpha = k / (k - 1) * (1.0 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1.0 - level) / 2
    lower = 1.0 - (1.0 - alpha) * float(fdtri(df1, df2, 1.0 - tail))
    upper = 1.0 - (1.0 - alpha) * float(fdtri(df1, df2, tail))
    return Reliability(alpha=float(alpha), ci=(lower, upper), items=tuple(items), nobs=n)


def hedges_g(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Hedges' g of ``x`` (treated) versus ``y`` (control).

    Cohen's d with the pooled standard deviation (``ddof=1``) times the small-sample correction
    ``1 - 3 / (4 (n_x + n_y) - 9)``.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2 or b.size < 2:
        raise DataValidationError("Hedges' g needs at least two values per group",
                                  found=f"{a.size} and {b.size}")
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    d = (a.mean() - b.mean()) / pooled
    return float(d * (1.0 - 3.0 / (4.0 * (a.size + b.size) - 9.0)))
