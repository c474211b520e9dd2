"""Covariate balance before and after matching, computed as MatchIt's ``summary(m)`` does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.matching.formula import (
    covariate_matrix,
    split_formula,
)
from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.matching.nearest import MatchResult

__all__ = ["SMD_CONVENTION", "BalanceResult", "balance"]

SMD_CONVENTION = (
    "Std. Mean Diff. = (treated mean - control mean) / SD of the treated group in the full "
    "(unmatched) sample, survey-weighted when survey weights are given (MatchIt's default for the "
    "ATT); binary variables use sqrt(p(1-p)). The same denominator is used before and after "
    "matching."
)
_COLUMNS = [
    "Means Treated",
    "Means Control",
    "Std. Mean Diff.",
    "Var. Ratio",
    "eCDF Mean",
    "eCDF Max",
    "Std. Pair Dist.",
]
_EPS = float(np.sqrt(np.finfo(float).eps))


def _wvar(x: np.ndarray, binary: bool, w: np.ndarray | None) -> float:
    if w is None:
        w = np.ones(x.size)
    w = w / w.sum()
    mx = float((w * x).sum())
    if binary:
        # a constant dummy can give a mean of 1 + 1 ulp: the variance is 0, never negative
        return max(mx * (1.0 - mx), 0.0)
    return float((w * (x - mx) ** 2).sum() / (1.0 - (w**2).sum()))


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((w * x).sum() / w.sum())


def _ecdf_stats(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Mean and max absolute difference of the weighted eCDFs (MatchIt's ``qqsum``)."""
    w = w.astype(float).copy()
    for g in (0, 1):
        sel = t == g
        w[sel] = w[sel] / w[sel].sum()
    order = np.argsort(x, kind="stable")
    xo, wo, to = x[order], w[order], t[order]
    signed = np.where(to == to[0], -wo, wo)
    csum = np.abs(np.cumsum(signed))
    last_of_run = np.append(np.diff(xo) != 0, True)
    ediff = csum[last_of_run]
    return float(ediff.mean()), float(ediff.max())


