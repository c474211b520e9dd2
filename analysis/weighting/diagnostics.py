"""Weighting diagnostics: convergence, margins check, weight distribution, design effect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.weighting._margins import CollapseRecord, Margin

__all__ = ["MarginCheck", "WeightingDiagnostics", "build_diagnostics", "kish"]

_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def kish(weights: np.ndarray) -> tuple[float, float]:
    """Kish's design effect ``n sum(w^2) / sum(w)^2`` and effective sample size ``sum(w)^2 / sum(w^2)``."""
    w = np.asarray(weights, dtype=float)
    s1, s2 = float(w.sum()), float(np.dot(w, w))
    ess = s1 * s1 / s2 if s2 > 0 else 0.0
    return (len(w) / ess if ess > 0 else float("inf")), ess


@dataclass(frozen=True)
class MarginCheck:
    """Target versus weighted sample for one margin cell."""

    margin: str
    category: str
    population: float
    before: float
    after: float
    respondents: int

    @property
    def rel_error(self) -> float:
        """``(after - population) / population``."""
        return (self.after - self.population) / self.population if self.population else 0.0


@dataclass(frozen=True)
class WeightingDiagnostics:
    """Diagnostics of one weighting step (immutable).

    Attributes
    ----------
    method
        ``"rake"``, ``"poststratify"``, ``"calibrate(<calfun>)"`` or ``"trim"``.
    converged, iterations
        Whether the algorithm converged and how many iterations it used.
    max_rel_error
        Largest relative margin discrepancy after weighting.
    checks
        Target vs achieved (and before) per margin cell.
    weight_quantiles
        Quantiles (0, 1, 5, 25, 50, 75, 95, 99, 100 %) of the new weights.
    kish_deff, ess
        Kish design effect due to unequal weights, and effective sample size.
    kish_deff_before, ess_before
        The same for the weights before this step.
    collapsed
        Cells merged by the sparse-cell collapse rule.
    trimmed
        Number of weights trimmed (``trim`` only).
    nobs
        Number of respondents.
    """

    method: str
    converged: bool
    iterations: int
    max_rel_error: float
    checks: tuple[MarginCheck, ...]
    weight_quantiles: tuple[tuple[float, float], ...]
    kish_deff: float
    ess: float
    kish_deff_before: float
    ess_before: float
    collapsed: tuple[CollapseRecord, ...] = ()
    trimmed: int = 0
    nobs: int = 0

    @property
    def weight_range(self) -> tuple[float, float]:
        """Smallest and largest weight."""
        return self.weight_quantiles[0][1], self.weight_quantiles[-1][1]

    def margins_frame(self) -> pd.DataFrame:
        """Margins check as a data frame (one row per margin cell)."""
        return pd.DataFrame(
            [
                {
                    "margin": c.margin,
                    "category": c.category,
                    "population": c.population,
                    "weighted_before": c.before,
                    "weighted_after": c.after,
                    "rel_error": c.rel_error,
                    "respondents": c.respondents,
                }
                for c in self.checks
            ],
            columns=[
                "margin",
                "category",
                "population",
                "weighted_before",
                "weighted_after",
                "rel_error",
                "respondents",
            ],
        )

    def to_frame(self) -> pd.DataFrame:
        """Scalar diagnostics as a one-column data frame."""
        lo, hi = self.weight_range
        rows = {
            "method": self.method,
            "converged": self.converged,
            "iterations": self.iterations,
            "max_rel_error": self.max_rel_error,
            "weight_min": lo,
            "weight_max": hi,
            "weight_ratio": hi / lo if lo > 0 else float("inf"),
            "kish_deff": self.kish_deff,
            "ess": self.ess,
            "kish_deff_before": self.kish_deff_before,
            "ess_before": self.ess_before,
            "cells_collapsed": len(self.collapsed),
            "trimmed": self.trimmed,
            "nobs": self.nobs,
        }
        return pd.DataFrame({"value": pd.Series(rows, dtype=object)})

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary (for result bundles)."""
        return {
            **{
                str(k): (v.item() if hasattr(v, "item") else v)
                for k, v in self.to_frame()["value"].items()
            },
            "weight_quantiles": {f"{q:g}": v for q, v in self.weight_quantiles},
            "margins": self.margins_frame().to_dict(orient="records"),
            "collapsed": [
                {"margin": r.margin, "merged": list(r.merged), "label": r.label, "reason": r.reason}
                for r in self.collapsed
            ],
        }

    def summary(self) -> str:
        """Plain-text report."""
        lo, hi = self.weight_range
        lines = [
            f"Weighting diagnostics ({self.method})",
            f"  converged: {self.converged} after {self.iterations} iteration(s); "
            f"max relative margin error {self.max_rel_error:.3g}",
            f"  weights: min {lo:.4g}, median {dict(self.weight_quantiles)[0.5]:.4g}, max {hi:.4g}",
            f"  Kish deff {self.kish_deff_before:.4g} -> {self.kish_deff:.4g}; "
            f"effective n {self.ess_before:.1f} -> {self.ess:.1f} of {self.nobs}",
        ]
        if self.trimmed:
            lines.append(f"  trimmed weights: {self.trimmed}")
        for r in self.collapsed:
            lines.append(f"  collapsed ({r.reason}) in {r.margin}: {' + '.join(r.merged)}")
        if self.checks:
            lines.append(
                self.margins_frame().to_string(index=False, float_format=lambda v: f"{v:.6g}")
            )
        return "\n".join(lines)


def build_diagnostics(
    method: str,
    before: np.ndarray,
    after: np.ndarray,
    margins: Sequence[Margin],
    *,
    converged: bool,
    iterations: int,
    collapsed: Sequence[CollapseRecord] = (),
    numeric: Sequence[tuple[str, np.ndarray, float]] = (),
    trimmed: int = 0,
) -> WeightingDiagnostics:
    """Assemble diagnostics from weights before/after and the margins used."""
    checks: list[MarginCheck] = []
    for m in margins:
        b, a = m.sums(before), m.sums(after)
        for i, lab in enumerate(m.labels):
            checks.append(
                MarginCheck(
                    m.name, lab, float(m.totals[i]), float(b[i]), float(a[i]), int(m.counts[i])
                )
            )
    for name, values, total in numeric:
        checks.append(
            MarginCheck(
                name,
                "(total)",
                float(total),
                float(values @ before),
                float(values @ after),
                len(values),
            )
        )
    err = max((abs(c.rel_error) for c in checks), default=0.0)
    q = np.quantile(after, _QUANTILES)
    deff, ess = kish(after)
    deff0, ess0 = kish(before)
    return WeightingDiagnostics(
        method=method,
        converged=converged,
        iterations=iterations,
        max_rel_error=float(err),
        checks=tuple(checks),
        weight_quantiles=tuple((float(p), float(v)) for p, v in zip(_QUANTILES, q, strict=True)),
        kish_deff=deff,
        ess=ess,
        kish_deff_before=deff0,
        ess_before=ess0,
        collapsed=tuple(collapsed),
        trimmed=trimmed,
        nobs=len(after),
    )
