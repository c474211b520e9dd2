"""The results bundle as the report reads it: its tables, what it holds, and its protected tables.

:class:`ReportData` is the base of :class:`analysis.report.builder.Report`: it reads the bundle, its
outcomes and methods in the study's order, says which optional parts are there (:meth:`ReportData.has`),
states the estimand, and puts the tables with counts through disclosure control
(:func:`analysis.report.protection.protect`).  The facts, tables and figures build on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.report.formatting import (
    MISSING,
    NBSP,
    SUPPRESSED,
    check_lang,
    fmt_ci,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_signed,
)
from analysis.report.grid import Text
from analysis.report.labels import (
    category_label,
    category_order,
    in_sentence,
    label,
    method_label,
    outcome_label,
    variable_label,
)
from analysis.report.protection import Protected, protect, threshold_from_manifest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from analysis.bundle import ResultsBundle

__all__ = ["ReportData"]


class ReportData:
    """The bundle of a report: its tables, outcomes, methods, optional parts and protected tables.

    The parameters are :class:`analysis.report.builder.Report`'s.
    """

    def __init__(
        self,
        bundle: ResultsBundle | str | Path,
        lang: str = "nl",
        threshold: int | None = None,
        figdir: str | Path = "_figures",
        main_method: str | None = None,
        run_time: str | None = None,
    ) -> None:
        from analysis.bundle import ResultsBundle, read_bundle

        self.bundle = bundle if isinstance(bundle, ResultsBundle) else read_bundle(bundle)
        self.lang = check_lang(lang)
        self.threshold = threshold_from_manifest(self.bundle.manifest, threshold)
        self.figdir = Path(figdir)
        man = self.bundle.manifest
        self.run_time = run_time or man.get("created_at") or man.get("run_at")
        cfg = man.get("config") or {}
        eff = self._table("effects")
        methods = list(dict.fromkeys(eff["method"])) if not eff.empty else []
        self.main_method: str | None = main_method or (cfg.get("report") or {}).get("main_method") or ("matching" if "matching" in methods else (methods[0] if methods else None))
        self._outcome_order, self._outcome_labels = _bundle_outcomes(self.bundle)

    # ------------------------------------------------------------------ helpers
    def label(self, key: str, **fields: object) -> str:
        """A table/figure label in this report's language."""
        return label(key, self.lang, **fields)

    def _table(self, name: str) -> pd.DataFrame:
        import pandas as pd

        from analysis.bundle import TABLES

        if name in self.bundle.tables:
            return self.bundle.tables[name]
        return pd.DataFrame(columns=list(TABLES[name][0]) if name in TABLES else [])

    def _int(self, x: Any) -> str:
        return fmt_int(x, self.lang)

    def _pct(self, x: Any, digits: int = 1) -> str:
        return fmt_pct(x, digits, self.lang)

    def _num(self, x: Any, digits: int = 2) -> str:
        return fmt_num(x, digits, self.lang)

    def _ci(self, lo: Any, hi: Any, digits: int) -> str:
        return fmt_ci(lo, hi, digits, self.lang).replace(" ", NBSP)

    def _signed(self, scale: float, digits: int) -> Callable[[Any], str]:
        def fmt(v: Any) -> str:
            return fmt_signed(scale * float(v), digits, self.lang)

        return fmt

    @staticmethod
    def _cell(p: Protected, i: Any, col: str, fmt: Callable[[Any], str]) -> str:
        if p.suppressed.at[i, col]:
            return SUPPRESSED
        return fmt(p.table.at[i, col])

    def outcome(self, name: str) -> str:
        """The label of an outcome (the bundle's when it carries labels)."""
        return outcome_label(name, self.lang, self._outcome_labels)

    def _outcomes(self) -> list[str]:
        """The outcomes in the effects table, in the study's order (the manifest's ``outcomes``)."""
        eff = self._table("effects")
        present = list(dict.fromkeys(eff["outcome"])) if not eff.empty else []
        order = {o: i for i, o in enumerate(self._outcome_order)}
        return sorted(present, key=lambda o: order.get(o, len(order)))

    def _methods(self, scale: str) -> list[str]:
        from analysis.report.labels import METHOD_LABELS

        eff = self._table("effects")
        present = list(dict.fromkeys(eff.loc[eff["scale"] == scale, "method"])) if not eff.empty else []
        present += [m for m in dict.fromkeys(self._not_estimable()["method"].astype(str)) if m not in present]
        order = {m: i for i, m in enumerate(METHOD_LABELS)}
        main = [m for m in present if m == self.main_method]
        return main + sorted((m for m in present if m != self.main_method), key=lambda m: order.get(m, len(order)))

    def _method_name(self, m: str) -> str:
        name = method_label(m, self.lang)
        return f"{name} ({self.label('main_marker')})" if m == self.main_method else name

    # ------------------------------------------------------------------ what is there
    @property
    def is_demo(self) -> bool:
        """Whether the bundle comes from synthetic demonstration data: the data's provenance (manifest
        ``provenance``, set from the generator's mark), never the study's name."""
        man = self.bundle.manifest
        prov = man.get("provenance")
        if prov is not None:
            kind = prov.get("data") if isinstance(prov, Mapping) else prov
            return str(kind).lower() in ("synthetic", "demo", "synthetisch")
        return "synthetic" in str(man.get("note", ""))

    def has(self, name: str) -> bool:
        """Whether the bundle holds the optional part ``name`` (a table, or ``estimand``/``response_detail``)."""
        if name == "estimand":
            return bool(self._estimand())
        if name == "response_detail":
            return bool(self.bundle.estimates.get("response_detail"))
        if name == "suppressed":
            return any(self._protected(n).n_suppressed for n in ("profile", "weighting_margins", "training_domains"))
        if name == "not_estimable":
            eff = self._table("effects")
            return bool(len(self._not_estimable())) or (not eff.empty and bool(eff["estimate"].isna().any()))
        return name in self.bundle.tables and not self.bundle.tables[name].empty

    def _not_estimable(self) -> pd.DataFrame:
        """(outcome, method, code, reason) of secondary methods the run could not estimate (bundle table
        ``not_estimable``); a code the report has no wording for (or a bundle without codes) reads ``other``."""
        import pandas as pd

        from analysis.report.labels import LABELS

        ne = self._table("not_estimable")
        if not {"outcome", "method"} <= set(ne.columns):
            return ne.iloc[0:0].assign(code=pd.Series(dtype=str))
        known = {k.removeprefix("ne_") for k in LABELS if k.startswith("ne_")}
        codes = ne["code"].astype(str) if "code" in ne.columns else pd.Series("other", index=ne.index)
        return ne.assign(code=codes.where(codes.isin(known), "other"))

    def _estimand(self) -> Mapping[str, Any]:
        est = self.bundle.estimates.get("estimand")
        return est if isinstance(est, Mapping) else ({"statement": est} if est else {})

    def estimand_statement(self) -> Text:
        """The estimand and the group it excludes, in the report's language.

        Built from the bundle's structured estimand (``excluded_groups``, the weighted excluded
        share); a bundle with only a ``statement`` gives that text (in this language when given).
        """
        est = self._estimand()
        groups = est.get("excluded_groups")
        if isinstance(groups, list) and "share_treated_excluded_weighted" in est:
            return Text(self._estimand_text(est, groups))
        for key in ("statement", "excluded", "description"):
            v = est.get(key)
            if isinstance(v, Mapping):
                v = v.get(self.lang) or next(iter(v.values()), None)
            if v:
                return Text(str(v))
        return Text(MISSING)

    def _estimand_text(self, est: Mapping[str, Any], groups: list[Any]) -> str:
        nl = self.lang == "nl"
        share = fmt_pct(float(est["share_treated_excluded_weighted"]), 1, self.lang, proportion=True)
        names = [f"{in_sentence(variable_label(str(g['variable']), self.lang))}: {in_sentence(category_label(str(g['variable']), g['category'], self.lang))}" for g in groups if isinstance(g, Mapping)]
        if nl:
            text = "De vergelijking betreft de POP-gebruikers voor wie er vergelijkbare gebruikers zonder POP zijn."
            if names:
                text += f" Buiten die groep valt {share} van de POP-gebruikers (gewogen): {'; '.join(names)}. Voor hen zijn er geen of te weinig vergelijkbare gebruikers zonder POP."
        else:
            text = "The comparison concerns the POP users for whom there are comparable users without a POP."
            if names:
                text += f" Outside that group are {share} of the POP users (weighted): {'; '.join(names)}. For them there are no or too few comparable users without a POP."
        if any(isinstance(g, Mapping) and g.get("variable") == "educ" and g.get("category") == "hoog" for g in groups):
            text += (
                " Hooggeschoolden kunnen opleidingscheques volgens de regelgeving enkel gebruiken voor een opleiding uit hun POP: hooggeschoolde POP-gebruikers hebben dus geen vergelijkingsgroep."
                if nl
                else " By regulation, high-educated workers may use training vouchers only for a training in their POP: high-educated POP users therefore have no comparison group."
            )
        return text

    def when(self, condition: bool, markdown: str) -> None:
        """Print ``markdown`` (prose written in the ``.qmd``) when ``condition`` holds; for ``output: asis`` cells."""
        if condition:
            print(markdown.strip("\n") + "\n")

    # ------------------------------------------------------------------ protected tables
    def _protected(self, name: str) -> Protected:
        return {
            "pop_share": self._pop_share,
            "profile": self._profile,
            "training_domains": self._domains,
            "weighting_margins": self._margins,
            "response_flow": self._flow,
        }[name]()

    def _pop_share(self) -> Protected:
        df = self._table("pop_share").copy()
        return protect(df, ["n_approved", "n_pop"], self.threshold, derived={"n_pop": ["pct_pop"], "n_approved": ["pct_pop"]}, complements=[("n_pop", "n_approved")])

    def _profile(self) -> Protected:
        df = self._table("profile")
        if df.empty:
            import pandas as pd

            return protect(pd.DataFrame(columns=["variable", "category", "n_pop", "n_all", "pct_pop", "pct_all"]), ["n_pop", "n_all"], self.threshold)
        wide = df.pivot_table(index=["variable", "category"], columns="group", values=["n", "pct"], aggfunc="first", sort=False)
        wide.columns = ["_".join(map(str, pair)) for pair in wide.columns]  # (value, group) -> value_group
        wide = wide.reset_index()
        for c in ("n_pop", "n_all", "pct_pop", "pct_all"):
            if c not in wide.columns:
                wide[c] = math.nan
        order = {v: i for i, v in enumerate(dict.fromkeys(df["variable"]))}
        wide["_o"] = wide["variable"].map(order)
        wide["_c"] = [category_order(v, c) for v, c in zip(wide["variable"], wide["category"], strict=True)]
        wide = wide.sort_values(["_o", "_c"], kind="stable").drop(columns=["_o", "_c"])
        return protect(wide, ["n_pop", "n_all"], self.threshold, by=["variable"], derived={"n_pop": ["pct_pop"], "n_all": ["pct_all"]}, complements=[("n_pop", "n_all")])

    def _domains(self) -> Protected:
        df = self._table("training_domains")
        if not df.empty and "pop" in set(df["group"]):
            df = df[df["group"] == "pop"]
        df = df.assign(in_databank=df["in_databank"].astype(int), _c=[category_order("domain", d) for d in df["domain"]]).sort_values(["in_databank", "_c"], ascending=[False, True], kind="stable").drop(columns="_c")
        return protect(df, ["n"], self.threshold, by=["in_databank"], derived={"n": ["pct"]})

    def _flow(self) -> Protected:
        import pandas as pd

        steps = self._flow_steps()
        df = pd.DataFrame(steps, columns=["step", "n", "outcome"])
        invited = df.loc[df["step"] == "invited", "n"]
        df["pct_invited"] = 100.0 * df["n"].astype(float) / float(invited.iloc[0]) if len(invited) and invited.iloc[0] else math.nan
        return protect(df, ["n"], self.threshold, derived={"n": ["pct_invited"]})

    def _flow_steps(self) -> list[tuple[str, float, str]]:
        flow = self._table("response_flow")
        base = dict(zip(flow["step"].astype(str), flow["n"], strict=True)) if not flow.empty else {}
        detail = self.bundle.estimates.get("response_detail") or {}
        steps: list[tuple[str, float, str]] = []
        if "invited" in base:
            steps.append(("invited", base["invited"], ""))
        if detail:
            for key in ("raw_rows", "duplicates_dropped", "respondents", "incomplete"):
                if key in detail:
                    steps.append((key, detail[key], ""))
            if "completed" in base:
                steps.append(("completed", base["completed"], ""))
            for key in ("no_participant", "not_in_population"):
                if key in detail:
                    steps.append((key, detail[key], ""))
            for key in ("linked", "analysed"):
                if key in base:
                    steps.append((key, base[key], ""))
            per = detail.get("outcomes") or {}
            order = {o: i for i, o in enumerate(self._outcomes())}
            for o in sorted(per, key=lambda x: order.get(x, len(order))):
                steps.append(("dont_know", per[o].get("missing", 0), o))
        else:
            steps += [(k, v, "") for k, v in base.items() if k != "invited"]
        return steps

    def _margins(self) -> Protected:
        df = self._table("weighting_margins").copy()
        return protect(df, ["population", "n_respondents"], self.threshold, by=["variable"], derived={"population": ["pct_population"], "n_respondents": ["pct_unweighted", "pct_weighted"]})

    def _effects(self, scale: str) -> Protected:
        df = self._table("effects")
        df = df[df["scale"] == scale].copy()
        dep = [c for c in ("estimate", "bse", "ci_lower", "ci_upper", "p_value", "p_holm", "p_bh") if c in df.columns]
        return protect(df, ["n_treated", "n_control"], self.threshold, derived={"n_treated": dep, "n_control": dep})

    def _balance_wide(self) -> tuple[pd.DataFrame, list[str]]:
        """The balance table wide (SMD and variance ratio per stage), its rows in the variables' and categories' order."""
        bal = self._table("balance")
        wide = bal.pivot_table(index="variable", columns="stage", values=["smd", "variance_ratio"], aggfunc="first", sort=False)
        names = [str(v).partition("=")[0] for v in wide.index]
        order = {v: i for i, v in enumerate(dict.fromkeys(names))}
        keys = sorted(wide.index, key=lambda v: (order[str(v).partition("=")[0]], category_order(str(v).partition("=")[0], str(v).partition("=")[2])))
        return wide.loc[keys], [str(k) for k in keys]


def _bundle_outcomes(bundle: Any) -> tuple[list[str], dict[str, Any]]:
    """The study's outcome order and labels from the bundle (manifest ``outcomes``; older bundles: ``outcome_labels``)."""
    man = bundle.manifest
    est = bundle.estimates if isinstance(bundle.estimates, Mapping) else {}
    labels: dict[str, Any] = dict(est.get("outcome_labels") or man.get("outcome_labels") or {})
    order: list[str] = []
    for o in man.get("outcomes") or []:
        if isinstance(o, Mapping) and "name" in o:
            order.append(str(o["name"]))
            labels.setdefault(str(o["name"]), {k: o[k] for k in ("nl", "en") if k in o})
    if not order:
        from survey.questionnaire import OUTCOMES

        order = [o.name for o in OUTCOMES]
    return order, labels
