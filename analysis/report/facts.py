"""The numbers the report's prose quotes, formatted, by name; and the verdict per outcome.

``r.fact.<name>`` in a ``.qmd`` reads :meth:`ReportFacts.facts` through :class:`Facts`; a name the
report does not know raises an error listing the known ones.  :meth:`ReportFacts.verdicts` sums up
what the adjusting methods find per outcome.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analysis.report.data import ReportData
from analysis.report.formatting import (
    MISSING,
    SUPPRESSED,
    fmt_date,
    fmt_datetime,
    fmt_signed,
    is_missing,
)
from analysis.report.grid import Text
from analysis.report.labels import (
    LABELS,
    category_label,
    in_sentence,
    label,
    method_label,
    number_word,
    variable_label,
)
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ALPHA", "DESCRIPTIVE_METHODS", "Facts", "ReportFacts"]

#: Methods that describe rather than adjust: shown, but not part of a verdict.
DESCRIPTIVE_METHODS = {"naive", "weighted"}
#: The significance level of the verdicts (Holm-adjusted p-values).
ALPHA = 0.05

#: The profile's groups the prose quotes (``pct_<group>_pop``, ``pct_<group>_all``): variable and categories.
_PROFILE_GROUPS = {
    "high": ("educ", ["hoog"]),
    "low": ("educ", ["laag"]),
    "medium": ("educ", ["midden"]),
    "women": ("sex", ["V"]),
    "under25": ("age_band", ["18-24"]),
    "age25_44": ("age_band", ["25-34", "35-44"]),
    "over55": ("age_band", ["55+"]),
    "primary": ("sector", ["primair"]),
    "tert_quart": ("sector", ["tertiair", "quartair"]),
    "sme": ("company_size", ["1-9", "10-49", "50-249"]),
}


class Facts:
    """Formatted numbers for the prose, as attributes: ``r.fact.invited`` → ``'11.422'``.

    An unknown name raises an error naming the known ones; a number the bundle lacks is
    :data:`~analysis.report.formatting.MISSING`.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        object.__setattr__(self, "_values", {k: Text(v) for k, v in values.items()})

    def __getattr__(self, name: str) -> Text:
        values = object.__getattribute__(self, "_values")
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return values[name]
        except KeyError:
            raise ConfigError("The report quotes an unknown number", param=name, expected=", ".join(sorted(values)), found=name, hint="see Report.facts() in analysis/report/facts.py") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Facts are read-only")

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_values"))

    def to_dict(self) -> dict[str, str]:
        """Every fact by name."""
        return dict(object.__getattribute__(self, "_values"))


