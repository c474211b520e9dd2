"""The data model's checks as DuckDB queries: one validator for every input.

:func:`check_columns` checks every column of a :class:`~survey.datamodel.Table` over a DuckDB
relation: each check counts the offending rows, all in one scan, and the first failing one is
found with ``min(source_row)`` - no Python loop over rows.  The admin extracts
(:mod:`analysis.population.ingest`) and the survey's participants (:func:`survey.parse.read_participants`)
are validated by it; errors name the file, the row (the header is row 0), the column, what was
expected, what was found (unknown codes listed with their counts) and a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.datamodel import Column, Table
from survey.errors import DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

__all__ = ["FALSE_VALUES", "TRUE_VALUES", "Check", "CheckOptions", "ColumnChecks", "check_columns", "check_unique_key", "codes_found", "column_checks", "first_row", "found_text", "lit", "q", "raise_first", "text_sql", "vocabulary_of"]

#: Values read as true / false in a flag column (besides a file's own ``true_values``/``false_values``).
TRUE_VALUES = ("1", "true", "True", "TRUE", "J", "j", "Y", "y")
FALSE_VALUES = ("0", "false", "False", "FALSE", "N", "n")


@dataclass(frozen=True)
class CheckOptions:
    """How a file writes its values, for :func:`check_columns`.

    ``where`` is the configuration table named in hints (``admin.dwse``); ``mapped`` says the file
    is described in the study TOML (then ``patterns`` replace the data model's identifier patterns).
    """

    where: str = ""
    mapped: bool = False
    patterns: Mapping[str, str] = field(default_factory=dict)
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    decimal: str = "."
    date_format: str = ""
    date_formats: Mapping[str, str] = field(default_factory=dict)


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def vocabulary_of(col: Column) -> list[str]:
    """The allowed codes of a category column."""
    return [c.code for c in col.vocabulary] if col.vocabulary else []


def text_sql(col: str, typ: str, fmt: str) -> str:
    """SQL for the value of column ``col`` (DuckDB type ``typ``, file format ``fmt``) as text, as the checks read it."""
    c = q(col)
    t = typ.upper()
    if t == "VARCHAR":
        return c if fmt in ("csv", "parquet") else f"NULLIF(trim({c}), '')"
    if t == "DATE":
        return f"strftime({c}, '%Y-%m-%d')"
    if t.startswith("TIMESTAMP"):
        return f"strftime(CAST({c} AS DATE), '%Y-%m-%d')"
    if t == "BOOLEAN":
        return f"CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' END"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return f"CASE WHEN isfinite({c}) AND {c} = floor({c}) AND abs({c}) < 1e15 THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END"
    return f"CAST({c} AS VARCHAR)"


def first_row(con: duckdb.DuckDBPyConnection, src: str, cond: str, value: str = "NULL") -> tuple[int, int, Any]:
    """(count, first source_row, value at that row) of the rows where ``cond`` holds."""
    n, row, val = con.execute(f"SELECT count(*), min(source_row), arg_min({value}, source_row) FROM {src} WHERE {cond}").fetchall()[0]
    return int(n), int(row or 0), val


def found_text(val: Any, n: int) -> str:
    """A value found, with how many rows share the problem."""
    shown = "<NA>" if val is None else repr(val)
    return shown + (f" ({n} rows like this)" if n > 1 else "")


def codes_found(con: duckdb.DuckDBPyConnection, src: str, raw: str, cond: str, limit: int = 20) -> tuple[str, int, int]:
    """The codes where ``cond`` holds, with their counts (most frequent first); the first row; the rows."""
    rows = con.execute(
        f"SELECT v, count(*) AS n, min(source_row) FROM (SELECT {raw} AS v, source_row FROM {src} WHERE {cond}) "
        f"GROUP BY v ORDER BY n DESC, v LIMIT {limit + 1}"
    ).fetchall()
    total_codes, total_rows, first = con.execute(
        f"SELECT count(DISTINCT {raw}), count(*), min(source_row) FROM {src} WHERE {cond}"
    ).fetchall()[0]
    shown = ", ".join(f"{v!r} ({n} row{'s' if n != 1 else ''})" for v, n, _ in rows[:limit])
    if total_codes > limit:
        shown += f", and {total_codes - limit} more codes"
    return f"{total_codes} code{'s' if total_codes != 1 else ''} in {total_rows} rows: {shown}", int(first), int(total_rows)


def check_unique_key(con: duckdb.DuckDBPyConnection, relation: str, table: Table, path: str | Path, hint: str | None = None) -> None:
    """A key of ``table`` that occurs twice in ``relation`` is an error naming both rows."""
    if not table.key:
        return
    keys = ", ".join(q(k) for k in table.key)
    # a repeated key repeats its hash: an aggregate over the 64-bit hashes (no strings in its hash
    # table) proves a good file has none; only when some hash repeats are the keys themselves
    # grouped (a hash collision costs that query, never a wrong answer), then the first repeated
    # row looked up
    repeated = con.execute(f"SELECT count(*) FROM (SELECT hash({keys}) AS h FROM {relation} GROUP BY h HAVING count(*) > 1)").fetchall()[0][0]
    if not repeated:
        return
    dup = f"SELECT {keys}, count(*) AS c, min(source_row) AS first_row FROM {relation} GROUP BY ALL HAVING count(*) > 1"
    n_dup = int(con.execute(f"SELECT coalesce(sum(c - 1), 0) FROM ({dup})").fetchall()[0][0])
    if not n_dup:
        return
    rows = con.execute(
        f"""
        WITH g AS ({dup})
        SELECT t.source_row, g.first_row, {", ".join("t." + q(k) for k in table.key)}, {n_dup} AS n
        FROM {relation} t JOIN g ON {" AND ".join(f"t.{q(k)} IS NOT DISTINCT FROM g.{q(k)}" for k in table.key)}
        WHERE t.source_row > g.first_row ORDER BY t.source_row LIMIT 1
        """
    ).fetchall()
    if not rows:
        return
    source_row, first, *key_values, n = rows[0]
    shown = key_values[0] if len(key_values) == 1 else tuple(key_values)
    raise DataValidationError(
        f"Duplicate key in {table.name}",
        file=path,
        row=int(source_row),
        column=", ".join(table.key),
        expected=f"each {'/'.join(table.key)} exactly once",
        found=f"{shown!r} again (first at row {int(first)}); {int(n)} duplicate row(s)",
        hint=hint or "remove the repeated rows from the extract or ask the data owner for a deduplicated file",
    )


@dataclass(frozen=True)
class Check:
    """One check of a column: the rows where ``cond`` holds break it."""

    column: Column
    cond: str
    value: str
    expected: str
    hint: str
    title: str
    pattern: str | None = None


@dataclass(frozen=True)
class ColumnChecks:
    """The checks of every column of a table over a relation, and the typed SELECT list (nothing executed).

    Attributes
    ----------
    checks
        In the order of the data model's columns and of the checks.
    select
        The typed SELECT list over the relation itself.
    helpers
        ``expression AS name`` items computed once per row (a number or a date parsed once, not in
        every check that reads it); ``checks`` and ``select_helped`` read them from :meth:`relation`.
    select_helped
        The typed SELECT list over :meth:`relation`.
    """

    checks: tuple[Check, ...]
    select: str
    helpers: tuple[str, ...]
    select_helped: str

    def relation(self, src: str) -> str:
        """``src`` with the helper columns added (the relation the checks read)."""
        return f"(SELECT *, {', '.join(self.helpers)} FROM {src})" if self.helpers else src


def column_checks(table: Table, text: Mapping[str, str], *, options: CheckOptions | None = None) -> ColumnChecks:
    """Build the checks of every column of ``table`` (see :func:`check_columns`) without running them.

    ``text`` maps each variable to the SQL of its value as text.
    """
    b = _ChecksBuilder(options or CheckOptions())
    for col in table.columns:
        t = f"({text[col.name]})"
        if not col.nullable:
            b.fail(col, f"{t} IS NULL", t, "a value (empty is not allowed)", "fill in the value or drop the row at the source", "Missing value")
        if col.dtype in ("str", "category"):
            b.text_column(col, t)
        elif col.dtype in ("int", "float"):
            b.number_column(col, t)
        elif col.dtype == "bool":
            b.flag_column(col, t)
        elif col.dtype == "date":
            b.date_column(col, t)
        else:  # pragma: no cover
            raise DataValidationError(f"Unknown dtype {col.dtype!r} in the data model", column=col.name)
    return ColumnChecks(tuple(b.checks), ", ".join(b.select), tuple(b.helpers), ", ".join(b.helped))


class _ChecksBuilder:
    """Collects the checks of a table's columns, their typed SELECT items and the helper columns they share."""

    def __init__(self, spec: CheckOptions) -> None:
        self.spec = spec
        self.where = spec.where
        self.select: list[str] = []
        self.helped: list[str] = []
        self.helpers: list[str] = []
        self.checks: list[Check] = []

    def fail(self, col: Column, cond: str, t: str, expected: str, hint: str, title: str, pattern: str | None = None) -> None:
        """Add a check: the rows where ``cond`` holds fail it."""
        self.checks.append(Check(col, cond, t, expected, hint, title, pattern))

    def helper(self, expr: str) -> str:
        """A helper column computing ``expr`` once per row; its name."""
        name = f"_popeval_h{len(self.helpers)}"
        self.helpers.append(f"{expr} AS {name}")
        return name

    def _item(self, item: str, helped: str | None = None) -> None:
        self.select.append(item)
        self.helped.append(item if helped is None else helped)

    def text_column(self, col: Column, t: str) -> None:
        """Text and categories: the pattern, the data model's codes (school years in their own way)."""
        from survey.datamodel import SCHOOL_YEARS

        spec, where = self.spec, self.where
        pattern = col.pattern if not spec.mapped else spec.patterns.get(col.name) or None
        if col.name in spec.patterns:
            pattern = spec.patterns[col.name] or None
        if pattern is not None:
            self.fail(col, f"{t} IS NOT NULL AND NOT regexp_full_match({t}, {lit(pattern)})", t, f"values matching {pattern}",
                      "check the column contents and the export settings" + (f" (or [{where}.patterns])" if spec.mapped else ""), "Malformed value",
                      pattern)
        if col.dtype == "category":
            allowed = vocabulary_of(col)
            if col.name == "school_year" and spec.mapped:
                ok = (f"regexp_full_match({t}, '\\d{{4}}-\\d{{2}}') AND (TRY_CAST(substr({t}, 1, 4) AS INTEGER) + 1) % 100 "
                      f"= TRY_CAST(substr({t}, 6, 2) AS INTEGER)")
                self.fail(col, f"{t} IS NOT NULL AND NOT ({ok})", t, "a school year such as 2021-22",
                          f"write school years as 2021-22, or set [{where}.rules] school_year = \"school_year\"", "Unknown code")
            elif col.name == "school_year":
                allowed = [c.code for c in SCHOOL_YEARS]
            if not (col.name == "school_year" and spec.mapped):
                cond = f"{t} IS NOT NULL AND {t} NOT IN ({', '.join(lit(a) for a in allowed)})"
                self.fail(col, cond, t, "one of " + ", ".join(allowed),
                          "recode the value to the data model's codes (see data_raw/README.md)" + (f", or map them in [{where}.codes.{col.name}]" if where else ""),
                          _CODES_CHECK)
        self._item(f"CAST({t} AS VARCHAR) AS {q(col.name)}")

    def number_column(self, col: Column, t: str) -> None:
        """Whole numbers and numbers: the type (with the decimal mark) and the range."""
        decimal = self.spec.decimal
        tt = f"replace({t}, ',', '.')" if decimal == "," else t
        parse = f"TRY_CAST(trim({tt}) AS DOUBLE)"
        num = self.helper(parse)  # parsed once per row, read by every check below
        bad = f"{t} IS NOT NULL AND ({num} IS NULL OR NOT isfinite({num})" + (f" OR {num} <> floor({num})" if col.dtype == "int" else "") + ")"
        self.fail(col, bad, t, "a whole number" if col.dtype == "int" else "a number",
                  "check the number format (no thousands separators; a point as decimal mark" + (", or set decimal = \",\")" if decimal == "." else ")"), "Wrong type")
        rng = []
        if col.min is not None:
            rng.append(f"{num} < {col.min}")
        if col.max is not None:
            rng.append(f"{num} > {col.max}")
        if rng:
            self.fail(col, f"{t} IS NOT NULL AND ({' OR '.join(rng)})", t, f"a value between {col.min} and {col.max}", "check the unit and the source of this column", "Value out of range")
        typ = "BIGINT" if col.dtype == "int" else "DOUBLE"
        self._item(f"CAST({parse} AS {typ}) AS {q(col.name)}", f"CAST({num} AS {typ}) AS {q(col.name)}")

    def flag_column(self, col: Column, t: str) -> None:
        """Flags: 0/1, true/false and the input's own true and false values."""
        spec, where = self.spec, self.where
        tv = ", ".join(lit(v) for v in (*TRUE_VALUES, *spec.true_values))
        fv = ", ".join(lit(v) for v in (*FALSE_VALUES, *spec.false_values))
        extra = f"; or set true_values/false_values for [{where}]" if where else ""
        self.fail(col, f"{t} IS NOT NULL AND {t} NOT IN ({tv}, {fv})", t,
                  "0 or 1 (also true/false)" + (f" or {', '.join(spec.true_values + spec.false_values)}" if spec.true_values or spec.false_values else ""),
                  "encode the flag as 0/1" + extra, "Wrong type")
        self._item(f"coalesce({t} IN ({tv}), false) AS {q(col.name)}")

    def date_column(self, col: Column, t: str) -> None:
        """Dates in the input's format (ISO by default)."""
        spec, where = self.spec, self.where
        fmt = spec.date_formats.get(col.name, spec.date_format or "%Y-%m-%d")
        parse = f"TRY_STRPTIME({t}, {lit(fmt)})"
        parsed = self.helper(parse)
        shape = f" OR NOT regexp_full_match({t}, '\\d{{4}}-\\d{{2}}-\\d{{2}}')" if fmt == "%Y-%m-%d" else ""
        human = "YYYY-MM-DD" if fmt == "%Y-%m-%d" else fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy")
        self.fail(col, f"{t} IS NOT NULL AND ({parsed} IS NULL{shape})", t, f"a date as {human}",
                  "write dates in ISO format, e.g. 2022-09-15" + (f", or set date_format for [{where}]" if where else ""), "Wrong type")
        self._item(f"CAST({parse} AS DATE) AS {q(col.name)}", f"CAST({parsed} AS DATE) AS {q(col.name)}")


def raise_first(con: duckdb.DuckDBPyConnection, src: str, table: Table, path: str | Path, checks: ColumnChecks,
                counts: tuple[int, ...] | None = None, *, columns: Mapping[str, str | None] | None = None) -> None:
    """Raise the first failing check (in the data model's order) in detail; ``counts`` as counted, or counted here in one scan."""
    rel = checks.relation(src)
    if counts is None:
        counts = con.execute(f"SELECT {', '.join(f'count_if({c.cond})' for c in checks.checks)} FROM {rel}").fetchall()[0] if checks.checks else ()
    columns = columns or {}
    for c, n in zip(checks.checks, counts, strict=True):
        if not n:
            continue
        column = columns.get(c.column.name) or c.column.name
        if c.title == _CODES_CHECK:
            found, row, _ = codes_found(con, rel, c.value, c.cond)
            raise DataValidationError(f"Unknown code in {table.name}", file=path, row=row, column=column, expected=c.expected, found=found, hint=c.hint)
        n, row, val = first_row(con, rel, c.cond, c.value)
        raise DataValidationError(f"{c.title} in {table.name}", file=path, row=row, column=column, expected=c.expected, found=found_text(val, n), hint=c.hint)


def check_columns(con: duckdb.DuckDBPyConnection, src: str, table: Table, path: str | Path, text: Mapping[str, str], *,
                  columns: Mapping[str, str | None] | None = None, options: CheckOptions | None = None) -> str:
    """Check every column of ``table`` in SQL over ``src``; return the typed SELECT list.

    Parameters
    ----------
    con, src
        The connection and the relation holding ``source_row`` (the row in the file, header = 0)
        and the values to check.
    table
        The data-model table.
    path
        The file named in errors.
    text
        variable -> SQL expression of its value as text in ``src``.
    columns
        variable -> the file's column named in errors (default: the variable).
    options
        How the file writes flags, numbers, dates and which patterns apply (:class:`CheckOptions`).

    Every check is counted in one scan; the first failing one (in the order of the data model's
    columns and of the checks) is looked at in detail and raised as a
    :class:`~survey.errors.DataValidationError` naming file, row, column, expected, found and hint.
    """
    checks = column_checks(table, text, options=options)
    raise_first(con, src, table, path, checks, columns=columns)
    return checks.select



_CODES_CHECK = "<unknown codes>"
