"""What the report's ``.qmd`` files read from a results bundle: formatted numbers, tables, figures.

``reports/_setup.qmd`` creates one :class:`Report`; the prose in ``reports/evaluation-<lang>.qmd``
quotes its numbers as inline expressions (```` `{python} r.fact.invited` ````), shows its tables in
labelled cells (``r.table("margins")``, ``#| label: tbl-margins``) and its figures in labelled cells
(``r.figure("forest")``, ``#| label: fig-forest``).  Nothing here is prose: captions, sentences and
notices are in the ``.qmd``; column headers and category labels come from :mod:`analysis.report.labels`
and the codebook.

Every table goes through disclosure control (:func:`protect`) before it is shown: counts below the
threshold are suppressed, then as many other cells as needed so that none can be recovered from
totals (secondary suppression), and percentages based on suppressed counts with them.  Suppressed
cells show :data:`analysis.report.formatting.SUPPRESSED`.  :meth:`Report.frame` gives the protected table as
a DataFrame of display strings.

Optional parts of the bundle (an ``estimand`` block in ``estimates.json``, ``tables/overlap.csv``,
a ``reason`` column for methods that could not be estimated, outcome labels, the manifest's
``provenance``) are read when present; :meth:`Report.has` tells the ``.qmd`` whether to show them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.report.formatting import (
    MISSING,
    NBSP,
    SUPPRESSED,
    check_lang,
    fmt_ci,
    fmt_date,
    fmt_datetime,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_signed,
    is_missing,
    tick_formatter,
)
from analysis.report.labels import (
    category_label,
    category_order,
    label,
    method_label,
    number_word,
    outcome_label,
    variable_label,
)
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.typing import RcKeyType

    from analysis.bundle import ResultsBundle

__all__ = ["DEFAULT_THRESHOLD", "Code", "Facts", "GridTable", "Protected", "Report", "Text", "grid_table", "protect", "threshold_from_manifest"]

#: The disclosure threshold when neither the caller nor the bundle sets one: counts below 5 are suppressed.
DEFAULT_THRESHOLD = 5

_INK = "#1d2b3a"  # dark slate: text, POP series, main estimator
_ACCENT = "#b08a00"  # dark Flemish yellow
_GREY = "#8c959f"
_LIGHT = "#c9ced4"
#: The report's typeface, shared by the text (CSS, Typst template, reference.docx) and the figures.
FONT = "DejaVu Sans"
#: Methods that describe rather than adjust: shown, but not part of a verdict.
_DESCRIPTIVE = {"naive", "weighted"}
#: The significance level of the verdicts (Holm-adjusted p-values).
ALPHA = 0.05


# ====================================================================== disclosure control
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
    """Suppression mask for ``count_cols`` by :func:`analysis.disclosure.suppress` (the one rule)."""
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
        ``(part, total)`` pairs: a part is also suppressed when ``total - part`` is confidential.

    Returns
    -------
    Protected
        The table (unchanged values) and the suppression mask over all its columns.
    """
    import pandas as pd

    df = df.reset_index(drop=True)
    counts = df[list(count_cols)].apply(pd.to_numeric, errors="coerce")
    # a missing count was suppressed upstream: keep it suppressed and let secondary suppression account for it
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
            work2.loc[mask[part], part] = 0
            mask[part] = mask[part] | _secondary_only(work2, part, mask[part], by)
    full = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in count_cols:
        full[c] = mask[c] | upstream[c]
        for d in (derived or {}).get(c, ()):
            full[d] = full[d] | full[c]
    return Protected(table=df, suppressed=full)


def _secondary_only(df: pd.DataFrame, col: str, mask: pd.Series, by: Sequence[str]) -> pd.Series:
    mask = mask.copy()
    groups = [df.index] if not by else [idx for _, idx in df.groupby(list(by), sort=False).groups.items()]
    for group in groups:
        idx = list(group)
        while mask.loc[idx].sum() == 1 and len(idx) > 1:
            others = df.loc[idx, col][~mask.loc[idx]]
            if others.empty:
                break
            mask.loc[others.sort_values(kind="stable").index[0]] = True
    return mask


# ====================================================================== inline text and tables
class Text(str):
    """A string shown as Markdown by Jupyter (so an inline expression prints it without quotes)."""

    def _repr_markdown_(self) -> str:
        return str(self)


