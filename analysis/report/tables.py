"""The report's tables: each a protected :class:`~analysis.report.grid.GridTable`, ready to show.

:meth:`ReportTables.table` gives a table by name; every count in it went through disclosure control
(:mod:`analysis.report.protection`), and a suppressed cell shows
:data:`analysis.report.formatting.SUPPRESSED`.  Column headers and category labels come from
:mod:`analysis.report.labels`; captions are in the ``.qmd``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analysis.report.facts import DESCRIPTIVE_METHODS, ReportFacts
from analysis.report.formatting import MISSING, SUPPRESSED, fmt_p, fmt_signed, is_missing
from analysis.report.grid import Code, GridTable, Group, grid_table
from analysis.report.labels import (
    LABELS,
    category_label,
    category_order,
    in_sentence,
    label,
    method_label,
    variable_label,
)
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ReportTables"]


class ReportTables(ReportFacts):
    """The tables of a report (see :class:`analysis.report.builder.Report`)."""

    # ------------------------------------------------------------------ tables
    def table(self, name: str) -> GridTable:
        """A protected table, ready to show: ``pop_share``, ``profile``, ``domains``, ``flow``,
        ``margins``, ``weights``, ``balance``, ``effects_top2``, ``effects_likert``, ``summary``,
        ``shifts``, ``sensitivity``, ``overlap``, ``not_estimable``, ``inputs``, ``run``, ``config``."""
        builders: dict[str, Callable[[], GridTable]] = {
            "pop_share": self._t_pop_share,
            "profile": self._t_profile,
            "domains": self._t_domains,
            "flow": self._t_flow,
            "margins": self._t_margins,
            "weights": self._t_weights,
            "balance": self._t_balance,
            "effects_top2": lambda: self._t_effects("top2"),
            "effects_likert": lambda: self._t_effects("likert"),
            "summary": self._t_summary,
            "shifts": self._t_shifts,
            "sensitivity": self._t_sensitivity,
            "overlap": self._t_overlap,
            "not_estimable": self._t_not_estimable,
            "inputs": self._t_inputs,
            "run": self._t_run,
            "config": self._t_config,
        }
        if name not in builders:
            raise ConfigError("Unknown report table", param=name, expected=", ".join(builders), found=name)
        return builders[name]()

    def frame(self, name: str) -> pd.DataFrame:
        """A protected table as a DataFrame of display strings (what :meth:`table` shows)."""
        return self.table(name).to_frame()

    def _t_pop_share(self) -> GridTable:
        p = self._pop_share()
        rows = [
            [category_label("incentive", r["incentive"], self.lang), self._cell(p, i, "n_approved", self._int), self._cell(p, i, "n_pop", self._int), self._cell(p, i, "pct_pop", self._pct)]
            for i, r in p.table.iterrows()
            if str(r.get("unit", "applications")) != "persons" and r["incentive"] != "LBC"
        ]
        return grid_table([self.label(k) for k in ("col_incentive", "col_n_approved", "col_n_pop", "col_pct_pop")], rows, "lrrr")

    def _t_profile(self) -> GridTable:
        p = self._profile()
        rows: list[Sequence[str] | Group] = []
        last = None
        for i, r in p.table.iterrows():
            if r["variable"] != last:
                rows.append(Group(variable_label(r["variable"], self.lang)))
                last = r["variable"]
            rows.append([category_label(r["variable"], r["category"], self.lang), self._cell(p, i, "n_pop", self._int), self._cell(p, i, "pct_pop", self._pct), self._cell(p, i, "n_all", self._int), self._cell(p, i, "pct_all", self._pct)])
        n, pct = self.label("col_n"), self.label("col_pct")
        return grid_table([self.label("col_characteristic"), n, pct, n, pct], rows, "lrrrr", groups=[("", 1), (self.label("col_group_pop_users"), 2), (self.label("col_group_all_users"), 2)])

    def _t_domains(self) -> GridTable:
        p = self._domains()
        t = p.table
        doms = sorted(dict.fromkeys(t["domain"]), key=lambda d: category_order("domain", d))
        rows = []
        for d in doms:
            row = [category_label("domain", d, self.lang)]
            for inside in (1, 0):
                sel = t.index[(t["domain"] == d) & (t["in_databank"] == inside)]
                row += [self._cell(p, sel[0], "n", self._int), self._cell(p, sel[0], "pct", self._pct)] if len(sel) else [MISSING, MISSING]
            rows.append(row)
        n, pct = self.label("col_n"), self.label("col_pct")
        return grid_table([self.label("col_domain"), n, pct, n, pct], rows, "lrrrr", groups=[("", 1), (self.label("inside"), 2), (self.label("outside"), 2)])

    def _t_flow(self) -> GridTable:
        p = self._flow()
        rows = []
        for i, r in p.table.iterrows():
            key = f"step_{r['step']}"
            name = self.label(key, outcome=in_sentence(self.outcome(r["outcome"]))) if r["step"] == "dont_know" else (self.label(key) if key in LABELS else str(r["step"]))
            rows.append([name, self._cell(p, i, "n", self._int), self._cell(p, i, "pct_invited", self._pct)])
        return grid_table([self.label("col_step"), self.label("col_n"), self.label("col_pct_invited")], rows, "lrr")

    def margins_weighted_equals_population(self) -> bool:
        """Whether the weighted margins equal the population's (as raking achieves by construction)."""
        df = self._table("weighting_margins")
        if df.empty:
            return True
        diff = (df["pct_weighted"].astype(float) - df["pct_population"].astype(float)).abs()
        return bool((diff.fillna(0) < 0.05).all())

    def _t_margins(self) -> GridTable:
        import pandas as pd

        p = self._margins()
        t = p.table.copy()
        split = t["variable"].astype(str).str.startswith("pop x ")
        show_weighted = not self.margins_weighted_equals_population()
        if not split.all():  # margins without the POP split: one group
            t["grp"], t["var"], t["cat"] = "all", t["variable"], t["category"].astype(str)
        else:
            t["var"] = t["variable"].str.slice(len("pop x "))
            from analysis.report.labels import split_merged

            merged = t["category"].astype(str).map(lambda c: [x.split(" x ", 1) for x in split_merged(c)])
            t["grp"] = merged.map(lambda cs: cs[0][0])
            t["cat"] = merged.map(lambda cs: "+".join(x[1] if len(x) > 1 else x[0] for x in cs))
        # composition within each group
        for col, new in (("population", "pp"), ("n_respondents", "pr"), ("pct_weighted", "pw")):
            tot = pd.to_numeric(t[col], errors="coerce").groupby([t["var"], t["grp"]]).transform("sum")
            t[new] = 100.0 * pd.to_numeric(t[col], errors="coerce") / tot
        sup = p.suppressed
        grps = [g for g in ("1", "0", "all") if g in set(t["grp"])]
        per = 5 if show_weighted else 4
        rows: list[Sequence[str] | Group] = []
        for var in dict.fromkeys(t["var"]):
            rows.append(Group(variable_label(var, self.lang)))
            sub = t[t["var"] == var]
            cats = sorted(dict.fromkeys(sub["cat"]), key=lambda c: min((category_order(var, x) for x in c.split("+") if x), default=99))
            for c in cats:
                row = [category_label(var, c, self.lang)]
                for g in grps:
                    sel = sub.index[(sub["cat"] == c) & (sub["grp"] == g)]
                    if not len(sel):
                        row += [MISSING] * per
                        continue
                    i = sel[0]
                    cells = [
                        SUPPRESSED if sup.at[i, "population"] else self._int(t.at[i, "population"]),
                        SUPPRESSED if sup.at[i, "population"] else self._pct(t.at[i, "pp"]),
                        SUPPRESSED if sup.at[i, "n_respondents"] else self._int(t.at[i, "n_respondents"]),
                        SUPPRESSED if sup.at[i, "n_respondents"] else self._pct(t.at[i, "pr"]),
                    ]
                    if show_weighted:
                        cells.append(SUPPRESSED if sup.at[i, "n_respondents"] else self._pct(t.at[i, "pw"]))
                    row += cells
                rows.append(row)
        pct = self.label("col_pct")
        leaf = [self.label("col_population"), pct, self.label("col_respondents"), pct] + ([self.label("col_pct_weighted")] if show_weighted else [])
        names = {"1": self.label("pop"), "0": self.label("no_pop"), "all": self.label("all_users")}
        return grid_table([self.label("col_characteristic")] + leaf * len(grps), rows, "l" + "r" * per * len(grps), groups=[("", 1)] + [(names[g], per) for g in grps])

    def _t_weights(self) -> GridTable:
        diag = self._table("weight_diagnostics")
        rows = []
        for stat, value in zip(diag["statistic"], diag["value"], strict=True):
            key = f"stat_{stat}"
            name = self.label(key) if key in LABELS else str(stat)
            if stat == "n":
                text = SUPPRESSED if 0 < float(value) < self.threshold else self._int(value)
            elif stat in ("iterations", "collapsed_cells", "n_effective"):
                text = self._int(value)
            elif stat == "converged":
                text = self.label("yes") if float(value) else self.label("no")
            else:
                text = self._num(value)
            rows.append([name, text])
        return grid_table([self.label("col_statistic"), self.label("col_value")], rows, "lr")

    def _t_balance(self) -> GridTable:
        bal = self._table("balance")
        if bal.empty:
            return grid_table([self.label("col_characteristic")], [], "l")
        wide, keys = self._balance_wide()
        stages = [s for s in ("population", "before", "after") if ("smd", s) in wide.columns]
        with_vr = ("variance_ratio", "after") in wide.columns and wide[("variance_ratio", "after")].notna().any()
        rows: list[Sequence[str] | Group] = []
        last = None
        for k in keys:
            name, _, cat = k.partition("=")
            if name != last:
                rows.append(Group(variable_label(name, self.lang)))
                last = name
            row = [category_label(name, cat, self.lang) if cat else variable_label(name, self.lang)] + [self._num(wide.at[k, ("smd", s)]) for s in stages]
            if with_vr:
                row.append(self._num(wide.at[k, ("variance_ratio", "after")]))
            rows.append(row)
        heads = [self.label(f"col_smd_{s}") for s in stages] + ([self.label("col_vr_after")] if with_vr else [])
        return grid_table([self.label("col_characteristic"), *heads], rows, "l" + "r" * len(heads))

    def _t_effects(self, scale: str) -> GridTable:
        eff = self._effects(scale)
        t = eff.table
        pp = scale == "top2"
        k, digits = (100.0, 1) if pp else (1.0, 2)
        rows: list[Sequence[str] | Group] = []
        ne = self._not_estimable()
        failed = set(zip(ne["outcome"].astype(str), ne["method"].astype(str), strict=True))
        for o in self._outcomes():
            rows.append(Group(self.outcome(o)))
            for m in self._methods(scale):
                sel = t.index[(t["outcome"] == o) & (t["method"] == m)]
                if not len(sel):
                    if (o, m) in failed:  # the reason is in the technical annex
                        rows.append([self._method_name(m), self.label("not_estimable"), MISSING, MISSING, MISSING, MISSING, MISSING])
                    continue
                i = sel[0]
                r = t.loc[i]
                se = self.label("se_replicate") if str(r.get("se_type", "")) == "replicate" else self.label("se_model")
                if is_missing(r["estimate"]) and not eff.suppressed.at[i, "estimate"]:
                    rows.append([self._method_name(m), self.label("not_estimable"), MISSING, MISSING, MISSING, self._cell(eff, i, "n_treated", self._int), self._cell(eff, i, "n_control", self._int)])
                    continue
                rows.append(
                    [
                        self._method_name(m),
                        self._cell(eff, i, "estimate", self._signed(k, digits)),
                        SUPPRESSED if eff.suppressed.at[i, "ci_lower"] else self._ci(k * r["ci_lower"], k * r["ci_upper"], digits),
                        self._cell(eff, i, "p_holm", lambda v: fmt_p(v, self.lang)),
                        se,
                        self._cell(eff, i, "n_treated", self._int),
                        self._cell(eff, i, "n_control", self._int),
                    ]
                )
        head = self.label("col_estimate_pp" if pp else "col_estimate_pt")
        return grid_table([self.label("col_method"), head, self.label("col_ci"), self.label("col_p_holm"), self.label("col_se"), self.label("col_n_treated"), self.label("col_n_control")], rows, "lrrrlrr")

    def _t_summary(self) -> GridTable:
        eff = self._effects("top2")
        t = eff.table
        verdicts = self.verdicts()
        rows = []
        for o in self._outcomes():
            main = self._main_row(o, "top2")
            main_text = f"{fmt_signed(100 * main['estimate'], 1, self.lang)} {self._ci(100 * main['ci_lower'], 100 * main['ci_upper'], 1)}" if main is not None else MISSING
            others = t[(t["outcome"] == o) & (t["method"] != self.main_method) & ~t["method"].isin(DESCRIPTIVE_METHODS) & t["estimate"].notna() & ~eff.suppressed.loc[t.index, "estimate"]]
            rng = f"{fmt_signed(100 * others['estimate'].min(), 1, self.lang)} {self.label('to')} {fmt_signed(100 * others['estimate'].max(), 1, self.lang)}" if len(others) else MISSING
            rows.append([self.outcome(o), main_text, rng, self.label(f"verdict_{verdicts.get(o, 'none')}")])
        return grid_table([self.label("col_outcome"), self.label("col_main"), self.label("col_range"), self.label("col_verdict")], rows, "lrrl")

    def _t_shifts(self) -> GridTable:
        from survey.questionnaire import LIKERT

        sh = self._table("category_shifts")
        rows: list[Sequence[str] | Group] = []
        answers = [a for a in LIKERT if not a.missing]
        for o in [x for x in self._outcomes() if x in set(sh["outcome"])]:
            rows.append(Group(self.outcome(o)))
            sub = sh[sh["outcome"] == o]
            by = {str(c): r for c, (_, r) in zip(sub["category"].astype(str), sub.iterrows(), strict=True)}
            for a in answers:
                r = by.get(str(a.code))
                if r is None:
                    rows.append([a.nl if self.lang == "nl" else a.en, MISSING, MISSING])
                    continue
                rows.append([a.nl if self.lang == "nl" else a.en, fmt_signed(100 * r["shift"], 1, self.lang), self._ci(100 * r["ci_lower"], 100 * r["ci_upper"], 1)])
        return grid_table([self.label("col_category"), self.label("col_shift"), self.label("col_ci")], rows, "lrr")

    def _t_sensitivity(self) -> GridTable:
        sens = self._table("sensitivity")
        rows = [[self.outcome(str(r["outcome"])), self._num(r["risk_ratio"]), self._num(r["e_value"]), self._num(r["e_value_ci"])] for _, r in sens.iterrows()]
        return grid_table([self.label(k) for k in ("col_outcome", "col_risk_ratio", "col_e_value", "col_e_value_ci")], rows, "lrrr")

    def _t_overlap(self) -> GridTable:
        """Covariate cells where one group is empty or sparse (counts below the threshold suppressed)."""
        ov = self._table("overlap")
        if ov.columns.empty or not {"variable", "category", "n_treated", "n_control", "status"} <= set(ov.columns):
            return grid_table([MISSING], [], "l")
        cells = ov[(ov["kind"] == "cell") & (ov["status"] != "ok")] if "kind" in ov.columns else ov[ov["status"] != "ok"]

        def count(v: Any) -> str:
            n = int(v)
            return SUPPRESSED if 0 < n < self.threshold else self._int(n)

        rows: list[Sequence[str] | Group] = [
            [variable_label(str(r["variable"]), self.lang), category_label(str(r["variable"]), r["category"], self.lang), count(r["n_treated"]), count(r["n_control"]), self.label(f"overlap_{r['status']}")]
            for _, r in cells.iterrows()
        ]
        return grid_table([self.label(k) for k in ("col_variable", "col_ov_category", "col_ov_pop", "col_ov_nopop", "col_status")], rows, "llrrl")

    def _t_not_estimable(self) -> GridTable:
        from analysis.report.labels import METHOD_LABELS

        ne = self._not_estimable()
        outcomes, methods = {o: i for i, o in enumerate(self._outcomes())}, {m: i for i, m in enumerate(METHOD_LABELS)}
        ne = ne.assign(_o=ne["outcome"].map(outcomes), _m=ne["method"].map(methods)).sort_values(["_o", "_m"], kind="stable", na_position="last")
        # the reason in the report's language; the software's own message stays in the bundle
        rows: list[Sequence[str] | Group] = [[method_label(str(r["method"]), self.lang), self.outcome(str(r["outcome"])), self.label(f"ne_{r['code']}")] for _, r in ne.iterrows()]
        return grid_table([self.label("col_method"), self.label("col_outcome"), self.label("col_reason")], rows, "lll")

    def _t_inputs(self) -> GridTable:
        inputs = self.bundle.manifest.get("inputs") or {}
        rows = [[Code(name), Code(_sha(digest))] for name, digest in sorted(inputs.items())]
        return grid_table([self.label("col_file"), "SHA-256"], rows or [[label("not_given", self.lang), MISSING]], "ll")

    def _t_run(self) -> GridTable:
        man = self.bundle.manifest
        ng = self.label("not_given")
        rows = [
            [self.label("prov_run"), self.fact.run_datetime],
            [self.label("prov_version"), Code(f"popeval {man['popeval_version']}") if man.get("popeval_version") else ng],
            [self.label("prov_commit"), Code(man["commit"]) if man.get("commit") else ng],
            [self.label("prov_seed"), str(man.get("seed", ng))],
        ]
        if man.get("design_hash"):
            rows.append([self.label("prov_design"), Code(_sha(man["design_hash"]))])
        rows += [[Code(pkg), str(ver)] for pkg, ver in sorted((man.get("packages") or {}).items())]
        return grid_table([self.label("col_item"), self.label("col_value")], rows, "ll")

    def _t_config(self) -> GridTable:
        cfg = self.bundle.manifest.get("config") or {}
        rows: list[Sequence[str] | Group] = [[Code(k), Code(v)] for k, v in _flatten(cfg)]
        return grid_table([self.label("col_setting"), self.label("col_value")], rows, "ll")


def _sha(digest: Any) -> str:
    """A SHA-256 in four groups of 16 hex digits, so it wraps between groups, never inside one."""
    if isinstance(digest, Mapping):
        digest = digest.get("sha256", "")
    s = str(digest)
    return " ".join(s[i : i + 16] for i in range(0, len(s), 16)) if len(s) == 64 else s


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The settings as (dotted name, value as text) pairs, sorted; lists joined by commas, pairs by ×."""
    out: list[tuple[str, str]] = []
    for k in sorted(cfg):
        v = cfg[k]
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, name + ".")
        elif isinstance(v, list | tuple):
            out.append((name, ", ".join(" × ".join(map(str, x)) if isinstance(x, list | tuple) else str(x) for x in v) or "[]"))
        else:
            out.append((name, str(v)))
    return out
