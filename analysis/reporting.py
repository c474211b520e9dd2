"""The evaluation report's content: sections as Markdown, tables and figures, from a results bundle.

``reports/evaluation.qmd`` creates one :class:`Report` and prints its sections (cells with
``#| output: asis``), so the Quarto render and popeval's fallback engine see the same Markdown.
Every table and figure is built from a table that went through disclosure control
(:func:`protect`): counts below the threshold are suppressed, then as many other cells as needed so
that none can be recovered from totals (secondary suppression), and percentages based on suppressed
counts with them.  Suppressed cells show :data:`analysis.formatting.SUPPRESSED`.

Tables and figures are numbered in order of appearance; every one has a caption and a source line.
Figures are matplotlib PNG files written to ``figdir`` and referenced from the Markdown, so HTML (as
data URIs), PDF and DOCX embed the same image.

The manifest keys the report reads (all optional; a missing one reads "niet opgegeven"/"not given"):
``created_at`` (ISO time of the run), ``popeval_version``, ``commit``, ``seed``, ``inputs``
(file -> SHA-256), ``packages`` (name -> version), ``note`` and ``config`` with
``disclosure.threshold``, ``weighting.method``/``weighting.margins``,
``matching.method``/``matching.covariates``, ``report.main_method`` and ``study`` (``"demo"`` prints
the synthetic-data notice).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.formatting import (
    MISSING,
    SUPPRESSED,
    check_lang,
    fmt_ci,
    fmt_datetime,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_signed,
)
from analysis.report import category_label, method_label, outcome_label, t, variable_label
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from analysis.bundle import ResultsBundle

__all__ = ["DEFAULT_THRESHOLD", "Protected", "Report", "markdown_table", "protect", "threshold_from_manifest"]

#: The disclosure threshold when neither the caller nor the bundle sets one: counts below 5 are suppressed.
DEFAULT_THRESHOLD = 5

_INK = "#1d2b3a"  # dark slate: text, POP series
_ACCENT = "#b08a00"  # dark Flemish yellow
_GREY = "#8c959f"


# ====================================================================== disclosure control
#: matplotlib settings of the report's figures, applied only while a figure is made
_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": _GREY,
    "axes.labelcolor": _INK,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "axes.formatter.use_locale": False,
}


def _styled(method: Callable[..., str]) -> Callable[..., str]:
    """Run a figure method under :data:`_STYLE` (``matplotlib.rc_context``), leaving rcParams as they were."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context(_STYLE):
            return method(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Protected:
    """A table after disclosure control: the values and a mask of suppressed cells."""

    table: pd.DataFrame
    suppressed: pd.DataFrame

    def is_suppressed(self, row: Any, column: str) -> bool:
        """Whether the cell (row label, column) is suppressed."""
        return column in self.suppressed.columns and bool(self.suppressed.at[row, column])

    @property
    def n_suppressed(self) -> int:
        """Number of suppressed cells."""
        return int(self.suppressed.to_numpy().sum())


def threshold_from_manifest(manifest: Mapping[str, Any], override: int | None = None) -> int:
    """The disclosure threshold: ``override``, else the bundle configuration's, else 5.

    The configuration key is ``config.disclosure.threshold`` (``disclosure.threshold`` in study.toml).

    Raises
    ------
    ConfigError
        For a threshold that is not a whole number of at least 1.
    """
    value: Any = override
    if value is None:
        value = ((manifest.get("config") or {}).get("disclosure") or {}).get("threshold", DEFAULT_THRESHOLD)
    try:
        ivalue = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError("Invalid disclosure threshold", param="disclosure.threshold", expected="a whole number >= 1 (default 5)", found=repr(value)) from exc
    if ivalue < 1 or ivalue != float(value):
        raise ConfigError("Invalid disclosure threshold", param="disclosure.threshold", expected="a whole number >= 1 (default 5)", found=repr(value))
    return ivalue


def _primary_and_secondary(df: pd.DataFrame, count_cols: Sequence[str], threshold: int, by: Sequence[str]) -> pd.DataFrame:
    """Suppression mask for ``count_cols``: primary (0 < n < threshold) and secondary within groups,
    by :func:`analysis.disclosure.suppress` (the one disclosure rule of the project)."""
    from analysis.disclosure import suppress

    result = suppress(df, list(count_cols), threshold=threshold, by=list(by) or None, row_totals=False)
    return result.mask[list(count_cols)].reindex(df.index).fillna(False).astype(bool)


def protect(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    threshold: int,
    *,
    by: Sequence[str] = (),
    derived: Mapping[str, Sequence[str]] | None = None,
    complements: Iterable[tuple[str, str]] = (),
) -> Protected:
    """Apply disclosure control to a (wide) table.

    Parameters
    ----------
    df
        The table, one row per cell group.
    count_cols
        Columns holding counts of units.
    threshold
        Counts ``0 < n < threshold`` are confidential.
    by
        Columns defining groups whose counts add up to a total (for secondary suppression).
    derived
        count column -> columns computed from it (percentages, estimates); suppressed with it.
    complements
        ``(part, total)`` pairs: a part is also suppressed when ``total - part`` is confidential,
        since the difference could be computed from the published table.

    Returns
    -------
    Protected
        The table (unchanged values) and the suppression mask over all its columns.
    """
    import pandas as pd

    df = df.reset_index(drop=True)
    counts = df[list(count_cols)].apply(pd.to_numeric, errors="coerce")
    # a missing count was suppressed upstream (e.g. by the population profile): keep it suppressed and
    # let secondary suppression account for it (1 stands for 'some count below the threshold')
    upstream = counts.isna()
    counts = counts.mask(upstream, 1)
    work = pd.concat([df.drop(columns=list(count_cols)), counts], axis=1)
    mask = _primary_and_secondary(work, count_cols, threshold, by)
    for part, total in complements:
        diff = work[total] - work[part]
        extra = (diff > 0) & (diff < threshold) & ~mask[part]
        if extra.any():
            mask[part] = mask[part] | extra
            work2 = work.copy()
            work2.loc[mask[part], part] = 0  # already suppressed: re-run secondary on this column
            mask[part] = mask[part] | _secondary_only(work2, part, mask[part], by)
    full = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in count_cols:
        full[c] = mask[c] | upstream[c]
        for d in (derived or {}).get(c, ()):
            full[d] = full[d] | mask[c]
    return Protected(table=df, suppressed=full)


def _secondary_only(df: pd.DataFrame, col: str, mask: pd.Series, by: Sequence[str]) -> pd.Series:
    mask = mask.copy()
    groups = [df.index] if not by else [idx for _, idx in df.groupby(list(by), sort=False).groups.items()]
    for idx in groups:
        idx = list(idx)
        while mask.loc[idx].sum() == 1 and len(idx) > 1:
            others = df.loc[idx, col][~mask.loc[idx]]
            if others.empty:
                break
            mask.loc[others.sort_values(kind="stable").index[0]] = True
    return mask


# ====================================================================== markdown
def markdown_table(rows: Sequence[Sequence[str]], headers: Sequence[str], align: str) -> str:
    """A pandoc pipe table; ``align`` has one letter per column (``l``, ``r`` or ``c``)."""
    if len(align) != len(headers):
        raise ConfigError("Table alignment does not match the columns", expected=f"{len(headers)} letters", found=align)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}

    def cell(s: object) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ====================================================================== the report