class Code(str):
    """A table cell shown as literal code (file names, setting names, hashes)."""


def _escape(text: object) -> str:
    """Markdown-escape a table cell (numbers and labels are plain text; :class:`Code` is literal)."""
    if isinstance(text, Code):
        return "`" + str(text).replace("`", "'") + "`" if str(text) else ""  # an empty setting: an empty cell
    s = str(text)
    for ch in "\\`*_[]<>|#$@~^":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def _path_pieces(word: str, width: int) -> list[str]:
    """A long path or dotted name cut after its ``/`` (else its ``.``) into pieces of at most ``width``.

    A table column is then as wide as its longest piece, not as its longest path: a long input path
    in the settings annex would otherwise squeeze the setting names beside it until they overlap.
    """
    if len(word) <= width:
        return [word]
    sep = "/" if "/" in word else "."
    parts = [p + sep for p in word.split(sep)]
    parts[-1] = parts[-1][:-1]
    out, cur = [], ""
    for part in parts:
        if cur and len(cur) + len(part) > width:
            out.append(cur)
            cur = part
        else:
            cur += part
    return [*out, cur] if cur else out


@dataclass(frozen=True)
class Group:
    """A row that names the group of rows below it (spans every column)."""

    text: str


@dataclass(frozen=True)
class GridTable:
    """A table as pandoc grid-table Markdown: column groups, group rows, alignment, widths.

    Attributes
    ----------
    columns
        The column headers.
    rows
        Rows of cell strings, or :class:`Group` rows that span every column.
    align
        One letter per column: ``l`` or ``r``.
    groups
        Optional column groups above the headers: ``(label, span)`` pairs covering every column.
    frame
        The same content as a DataFrame (group rows repeated as a column), for :meth:`to_frame`.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[str] | Group]
    align: str
    groups: Sequence[tuple[str, int]] = ()
    frame: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.align) != len(self.columns):
            raise ConfigError("Table alignment does not match the columns", expected=f"{len(self.columns)} letters", found=self.align)
        if self.groups and sum(s for _, s in self.groups) != len(self.columns):
            raise ConfigError("Column groups do not cover the columns", expected=str(len(self.columns)), found=str(sum(s for _, s in self.groups)))
        for r in self.rows:
            if not isinstance(r, Group) and len(r) != len(self.columns):
                raise ConfigError("A table row has the wrong number of cells", expected=str(len(self.columns)), found=str(len(r)))

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.markdown()

    def to_frame(self) -> pd.DataFrame:
        """The table's display strings as a DataFrame."""
        import pandas as pd

        if self.frame is not None:
            return self.frame
        data, group = [], ""
        for r in self.rows:
            if isinstance(r, Group):
                group = r.text
                continue
            data.append([group, *r] if any(isinstance(x, Group) for x in self.rows) else list(r))
        cols = ([""] if any(isinstance(x, Group) for x in self.rows) else []) + list(self.columns)
        return pd.DataFrame(data, columns=cols)

    def summary(self) -> str:
        """The number of rows and columns."""
        return f"GridTable: {sum(not isinstance(r, Group) for r in self.rows)} rows × {len(self.columns)} columns"

    def markdown(self) -> str:
        """The pandoc grid table."""
        import textwrap

        n = len(self.columns)
        raw = [[_escape(c) for c in self.columns]] + [[_escape(c) for c in r] for r in self.rows if not isinstance(r, Group)]
        # long cells wrap at spaces (never inside a word): a header at its longest word, a body cell at 30
        cap = [36 if any(row[j].startswith("`") for row in raw[1:]) else 30 for j in range(n)]
        limit = [max(10, *(len(w) for w in raw[0][j].split()), min(cap[j], max(len(row[j]) for row in raw[1:]) if len(raw) > 1 else 0)) for j in range(n)]

        def wrap(c: str, width: int) -> list[str]:
            if c.startswith("`") and c.endswith("`") and len(c) > 2:  # a code span wraps into code spans
                words = [piece for word in c[1:-1].split() for piece in _path_pieces(word, width)]
                return [f"`{x}`" for x in textwrap.wrap(" ".join(words), width, break_long_words=False, break_on_hyphens=False)] or [c]
            return textwrap.wrap(c, width, break_long_words=False, break_on_hyphens=False) or [""]

        cells = [[wrap(c, limit[j]) for j, c in enumerate(row)] for row in raw]
        # a column is at least as wide as its header's longest word in bold (a quarter wider than the
        # body's characters, and a character of room): a narrow column would otherwise cut that word
        # into syllables
        widths = [max(3, -(-5 * max(len(w) for w in [*raw[0][j].split(), ""]) // 4) + 1, *(len(line) for row in cells for line in row[j])) for j in range(n)]
        group_texts = ["**" + _escape(g.text) + "**" for g in self.rows if isinstance(g, Group)]
        need = max((len(t) for t in group_texts), default=0)
        total = sum(widths) + 3 * (n - 1)
        if need > total:
            widths[0] += need - total
        if self.groups:
            start = 0
            for text, span in self.groups:
                t = _escape(text)
                have = sum(widths[start : start + span]) + 3 * (span - 1)
                for k in range(max(0, len(t) - have)):  # spread the extra width over the group
                    widths[start + k % span] += 1
                start += span

        def sep(ch: str = "-", marks: bool = False) -> str:
            parts = []
            for j, w in enumerate(widths):
                seg = ch * (w + 2)
                if marks:
                    seg = (":" + ch * (w + 1)) if self.align[j] == "l" else (ch * (w + 1) + ":")
                parts.append(seg)
            return "+" + "+".join(parts) + "+"

        def line(spans: Sequence[tuple[str, int]]) -> str:
            out, j = "|", 0
            for text, span in spans:
                w = sum(widths[j : j + span]) + 3 * (span - 1)
                out += " " + text.ljust(w) + " |"
                j += span
            return out

        lines = [sep()]
        if self.groups:
            lines += [line([(_escape(t), s) for t, s in self.groups]), sep()]
        def multi(row: Sequence[list[str]]) -> list[str]:
            depth = max(len(c) for c in row)
            return [line([(c[k] if k < len(c) else "", 1) for c in row]) for k in range(depth)]

        lines += [*multi(cells[0]), sep("=", marks=True)]
        body = iter(cells[1:])
        for r in self.rows:
            if isinstance(r, Group):
                lines.append(line([("**" + _escape(r.text) + "**", n)]))
            else:
                lines += multi(next(body))
            lines.append(sep())
        return "\n".join(lines) + "\n"


def grid_table(columns: Sequence[str], rows: Sequence[Sequence[str] | Group], align: str, groups: Sequence[tuple[str, int]] = ()) -> GridTable:
    """Shorthand for :class:`GridTable`."""
    return GridTable(columns=list(columns), rows=list(rows), align=align, groups=list(groups))


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
            raise ConfigError("The report quotes an unknown number", param=name, expected=", ".join(sorted(values)), found=name, hint="see Report.facts() in analysis/report/builder.py") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Facts are read-only")

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_values"))

    def to_dict(self) -> dict[str, str]:
        """Every fact by name."""
        return dict(object.__getattribute__(self, "_values"))


# ====================================================================== the report's data
# matplotlib settings of every report figure, applied with rc_context (never globally)
_FIGURE_STYLE: dict[RcKeyType, Any] = {
    "font.family": FONT,
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": _GREY,
    "axes.labelcolor": _INK,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "text.color": _INK,
    "axes.formatter.use_locale": False,
    "figure.dpi": 150,
    "savefig.dpi": 200,
}


class Report:
    """The results bundle as the report's ``.qmd`` files see it.

    Parameters
    ----------
    bundle
        A :class:`~analysis.bundle.ResultsBundle` or the path of a bundle folder.
    lang
        ``'nl'`` (default) or ``'en'``.
    threshold
        Disclosure threshold; default from the bundle's configuration, else 5.
    figdir
        Kept for compatibility; figures are shown by the cells that draw them.
    main_method
        The main estimator (default: ``config.report.main_method``, else ``matching`` when present,
        else the first method in the effects table).
    run_time
        The time of the run (ISO 8601); the report's date.  Default: the bundle's ``created_at``.
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
        self.fact = Facts(self.facts())

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
        names = [f"{_low(variable_label(str(g['variable']), self.lang))}: {_low(category_label(str(g['variable']), g['category'], self.lang))}" for g in groups if isinstance(g, Mapping)]
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

    # ------------------------------------------------------------------ facts
    def facts(self) -> dict[str, str]:
        """Every formatted number the prose may quote, by name."""
        f: dict[str, str] = {"threshold": str(self.threshold), "x": SUPPRESSED}
        man = self.bundle.manifest
        cfg = man.get("config") or {}
        f["date"] = fmt_date(str(self.run_time)[:10], self.lang) if self.run_time else label("not_given", self.lang)
        f["run_datetime"] = fmt_datetime(self.run_time, self.lang) if self.run_time else label("not_given", self.lang)
        f["year"] = str(self.run_time)[:4] if self.run_time else MISSING
        f["version"] = str(man.get("popeval_version") or label("not_given", self.lang))
        # population
        share = self._pop_share()
        for i, r in share.table.iterrows():
            k = str(r["incentive"]).lower()
            f[f"pct_pop_{k}"] = self._cell(share, i, "pct_pop", self._pct)
            f[f"n_pop_{k}"] = self._cell(share, i, "n_pop", self._int)
            f[f"n_approved_{k}"] = self._cell(share, i, "n_approved", self._int)
        prof = self._profile()
        pt = prof.table
        groups = {
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
        for key, (var, cats) in groups.items():
            for grp in ("pop", "all"):
                sel = pt.index[(pt["variable"] == var) & pt["category"].astype(str).isin(cats)]
                if len(sel) != len(cats) or prof.suppressed.loc[sel, f"pct_{grp}"].any():
                    f[f"pct_{key}_{grp}"] = SUPPRESSED if len(sel) == len(cats) else MISSING
                else:
                    f[f"pct_{key}_{grp}"] = self._pct(pt.loc[sel, f"pct_{grp}"].astype(float).sum())
        n_pop = pt.loc[pt["variable"] == pt["variable"].iloc[0], "n_pop"].sum() if not pt.empty else math.nan
        n_all = pt.loc[pt["variable"] == pt["variable"].iloc[0], "n_all"].sum() if not pt.empty else math.nan
        f["persons_pop"], f["persons_all"] = self._int(n_pop), self._int(n_all)
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
        # survey
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
        wcfg = cfg.get("weighting") or {}
        wm = str(wcfg.get("method", ""))
        f["weighting_method"] = label(f"wm_{wm}", self.lang) if f"wm_{wm}" in _label_keys() else label("not_given", self.lang)
        margins = wcfg.get("margins", [])
        f["weighting_margins"] = _join([" × ".join(_low(variable_label(v, self.lang)) for v in ([m] if isinstance(m, str) else m) if v != "pop") for m in margins], self.lang) or label("not_given", self.lang)
        mcfg = cfg.get("matching") or {}
        f["matching_covariates"] = _join([_low(variable_label(v, self.lang)) for v in mcfg.get("covariates", [])], self.lang) or label("not_given", self.lang)
        f["matching_ratio"] = str(mcfg.get("ratio", 1))
        f["matching_caliper"] = self._num(mcfg["caliper"], 2) if mcfg.get("caliper") is not None else MISSING
        f["matching_replace"] = label("with_replacement" if mcfg.get("replace") else "without_replacement", self.lang)
        ecfg = cfg.get("effects") or {}
        reps = self.bundle.estimates.get("replicates") or {}
        f["replicates"] = self._int(reps.get("n_replicates", ecfg.get("replicates")))
        f["replicates_failed"] = self._int(reps.get("n_failed", 0))
        # effects
        f["main_method"] = _low(method_label(self.main_method, self.lang)) if self.main_method else MISSING
        eff = self._table("effects")
        se_types = set(eff.loc[eff["method"] == self.main_method, "se_type"].astype(str)) if "se_type" in eff.columns and not eff.empty else set()
        f["main_se"] = label("se_replicate" if "replicate" in se_types else "se_model", self.lang)
        # model-based methods: the largest weighted share of POP users whose prediction extrapolates
        xs = [float(v) for v in eff["extrapolated"] if not is_missing(v)] if "extrapolated" in eff.columns else []
        f["extrapolated_max"] = self._pct(100.0 * max(xs)) if xs else MISSING
        verdicts = self.verdicts()
        for o in self._outcomes():
            main = self._main_row(o, "top2")
            f[f"pp_{o}"] = fmt_signed(100 * main["estimate"], 1, self.lang) if main is not None else MISSING
            f[f"ci_{o}"] = self._ci(100 * main["ci_lower"], 100 * main["ci_upper"], 1) if main is not None else MISSING
            mainl = self._main_row(o, "likert")
            f[f"pt_{o}"] = fmt_signed(mainl["estimate"], 2, self.lang) if mainl is not None else MISSING
            f[f"verdict_{o}"] = label(f"verdict_{verdicts.get(o, 'none')}", self.lang)
            f[f"outcome_{o}"] = _low(self.outcome(o))
        for v in ("consistent", "main_only", "inconclusive", "none", "lower"):
            names = [_low(self.outcome(o)) for o, k in verdicts.items() if k == v]
            f[f"outcomes_{v}"] = _join(names, self.lang) or MISSING
            f[f"n_{v}"] = str(len(names))
        f["n_outcomes"] = str(len(self._outcomes()))
        f["n_outcomes_word"] = number_word(len(self._outcomes()), self.lang)
        f["pp_by_outcome"] = _join([self.label("pp_for_outcome", value=f[f"pp_{o}"], outcome=f[f"outcome_{o}"]) for o in self._outcomes()], self.lang) or MISSING
        f["pt_by_outcome"] = _join([self.label("pt_for_outcome", value=f[f"pt_{o}"], outcome=f[f"outcome_{o}"]) for o in self._outcomes()], self.lang) or MISSING
        sens = self._table("sensitivity")
        if not sens.empty and sens["e_value"].notna().any():
            e_value = sens["e_value"].astype(float)
            best = sens[e_value == e_value.max()].iloc[0]
            f["evalue_max"], f["evalue_outcome"] = self._num(best["e_value"]), _low(self.outcome(str(best["outcome"])))
        else:
            f["evalue_max"] = f["evalue_outcome"] = MISSING
        f["commit"] = str(man.get("commit") or label("not_given", self.lang))
        f["seed"] = str(man.get("seed", label("not_given", self.lang)))
        f["estimand"] = str(ecfg.get("estimand", "ATT"))
        # prose never shows the tables' suppression flag as if it were a number
        hidden = self.label("suppressed_in_prose")
        return {k: hidden if v == SUPPRESSED and k != "x" else v for k, v in f.items()}

    def _main_row(self, outcome: str, scale: str) -> pd.Series | None:
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
            rows = t[(t["outcome"] == o) & ~t["method"].isin(_DESCRIPTIVE) & t["estimate"].notna() & ~eff.suppressed.loc[t.index, "estimate"]]
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
            name = self.label(key, outcome=_low(self.outcome(r["outcome"]))) if r["step"] == "dont_know" else (self.label(key) if key in _label_keys() else str(r["step"]))
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
            name = self.label(key) if key in _label_keys() else str(stat)
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

    def _balance_wide(self) -> tuple[pd.DataFrame, list[str]]:
        bal = self._table("balance")
        wide = bal.pivot_table(index="variable", columns="stage", values=["smd", "variance_ratio"], aggfunc="first", sort=False)
        names = [str(v).partition("=")[0] for v in wide.index]
        order = {v: i for i, v in enumerate(dict.fromkeys(names))}
        keys = sorted(wide.index, key=lambda v: (order[str(v).partition("=")[0]], category_order(str(v).partition("=")[0], str(v).partition("=")[2])))
        return wide.loc[keys], [str(k) for k in keys]

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
            others = t[(t["outcome"] == o) & (t["method"] != self.main_method) & ~t["method"].isin(_DESCRIPTIVE) & t["estimate"].notna() & ~eff.suppressed.loc[t.index, "estimate"]]
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

    # ------------------------------------------------------------------ figures
    def figure(self, name: str, **options: Any) -> Any:
        """Draw a figure and show it (in a Jupyter cell): ``profile``, ``flow``, ``balance``, ``forest``.

        Returns the matplotlib figure (already shown and closed).
        """
        import matplotlib.pyplot as plt

        builders: dict[str, Callable[..., Any]] = {"profile": self._f_profile, "flow": self._f_flow, "balance": self._f_balance, "forest": self._f_forest}
        if name not in builders:
            raise ConfigError("Unknown report figure", param=name, expected=", ".join(builders), found=name)
        import matplotlib

        # the report's style holds for this figure only: drawn, shown and closed inside the context
        with matplotlib.rc_context(_FIGURE_STYLE):
            fig = builders[name](**options)
            plt.show()
            plt.close(fig)
        return None


    def _f_profile(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        p = self._profile()
        variables = [v for v in ("educ", "age_band", "sex", "sector", "company_size") if v in set(p.table["variable"])]
        nrow = math.ceil(len(variables) / 2) or 1
        heights = [max(len(p.table[p.table["variable"] == v]) for v in variables[2 * i : 2 * i + 2]) + 1.2 for i in range(nrow)]
        fig, axes = plt.subplots(nrow, 2, figsize=(6.6, 0.32 * sum(heights) + 0.6), sharex=True, layout="constrained", gridspec_kw={"height_ratios": heights})
        axes = np.atleast_1d(axes).ravel()
        top = float(np.nanmax(p.table[["pct_pop", "pct_all"]].to_numpy(dtype=float))) if not p.table.empty else 100.0
        for ax, var in zip(axes, variables, strict=False):
            sub = p.table[p.table["variable"] == var]
            labels = [category_label(var, c, self.lang) for c in sub["category"]]
            y = np.arange(len(sub))[::-1]
            for k, (col, color, name) in enumerate((("pct_pop", _INK, self.label("pop")), ("pct_all", _ACCENT, self.label("all_users")))):
                vals = sub[col].to_numpy(dtype=float)
                hidden = p.suppressed.loc[sub.index, col].to_numpy()
                off = 0.2 if k == 0 else -0.2
                ax.barh(y + off, np.where(hidden, 0.0, vals), height=0.38, color=color, label=name)
                for yy, h in zip(y, hidden, strict=True):
                    if h:
                        ax.text(0.5, yy + off, SUPPRESSED, va="center", fontsize=7, color=color)
            ax.set_yticks(y, labels, fontsize=7)
            ax.set_title(variable_label(var, self.lang), fontsize=8.5, loc="left", color=_INK)
            ax.set_xlim(0, min(100.0, math.ceil(top / 10) * 10 + 5))
            ax.xaxis.set_major_formatter(tick_formatter(self.lang))
            ax.tick_params(axis="x", labelbottom=True, labelsize=7)
            ax.grid(axis="x", color="#e6e8eb", linewidth=0.6)
            ax.set_axisbelow(True)
        for ax in axes[len(variables) :]:
            ax.axis("off")
        axes[len(variables) - 1].set_xlabel(self.label("axis_pct"), fontsize=7.5)
        if len(variables) > 1:
            axes[len(variables) - 2].set_xlabel(self.label("axis_pct"), fontsize=7.5)
        handles, labs = axes[0].get_legend_handles_labels()
        if len(variables) < len(axes):
            axes[-1].legend(handles, labs, frameon=False, fontsize=8, loc="center")
        else:
            fig.legend(handles, labs, frameon=False, fontsize=8, loc="outside lower center", ncols=2)
        return fig

    def _f_flow(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        flow = self._table("response_flow")
        steps = [s for s in ("invited", "started", "completed", "linked", "analysed") if s in set(flow["step"])]
        vals = np.array([float(flow.loc[flow["step"] == s, "n"].iloc[0]) for s in steps])
        hidden = np.array([0 < v < self.threshold for v in vals])
        fig, ax = plt.subplots(figsize=(6.6, 0.3 * len(steps) + 0.7), layout="constrained")
        y = np.arange(len(vals))[::-1]
        ax.barh(y, np.where(hidden, 0.0, vals), color=_INK, height=0.6)
        top = float(vals.max()) if len(vals) else 1.0
        for yy, v, h in zip(y, vals, hidden, strict=True):
            ax.text((0 if h else v) + top * 0.01, yy, SUPPRESSED if h else self._int(v), va="center", fontsize=7.5, color=_INK)
        ax.set_yticks(y, [self.label(f"step_{s}") for s in steps], fontsize=7.5)
        ax.set_xlim(0, top * 1.15)
        ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        ax.set_xlabel(self.label("axis_persons"), fontsize=7.5)
        return fig

    def _f_balance(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        wide, keys = self._balance_wide()
        labels = []
        for k in keys:
            name, _, cat = k.partition("=")
            labels.append(f"{variable_label(name, self.lang)}: {_low(category_label(name, cat, self.lang))}" if cat else variable_label(name, self.lang))
        y = np.arange(len(keys))[::-1]
        fig, ax = plt.subplots(figsize=(6.6, 0.19 * len(keys) + 0.9), layout="constrained")
        for stage, marker, color in (("before", "o", _GREY), ("after", "D", _INK)):
            if ("smd", stage) in wide.columns:
                vals = np.abs(wide[("smd", stage)].to_numpy(dtype=float))
                ax.scatter(vals, y, marker=marker, s=16, color=color, label=self.label(stage), zorder=3, facecolors="none" if stage == "before" else color)
        ax.axvline(0.1, color=_ACCENT, linestyle="--", linewidth=1)
        ax.set_yticks(y, labels, fontsize=6.8)
        ax.set_xlabel(self.label("axis_smd"), fontsize=7.5)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        ax.grid(axis="y", color="#eef0f2", linewidth=0.6)
        fig.legend(frameon=False, fontsize=7.5, loc="outside upper center", ncols=2)
        return fig

    def _f_forest(self, scale: str = "top2") -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        eff = self._effects(scale)
        t = eff.table
        k = 100.0 if scale == "top2" else 1.0
        outcomes = self._outcomes()
        methods = self._methods(scale)
        ncol = 2
        nrow = math.ceil(len(outcomes) / ncol) or 1
        fig, axes = plt.subplots(nrow, ncol, figsize=(6.6, nrow * (0.26 * len(methods) + 0.8) + 0.3), sharex=True, sharey=True, layout="constrained")
        axes = np.atleast_1d(axes).ravel()
        y = np.arange(len(methods))[::-1]
        lo = np.nanmin(k * t["ci_lower"].to_numpy(dtype=float)) if not t.empty else -1
        hi = np.nanmax(k * t["ci_upper"].to_numpy(dtype=float)) if not t.empty else 1
        for ax, o in zip(axes, outcomes, strict=False):
            for j, m in enumerate(methods):
                sel = t.index[(t["outcome"] == o) & (t["method"] == m)]
                if not len(sel) or eff.suppressed.at[sel[0], "estimate"] or is_missing(t.at[sel[0], "estimate"]):
                    continue
                r = t.loc[sel[0]]
                main = m == self.main_method
                color = _INK if main else _GREY
                ax.errorbar(k * r["estimate"], y[j], xerr=[[k * (r["estimate"] - r["ci_lower"])], [k * (r["ci_upper"] - r["estimate"])]], fmt="D" if main else "o", color=color, markersize=5 if main else 3.5, capsize=2, linewidth=1.6 if main else 1.0, zorder=3)
            ax.axvline(0, color=_INK, linewidth=0.7)
            ax.set_title(self.outcome(o), fontsize=8.5, loc="left", color=_INK)
            ax.set_yticks(y, [method_label(m, self.lang) for m in methods], fontsize=7)
            for tick, m in zip(ax.get_yticklabels(), methods, strict=False):
                if m == self.main_method:
                    tick.set_fontweight("bold")
            ax.grid(axis="x", color="#e6e8eb", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", labelbottom=True, labelsize=7)
            ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        pad = 0.05 * (hi - lo) if hi > lo else 1
        axes[0].set_xlim(min(lo, 0) - pad, max(hi, 0) + pad)
        for ax in axes[len(outcomes) :]:
            ax.axis("off")
        fig.supxlabel(self.label("axis_pp" if scale == "top2" else "axis_pt"), fontsize=7.5)
        return fig


# ====================================================================== small helpers
def _label_keys() -> set[str]:
    from analysis.report.labels import LABELS

    return set(LABELS)


def _low(text: str) -> str:
    """Lower-case a label for use inside a sentence, keeping acronyms (POP, ICT, AIPW)."""
    words = text.split(" ")
    return " ".join(w if (sum(ch.isupper() for ch in w) > 1 or (i > 0 and w[:1].isupper() and w.lower() in ("vlaams", "flemish"))) else (w[:1].lower() + w[1:]) for i, w in enumerate(words))


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


def _join(items: Sequence[str], lang: str) -> str:
    """``a, b en c`` / ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    word = " en " if lang == "nl" else " and "
    return ", ".join(items[:-1]) + word + items[-1]


def _sha(digest: Any) -> str:
    """A SHA-256 in four groups of 16 hex digits, so it wraps between groups, never inside one."""
    if isinstance(digest, Mapping):
        digest = digest.get("sha256", "")
    s = str(digest)
    return " ".join(s[i : i + 16] for i in range(0, len(s), 16)) if len(s) == 64 else s


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
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
