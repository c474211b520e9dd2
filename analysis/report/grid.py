"""The Markdown the report's cells show: inline text, literal code, and pandoc grid tables.

A :class:`GridTable` (made with :func:`grid_table`) has column groups, group rows that span every
column, alignment, and column widths that wrap long cells at spaces; Jupyter shows it as Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Code", "GridTable", "Group", "Text", "grid_table"]


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
        n = len(self.columns)
        raw = [[_escape(c) for c in self.columns]] + [[_escape(c) for c in r] for r in self.rows if not isinstance(r, Group)]
        limit = _wrap_widths(raw)
        cells = [[_wrap(c, limit[j]) for j, c in enumerate(row)] for row in raw]
        grid = _Grid(widths=self._column_widths(raw, cells), align=self.align)
        lines = [grid.sep()]
        if self.groups:
            lines += [grid.line([(_escape(t), s) for t, s in self.groups]), grid.sep()]
        lines += [*grid.multi(cells[0]), grid.sep("=", marks=True)]
        body = iter(cells[1:])
        for r in self.rows:
            if isinstance(r, Group):
                lines.append(grid.line([("**" + _escape(r.text) + "**", n)]))
            else:
                lines += grid.multi(next(body))
            lines.append(grid.sep())
        return "\n".join(lines) + "\n"

    def _column_widths(self, raw: Sequence[Sequence[str]], cells: Sequence[Sequence[list[str]]]) -> list[int]:
        """Each column's width: its wrapped lines, its header's longest word in bold, and room for the group rows and column groups."""
        n = len(self.columns)
        # a column is at least as wide as its header's longest word in bold (a quarter wider than the
        # body's characters, and a character of room): a narrow column would otherwise cut that word
        # into syllables
        widths = [max(3, -(-5 * max(len(w) for w in [*raw[0][j].split(), ""]) // 4) + 1, *(len(line) for row in cells for line in row[j])) for j in range(n)]
        group_texts = ["**" + _escape(g.text) + "**" for g in self.rows if isinstance(g, Group)]
        need = max((len(t) for t in group_texts), default=0)
        total = sum(widths) + 3 * (n - 1)
        if need > total:
            widths[0] += need - total
        start = 0
        for text, span in self.groups:
            t = _escape(text)
            have = sum(widths[start : start + span]) + 3 * (span - 1)
            for k in range(max(0, len(t) - have)):  # spread the extra width over the group
                widths[start + k % span] += 1
            start += span
        return widths


def _wrap_widths(raw: Sequence[Sequence[str]]) -> list[int]:
    """Where each column's cells wrap: a header at its longest word, a body cell at 30 (36 for code)."""
    n = len(raw[0])
    cap = [36 if any(row[j].startswith("`") for row in raw[1:]) else 30 for j in range(n)]
    return [max(10, *(len(w) for w in raw[0][j].split()), min(cap[j], max(len(row[j]) for row in raw[1:]) if len(raw) > 1 else 0)) for j in range(n)]


def _wrap(c: str, width: int) -> list[str]:
    """A cell's lines: wrapped at spaces, never inside a word; a code span wraps into code spans."""
    import textwrap

    if c.startswith("`") and c.endswith("`") and len(c) > 2:
        words = [piece for word in c[1:-1].split() for piece in _path_pieces(word, width)]
        return [f"`{x}`" for x in textwrap.wrap(" ".join(words), width, break_long_words=False, break_on_hyphens=False)] or [c]
    return textwrap.wrap(c, width, break_long_words=False, break_on_hyphens=False) or [""]


@dataclass(frozen=True)
class _Grid:
    """The lines of a grid table with these column widths and alignment."""

    widths: list[int]
    align: str

    def sep(self, ch: str = "-", marks: bool = False) -> str:
        """A separator line (``=`` with alignment marks below the header)."""
        parts = []
        for j, w in enumerate(self.widths):
            seg = ch * (w + 2)
            if marks:
                seg = (":" + ch * (w + 1)) if self.align[j] == "l" else (ch * (w + 1) + ":")
            parts.append(seg)
        return "+" + "+".join(parts) + "+"

    def line(self, spans: Sequence[tuple[str, int]]) -> str:
        """A line of cells, each ``(text, number of columns it spans)``."""
        out, j = "|", 0
        for text, span in spans:
            w = sum(self.widths[j : j + span]) + 3 * (span - 1)
            out += " " + text.ljust(w) + " |"
            j += span
        return out

    def multi(self, row: Sequence[list[str]]) -> list[str]:
        """The lines of a row whose cells are wrapped into several lines."""
        depth = max(len(c) for c in row)
        return [self.line([(c[k] if k < len(c) else "", 1) for c in row]) for k in range(depth)]


def grid_table(columns: Sequence[str], rows: Sequence[Sequence[str] | Group], align: str, groups: Sequence[tuple[str, int]] = ()) -> GridTable:
    """Shorthand for :class:`GridTable`."""
    return GridTable(columns=list(columns), rows=list(rows), align=align, groups=list(groups))