def _balance_rows(
    X: pd.DataFrame,
    treat: np.ndarray,
    ww: np.ndarray | None,
    s_weights: np.ndarray,
    mm_rows: np.ndarray | None = None,
    mm_cols: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per column of ``X`` with MatchIt's seven balance statistics.

    ``ww`` is the analysis weight (matching x survey) or None for the unmatched sample.
    ``mm_rows``/``mm_cols`` are the treated and control row positions of every matched pair.
    """
    import pandas as pd

    i1 = treat == 1
    i0 = ~i1
    w_all = s_weights if ww is None else ww
    too_small = (w_all[i1] != 0).sum() < 2 and (w_all[i0] != 0).sum() < 2
    out = []
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        binary = bool(np.all((x == 0) | (x == 1)))
        row = dict.fromkeys(_COLUMNS, np.nan)
        m1 = _wmean(x[i1], w_all[i1])
        m0 = _wmean(x[i0], w_all[i0])
        row["Means Treated"], row["Means Control"] = m1, m0
        mdiff = m1 - m0
        std = np.nan
        if abs(mdiff) > _EPS and not too_small:
            std = np.sqrt(_wvar(x[i1], binary, s_weights[i1]))
            if not np.isfinite(std) or std < _EPS:
                std = _pooled_sd(x, treat, s_weights, binary)
            row["Std. Mean Diff."] = mdiff / std
        else:
            row["Std. Mean Diff."] = mdiff
        if ww is not None and mm_rows is not None and mm_cols is not None and mm_rows.size:
            pdist = float(np.abs(x[mm_rows] - x[mm_cols]).mean())
            if np.isfinite(std) and abs(pdist) > 1e-8:
                pdist /= std
            row["Std. Pair Dist."] = pdist
        if binary:
            row["eCDF Mean"] = row["eCDF Max"] = abs(mdiff)
        elif not too_small:
            row["Var. Ratio"] = _wvar(x[i1], False, w_all[i1]) / _wvar(x[i0], False, w_all[i0])
            row["eCDF Mean"], row["eCDF Max"] = _ecdf_stats(x, treat, w_all)
        out.append(row)
    return pd.DataFrame(out, index=list(X.columns), columns=_COLUMNS)


def _pooled_sd(x: np.ndarray, t: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """MatchIt's ``pooled_sd`` (proportional contribution), the fallback denominator."""
    wn = w / w.sum()
    if binary:
        total = 0.0
        for g in (0, 1):
            sel = t == g
            sx = (x[sel] * w[sel]).sum()
            total += sx * (1 - sx / w[sel].sum()) / w.sum()
        return float(np.sqrt(total))
    xc = x.copy()
    for g in (0, 1):
        sel = t == g
        xc[sel] -= _wmean(x[sel], w[sel])
    return float(np.sqrt((wn * xc**2).sum() / (1 - (wn**2).sum())))


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0


@dataclass(frozen=True)
class BalanceResult:
    """Balance before and after matching.

    Attributes
    ----------
    before, after
        MatchIt-style balance tables (rows: distance and covariates, dummies for every factor
        level; columns: Means Treated, Means Control, Std. Mean Diff., Var. Ratio, eCDF Mean,
        eCDF Max, Std. Pair Dist.).  ``after`` uses the combined (survey x matching) weights.
    sample_sizes
        Effective (Kish) and actual sample sizes per group, before and after.
    population
        Optional comparison with population means: weighted means of the matched treated and
        control groups and their standardised differences from the population, or None.
    convention
        How the standardised mean difference is computed (printed in :meth:`summary`).
    """

    before: pd.DataFrame
    after: pd.DataFrame
    sample_sizes: pd.DataFrame
    population: pd.DataFrame | None
    convention: str = SMD_CONVENTION

    def love_plot_frame(self) -> pd.DataFrame:
        """Tidy frame for a love plot: variable, sample (Unadjusted/Adjusted), statistic, value."""
        import pandas as pd

        parts = []
        for label, tab in (("Unadjusted", self.before), ("Adjusted", self.after)):
            for stat in ("Std. Mean Diff.", "Var. Ratio", "eCDF Max"):
                parts.append(
                    pd.DataFrame(
                        {
                            "variable": tab.index,
                            "sample": label,
                            "statistic": stat,
                            "value": tab[stat].to_numpy(),
                            "abs_value": np.abs(tab[stat].to_numpy()),
                        }
                    )
                )
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        """Before and after side by side (column MultiIndex ``(sample, statistic)``)."""
        import pandas as pd

        return pd.concat({"before": self.before, "after": self.after}, axis=1)

    def summary(self) -> str:
        """Plain-text balance report, with the SMD convention stated."""
        def fmt(v: float) -> str:
            return f"{v:.4f}"

        lines = [
            "Balance before matching:",
            self.before.to_string(float_format=fmt),
            "",
            "Balance after matching (survey x matching weights):",
            self.after.to_string(float_format=fmt),
            "",
            "Sample sizes:",
            self.sample_sizes.to_string(float_format=fmt),
        ]
        if self.population is not None:
            lines += ["", "Against the population:", self.population.to_string(float_format=fmt)]
        lines += ["", "Note: " + self.convention]
        return "\n".join(lines)


def balance(
    m: MatchResult,
    df: pd.DataFrame,
    covariates: str | None = None,
    *,
    population_means: Mapping[str, float] | None = None,
) -> BalanceResult:
    """Balance diagnostics before and after matching, as ``summary(m)`` in MatchIt.

    Parameters
    ----------
    m
        A :class:`~analysis.matching.MatchResult`.
    df
        The data that was matched (same index).
    covariates
        Right-hand side of covariates to show (default: those of the matching formula).
    population_means
        Optional population means by balance-table row name (e.g. ``{"age": 41.2,
        "educhigh": 0.35}``) to show balance against the population.

    Returns
    -------
    BalanceResult
    """
    import pandas as pd

    if not df.index.equals(m.treat.index):
        raise DataValidationError(
            "The data's index differs from the one matched", param="df",
            hint="pass the same data frame that was given to match()",
        )
    rhs = covariates if covariates is not None else split_formula(m.formula)[1]
    X = covariate_matrix(df, rhs.split("~")[-1])
    if m.distance is not None:
        X.insert(0, "distance", m.distance.to_numpy())
    t = m.treat.to_numpy()
    sw = m.s_weights.to_numpy()
    cw = m.combined_weights.to_numpy()
    pos = pd.Series(np.arange(len(df)), index=df.index)
    mm = m.match_matrix
    r_idx, c_idx = [], []
    for j in mm.columns:
        col = mm[j]
        ok = col.notna().to_numpy()
        r_idx.append(pos.loc[mm.index[ok]].to_numpy())
        c_idx.append(pos.loc[col[ok].to_numpy()].to_numpy())
    mm_rows = np.concatenate(r_idx) if r_idx else np.array([], dtype=int)
    mm_cols = np.concatenate(c_idx) if c_idx else np.array([], dtype=int)
    before = _balance_rows(X, t, None, sw)
    after = _balance_rows(X, t, cw, sw, mm_rows, mm_cols)
    sizes = pd.DataFrame(
        {
            g: {
                "All (ESS)": _ess(sw[t == k]),
                "All": float((t == k).sum()),
                "Matched (ESS)": _ess(cw[t == k]),
                "Matched": float((cw[t == k] > 0).sum()),
            }
            for k, g in ((0, "Control"), (1, "Treated"))
        }
    )
    pop = None
    if population_means is not None:
        unknown = [k for k in population_means if k not in X.columns]
        if unknown:
            raise ConfigError(
                "Population means given for unknown rows", param="population_means",
                expected=f"names among {list(X.columns)}", found=repr(unknown),
            )
        rows = {}
        for k, mu in population_means.items():
            x = X[k].to_numpy(dtype=float)
            binary = bool(np.all((x == 0) | (x == 1)))
            sd = np.sqrt(_wvar(x, binary, sw))
            mt = _wmean(x[t == 1], cw[t == 1])
            mc = _wmean(x[t == 0], cw[t == 0])
            rows[k] = {
                "Population": float(mu),
                "Matched Treated": mt,
                "Matched Control": mc,
                "SMD Treated vs Pop.": (mt - mu) / sd if sd > 0 else np.nan,
                "SMD Control vs Pop.": (mc - mu) / sd if sd > 0 else np.nan,
            }
        pop = pd.DataFrame(rows).T
    return BalanceResult(before=before, after=after, sample_sizes=sizes, population=pop)
