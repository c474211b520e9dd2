"""Numbers and tables for the report section "Het POP en het POP-attest" (reads only the plans tables).

The prose lives in ``reports/_plans-nl.qmd`` and ``reports/_plans-en.qmd``; they create a
:class:`PlansSection` from the bundle folder and quote its numbers inline and its tables in labelled
cells.  Nothing here reads POP texts: the bundle has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analysis.plans.codebook import CODEBOOK
from analysis.plans.tables import read_plans_tables
from analysis.report.builder import grid_table
from analysis.report.formatting import MISSING, check_lang, fmt_int, fmt_num, fmt_pct
from survey.errors import DataValidationError

__all__ = ["NoPlans", "PlansSection", "plans_section", "stratum_category_label"]

_MEASURE_LABELS = {
    "nl": {
        "no_training": "Geen opleiding aangeraden",
        "no_reason": "Reden niet afleidbaar (POPs met opleiding)",
        "goal_talent": "Loopbaandoel talentontwikkeling",
        "goal_balance": "Loopbaandoel werk-privébalans en werkbaar werk",
        "goal_reorientation": "Loopbaandoel heroriëntering",
        "mismatch": "Opleiding in POP ≠ POP-attest",
        "match": "Opleiding in POP = POP-attest",
        "undetermined": "Niet te bepalen",
    },
    "en": {
        "no_training": "No training recommended",
        "no_reason": "Reason not derivable (POPs with a training)",
        "goal_talent": "Career goal talent development",
        "goal_balance": "Career goal work-life balance and workable work",
        "goal_reorientation": "Career goal reorientation",
        "mismatch": "Training in POP ≠ POP-attest",
        "match": "Training in POP = POP-attest",
        "undetermined": "Cannot tell",
    },
}
_CATEGORY_LABELS = {
    "nl": {"match": "komt overeen", "mismatch": "komt niet overeen", "onbepaald": "niet te bepalen", "geen_aanvraag": "geen aanvraag", "zelfde": "zelfde opleiding", "verschillend": "andere opleiding", "no_match": "komt niet overeen", "geen_attest": "geen attest"},
    "en": {"match": "matches", "mismatch": "does not match", "onbepaald": "cannot tell", "geen_aanvraag": "no application", "zelfde": "same training", "verschillend": "other training", "no_match": "does not match", "geen_attest": "no attest"},
}
_COMPARISON_LABELS = {
    "nl": {
        "pop_vs_attest": "POP tegenover POP-attest (automatisch, alle POPs)",
        "pop_vs_followed": "POP tegenover gevolgde opleiding (automatisch)",
        "attest_vs_followed": "POP-attest tegenover gevolgde opleiding (ids)",
        "attest_matches_training": "POP-attest tegenover opleidingscheque-opleiding (koppeling)",
    },
    "en": {
        "pop_vs_attest": "POP versus POP-attest (automated, all POPs)",
        "pop_vs_followed": "POP versus training followed (automated)",
        "attest_vs_followed": "POP-attest versus training followed (ids)",
        "attest_matches_training": "POP-attest versus opleidingscheque training (linkage)",
    },
}


_NO_STRATA = {"nl": "Alle POPs", "en": "All POPs"}
_NO_INCENTIVE_LABEL = {"nl": "Geen POP-opleiding met incentive", "en": "No POP-based training with an incentive"}
#: The POP frame's size classes of the career centres (``analysis.plans.frame.build_frame``).
_CENTRE_SIZE_LABELS = {
    "nl": {"klein": "klein loopbaancentrum", "middel": "middelgroot loopbaancentrum", "groot": "groot loopbaancentrum"},
    "en": {"klein": "small career centre", "middel": "medium-sized career centre", "groot": "large career centre"},
}


def stratum_category_label(column: str, code: str, lang: str) -> str:
    """The label of a category of a strata column (``incentive``, ``centre_size``, ...), the POP
    frame's own codes (no incentive, the centres' size classes) included; other codes (a career
    centre's name, a school year) are their own label."""
    from analysis.plans.frame import NO_INCENTIVE
    from analysis.report.labels import category_label

    if column == "incentive" and code == NO_INCENTIVE:
        return _NO_INCENTIVE_LABEL[lang]
    if column == "centre_size" and code in _CENTRE_SIZE_LABELS[lang]:
        return _CENTRE_SIZE_LABELS[lang][code]
    return category_label(column, code, lang)


def _strata_columns(bundle: Path) -> tuple[str, ...]:
    """The sample's strata columns: from a plans bundle's ``plans.json`` or a run bundle's manifest
    (both already checked against the manifest by :func:`read_plans_tables`: read as they are)."""
    import json

    info = bundle / "plans.json"
    if info.is_file():
        sample = json.loads(info.read_text(encoding="utf-8")).get("sample") or {}
    else:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        sample = (manifest.get("plans") or {}).get("sample") or {}
    return tuple(str(c) for c in sample.get("strata") or ())


class PlansSection:
    """The plans tables of a bundle, with formatted numbers for the report.

    Parameters
    ----------
    bundle
        The bundle folder (with ``tables/plans_*.csv``).
    lang
        ``nl`` or ``en``.
    """

    def __init__(self, bundle: str | Path, lang: str = "nl") -> None:
        self.lang = check_lang(lang)
        self.tables = read_plans_tables(bundle)
        if "plans_estimates" not in self.tables:
            raise DataValidationError(
                "The bundle has no plans tables", file=Path(bundle), expected="tables/plans_estimates.csv", found="none", hint="run `popeval plans estimate` for this bundle"
            )
        self.est = self.tables["plans_estimates"]
        self.strata_columns = _strata_columns(Path(bundle))

    # ---- numbers -------------------------------------------------------------------------
    def value(self, measure: str, estimator: str = "design", stratum: str = "alle", column: str = "estimate") -> Any:
        """One number of the estimates table."""
        e = self.est
        r = e[(e["measure"] == measure) & (e["estimator"] == estimator) & (e["stratum"] == stratum)]
        return r[column].iloc[0] if len(r) else float("nan")

    def pct(self, measure: str, estimator: str = "design", stratum: str = "alle") -> str:
        """A share as a percentage."""
        return fmt_pct(self.value(measure, estimator, stratum), 1, self.lang, proportion=True)

    def ci(self, measure: str, estimator: str = "design", stratum: str = "alle") -> str:
        """The 95 % interval as ``a tot b`` / ``a to b``."""
        lo = fmt_pct(self.value(measure, estimator, stratum, "ci_lower"), 1, self.lang, proportion=True)
        hi = fmt_pct(self.value(measure, estimator, stratum, "ci_upper"), 1, self.lang, proportion=True)
        return f"{lo} {'tot' if self.lang == 'nl' else 'to'} {hi}"

    def n_sample(self) -> str:
        """Number of POPs read."""
        return fmt_int(self.value("no_training", column="n_sample"), self.lang)

    def n_frame(self) -> str:
        """Number of POPs in the population (frame)."""
        return fmt_int(self.value("no_training", column="N_population"), self.lang)

    def n_strata(self) -> str:
        """Number of strata."""
        return fmt_int(len(self.tables["plans_sample"]), self.lang)

    def n_coders(self) -> str:
        """Number of coders."""
        return fmt_int(int(self.tables["plans_agreement"]["n_coders"].iloc[0]), self.lang)

    def agreement_range(self, stat: str = "kappa") -> str:
        """The smallest and largest agreement statistic over the codes."""
        a = self.tables["plans_agreement"][stat]
        word = "tot" if self.lang == "nl" else "to"
        return f"{fmt_num(a.min(), 2, self.lang)} {word} {fmt_num(a.max(), 2, self.lang)}"

    def width_ratio(self) -> str:
        """Width of the combined mismatch interval relative to the sample-only interval, in percent."""
        w = {}
        for e in ("design", "combined"):
            w[e] = self.value("mismatch", e, column="ci_upper") - self.value("mismatch", e, column="ci_lower")
        return fmt_pct(w["combined"] / w["design"], 0, self.lang, proportion=True)

    def validation(self, flag: str, stat: str) -> str:
        """Precision or recall of an automated flag."""
        v = self.tables["plans_validation"].set_index("flag")
        return fmt_pct(v.loc[flag, stat], 0, self.lang, proportion=True)

    def admin_match(self) -> str:
        """Share of POP-attest holders whose attest names their opleidingscheque training (linkage)."""
        c = self.tables["plans_concordance"]
        c = c[c["comparison"] == "attest_matches_training"]
        if c["n"].isna().any():
            return MISSING
        return fmt_pct(c.loc[c["category"] == "match", "n"].sum() / c["n"].sum(), 1, self.lang, proportion=True)

    @property
    def has_changes(self) -> bool:
        """Whether a previous wave was compared."""
        return len(self.tables.get("plans_changes", ())) > 0

    # ---- tables --------------------------------------------------------------------------
    def _labels(self) -> dict[str, str]:
        return _MEASURE_LABELS[self.lang]

    def estimates_table(self) -> str:
        """Overall design-based shares (and the combined mismatch estimate) with intervals."""
        L = self._labels()
        rows = []
        nl = self.lang == "nl"
        for m in ("no_training", "no_reason", "goal_talent", "goal_balance", "goal_reorientation", "match", "mismatch", "undetermined"):
            rows.append([L[m], self.pct(m), self.ci(m)])
        rows.append([L["mismatch"] + (" — gecombineerd met automatische vlag" if nl else " — combined with the automated flag"), self.pct("mismatch", "combined"), self.ci("mismatch", "combined")])
        head = ["Kenmerk", "Aandeel", "95%-betrouwbaarheidsinterval"] if nl else ["Characteristic", "Share", "95% confidence interval"]
        return grid_table(head, rows, "lrr").markdown()

    def _share_with_ci(self, measure: str, stratum: str) -> str:
        """``21,3 % (15,1 tot 27,4 %)``: a share with its 95 % interval (missing when suppressed)."""
        est = self.pct(measure, stratum=stratum)
        if est == MISSING:
            return MISSING
        return f"{est} ({self.ci(measure, stratum=stratum)})"

    def stratum_label(self, stratum: str) -> str:
        """A stratum's label: the label of each strata column's category (``OC`` -> Opleidingscheques), joined by `` / ``."""
        from analysis.plans.sample import STRATUM_SEPARATOR

        parts = stratum.split(STRATUM_SEPARATOR)
        if len(parts) != len(self.strata_columns):  # no strata ("alle") or columns not recorded
            return _NO_STRATA[self.lang] if stratum == "alle" else stratum
        return " / ".join(stratum_category_label(c, p, self.lang) for c, p in zip(self.strata_columns, parts, strict=True))

    def strata_table(self) -> str:
        """Shares per stratum (design-based) with their 95 % intervals."""
        L = self._labels()
        st = self.tables["plans_sample"]
        ms = ("no_training", "no_reason", "mismatch")
        rows = []
        for r in st.itertuples(index=False):
            rows.append([self.stratum_label(str(r.stratum)), fmt_int(r.N_h, self.lang), fmt_int(r.n_h, self.lang), *[self._share_with_ci(m, str(r.stratum)) for m in ms]])
        head = ["Stratum", "POPs", "Gelezen" if self.lang == "nl" else "Read", *[L[m] for m in ms]]
        return grid_table(head, rows, "lrrrrr").markdown()

    def agreement_table(self) -> str:
        """Agreement per code with bootstrap intervals."""
        rows = []
        word = "tot" if self.lang == "nl" else "to"
        for r in self.tables["plans_agreement"].itertuples(index=False):
            def f(x: Any, lo: Any, hi: Any) -> str:
                return f"{fmt_num(x, 2, self.lang)} ({fmt_num(lo, 2, self.lang)} {word} {fmt_num(hi, 2, self.lang)})"

            rows.append(
                [
                    CODEBOOK[str(r.code)].label(self.lang),
                    fmt_pct(r.percent_agreement, 1, self.lang, proportion=True),
                    f(r.kappa, r.kappa_lower, r.kappa_upper),
                    f(r.alpha, r.alpha_lower, r.alpha_upper),
                    fmt_int(r.n_disagreements, self.lang),
                ]
            )
        head = (
            ["Code", "Overeenstemming", "Cohens kappa", "Krippendorffs alfa", "Verschillen verzoend"]
            if self.lang == "nl"
            else ["Code", "Agreement", "Cohen's kappa", "Krippendorff's alpha", "Disagreements reconciled"]
        )
        return grid_table(head, rows, "lrrrr").markdown()

    def concordance_table(self) -> str:
        """Automated and admin-level concordance counts (suppressed cells shown as missing)."""
        c = self.tables["plans_concordance"]
        rows = []
        r: Any
        for r in c.itertuples(index=False):
            rows.append(
                [
                    _COMPARISON_LABELS[self.lang].get(str(r.comparison), str(r.comparison)),
                    _CATEGORY_LABELS[self.lang].get(str(r.category), str(r.category)),
                    fmt_int(r.n, self.lang) if pd.notna(r.n) else MISSING,
                    fmt_pct(r.pct, 1, self.lang) if pd.notna(r.pct) else MISSING,
                ]
            )
        head = ["Vergelijking", "Uitkomst", "Aantal", "%"] if self.lang == "nl" else ["Comparison", "Outcome", "Number", "%"]
        return grid_table(head, rows, "llrr").markdown()

    def changes_table(self) -> str:
        """Change since the previous wave (percentage points)."""
        L = self._labels()
        rows = []
        r: Any
        for r in self.tables["plans_changes"].itertuples(index=False):
            label = L.get(str(r.measure), str(r.measure)) + (" (gecombineerd)" if r.estimator == "combined" and self.lang == "nl" else " (combined)" if r.estimator == "combined" else "")
            word = "tot" if self.lang == "nl" else "to"
            rows.append(
                [
                    label,
                    fmt_pct(r.previous, 1, self.lang, proportion=True),
                    fmt_pct(r.estimate, 1, self.lang, proportion=True),
                    f"{fmt_num(100 * r.difference, 1, self.lang)} ({fmt_num(100 * r.ci_lower, 1, self.lang)} {word} {fmt_num(100 * r.ci_upper, 1, self.lang)})",
                ]
            )
        head = ["Kenmerk", "Vorige meting", "Deze meting", "Verschil in procentpunten (95%-BI)"] if self.lang == "nl" else ["Characteristic", "Previous wave", "This wave", "Difference in points (95% CI)"]
        return grid_table(head, rows, "lrrr").markdown()


class NoPlans:
    """Stands in for :class:`PlansSection` when the bundle has no plans tables.

    The section's cells still run (Quarto executes the cells of hidden content too) but the
    section is hidden (``popeval-plans`` is not set): every number and table is empty.
    """

    has_changes = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: ""


def plans_section(bundle: str | Path | None, lang: str = "nl") -> PlansSection | NoPlans:
    """The plans section of ``bundle``, or :class:`NoPlans` when it has no plans tables."""
    if bundle is None or "plans_estimates" not in read_plans_tables(bundle):
        return NoPlans()
    return PlansSection(bundle, lang=lang)
