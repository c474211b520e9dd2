"""Reliability of the outcome items and standardised effect sizes (via pingouin)."""

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
        95% confidence interval (pingouin's F-based interval).
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


def cronbach_alpha(df: pd.DataFrame, items: Sequence[str]) -> Reliability:
    """Cronbach's alpha of Likert items (complete cases), by :func:`pingouin.cronbach_alpha`."""
    import pingouin as pg

    missing = [c for c in items if c not in df.columns]
    if missing:
        raise DataValidationError("Items are missing from the data", column=missing[0])
    data = df[list(items)].dropna()
    alpha, ci = pg.cronbach_alpha(data=data)
    return Reliability(alpha=float(alpha), ci=(float(ci[0]), float(ci[1])), items=tuple(items),
                       nobs=len(data))


def hedges_g(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Hedges' g of ``x`` (treated) versus ``y`` (control), by :func:`pingouin.compute_effsize`."""
    import pingouin as pg

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2 or b.size < 2:
        raise DataValidationError("Hedges' g needs at least two values per group",
                                  found=f"{a.size} and {b.size}")
    return float(pg.compute_effsize(a, b, paired=False, eftype="hedges"))
