"""Overlap (common support) diagnostics and the estimand's support rule, before any outcome is read.

The ATT compares POP users with *comparable* users without a POP.  Where the regulation or the
data leave no comparable controls, no estimator can learn the POP users' outcome without a POP from
the data: matching then pairs them with distant controls and regression extrapolates its model.
The rules of the incentives make this concrete: high-educated workers may use opleidingscheques
only for a training in their POP, so "no POP and high-educated" is empty by law (apart from
registration errors).

:func:`overlap` runs on the weighted respondents (design stage; no outcome) and returns

* the **cells** of every covariate: POP and non-POP respondents (counts and survey-weighted sums)
  and a status: ``"empty"`` (no controls), ``"sparse"`` (fewer than ``min_controls`` controls, or
  fewer than ``min_control_ratio`` controls per POP user) or ``"ok"``;
* the **propensity regions**: the propensity score (refitted without the excluded cells) in bins of
  width 0.1, with both groups' counts;
* which POP users are **outside common support** and why (a sparse or empty cell, a propensity
  score above the largest control score (``rule="minmax"``), or outside
  ``[alpha, 1 - alpha]`` (Crump et al. 2009, ``rule="crump"``)), their (weighted) share and
  their profile.

The estimand is then the ATT among the POP users *inside* support (``support="comparable"``, the
default), with the excluded group named; ``support="all"`` keeps every POP user (the ATT among all
POP users, which then rests on extrapolation for the excluded ones).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.fitwarnings import expected_fit_warnings
from survey.errors import ConfigError, DataValidationError

__all__ = ["OverlapResult", "extrapolated", "overlap"]

_RULES = ("minmax", "crump", "none")
_SUPPORT = ("comparable", "all")


@dataclass(frozen=True)
class OverlapResult:
    """Overlap diagnostics and the support rule's decision per unit.

    Attributes
    ----------
    cells
        One row per (variable, category): ``n_treated``, ``n_control``, ``w_treated``,
        ``w_control`` (survey-weighted), ``status`` (``ok`` / ``sparse`` / ``empty``).
    regions
        Propensity-score bins (``lower``, ``upper``, ``n_treated``, ``n_control``, ``status``).
    inside
        Per unit (the data's index): inside the estimand's support.  Controls in excluded cells
        are outside too (they are not comparable to any POP user kept).
    reason
        Per unit: ``""`` inside, else ``"cell:<variable>=<category>"``, ``"propensity"``.
    profile
        The excluded POP users by covariate: ``variable``, ``category``, ``n``, ``pct``.
    settings
        The rule and its thresholds.
    fit_warnings
        Expected warnings of the propensity-score fit (``"overlap propensity score: <Warning>"``
        -> count; :func:`analysis.fitwarnings.expected_fit_warnings`).
    """

    cells: pd.DataFrame
    regions: pd.DataFrame
    inside: pd.Series
    reason: pd.Series
    treat: pd.Series
    weights: pd.Series
    profile: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)
    fit_warnings: Mapping[str, int] = field(default_factory=dict)

    @property
    def excluded_treated(self) -> pd.Series:
        """POP users outside support (bool per unit)."""
        return (~self.inside) & (self.treat == 1)

    @property
    def n_treated(self) -> int:
        """POP respondents."""
        return int((self.treat == 1).sum())

    @property
    def n_excluded(self) -> int:
        """POP respondents outside support."""
        return int(self.excluded_treated.sum())

    @property
    def share_excluded(self) -> float:
        """Unweighted share of POP respondents outside support."""
        return self.n_excluded / self.n_treated if self.n_treated else float("nan")

    @property
    def share_excluded_weighted(self) -> float:
        """Survey-weighted share of POP users outside support (an estimate for the population)."""
        w = self.weights.to_numpy()
        t = self.treat.to_numpy() == 1
        tot = w[t].sum()
        return float(w[self.excluded_treated.to_numpy()].sum() / tot) if tot > 0 else float("nan")

    @property
    def excluded_cells(self) -> pd.DataFrame:
        """The cells without comparable controls."""
        return self.cells[self.cells["status"] != "ok"].reset_index(drop=True)

    def estimand(self) -> dict[str, Any]:
        """The estimand block of the results bundle (plain data)."""
        support = self.settings.get("support", "comparable")
        groups = [
            {
                "variable": str(r["variable"]), "category": str(r["category"]), "status": str(r["status"]),
                "n_treated": int(r["n_treated"]), "n_control": int(r["n_control"]),
            }
            for r in self.excluded_cells.to_dict("records")
        ]
        n_ps = int(((self.reason == "propensity") & (self.treat == 1)).sum())
        names = ", ".join(f"{g['variable']} = {g['category']}" for g in groups)
        if support == "all":
            name = "ATT among all POP users"
            statement = (
                "The ATT among all POP users; "
                + (f"POP users in cells without comparable controls ({names}) rest on "
                   "extrapolation." if groups or n_ps else "every POP user has comparable controls.")
            )
        else:
            name = "ATT among POP users with comparable controls"
            statement = (
                "The ATT among the POP users who have comparable users without a POP. "
                + (f"Excluded: POP users with {names} (no or too few comparable controls)"
                   if groups else "No covariate cell lacks comparable controls")
                + (f"; {n_ps} POP users with a propensity score outside the controls' range" if n_ps else "")
                + "."
            )
        return {
            "name": name,
            "support": support,
            "rule": dict(self.settings),
            "statement": statement,
            "n_treated": self.n_treated,
            "n_treated_included": self.n_treated - self.n_excluded,
            "n_treated_excluded": self.n_excluded,
            "n_treated_excluded_propensity": n_ps,
            "share_treated_excluded": self.share_excluded,
            "share_treated_excluded_weighted": self.share_excluded_weighted,
            "excluded_groups": groups,
        }

    def to_frame(self) -> pd.DataFrame:
        """The tidy overlap table of the bundle: cells and propensity regions."""
        cells = self.cells.assign(kind="cell")
        reg = self.regions.assign(
            kind="propensity", variable="propensity",
            category=[f"[{lo:.1f}, {hi:.1f})" for lo, hi in zip(self.regions["lower"], self.regions["upper"], strict=True)],
        )
        cols = ["kind", "variable", "category", "n_treated", "n_control", "w_treated", "w_control", "status"]
        return pd.concat([cells[cols], reg[cols]], ignore_index=True)

    def summary(self) -> str:
        """Plain-text summary."""
        e = self.estimand()
        lines = [
            f"Overlap: {e['name']}",
            f"POP respondents {self.n_treated}, outside support {self.n_excluded} "
            f"({self.share_excluded:.1%}; weighted {self.share_excluded_weighted:.1%})",
            e["statement"],
        ]
        if len(self.excluded_cells):
            lines += ["", self.excluded_cells.to_string(index=False)]
        return "\n".join(lines)


def _cell_status(n1: int, n0: int, min_controls: int, min_control_ratio: float) -> str:
    """``"empty"`` (POP users, no controls), ``"sparse"`` (too few controls) or ``"ok"``."""
    if n0 == 0:
        return "empty" if n1 > 0 else "ok"
    if n1 > 0 and (n0 < min_controls or n0 < min_control_ratio * n1):
        return "sparse"
    return "ok"


def extrapolated(
    df: pd.DataFrame,
    treat: str,
    covariates: Sequence[str],
    *,
    weights: np.ndarray | pd.Series | None = None,
    score: np.ndarray | pd.Series | None = None,
    excluded_cells: Sequence[tuple[str, str]] = (),
    tol: float = 1e-8,
) -> pd.Series:
    """POP users whose outcome without a POP a regression model has to extrapolate, in one sample.

    A model fitted on a sample (regression adjustment, AIPW, the ordered logit) predicts the
    outcome without a POP of every POP user in it.  For a POP user outside common support that
    prediction rests on the model's form, not on comparable controls: the POP user is in one of
    the design's cells without comparable controls (``excluded_cells``, the empty and sparse
    cells of :func:`overlap`, kept when ``support = "all"``), in a covariate category without any
    control in *this* sample (units with a positive weight, e.g. those who answered the outcome),
    or has a propensity ``score`` above the largest control score in the sample (beyond ``tol``).
    With the default estimand (``support = "comparable"``) the design excludes the first group
    before any outcome is read, so only an outcome's own missing answers can leave a few.

    Parameters
    ----------
    df
        The estimation sample: the treatment and the covariates.
    treat
        Treatment column (0/1).
    covariates
        The model's (categorical) covariates.
    weights
        Units with weight 0 are not in the sample (default: all are).
    score
        Propensity score per unit (NaN: not checked); default: only the cell rules.
    excluded_cells
        (variable, category) pairs without comparable controls in the design
        (:attr:`OverlapResult.excluded_cells`).
    tol
        Tolerance of the score comparison.

    Returns
    -------
    pd.Series
        Boolean per unit (the data's index): a POP user whose prediction extrapolates.
    """
    missing = [c for c in [treat, *covariates] if c not in df.columns]
    if missing:
        raise DataValidationError("A covariate of the extrapolation check is not in the data", column=missing[0])
    t = df[treat].to_numpy().astype(int)
    w = np.ones(len(df)) if weights is None else np.asarray(weights, dtype=float)
    inn = w > 0
    t1 = inn & (t == 1)
    flag = np.zeros(len(df), dtype=bool)
    excluded = {(str(v), str(c)) for v, c in excluded_cells}
    for v in covariates:
        col = df[v].astype(str).to_numpy()
        controls = set(col[inn & (t == 0)])
        for c in set(col[t1]):
            if c not in controls or (v, c) in excluded:
                flag |= t1 & (col == c)
    if score is not None:
        sc = np.asarray(score, dtype=float)
        ctrl = inn & (t == 0) & np.isfinite(sc)
        if ctrl.any():
            flag |= t1 & np.isfinite(sc) & (sc > sc[ctrl].max() + tol)
    return pd.Series(flag, index=df.index, name="extrapolated")


def overlap(
    df: pd.DataFrame,
    treat: str,
    covariates: Sequence[str],
    *,
    weights: str | np.ndarray | pd.Series | None = None,
    support: str = "comparable",
    rule: str = "minmax",
    min_controls: int = 10,
    min_control_ratio: float = 0.1,
    alpha: float = 0.1,
    tol: float = 1e-8,
) -> OverlapResult:
    """Overlap diagnostics and the support rule (design stage: reads no outcome).

    Parameters
    ----------
    df
        Respondents with the treatment and the (categorical) covariates.
    treat
        Treatment column (0/1).
    covariates
        Covariates of the propensity score; each one's categories are checked as cells.
    weights
        Survey weights (name or array; default 1).
    support
        ``"comparable"``: the estimand is the ATT among POP users inside support; ``"all"``: among
        all POP users (diagnostics only, nobody is excluded).
    rule
        Propensity-score rule after the cell rule: ``"minmax"`` (POP users above the largest
        control score are outside; controls below the smallest POP score are not comparable),
        ``"crump"`` (units with a score outside ``[alpha, 1 - alpha]``, Crump et al. 2009), or
        ``"none"``.
    min_controls, min_control_ratio
        A covariate category is *sparse* when it has fewer than ``min_controls`` control
        respondents, or fewer than ``min_control_ratio`` controls per POP respondent, and
        *empty* with none.  POP users in sparse and empty cells are outside support.
    alpha
        Crump et al.'s trimming threshold.
    tol
        Tolerance of the min-max comparison (score ties).

    Returns
    -------
    OverlapResult
    """
    if support not in _SUPPORT:
        raise ConfigError("Unknown support setting", param="support", expected=", ".join(_SUPPORT), found=repr(support))
    if rule not in _RULES:
        raise ConfigError("Unknown overlap rule", param="rule", expected=", ".join(_RULES), found=repr(rule))
    if not 0 < alpha < 0.5:
        raise ConfigError("The trimming threshold must lie in (0, 0.5)", param="alpha", found=repr(alpha),
                          hint="Crump et al. recommend 0.1")
    missing = [c for c in [treat, *covariates] if c not in df.columns]
    if missing:
        raise DataValidationError("A covariate of the overlap check is not in the data", column=missing[0])
    t = df[treat].to_numpy().astype(int)
    if isinstance(weights, str):
        w = df[weights].to_numpy(dtype=float)
    elif weights is None:
        w = np.ones(len(df))
    else:
        w = np.asarray(weights, dtype=float)
    index = df.index
    inside = np.ones(len(df), dtype=bool)
    reason = np.full(len(df), "", dtype=object)
    cells = _cell_rule(df, covariates, t, w, (min_controls, min_control_ratio), inside, reason, apply=support == "comparable")
    fit_warnings: Counter[str] = Counter()
    score = _overlap_score(df, treat, covariates, t, w, inside, fit_warnings)
    ok = ~np.isnan(score)
    if support == "comparable" and rule != "none" and ok.any():
        out = _score_rule(score, t, ok, rule, alpha, tol)
        reason[out & inside] = "propensity"
        inside &= ~out
    settings = {"support": support, "rule": rule, "min_controls": int(min_controls),
                "min_control_ratio": float(min_control_ratio), "alpha": float(alpha),
                "covariates": list(covariates)}
    return OverlapResult(
        cells=cells, regions=_score_regions(score, t, w, ok),
        inside=pd.Series(inside, index=index, name="inside"),
        reason=pd.Series(reason, index=index, name="reason"),
        treat=pd.Series(t, index=index, name=treat),
        weights=pd.Series(w, index=index, name="weights"),
        profile=_excluded_profile(df, covariates, (~inside) & (t == 1)),
        settings=settings, fit_warnings=dict(sorted(fit_warnings.items())),
    )


def _cell_rule(
    df: pd.DataFrame,
    covariates: Sequence[str],
    t: np.ndarray,
    w: np.ndarray,
    sparse: tuple[int, float],
    inside: np.ndarray,
    reason: np.ndarray,
    *,
    apply: bool,
) -> pd.DataFrame:
    """POP and non-POP respondents per covariate category; with ``apply``, the POP users of a
    category that is not 'ok' leave the support (``inside`` and ``reason`` updated in place)."""
    rows = []
    for v in covariates:
        col = df[v].astype(str).to_numpy()
        for c in sorted(set(col)):
            sel = col == c
            n1, n0 = int((sel & (t == 1)).sum()), int((sel & (t == 0)).sum())
            status = _cell_status(n1, n0, *sparse)
            rows.append({"variable": v, "category": c, "n_treated": n1, "n_control": n0,
                         "w_treated": float(w[sel & (t == 1)].sum()), "w_control": float(w[sel & (t == 0)].sum()),
                         "status": status})
            if status != "ok" and apply:
                reason[sel & inside] = f"cell:{v}={c}"
                inside &= ~sel
    return pd.DataFrame(rows)


def _overlap_score(
    df: pd.DataFrame, treat: str, covariates: Sequence[str], t: np.ndarray, w: np.ndarray,
    inside: np.ndarray, fit_warnings: Counter[str],
) -> np.ndarray:
    """The propensity score on the units kept by the cell rule (NaN elsewhere, or everywhere when
    they are all of one group); its expected fit warnings counted into ``fit_warnings``."""
    score = np.full(len(df), np.nan)
    keep = inside & (w > 0)
    if (t[keep] == 1).any() and (t[keep] == 0).any():
        from analysis.matching.propensity import propensity_score

        sub = df.loc[keep, [treat, *covariates]].copy()
        sub["_w"] = w[keep]
        with expected_fit_warnings(fit_warnings, "overlap propensity score"):
            ps = propensity_score(sub, f"{treat} ~ " + " + ".join(f"C({c})" for c in covariates), weights="_w")
        score[keep] = ps.score.to_numpy()
    return score


def _score_rule(score: np.ndarray, t: np.ndarray, ok: np.ndarray, rule: str, alpha: float, tol: float) -> np.ndarray:
    """Units outside support by the propensity-score rule (``"minmax"`` or ``"crump"``)."""
    if rule == "minmax":
        hi = np.nanmax(np.where(t == 0, score, np.nan))
        lo = np.nanmin(np.where(t == 1, score, np.nan))
        out_t = ok & (t == 1) & (score > hi + tol)
        out_c = ok & (t == 0) & (score < lo - tol)
    else:
        out_t = ok & (t == 1) & ((score < alpha) | (score > 1 - alpha))
        out_c = ok & (t == 0) & ((score < alpha) | (score > 1 - alpha))
    return np.asarray(out_t | out_c)


def _score_regions(score: np.ndarray, t: np.ndarray, w: np.ndarray, ok: np.ndarray) -> pd.DataFrame:
    """POP and non-POP respondents per propensity-score decile bin."""
    edges = np.round(np.linspace(0, 1, 11), 1)
    reg = []
    for lo_e, hi_e in itertools.pairwise(edges):
        sel = ok & (score >= lo_e) & ((score < hi_e) | (hi_e == 1.0))
        n1, n0 = int((sel & (t == 1)).sum()), int((sel & (t == 0)).sum())
        status = "ok" if (n0 > 0) == (n1 > 0) else ("empty" if n0 == 0 else "no_treated")
        reg.append({"lower": lo_e, "upper": hi_e, "n_treated": n1, "n_control": n0,
                    "w_treated": float(w[sel & (t == 1)].sum()), "w_control": float(w[sel & (t == 0)].sum()),
                    "status": status})
    return pd.DataFrame(reg)


def _excluded_profile(df: pd.DataFrame, covariates: Sequence[str], excl: np.ndarray) -> pd.DataFrame:
    """Profile of the POP users outside support (``excl``) by covariate category."""
    prof = []
    n_ex = int(excl.sum())
    for v in covariates:
        col = df[v].astype(str).to_numpy()
        for c in sorted(set(col[excl])):
            k = int((excl & (col == c)).sum())
            prof.append({"variable": v, "category": c, "n": k, "pct": 100.0 * k / n_ex})
    return pd.DataFrame(prof, columns=["variable", "category", "n", "pct"])