class ReportFacts(ReportData):
    """The facts of a report and its verdicts (see :class:`analysis.report.builder.Report`)."""

    @functools.cached_property
    def fact(self) -> Facts:
        """The facts as attributes (``r.fact.invited``), computed once."""
        return Facts(self.facts())

    # ------------------------------------------------------------------ facts
    def facts(self) -> dict[str, str]:
        """Every formatted number the prose may quote, by name."""
        f: dict[str, str] = {"threshold": str(self.threshold), "x": SUPPRESSED}
        f.update(self._facts_run())
        f.update(self._facts_population())
        f.update(self._facts_survey())
        f.update(self._facts_settings())
        f.update(self._facts_effects())
        f.update(self._facts_provenance())
        # prose never shows the tables' suppression flag as if it were a number
        hidden = self.label("suppressed_in_prose")
        return {k: hidden if v == SUPPRESSED and k != "x" else v for k, v in f.items()}

    def _facts_run(self) -> dict[str, str]:
        """The run's date and time, its year and popeval's version."""
        not_given = label("not_given", self.lang)
        return {
            "date": fmt_date(str(self.run_time)[:10], self.lang) if self.run_time else not_given,
            "run_datetime": fmt_datetime(self.run_time, self.lang) if self.run_time else not_given,
            "year": str(self.run_time)[:4] if self.run_time else MISSING,
            "version": str(self.bundle.manifest.get("popeval_version") or not_given),
        }

    def _facts_population(self) -> dict[str, str]:
        """The admin population: POP shares per incentive, the profile's groups, training domains."""
        f: dict[str, str] = {}
        share = self._pop_share()
        for i, r in share.table.iterrows():
            k = str(r["incentive"]).lower()
            f[f"pct_pop_{k}"] = self._cell(share, i, "pct_pop", self._pct)
            f[f"n_pop_{k}"] = self._cell(share, i, "n_pop", self._int)
            f[f"n_approved_{k}"] = self._cell(share, i, "n_approved", self._int)
        f.update(self._facts_profile())
        outside = self._table("outside_databank")
        everyone = outside[outside["incentive"] == "all"] if not outside.empty else outside
        f["pct_outside"] = self._pct(everyone["pct_outside"].iloc[0]) if len(everyone) else MISSING
        dom = self._domains().table
        inside = dom[dom["in_databank"] == 1] if not dom.empty else dom
        if len(inside):
            top = inside.sort_values("n", ascending=False, kind="stable")
            f["top_domain"] = category_label("domain", top["domain"].iloc[0], self.lang).lower()
            f["top_domain_pct"] = self._pct(top["pct"].iloc[0])
            f["second_domain"] = category_label("domain", top["domain"].iloc[1], self.lang).lower() if len(top) > 1 else MISSING
        else:
            f["top_domain"] = f["top_domain_pct"] = f["second_domain"] = MISSING
        return f

    def _facts_profile(self) -> dict[str, str]:
        """The shares of the profile's groups (POP users and all users) and the number of persons."""
        f: dict[str, str] = {}
        prof = self._profile()
        pt = prof.table
        for key, (var, cats) in _PROFILE_GROUPS.items():
            for grp in ("pop", "all"):
                sel = pt.index[(pt["variable"] == var) & pt["category"].astype(str).isin(cats)]
                if len(sel) != len(cats) or prof.suppressed.loc[sel, f"pct_{grp}"].any():
                    f[f"pct_{key}_{grp}"] = SUPPRESSED if len(sel) == len(cats) else MISSING
                else:
                    f[f"pct_{key}_{grp}"] = self._pct(pt.loc[sel, f"pct_{grp}"].astype(float).sum())
        n_pop = pt.loc[pt["variable"] == pt["variable"].iloc[0], "n_pop"].sum() if not pt.empty else math.nan
        n_all = pt.loc[pt["variable"] == pt["variable"].iloc[0], "n_all"].sum() if not pt.empty else math.nan
        f["persons_pop"], f["persons_all"] = self._int(n_pop), self._int(n_all)
        return f

    def _facts_survey(self) -> dict[str, str]:
        """The survey: the response flow and its detail, the design's group sizes, the weights."""
        f: dict[str, str] = {}
        flow = self._table("response_flow")
        fl = dict(zip(flow["step"].astype(str), flow["n"], strict=True)) if not flow.empty else {}
        for k in ("invited", "started", "completed", "linked", "analysed"):
            f[k] = SUPPRESSED if k in fl and 0 < float(fl[k]) < self.threshold else self._int(fl.get(k))
        f["response_rate"] = self._pct(100.0 * fl["analysed"] / fl["invited"]) if fl.get("invited") and "analysed" in fl else MISSING
        detail = self.bundle.estimates.get("response_detail") or {}
        for k in ("raw_rows", "duplicates_dropped", "incomplete", "no_participant", "not_in_population"):
            f[k] = self._int(detail.get(k)) if k in detail else MISSING
        design = self.bundle.estimates.get("design") or {}
        for k in ("n_treated", "n_control", "n_matched_treated", "n_matched_control"):
            f[k] = self._int(design.get(k)) if k in design else MISSING
        diag = self._table("weight_diagnostics")
        d = dict(zip(diag["statistic"], diag["value"], strict=True)) if not diag.empty else {}
        f["deff"] = self._num(d.get("kish_deff"))
        f["n_effective"] = self._int(d.get("n_effective"))
        f["weight_ratio"] = self._num(d.get("ratio_max_min"), 1)
        f["collapsed_cells"] = self._int(d.get("collapsed_cells"))
        return f

    def _facts_settings(self) -> dict[str, str]:
        """The run's weighting and matching settings and its replicates, in words."""
        f: dict[str, str] = {}
        cfg = self.bundle.manifest.get("config") or {}
        not_given = label("not_given", self.lang)
        wcfg = cfg.get("weighting") or {}
        wm = str(wcfg.get("method", ""))
        f["weighting_method"] = label(f"wm_{wm}", self.lang) if f"wm_{wm}" in LABELS else not_given
        margins = wcfg.get("margins", [])
        f["weighting_margins"] = _join([" × ".join(in_sentence(variable_label(v, self.lang)) for v in ([m] if isinstance(m, str) else m) if v != "pop") for m in margins], self.lang) or not_given
        mcfg = cfg.get("matching") or {}
        f["matching_covariates"] = _join([in_sentence(variable_label(v, self.lang)) for v in mcfg.get("covariates", [])], self.lang) or not_given
        f["matching_ratio"] = str(mcfg.get("ratio", 1))
        f["matching_caliper"] = self._num(mcfg["caliper"], 2) if mcfg.get("caliper") is not None else MISSING
        f["matching_replace"] = label("with_replacement" if mcfg.get("replace") else "without_replacement", self.lang)
        ecfg = cfg.get("effects") or {}
        reps = self.bundle.estimates.get("replicates") or {}
        f["replicates"] = self._int(reps.get("n_replicates", ecfg.get("replicates")))
        f["replicates_failed"] = self._int(reps.get("n_failed", 0))
        return f

    def _facts_effects(self) -> dict[str, str]:
        """The effects: the main method and its SEs, each outcome's estimate and verdict, the E-values."""
        f: dict[str, str] = {}
        f["main_method"] = in_sentence(method_label(self.main_method, self.lang)) if self.main_method else MISSING
        eff = self._table("effects")
        se_types = set(eff.loc[eff["method"] == self.main_method, "se_type"].astype(str)) if "se_type" in eff.columns and not eff.empty else set()
        f["main_se"] = label("se_replicate" if "replicate" in se_types else "se_model", self.lang)
        # model-based methods: the largest weighted share of POP users whose prediction extrapolates
        xs = [float(v) for v in eff["extrapolated"] if not is_missing(v)] if "extrapolated" in eff.columns else []
        f["extrapolated_max"] = self._pct(100.0 * max(xs)) if xs else MISSING
        f.update(self._facts_outcomes())
        sens = self._table("sensitivity")
        if not sens.empty and sens["e_value"].notna().any():
            e_value = sens["e_value"].astype(float)
            best = sens[e_value == e_value.max()].iloc[0]
            f["evalue_max"], f["evalue_outcome"] = self._num(best["e_value"]), in_sentence(self.outcome(str(best["outcome"])))
        else:
            f["evalue_max"] = f["evalue_outcome"] = MISSING
        return f

    def _facts_outcomes(self) -> dict[str, str]:
        """Per outcome its main estimate (percentage points, Likert points) and verdict; the outcomes per verdict."""
        f: dict[str, str] = {}
        verdicts = self.verdicts()
        for o in self._outcomes():
            main = self._main_row(o, "top2")
            f[f"pp_{o}"] = fmt_signed(100 * main["estimate"], 1, self.lang) if main is not None else MISSING
            f[f"ci_{o}"] = self._ci(100 * main["ci_lower"], 100 * main["ci_upper"], 1) if main is not None else MISSING
            mainl = self._main_row(o, "likert")
            f[f"pt_{o}"] = fmt_signed(mainl["estimate"], 2, self.lang) if mainl is not None else MISSING
            f[f"verdict_{o}"] = label(f"verdict_{verdicts.get(o, 'none')}", self.lang)
            f[f"outcome_{o}"] = in_sentence(self.outcome(o))
        for v in ("consistent", "main_only", "inconclusive", "none", "lower"):
            names = [in_sentence(self.outcome(o)) for o, k in verdicts.items() if k == v]
            f[f"outcomes_{v}"] = _join(names, self.lang) or MISSING
            f[f"n_{v}"] = str(len(names))
        f["n_outcomes"] = str(len(self._outcomes()))
        f["n_outcomes_word"] = number_word(len(self._outcomes()), self.lang)
        f["pp_by_outcome"] = _join([self.label("pp_for_outcome", value=f[f"pp_{o}"], outcome=f[f"outcome_{o}"]) for o in self._outcomes()], self.lang) or MISSING
        f["pt_by_outcome"] = _join([self.label("pt_for_outcome", value=f[f"pt_{o}"], outcome=f[f"outcome_{o}"]) for o in self._outcomes()], self.lang) or MISSING
        return f

    def _facts_provenance(self) -> dict[str, str]:
        """The commit, the seed and the estimand of the run."""
        man = self.bundle.manifest
        ecfg = (man.get("config") or {}).get("effects") or {}
        return {
            "commit": str(man.get("commit") or label("not_given", self.lang)),
            "seed": str(man.get("seed", label("not_given", self.lang))),
            "estimand": str(ecfg.get("estimand", "ATT")),
        }

    def _main_row(self, outcome: str, scale: str) -> pd.Series | None:
        """The main method's row of ``outcome`` on ``scale`` (``None`` when it is missing or suppressed)."""
        eff = self._effects(scale)
        t = eff.table
        if t.empty or self.main_method is None:
            return None
        sel = t.index[(t["outcome"] == outcome) & (t["method"] == self.main_method) & ~eff.suppressed["estimate"]]
        if not len(sel) or is_missing(t.at[sel[0], "estimate"]):
            return None
        return t.loc[sel[0]]

    def verdicts(self, scale: str = "top2") -> dict[str, str]:
        """Per outcome: ``consistent``, ``main_only``, ``inconclusive``, ``none`` or ``lower``.

        Significance is a Holm-adjusted p below 5 %; only adjusting, estimable methods on ``scale``
        count (the raw difference does not).  ``inconclusive``: the main analysis finds no
        difference but another method does, or methods find differences of opposite sign.
        """
        eff = self._effects(scale)
        t = eff.table
        out: dict[str, str] = {}
        if t.empty:
            return out
        for o in self._outcomes():
            rows = t[(t["outcome"] == o) & ~t["method"].isin(DESCRIPTIVE_METHODS) & t["estimate"].notna() & ~eff.suppressed.loc[t.index, "estimate"]]
            if rows.empty:
                continue
            sig = rows["p_holm"].astype(float) < ALPHA
            pos, neg = sig & (rows["estimate"] > 0), sig & (rows["estimate"] < 0)
            main = rows[rows["method"] == self.main_method]
            main_pos = bool(len(main)) and bool(pos[main.index].all())
            main_neg = bool(len(main)) and bool(neg[main.index].all())
            if pos.any() and neg.any():
                out[o] = "inconclusive"
            elif main_pos:
                out[o] = "consistent" if pos.all() else "main_only"
            elif main_neg:
                out[o] = "lower"
            elif pos.any() or neg.any():
                out[o] = "inconclusive"
            else:
                out[o] = "none"
        return out


def _join(items: Sequence[str], lang: str) -> str:
    """``a, b en c`` / ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    word = " en " if lang == "nl" else " and "
    return ", ".join(items[:-1]) + word + items[-1]