class Report:
    """The evaluation report's sections, built from one results bundle.

    Parameters
    ----------
    bundle
        A :class:`~analysis.bundle.ResultsBundle` or the path of a bundle folder.
    lang
        ``'nl'`` (default) or ``'en'``.
    threshold
        Disclosure threshold; default from the bundle's configuration, else 5.
    figdir
        Folder for the figures' PNG files (created), referenced relative to the working directory.
    main_method
        The method whose results the key findings quote (default: ``config.report.main_method``,
        else ``matching`` when present, else the first method in the effects table).
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

        self.run_time = run_time

        self.bundle = bundle if isinstance(bundle, ResultsBundle) else read_bundle(bundle)
        self.lang = check_lang(lang)
        self.threshold = threshold_from_manifest(self.bundle.manifest, threshold)
        self.figdir = Path(figdir)
        self._ntab = 0
        self._nfig = 0
        cfg = self.bundle.manifest.get("config") or {}
        methods = list(dict.fromkeys(self._table("effects")["method"])) if not self._table("effects").empty else []
        self.main_method = main_method or (cfg.get("report") or {}).get("main_method") or ("matching" if "matching" in methods else (methods[0] if methods else None))

    # ------------------------------------------------------------------ helpers
    def t(self, key: str, **fields: object) -> str:
        """Report text in this report's language."""
        return t(key, self.lang, **fields)

    def _table(self, name: str) -> pd.DataFrame:
        import pandas as pd

        from analysis.bundle import TABLES

        if name in self.bundle.tables:
            return self.bundle.tables[name]
        return pd.DataFrame(columns=list(TABLES[name][0]))

    def _int(self, x: Any) -> str:
        return fmt_int(x, self.lang)

    def _pct(self, x: Any, digits: int = 1) -> str:
        return fmt_pct(x, digits, self.lang)

    def _num(self, x: Any, digits: int = 2) -> str:
        return fmt_num(x, digits, self.lang)

    def _cell(self, p: Protected, i: int, col: str, fmt: Any) -> str:
        if p.suppressed.at[i, col]:
            return SUPPRESSED
        return fmt(p.table.at[i, col])

    def next_table(self) -> int:
        """The number the next table will get."""
        return self._ntab + 1

    def next_figure(self) -> int:
        """The number the next figure will get."""
        return self._nfig + 1

    def _emit_table(self, rows: Sequence[Sequence[str]], headers: Sequence[str], align: str, caption: str, source: str, note: str = "") -> str:
        self._ntab += 1
        src = f"{self.t('source')}: {self.t(source)}."
        if note:
            src = f"{note} {src}"
        return f"{markdown_table(rows, headers, align)}\n\n: {self.t('table')} {self._ntab}. {self.t(caption)}\n\n::: {{.source}}\n{src}\n:::\n"

    def _emit_figure(self, fig: Any, name: str, caption: str, source: str, note: str = "") -> str:
        self._nfig += 1
        self.figdir.mkdir(parents=True, exist_ok=True)
        path = self.figdir / f"{name}-{self.lang}.png"
        fig.savefig(path, dpi=200, bbox_inches="tight", metadata={"Software": None})
        src = f"{self.t('source')}: {self.t(source)}."
        if note:
            src = f"{note} {src}"
        return f"![{self.t('figure')} {self._nfig}. {self.t(caption)}]({path.as_posix()}){{width=100%}}\n\n::: {{.source}}\n{src}\n:::\n"

    def _heading(self, level: int, key: str, ident: str = "") -> str:
        attr = f" {{#{ident}}}" if ident else ""
        return f"{'#' * level} {self.t(key)}{attr}\n"

    def _figure(self, width: float = 6.4, height: float = 3.4) -> tuple[Any, Any]:
        # a Figure of its own (no pyplot): no backend is chosen, no global figure registry used
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.subplots()

    def _axis_formatter(self, digits: int = 1) -> Any:
        from matplotlib.ticker import FuncFormatter

        return FuncFormatter(lambda v, _pos: fmt_num(v, digits, self.lang))

    # ------------------------------------------------------------------ protected tables
    def pop_share(self) -> Protected:
        """POP share per incentive, protected (a POP count is also hidden when the rest is small)."""
        df = self._table("pop_share").copy()
        return protect(df, ["n_approved", "n_pop"], self.threshold, derived={"n_pop": ["pct_pop"], "n_approved": ["pct_pop"]}, complements=[("n_pop", "n_approved")])

    def profile(self) -> Protected:
        """The profile, wide (one row per characteristic and category), protected."""
        df = self._table("profile")
        wide = df.pivot_table(index=["variable", "category"], columns="group", values=["n", "pct"], aggfunc="first", sort=False)
        wide.columns = [f"{a}_{b}" for a, b in wide.columns]
        wide = wide.reset_index()
        for c in ("n_pop", "n_all", "pct_pop", "pct_all"):
            if c not in wide.columns:
                wide[c] = math.nan
        order = {v: i for i, v in enumerate(dict.fromkeys(df["variable"]))}
        wide["_o"] = wide["variable"].map(order)
        wide["_c"] = wide.apply(lambda r: self._category_order(r["variable"], r["category"]), axis=1)
        wide = wide.sort_values(["_o", "_c"]).drop(columns=["_o", "_c"])
        return protect(wide, ["n_pop", "n_all"], self.threshold, by=["variable"], derived={"n_pop": ["pct_pop"], "n_all": ["pct_all"]}, complements=[("n_pop", "n_all")])

    @staticmethod
    def _category_order(variable: str, code: Any) -> int:
        from survey import datamodel

        vocab = {"sex": datamodel.SEX, "educ": datamodel.EDUCATION, "age_band": datamodel.AGE_BANDS, "sector": datamodel.SECTORS, "company_size": datamodel.COMPANY_SIZE}.get(variable)
        codes = [c.code for c in vocab] if vocab else []
        return codes.index(str(code)) if str(code) in codes else len(codes)

    def training_domains(self) -> Protected:
        """Training domains of POP applications, protected within inside/outside the database."""
        df = self._table("training_domains")
        df = df[df["group"] == "pop"] if "pop" in set(df["group"]) else df
        df = df.sort_values(["in_databank", "n"], ascending=[False, False])
        return protect(df, ["n"], self.threshold, by=["in_databank"], derived={"n": ["pct"]})

    def response_flow(self) -> Protected:
        """The response flow with the share of invited, protected."""
        df = self._table("response_flow").copy()
        invited = df.loc[df["step"] == "invited", "n"]
        df["pct_invited"] = 100.0 * df["n"] / float(invited.iloc[0]) if len(invited) and invited.iloc[0] else math.nan
        return protect(df, ["n"], self.threshold, derived={"n": ["pct_invited"]})

    def weighting_margins(self) -> Protected:
        """Margins: population and respondents, protected per characteristic."""
        df = self._table("weighting_margins").copy()
        return protect(
            df,
            ["population", "n_respondents"],
            self.threshold,
            by=["variable"],
            derived={"population": ["pct_population"], "n_respondents": ["pct_unweighted", "pct_weighted"]},
        )

    def effects(self, scale: str = "likert") -> Protected:
        """Effects on one scale; an estimate is suppressed with a group count below the threshold."""
        df = self._table("effects")
        df = df[df["scale"] == scale].copy()
        dep = ["estimate", "std_error", "ci_lower", "ci_upper", "p_value", "p_holm", "p_bh"]
        return protect(df, ["n_treated", "n_control"], self.threshold, derived={"n_treated": dep, "n_control": dep})

    # ------------------------------------------------------------------ sections
    def title_block(self) -> str:
        """The notices under the title: demonstration data (when so) and disclosure control."""
        parts = []
        cfg = self.bundle.manifest.get("config") or {}
        if str(cfg.get("study", "")).lower() == "demo" or "synthetic" in str(self.bundle.manifest.get("note", "")):
            parts.append(f"::: {{.notice}}\n{self.t('demo_notice')}\n:::\n")
        parts.append(f"::: {{.sdc}}\n{self.t('sdc_notice', threshold=self.threshold, x=SUPPRESSED)}\n:::\n")
        return "\n".join(parts)

    def findings(self) -> str:
        """Key findings: a short list of sentences built from the bundle's numbers."""
        out = [self._heading(1, "h_findings", "findings"), self.t("kf_intro") + "\n"]
        bullets = []
        share = self.pop_share()
        for i, row in share.table.iterrows():
            if share.suppressed.at[i, "pct_pop"]:
                continue
            if row["incentive"] == "LBC":
                bullets.append(self.t("kf_lbc", pct=self._pct(row["pct_pop"])))
            else:
                bullets.append(
                    self.t(
                        "kf_share",
                        pct=self._pct(row["pct_pop"]),
                        incentive=category_label("incentive", row["incentive"], self.lang).lower().replace("vlaams", "Vlaams").replace("flemish", "Flemish"),
                        n=self._int(row["n_pop"]),
                        total=self._int(row["n_approved"]),
                    )
                )
        prof = self.profile()
        pt = prof.table.set_index(["variable", "category"])
        sup = prof.suppressed.set_index(pd_index(prof.table))
        if ("educ", "hoog") in pt.index and ("sex", "V") in pt.index:
            def pick(key: tuple[str, str], col: str) -> str:
                return SUPPRESSED if sup.loc[key, col] else self._pct(pt.loc[key, col])

            bullets.append(
                self.t(
                    "kf_profile",
                    pct_pop=pick(("educ", "hoog"), "pct_pop"),
                    pct_all=pick(("educ", "hoog"), "pct_all"),
                    women_pop=pick(("sex", "V"), "pct_pop"),
                    women_all=pick(("sex", "V"), "pct_all"),
                )
            )
        flow = self.response_flow()
        ft = flow.table.set_index("step")
        if {"invited", "analysed"} <= set(ft.index):
            bullets.append(self.t("kf_survey", invited=self._int(ft.at["invited", "n"]), analysed=self._int(ft.at["analysed", "n"]), rate=self._pct(ft.at["analysed", "pct_invited"])))
        eff = self.effects("likert")
        if self.main_method is not None and not eff.table.empty:
            sel = eff.table.index[(eff.table["method"] == self.main_method) & ~eff.suppressed["estimate"]]
            rows = eff.table.loc[sel]
            sig = rows[(rows["p_holm"] < 0.05) & (rows["estimate"] > 0)]
            method = method_label(self.main_method, self.lang).lower()
            if len(sig):
                names = [f"{outcome_label(r['outcome'], self.lang).lower()} ({fmt_signed(r['estimate'], 2, self.lang)})" for _, r in sig.iterrows()]
                bullets.append(self.t("kf_effects_sig", method=method, outcomes="; ".join(names)))
            elif len(rows):
                bullets.append(self.t("kf_effects_none", method=method, lo=fmt_signed(rows["estimate"].min(), 2, self.lang), hi=fmt_signed(rows["estimate"].max(), 2, self.lang)))
        sens = self._table("sensitivity")
        if not sens.empty and sens["e_value"].notna().any():
            top = sens.loc[sens["e_value"].idxmax()]
            bullets.append(self.t("kf_sensitivity", evalue=self._num(top["e_value"]), outcome=outcome_label(top["outcome"], self.lang).lower()))
        out.append("\n".join(f"- {b}" for b in bullets) + "\n")
        return "\n".join(out)

    def population(self) -> str:
        """Population: POP share per incentive, profile (table + figure), training domains."""
        out = [self._heading(1, "h_population", "population"), self.t("pop_intro") + "\n", self._heading(2, "h_pop_share")]
        share = self.pop_share()
        rows = [
            [
                category_label("incentive", r["incentive"], self.lang),
                self._cell(share, i, "n_approved", self._int),
                self._cell(share, i, "n_pop", self._int),
                self._cell(share, i, "pct_pop", self._pct),
            ]
            for i, r in share.table.iterrows()
        ]
        headers = [self.t("col_incentive"), self.t("col_n_approved"), self.t("col_n_pop"), self.t("col_pct_pop")]
        out.append(self._emit_table(rows, headers, "lrrr", "cap_pop_share", "src_dwse"))
        out.append(self._heading(2, "h_profile"))
        prof = self.profile()
        out.append(self.t("profile_intro", table=self.next_table()) + "\n")
        rows = []
        last = None
        for i, r in prof.table.iterrows():
            var = variable_label(r["variable"], self.lang)
            rows.append(
                [
                    var if var != last else "",
                    category_label(r["variable"], r["category"], self.lang),
                    self._cell(prof, i, "n_pop", self._int),
                    self._cell(prof, i, "pct_pop", self._pct),
                    self._cell(prof, i, "n_all", self._int),
                    self._cell(prof, i, "pct_all", self._pct),
                ]
            )
            last = var
        headers = [self.t("col_characteristic"), self.t("col_category"), self.t("col_n_group_pop"), self.t("col_pct_group_pop"), self.t("col_n_group_all"), self.t("col_pct_group_all")]
        out.append(self._emit_table(rows, headers, "llrrrr", "cap_profile", "src_dwse"))
        out.append(self._profile_figure(prof))
        out.append(self._heading(2, "h_domains"))
        dom = self.training_domains()
        if dom.table.empty:
            out.append(self.t("empty") + "\n")
            return "\n".join(out)
        outside = self.bundle.tables.get("outside_databank")
        if outside is not None and (outside["incentive"] == "all").any():
            pct_out = float(outside.loc[outside["incentive"] == "all", "pct_outside"].iloc[0])
        else:  # only the listed domains are known
            tot = dom.table.assign(in_databank=dom.table["in_databank"].astype(int)).groupby("in_databank")["n"].sum()
            pct_out = 100.0 * float(tot.get(0, 0)) / tot.sum() if tot.sum() else math.nan
        out.append(self.t("domains_intro", table=self.next_table(), pct=self._pct(pct_out)) + "\n")
        rows = []
        last = None
        for i, r in dom.table.iterrows():
            where = self.t("inside") if int(r["in_databank"]) == 1 else self.t("outside")
            rows.append([where if where != last else "", category_label("domain", r["domain"], self.lang), self._cell(dom, i, "n", self._int), self._cell(dom, i, "pct", self._pct)])
            last = where
        out.append(self._emit_table(rows, [self.t("col_databank"), self.t("col_domain"), self.t("col_n"), self.t("col_pct")], "llrr", "cap_domains", "src_dwse"))
        return "\n".join(out)

    @_styled
    def _profile_figure(self, prof: Protected) -> str:
        import numpy as np

        variables = [v for v in ("educ", "age_band", "sector") if v in set(prof.table["variable"])]
        if not variables:
            return ""
        fig, axes = self._figure(6.4, 2.9)
        fig.clear()
        axes = fig.subplots(1, len(variables))
        axes = np.atleast_1d(axes)
        for ax, var in zip(axes, variables, strict=True):
            sub = prof.table[prof.table["variable"] == var]
            labels = [category_label(var, c, self.lang) for c in sub["category"]]
            y = np.arange(len(sub))[::-1]
            for k, (col, color, name) in enumerate((("pct_pop", _INK, self.t("pop")), ("pct_all", _ACCENT, self.t("all_users")))):
                vals = sub[col].to_numpy(dtype=float)
                hidden = prof.suppressed.loc[sub.index, col].to_numpy()
                shown = np.where(hidden, 0.0, vals)
                ax.barh(y + (0.2 if k == 0 else -0.2), shown, height=0.38, color=color, label=name)
                for yy, h in zip(y, hidden, strict=True):
                    if h:
                        ax.text(0.5, yy + (0.2 if k == 0 else -0.2), SUPPRESSED, va="center", fontsize=7, color=color)
            ax.set_yticks(y, labels, fontsize=7.5)
            ax.set_title(variable_label(var, self.lang), fontsize=9, color=_INK, loc="left")
            ax.xaxis.set_major_formatter(self._axis_formatter(0))
            ax.set_xlabel(self.t("axis_pct"), fontsize=8)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, fontsize=7.5, loc="outside lower center", ncols=2)
        return self._emit_figure(fig, "profile", "cap_profile_fig", "src_dwse", note=self.t("suppressed_fig", x=SUPPRESSED) + "." if prof.n_suppressed else "")

    def survey(self) -> str:
        """The survey: response flow (table + figure), margins, weight diagnostics."""
        out = [self._heading(1, "h_survey", "survey"), self._heading(2, "h_flow")]
        flow = self.response_flow()
        out.append(self.t("survey_intro", table=self.next_table()) + "\n")
        rows = [[self.t(f"step_{r['step']}") if f"step_{r['step']}" in _step_keys() else str(r["step"]), self._cell(flow, i, "n", self._int), self._cell(flow, i, "pct_invited", self._pct)] for i, r in flow.table.iterrows()]
        out.append(self._emit_table(rows, [self.t("col_step"), self.t("col_n"), self.t("col_pct_invited")], "lrr", "cap_flow", "src_survey"))
        out.append(self._flow_figure(flow))
        out.append(self._heading(2, "h_margins"))
        mar = self.weighting_margins()
        if mar.table.empty:
            out.append(self.t("empty") + "\n")
        else:
            out.append(self.t("margins_intro", table=self.next_table()) + "\n")
            rows = []
            last = None
            for i, r in mar.table.iterrows():
                var = variable_label(r["variable"], self.lang)
                rows.append(
                    [
                        var if var != last else "",
                        category_label(r["variable"], r["category"], self.lang),
                        self._cell(mar, i, "population", self._int),
                        self._cell(mar, i, "n_respondents", self._int),
                        self._cell(mar, i, "pct_population", self._pct),
                        self._cell(mar, i, "pct_unweighted", self._pct),
                        self._cell(mar, i, "pct_weighted", self._pct),
                    ]
                )
                last = var
            headers = [self.t(k) for k in ("col_characteristic", "col_category", "col_population", "col_n_respondents", "col_pct_population", "col_pct_unweighted", "col_pct_weighted")]
            out.append(self._emit_table(rows, headers, "llrrrrr", "cap_margins", "src_survey"))
        out.append(self._heading(2, "h_weights"))
        diag = self._table("weight_diagnostics")
        if diag.empty:
            out.append(self.t("empty") + "\n")
        else:
            d = dict(zip(diag["statistic"], diag["value"], strict=True))
            out.append(self.t("weights_intro", table=self.next_table(), deff=self._num(d.get("kish_deff")), neff=fmt_num(d.get("n_effective"), 0, self.lang)) + "\n")
            rows = []
            for stat, value in zip(diag["statistic"], diag["value"], strict=True):
                label = self.t(f"stat_{stat}") if f"stat_{stat}" in _stat_keys() else str(stat)
                if stat == "n":
                    text = SUPPRESSED if 0 < float(value) < self.threshold else self._int(value)
                elif stat == "iterations":
                    text = self._int(value)
                elif stat == "converged":
                    text = self.t("yes") if float(value) else self.t("no")
                else:
                    text = self._num(value)
                rows.append([label, text])
            out.append(self._emit_table(rows, [self.t("col_statistic"), self.t("col_value")], "lr", "cap_weights", "src_survey"))
        return "\n".join(out)

    @_styled
    def _flow_figure(self, flow: Protected) -> str:
        import numpy as np

        if flow.table.empty:
            return ""
        fig, ax = self._figure(6.4, 2.2)
        labels = [self.t(f"step_{s}") if f"step_{s}" in _step_keys() else str(s) for s in flow.table["step"]]
        vals = flow.table["n"].to_numpy(dtype=float)
        hidden = flow.suppressed["n"].to_numpy()
        y = np.arange(len(vals))[::-1]
        ax.barh(y, np.where(hidden, 0.0, vals), color=_INK, height=0.6)
        for yy, v, h in zip(y, vals, hidden, strict=True):
            ax.text((0 if h else v) + vals.max() * 0.01, yy, SUPPRESSED if h else self._int(v), va="center", fontsize=8, color=_INK)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlim(0, vals.max() * 1.12 if len(vals) else 1)
        ax.xaxis.set_major_formatter(self._axis_formatter(0))
        ax.set_xlabel(self.t("axis_persons"), fontsize=8)
        return self._emit_figure(fig, "response-flow", "cap_flow_fig", "src_survey")

    def comparison(self) -> str:
        """POP vs no POP: balance (table + love plot), effects (tables + forest plot), category shifts."""
        out = [self._heading(1, "h_comparison", "comparison"), self._heading(2, "h_balance")]
        bal = self._table("balance")
        if bal.empty:
            out.append(self.t("empty") + "\n")
        else:
            out.append(self.t("balance_intro", table=self.next_table(), figure=self.next_figure()) + "\n")
            wide = bal.pivot_table(index="variable", columns="stage", values=["smd", "variance_ratio"], aggfunc="first", sort=False)
            rows = []
            for var in wide.index:
                name, _, cat = str(var).partition("=")
                label = f"{variable_label(name, self.lang)}: {category_label(name, cat, self.lang)}" if cat else variable_label(name, self.lang)

                def get(col: str, stage: str, var: Any = var) -> Any:
                    return wide.at[var, (col, stage)] if (col, stage) in wide.columns else math.nan

                rows.append([label, self._num(get("smd", "population")), self._num(get("smd", "before")), self._num(get("smd", "after")), self._num(get("variance_ratio", "after"))])
            headers = [self.t(k) for k in ("col_variable", "col_smd_population", "col_smd_before", "col_smd_after", "col_vr_after")]
            out.append(self._emit_table(rows, headers, "lrrrr", "cap_balance", "src_survey", note=self.t("smd_note")))
            out.append(self._love_plot(bal))
        out.append(self._heading(2, "h_effects"))
        eff = self.effects("likert")
        if eff.table.empty:
            out.append(self.t("empty") + "\n")
        else:
            out.append(self.t("effects_intro", table=self.next_table(), figure=self.next_figure()) + "\n")
            out.append(self._effects_table(eff, "cap_effects", scale=1.0))
            out.append(self._forest_plot(eff))
            top2 = self.effects("top2")
            if not top2.table.empty:
                out.append(self.t("effects_top2", table=self.next_table()) + "\n")
                out.append(self._effects_table(top2, "cap_effects_top2", scale=100.0))
        out.append(self._heading(2, "h_shifts"))
        sh = self._table("category_shifts")
        if sh.empty:
            out.append(self.t("empty") + "\n")
        else:
            out.append(self.t("shifts_intro", table=self.next_table()) + "\n")
            from survey.questionnaire import LIKERT

            cats = [a.code for a in LIKERT if not a.missing]
            rows = []
            for outcome, sub in sh.groupby("outcome", sort=False):
                by = {str(c): v for c, v in zip(sub["category"].astype(str), sub["shift"], strict=True)}
                rows.append([outcome_label(str(outcome), self.lang)] + [fmt_signed(100.0 * by[c], 1, self.lang) if c in by else MISSING for c in cats])
            headers = [self.t("col_outcome")] + [(a.nl if self.lang == "nl" else a.en) for a in LIKERT if not a.missing]
            out.append(self._emit_table(rows, headers, "l" + "r" * len(cats), "cap_shifts", "src_survey"))
        return "\n".join(out)

    def _effects_table(self, eff: Protected, caption: str, scale: float) -> str:
        rows = []
        last = None
        for i, r in eff.table.sort_values(["outcome", "method"], key=lambda s: s.map(_outcome_order()) if s.name == "outcome" else s.map(_method_order())).iterrows():
            name = outcome_label(r["outcome"], self.lang)
            rows.append(
                [
                    name if name != last else "",
                    method_label(r["method"], self.lang),
                    self._cell(eff, i, "estimate", lambda v: fmt_signed(scale * v, 2 if scale == 1 else 1, self.lang)),
                    SUPPRESSED if eff.suppressed.at[i, "ci_lower"] else fmt_ci(scale * r["ci_lower"], scale * r["ci_upper"], 2 if scale == 1 else 1, self.lang),
                    self._cell(eff, i, "p_holm", lambda v: fmt_p(v, self.lang)),
                    self._cell(eff, i, "p_bh", lambda v: fmt_p(v, self.lang)),
                    self._cell(eff, i, "n_treated", self._int),
                    self._cell(eff, i, "n_control", self._int),
                ]
            )
            last = name
        headers = [self.t(k) for k in ("col_outcome", "col_method", "col_estimate", "col_ci", "col_p_holm", "col_p_bh", "col_n_treated", "col_n_control")]
        return self._emit_table(rows, headers, "llrrrrrr", caption, "src_survey")

    @_styled
    def _love_plot(self, bal: pd.DataFrame) -> str:
        import numpy as np

        wide = bal.pivot_table(index="variable", columns="stage", values="smd", aggfunc="first", sort=False)
        labels = []
        for var in wide.index:
            name, _, cat = str(var).partition("=")
            labels.append(f"{variable_label(name, self.lang)}: {category_label(name, cat, self.lang)}" if cat else variable_label(name, self.lang))
        y = np.arange(len(wide))[::-1]
        fig, ax = self._figure(6.4, 0.2 * len(wide) + 0.9)
        for stage, marker, color, key in (("before", "o", _GREY, "before"), ("after", "D", _INK, "after")):
            if stage in wide.columns:
                ax.scatter(np.abs(wide[stage].to_numpy(dtype=float)), y, marker=marker, s=18, color=color, label=self.t(key), zorder=3, facecolors="none" if stage == "before" else color)
        ax.axvline(0.1, color=_ACCENT, linestyle="--", linewidth=1)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel(self.t("axis_smd"), fontsize=8)
        ax.xaxis.set_major_formatter(self._axis_formatter(1))
        ax.grid(axis="y", color="#e6e8eb", linewidth=0.6)
        ax.legend(frameon=False, fontsize=7.5, loc="lower right")
        return self._emit_figure(fig, "love-plot", "cap_love", "src_survey")

    @_styled
    def _forest_plot(self, eff: Protected) -> str:

        tab = eff.table
        outcomes = sorted(dict.fromkeys(tab["outcome"]), key=lambda o: _outcome_order().get(o, 99))
        methods = sorted(dict.fromkeys(tab["method"]), key=lambda m: _method_order().get(m, 99))
        colors = [_GREY, _ACCENT, _INK, "#5b7a99", "#7a5b99"]
        fig, ax = self._figure(6.4, 0.17 * len(outcomes) * (max(1, len(methods)) + 1) + 0.9)
        ticks, ticklabels = [], []
        for k, o in enumerate(outcomes):
            base = (len(outcomes) - 1 - k) * (len(methods) + 1)
            ticks.append(base + (len(methods) - 1) / 2)
            ticklabels.append(outcome_label(o, self.lang))
            for j, m in enumerate(methods):
                sel = tab.index[(tab["outcome"] == o) & (tab["method"] == m)]
                if not len(sel) or eff.suppressed.at[sel[0], "estimate"]:
                    continue
                r = tab.loc[sel[0]]
                yy = base + (len(methods) - 1 - j)
                ax.errorbar(r["estimate"], yy, xerr=[[r["estimate"] - r["ci_lower"]], [r["ci_upper"] - r["estimate"]]], fmt="o", color=colors[j % len(colors)], markersize=4, capsize=2, linewidth=1.2, label=method_label(m, self.lang) if k == 0 else None)
        ax.axvline(0, color=_INK, linewidth=0.8)
        ax.set_yticks(ticks, ticklabels, fontsize=8)
        ax.set_xlabel(self.t("axis_diff"), fontsize=8)
        ax.xaxis.set_major_formatter(self._axis_formatter(1))
        ax.legend(frameon=False, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return self._emit_figure(fig, "forest-plot", "cap_forest", "src_survey")

    def sensitivity(self) -> str:
        """Sensitivity: E-values on the top-2-box risk-ratio scale per outcome."""
        out = [self._heading(1, "h_sensitivity", "sensitivity"), self.t("sens_intro") + "\n"]
        sens = self._table("sensitivity")
        if sens.empty:
            out.append(self.t("empty") + "\n")
            return "\n".join(out)
        rows = [[outcome_label(r["outcome"], self.lang), self._num(r["e_value"]), self._num(r["e_value_ci"]), self._num(r["risk_ratio"])] for _, r in sens.iterrows()]
        headers = [self.t(k) for k in ("col_outcome", "col_e_value", "col_e_value_ci", "col_risk_ratio")]
        method = method_label(self.main_method, self.lang) if self.main_method else ""
        note = f"{self.t('col_method')}: {method}." if method else ""
        out.append(self._emit_table(rows, headers, "lrrr", "cap_sensitivity", "src_survey", note=note))
        return "\n".join(out)

    def methods(self) -> str:
        """The methods appendix: estimands, weighting, matching, variance, disclosure control."""
        cfg = self.bundle.manifest.get("config") or {}
        wcfg = cfg.get("weighting") or {}
        mcfg = cfg.get("matching") or {}
        def low(v: str) -> str:
            lab = variable_label(v, self.lang)
            return lab if lab.isupper() else lab.lower()  # keep acronyms such as POP

        margins = ", ".join(" × ".join(low(v) for v in ([m] if isinstance(m, str) else m)) for m in wcfg.get("margins", [])) or self.t("not_given")
        covs = ", ".join(low(m) for m in mcfg.get("covariates", [])) or self.t("not_given")
        out = [
            self._heading(1, "h_methods", "methods"),
            self._heading(2, "m_estimands_h"),
            self.t("m_estimands") + "\n",
            self._heading(2, "m_weighting_h"),
            self.t("m_weighting", method=wcfg.get("method", self.t("not_given")), margins=margins) + "\n",
            self._heading(2, "m_matching_h"),
            self.t("m_matching", method=self._matching_method(mcfg), covariates=covs) + "\n",
            self._heading(2, "m_variance_h"),
            self.t("m_variance", replicates=fmt_num((cfg.get("effects") or {}).get("replicates", 0), 0, self.lang)) + "\n",
            self._heading(2, "m_sdc_h"),
            self.t("m_sdc", threshold=self.threshold) + "\n",
        ]
        return "\n".join(out)

    def _matching_method(self, mcfg: Mapping[str, Any]) -> str:
        """The matching specification in words, from the configuration."""
        if "method" in mcfg:  # a free-text description given by the bundle
            return str(mcfg["method"])
        if not mcfg:
            return self.t("not_given")
        nl = self.lang == "nl"
        ratio = mcfg.get("ratio", 1)
        parts = [f"1:{ratio} nearest neighbour" + (" op de propensityscore" if nl else " on the propensity score")]
        if mcfg.get("replace"):
            parts.append("met teruglegging" if nl else "with replacement")
        if mcfg.get("caliper") is not None:
            parts.append(f"caliper {fmt_num(mcfg['caliper'], 2, self.lang)} SD")
        if mcfg.get("exact"):
            parts.append(("exact op " if nl else "exact on ") + ", ".join(variable_label(v, self.lang).lower() for v in mcfg["exact"]))
        sw = mcfg.get("survey_weights")
        if sw == "keep":
            parts.append("controles behouden hun eigen surveygewicht" if nl else "controls keep their own survey weight")
        elif sw == "inherit":
            parts.append("controles nemen het surveygewicht van hun POP-partner over" if nl else "controls inherit their POP partner's survey weight")
        return ", ".join(parts)

    def provenance(self) -> str:
        """Provenance: input SHA-256s, the run (time, commit, seed, versions) and the configuration."""
        import json

        man = self.bundle.manifest
        out = [self._heading(1, "h_provenance", "provenance"), self.t("prov_intro", table=self.next_table(), table2=self.next_table() + 1) + "\n"]
        inputs = man.get("inputs") or {}
        rows = [[f"`{name}`", f"`{_sha(digest)}`"] for name, digest in sorted(inputs.items())]
        if not rows:
            rows = [[self.t("not_given"), MISSING]]
        out.append(self._emit_table(rows, [self.t("col_file"), "SHA-256"], "ll", "cap_inputs", "src_bundle"))
        ng = self.t("not_given")
        when = self.run_time or man.get("created_at") or man.get("run_at") or man.get("time")
        rows = [
            [self.t("prov_run"), fmt_datetime(when, self.lang) if when else ng],
            [self.t("prov_version"), str(man.get("popeval_version") or ng)],
            [self.t("prov_commit"), f"`{man['commit']}`" if man.get("commit") else ng],
            [self.t("prov_seed"), str(man.get("seed", ng))],
        ]
        rows += [[f"`{pkg}`", str(ver)] for pkg, ver in sorted((man.get("packages") or {}).items())]
        for key, value in sorted((man.get("config") or {}).items()):
            text = json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, Mapping | list) else str(value)
            rows.append([f"{self.t('prov_config')}: `{key}`", f"`{text}`"])
        if man.get("note"):
            rows.append([self.t("prov_note"), str(man["note"])])
        out.append(self._emit_table(rows, [self.t("col_item"), self.t("col_value")], "ll", "cap_run", "src_bundle"))
        return "\n".join(out)

    def sections(self) -> list[str]:
        """Every section in order (what the .qmd prints)."""
        return [self.findings(), self.population(), self.survey(), self.comparison(), self.sensitivity(), self.methods(), self.provenance()]


def pd_index(df: pd.DataFrame) -> pd.MultiIndex:
    """The (variable, category) index of a wide profile table."""
    import pandas as pd

    return pd.MultiIndex.from_frame(df[["variable", "category"]])


def _sha(digest: Any) -> str:
    if isinstance(digest, Mapping):
        digest = digest.get("sha256", "")
    return str(digest)


def _step_keys() -> set[str]:
    from analysis.report import TEXT

    return {k for k in TEXT if k.startswith("step_")}


def _stat_keys() -> set[str]:
    from analysis.report import TEXT

    return {k for k in TEXT if k.startswith("stat_")}


def _outcome_order() -> dict[str, int]:
    from survey.questionnaire import OUTCOMES

    return {o.name: i for i, o in enumerate(OUTCOMES)}


def _method_order() -> dict[str, int]:
    from analysis.report import METHOD_LABELS

    return {m: i for i, m in enumerate(METHOD_LABELS)}

