"""Ingest the DWSE and VDAB extracts into the study's DuckDB database, entirely in DuckDB SQL.

Each extract is read into DuckDB as it is (:mod:`analysis.population.sources`: CSV by ``read_csv``,
Parquet by ``read_parquet``, SPSS/Stata by pyreadstat and Excel by openpyxl handed over as Arrow),
mapped and recoded onto the data model (:data:`~survey.datamodel.DWSE_APPLICATIONS`,
:data:`~survey.datamodel.VDAB_TRAJECTORIES`) by one ``SELECT`` built from the study TOML's
description (:mod:`analysis.population.mapping`), and validated by queries: every check counts the
offending rows and finds the first one with ``min(source_row)``; there is no Python loop over rows.
Row numbers in errors are rows of the whole file (the header is row 0).  The error messages are
those of :mod:`survey.validate` (file, row, column, expected, found, hint); unknown and unmapped codes
are listed with their counts.

A good extract is read once and written once: every check (and the INSZ scan) is evaluated inside the
query that writes its table, and flags read back from the written table say whether a row broke one.
Only then is the load rolled back and done again step by step (a query per stage), so that the error
names the first offending row exactly as the step-by-step queries always have; results and messages
are the same either way.  Identifier columns (the key and the person key) are stored uncompressed.

Raw INSZ numbers never reach the database: every column of the file is scanned (a DuckDB macro with
the mod-97 check); by default an extract whose person key carries them is refused (the error names
the file, row and column but never shows the value); with ``pseudonymise=True`` they are replaced by
``HMAC-SHA256(POPEVAL_PSEUDO_KEY, INSZ)``, computed in SQL from the key's HMAC pads (equal to
:func:`survey.insz.pseudonymise`).  An INSZ in another mapped column is refused; in an ignored
column it is counted.  The load runs in one transaction: a failed ingest leaves the database as it
was.

Tables written
--------------
``dwse_applications``, ``vdab_trajectories``
    The data model's columns (categories as text, dates as DATE, flags as BOOLEAN) plus
    ``source_row``, the 1-based row in the extract.
``ingest_sources``
    One row per extract: table, file name, SHA-256 of the file, rows, pseudonymised values, ignored
    columns, time of ingest.  The population margins are versioned from these hashes.
``ingest_checks``
    Checks across fields (:data:`analysis.population.mapping.CROSS_CHECKS`) and INSZ-like values in
    ignored columns, with their row counts (warnings).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.population._db import DEFAULT_DB, Progress, connect, progress_sink
from analysis.population.mapping import InputSpec
from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES, Table
from survey.errors import DataValidationError
from survey.hashing import sha256_file
from survey.sqlcheck import (
    CheckOptions,
    check_columns,
    check_unique_key,
    codes_found,
    column_checks,
    first_row,
    found_text,
    lit,
    q,
    text_sql,
    vocabulary_of,
)

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Sequence

    import duckdb
    import pandas as pd

    from analysis.population.sources import SourceInfo

__all__ = ["DEFAULT_DB", "IngestReport", "InputPlan", "SourceFile", "ingest", "ingest_table", "plan_input", "text_sql"]

_SQL_TYPES = {"str": "VARCHAR", "category": "VARCHAR", "date": "DATE", "bool": "BOOLEAN", "int": "BIGINT", "float": "DOUBLE"}
_CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class SourceFile:
    """One ingested extract.

    Attributes
    ----------
    table
        The data-model table it was read as.
    name
        The file name (without its folder).
    sha256
        SHA-256 of the file's bytes.
    rows
        Data rows ingested (all of them: a file with a bad row is refused as a whole).
    pseudonymised
        Values of ``person_key`` that were raw INSZ numbers and were replaced by keyed hashes.
    ignored_columns
        Columns in the file that are not in the data model (not ingested).
    format
        The file format read.
    assumed
        Reading settings that were detected, not given ("looks ;-separated, Latin-1").
    key_format
        The person keys' format (characters and length).
    warnings
        Checks across fields (and INSZ-like values in ignored columns) with their row counts.
    """

    table: str
    name: str
    sha256: str
    rows: int
    pseudonymised: int
    ignored_columns: tuple[str, ...]
    format: str = "csv"
    assumed: tuple[str, ...] = ()
    key_format: str = ""
    warnings: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` wrote."""

    db: str
    sources: tuple[SourceFile, ...]
    seconds: float

    def summary(self) -> str:
        """A short printable summary."""
        lines = [f"Ingested into {self.db} in {self.seconds:.1f} s"]
        for s in self.sources:
            extra = f"; {s.pseudonymised:,} INSZ pseudonymised" if s.pseudonymised else ""
            ign = f"; ignored columns: {', '.join(s.ignored_columns)}" if s.ignored_columns else ""
            lines.append(f"  {s.table:<20} {s.rows:>12,} rows  from {s.name} (sha256 {s.sha256[:12]}){extra}{ign}")
            if s.assumed:
                lines.append(f"  {'':<20} read as {s.format}; looks {', '.join(s.assumed)}")
            for check, n in s.warnings:
                if n:
                    lines.append(f"  {'':<20} warning: {check}: {n:,} rows")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per source file."""
        import pandas as pd

        rows = [{**asdict(s), "ignored_columns": ",".join(s.ignored_columns)} for s in self.sources]
        return pd.DataFrame(rows, columns=["table", "name", "sha256", "rows", "pseudonymised", "ignored_columns"])


def ingest(
    dwse: str | Path,
    vdab: str | Path,
    db: Any = DEFAULT_DB,
    *,
    pseudonymise: bool = False,
    key: bytes | None = None,
    chunk_bytes: int = _CHUNK_BYTES,
    dwse_spec: InputSpec | None = None,
    vdab_spec: InputSpec | None = None,
    progress: Progress = None,
) -> IngestReport:
    """Validate both admin extracts and load them into DuckDB.

    Parameters
    ----------
    dwse, vdab
        The DWSE applications extract and the VDAB trajectories extract (``.csv`` or ``.parquet``).
    db
        Path of the DuckDB file (created with its folder; default ``data_derived/popeval.duckdb``) or
        an open connection.  Existing admin tables are replaced, and tables derived from them
        (``population``, ``survey_participants``) are dropped.
    pseudonymise
        Replace raw INSZ numbers in ``person_key`` by keyed hashes instead of refusing the file.
    key
        The HMAC key; by default read from ``POPEVAL_PSEUDO_KEY`` (only when ``pseudonymise``).
    chunk_bytes
        Kept for compatibility (DuckDB streams the files itself).
    dwse_spec, vdab_spec
        How each file is read and mapped (:class:`~analysis.population.mapping.InputSpec`, from the
        study TOML); None for a CSV or Parquet file in popeval's own schema.
    progress
        A line per stage of each input (read, INSZ scan, codes, validation, checks): a callable
        taking the line, True (standard error), False (quiet) or None (standard error when it is a
        terminal, quiet otherwise).

    Returns
    -------
    IngestReport

    Raises
    ------
    DataValidationError
        An extract breaks the data model (file, row, column, expected, found, hint).
    ConfigError
        ``pseudonymise`` without a usable key.
    """
    t0 = time.perf_counter()
    lines = progress_sink(progress)
    if pseudonymise and key is None:
        from survey.insz import pseudo_key_from_env

        key = pseudo_key_from_env()
    if not _is_connection(db):
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    with connect(db) as con:
        # first every check in the query that writes each table; when a row breaks one, the load is
        # rolled back and done again step by step, whose queries name the first offending row (a
        # table the one-pass query wrote before is written by it again: its rows broke no check)
        written: set[str] = set()
        one_pass = True
        while True:
            con.execute("BEGIN TRANSACTION")
            try:
                sources = _ingest_both(con, dwse, vdab, key if pseudonymise else None, chunk_bytes, dwse_spec, vdab_spec, lines,
                                       one_pass, written)
                con.execute("COMMIT")
                break
            except _StepByStepError as exc:
                con.execute("ROLLBACK")
                if not one_pass:  # a table written in one pass before refused now: every table step by step
                    written.clear()
                one_pass = False
                if lines is not None:
                    lines(f"  {exc}: a row breaks a check; validating step by step to name it ({time.perf_counter() - t0:.1f} s)")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if not _is_connection(db):
            con.execute("CHECKPOINT")
    name = "<connection>" if _is_connection(db) else Path(db).name
    return IngestReport(db=name, sources=sources, seconds=time.perf_counter() - t0)


def _ingest_both(con: duckdb.DuckDBPyConnection, dwse: str | Path, vdab: str | Path, key: bytes | None, chunk_bytes: int,
                 dwse_spec: InputSpec | None, vdab_spec: InputSpec | None, lines: Callable[[str], None] | None,
                 one_pass: bool, written: set[str]) -> tuple[SourceFile, SourceFile]:
    """Ingest both extracts: in one pass each (``one_pass``, or a table in ``written``), else step by step.

    ``written`` collects the tables the one-pass query wrote.
    """
    sources = []
    for path, table, spec in ((dwse, DWSE_APPLICATIONS, dwse_spec), (vdab, VDAB_TRAJECTORIES, vdab_spec)):
        in_one = one_pass or table.name in written
        sources.append(ingest_table(con, path, table, key=key, chunk_bytes=chunk_bytes, spec=spec, progress=lines, one_pass=in_one))
        if in_one:
            written.add(table.name)
    if sources[0].key_format != sources[1].key_format:
        raise DataValidationError(
            "The two extracts use different person-key formats",
            file=Path(vdab),
            column="person_key",
            expected=f"the format of the DWSE keys ({sources[0].key_format})",
            found=sources[1].key_format,
            hint="both agencies must use the same pseudonymisation (same key, same format) for persons to link",
        )
    for derived in ("population", "survey_participants", "linkage_report"):
        con.execute(f"DROP TABLE IF EXISTS {derived}")
    return sources[0], sources[1]


def _is_connection(db: Any) -> bool:
    return not isinstance(db, str | Path)


_INSZ_MACROS = r"""
CREATE OR REPLACE TEMP MACRO popeval_insz_n(n) AS (
    regexp_full_match(n, '[0-9]{11}')
    AND ((97 - TRY_CAST(substr(n, 1, 9) AS BIGINT) % 97) = TRY_CAST(substr(n, 10, 2) AS BIGINT)
         OR (97 - (TRY_CAST(substr(n, 1, 9) AS BIGINT) + 2000000000) % 97) = TRY_CAST(substr(n, 10, 2) AS BIGINT))
    AND TRY_CAST(substr(n, 3, 2) AS INTEGER) <= 52
    AND (TRY_CAST(substr(n, 3, 2) AS INTEGER) % 20 BETWEEN 1 AND 12 OR TRY_CAST(substr(n, 3, 2) AS INTEGER) IN (0, 20, 40)));
CREATE OR REPLACE TEMP MACRO popeval_insz_norm(v) AS regexp_replace(v, '[\s.\-/]', '', 'g');
CREATE OR REPLACE TEMP MACRO popeval_insz(v) AS CASE
    WHEN length(v) BETWEEN 11 AND 20 AND ascii(v) BETWEEN 48 AND 57 AND regexp_full_match(v, '[0-9][0-9.\-/\s]+[0-9]')
    THEN coalesce(popeval_insz_n(popeval_insz_norm(v)), false) ELSE false END;
"""


@dataclass(frozen=True)
class InputPlan:
    """How one input maps onto its data-model table (built by :func:`plan_input`; computes nothing).

    Attributes
    ----------
    table
        The data-model table.
    path
        The file.
    source
        What was read and how (:class:`~analysis.population.sources.SourceInfo`).
    src
        The DuckDB table of mapped values: ``source_row``, ``raw__<variable>`` (the file's value) and
        ``<variable>`` (after extraction and recoding, as text), computed once.
    columns
        popeval variable -> the file's column (``None`` for a derived variable).
    derived
        popeval variable -> how it is derived (e.g. "from nace (NACE section -> DWSE sector)").
    recodes
        popeval variable -> "code table" and/or the name of a built-in rule.
    text
        popeval variable -> its column in ``src`` (after extraction and recoding).
    raw
        popeval variable -> the column in ``src`` of the file's value before recoding.
    date_formats
        date variable -> strptime format used.
    assumed
        Notes on detected settings.
    ignored
        The file's columns not used.
    src_is_view
        ``src`` is a view (the file needed no recoding), not a table.
    """

    table: Table
    path: Path
    spec: InputSpec
    source: SourceInfo
    src: str
    columns: dict[str, str | None]
    derived: dict[str, str]
    recodes: dict[str, str]
    text: dict[str, str]
    raw: dict[str, str]
    date_formats: dict[str, str]
    assumed: tuple[str, ...]
    ignored: tuple[str, ...]
    src_is_view: bool = False

    @property
    def file_table(self) -> str:
        """The DuckDB table holding the file as read."""
        return f"_src_{self.table.name}"


def plan_input(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: Table,
    spec: InputSpec | None = None,
    *,
    key: bytes | None = None,
    one_pass: bool = False,
) -> InputPlan:
    """Read ``path`` into DuckDB and work out the mapping (no validation yet).

    With ``one_pass`` nothing is scanned beyond reading the file: the mapped values are a view (computed
    by the one query that validates and writes the table, :func:`_write_in_one_pass`) that also holds
    each file column's INSZ flag, and a date's format (unless given) is guessed from its first value (the
    validation then confirms it: the detection would have found the same format).

    Raises
    ------
    DataValidationError
        The file cannot be read, or a mapped column is missing (file, column, the columns found, hint).
    """
    from analysis.population.sources import load_source

    path = Path(path)
    spec = spec or InputSpec(file=str(path))
    info = load_source(con, path, spec, table.name)
    src = f"_src_{table.name}"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {src}").fetchall() if r[0] != "source_row"}
    columns, derived = _file_columns(path, table, spec, types)
    expr = _value_expressions(table, spec, columns, types, info.format, key)
    assumed = list(info.assumed)
    # the mapped values, computed once (every check below reads these columns)
    mapped = _create_mapped(con, table, columns, derived, expr, types, info.format, one_pass)
    date_formats = _date_formats(con, table, spec, mapped, (expr.text, {v: types[c] for v, c in columns.items() if c is not None}, src) if one_pass else None)
    dmy = sorted({f for f in date_formats.values() if f != "%Y-%m-%d"})
    if dmy and not spec.date_format:
        assumed.append("dates " + ", ".join(f.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy") for f in dmy))
    text = dict(mapped.text)
    src = _add_derived(con, derived, text, date_formats, mapped.src, one_pass)
    used = {c for c in columns.values() if c is not None}
    ignored = tuple(c for c in types if c not in used)
    return InputPlan(table, path, spec, info, src, columns, derived, expr.recodes, text, mapped.raw, date_formats, tuple(assumed), ignored, mapped.plain)


def _file_columns(path: Path, table: Table, spec: InputSpec, types: dict[str, str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The file's column of each variable (``None``: derived), and how the derived ones are derived.

    Raises
    ------
    DataValidationError
        A variable has no column (the first one named, with every missing one listed).
    """
    columns: dict[str, str | None] = {}
    derived: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for var in table.names:
        colname = spec.columns.get(var, var)
        if colname in types:
            columns[var] = colname
        elif var == "sector" and "sector" not in spec.columns and ("nace" in columns or spec.rules.get("nace") == "nace_bel"):
            columns[var] = None
            derived[var] = "from nace (NACE section -> DWSE sector)"
        elif var == "school_year" and "school_year" not in spec.columns and spec.mapped:
            columns[var] = None
            derived[var] = "from application_date (1 September to 31 August)"
        else:
            missing.append((var, colname))
    if missing:
        raise _missing_columns_error(path, table, spec, list(types), missing)
    return columns, derived


def _missing_columns_error(path: Path, table: Table, spec: InputSpec, cols: list[str], missing: list[tuple[str, str]]) -> DataValidationError:
    """The error for the variables without a column in the file."""
    where = f"admin.{'dwse' if table.name.startswith('dwse') else 'vdab'}"
    var, colname = missing[0]
    mapped = var in spec.columns
    return DataValidationError(
        f"Missing column{'s' if len(missing) > 1 else ''} in {table.name}",
        file=path,
        row=0,
        column=colname,
        expected=("columns " + ", ".join(table.names)) if not spec.mapped else
        "the mapped columns " + ", ".join(f"{v} <- {c}" for v, c in missing),
        found="columns " + ", ".join(cols),
        hint=(f"the extract lacks {', '.join(c for _, c in missing)}; see data_raw/README.md for the data model"
              if not spec.mapped else
              f"the file has no column {colname!r} for {var}; fix [{where}.columns] {var} = \"...\" "
              + ("" if mapped else f"(not mapped, so popeval looked for a column named {var}) ")
              + "or run `popeval check` to see the file's columns"),
    )


@dataclass(frozen=True)
class _Expressions:
    """SQL expressions over the file's columns, per variable read from the file."""

    #: the file's value (after missing values and extraction), as text
    raw: dict[str, str]
    #: the value after recoding (and pseudonymisation of a raw INSZ)
    text: dict[str, str]
    #: variable -> "code table" and/or the name of a built-in rule
    recodes: dict[str, str]
    #: the value before extraction (variables with an ``extract`` pattern)
    pre: dict[str, str]


def _value_expressions(table: Table, spec: InputSpec, columns: dict[str, str | None], types: dict[str, str], fmt: str,
                       key: bytes | None) -> _Expressions:
    """Each variable's value as SQL: read as text, missing values, extraction, code table or rule, keyed hash."""
    from analysis.population.mapping import rule_sql

    raw: dict[str, str] = {}
    text: dict[str, str] = {}
    recodes: dict[str, str] = {}
    pre: dict[str, str] = {}
    missing_values = tuple(spec.missing_values)
    for var in table.names:
        colname = columns[var]
        if colname is None:
            continue
        v = text_sql(colname, types[colname], fmt)
        if missing_values:
            v = f"CASE WHEN {v} IN ({', '.join(lit(m) for m in missing_values)}) THEN NULL ELSE {v} END"
        if var in spec.extract:
            pre[var] = v
            pat = spec.extract[var]
            group = 1 if re.compile(pat).groups else 0
            v = f"NULLIF(regexp_extract({v}, {lit(pat)}, {group}), '')"
        raw[var] = v
        table_codes = spec.codes.get(var)
        rule = spec.rules.get(var)
        out = v
        if rule:
            out = rule_sql(rule, v, spec)
            recodes[var] = rule
        if table_codes:
            cases = " ".join(f"WHEN {lit(k)} THEN {lit(val)}" for k, val in table_codes.items())
            out = f"CASE {v} {cases} ELSE {out if rule else 'NULL'} END"
            recodes[var] = "code table" + (f" + {rule}" if rule else "")
        if table.column(var).pseudo_key and key is not None:
            n = f"popeval_insz_norm({out})"
            h = "substr(sha256((SELECT opad FROM _popeval_pads) || unhex(sha256((SELECT ipad FROM _popeval_pads) || encode(" + n + ")))), 1, 32)"
            out = f"CASE WHEN popeval_insz({out}) THEN {h} ELSE {out} END"
        text[var] = out
    return _Expressions(raw=raw, text=text, recodes=recodes, pre=pre)


@dataclass(frozen=True)
class _Mapped:
    """The DuckDB relation of mapped values and its columns per variable."""

    src: str
    raw: dict[str, str]
    text: dict[str, str]
    #: ``src`` is a view, not a table
    plain: bool


def _create_mapped(con: duckdb.DuckDBPyConnection, table: Table, columns: dict[str, str | None], derived: dict[str, str],
                   expr: _Expressions, types: dict[str, str], fmt: str, one_pass: bool) -> _Mapped:
    """Create ``_map_<table>``: the mapped values, a table (computed once) or, where nothing is recoded, a view."""
    raw, text, pre = expr.raw, expr.text, expr.pre
    src = f"_src_{table.name}"
    mapped_table = f"_map_{table.name}"
    con.execute(_INSZ_MACROS)
    # (a value that is not recoded is stored once: its raw and mapped columns are the same)
    recoded = [v for v in raw if raw[v] != text[v]]
    sel = ", ".join([f"{raw[v]} AS {q('raw__' + v)}" for v in recoded] + [f"{text[v]} AS {q(v)}" for v in text]
                    + [f"{pre[v]} AS {q('pre__' + v)}" for v in pre])
    # plain column references (a file in popeval's own schema) need no copy: a view will do
    plain = not derived and not recoded and not pre and all(text[v] == q(columns[v] or "") for v in text)
    if one_pass:
        # the file columns' INSZ flags ride along (named by position: file and data-model names may clash)
        ftypes = {c: types[c] for c in _insz_columns(types)}
        flags = [f"popeval_insz({text_sql(c, ftypes[c], fmt)}) AS _popeval_iz{i}" for i, c in enumerate(ftypes)]
        con.execute(f"CREATE TEMP VIEW {mapped_table} AS SELECT source_row, {', '.join([sel, *flags])} FROM {src}")
        plain = True
    else:
        con.execute(f"CREATE TEMP {'VIEW' if plain else 'TABLE'} {mapped_table} AS SELECT source_row, {sel} FROM {src}")
    return _Mapped(
        src=mapped_table,
        raw={v: q("raw__" + v) if v in recoded else q(v) for v in raw},
        text={v: q(v) for v in text},
        plain=plain,
    )


def _date_formats(con: duckdb.DuckDBPyConnection, table: Table, spec: InputSpec, mapped: _Mapped,
                  one_pass: tuple[dict[str, str], dict[str, str], str] | None) -> dict[str, str]:
    """The strptime format of each date variable: given format, else ISO, else dd/mm/yyyy when every value has that shape.

    ``one_pass``: the format is guessed from the first value (:func:`_guessed_date_format`), read
    with the variable's expression over the file's table rather than through the mapped view (the
    variables' text expressions, the types of their file columns, the file's table).
    """
    date_formats: dict[str, str] = {}
    for var in table.names:
        if table.column(var).dtype != "date" or var not in mapped.text:
            continue
        if spec.date_format:
            date_formats[var] = spec.date_format
            continue
        if one_pass is not None:
            text, types, src = one_pass
            typed = types[var].upper()
            # a column read as a date or timestamp is written as ISO text (text_sql)
            is_date = typed == "DATE" or typed.startswith("TIMESTAMP")
            date_formats[var] = "%Y-%m-%d" if is_date else _guessed_date_format(con, text[var], src)
            continue
        n_all, n_dmy, n_dmy_dash = con.execute(
            f"SELECT count(t), count(t) FILTER (WHERE regexp_full_match(t, '\\d{{2}}/\\d{{2}}/\\d{{4}}')), "
            f"count(t) FILTER (WHERE regexp_full_match(t, '\\d{{2}}-\\d{{2}}-\\d{{4}}')) FROM (SELECT {mapped.text[var]} AS t FROM {mapped.src})"
        ).fetchall()[0]
        if n_all and n_dmy == n_all:
            date_formats[var] = "%d/%m/%Y"
        elif n_all and n_dmy_dash == n_all:
            date_formats[var] = "%d-%m-%Y"
        else:
            date_formats[var] = "%Y-%m-%d"
    return date_formats


def _guessed_date_format(con: duckdb.DuckDBPyConnection, text: str, src: str) -> str:
    """The date format of the first value (the one-pass ingest's guess; its validation confirms it for every row).

    The format the step-by-step detection (:func:`_date_formats`) would find when every value has
    the first one's shape; when some value has another, that row fails the one-pass validation and
    the step-by-step ingest detects the format from all of them.
    """
    first = con.execute(f"SELECT t FROM (SELECT {text} AS t FROM {src}) WHERE t IS NOT NULL LIMIT 1").fetchall()
    value = str(first[0][0]) if first else ""
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
        return "%d/%m/%Y"
    if re.fullmatch(r"\d{2}-\d{2}-\d{4}", value):
        return "%d-%m-%Y"
    return "%Y-%m-%d"


def _add_derived(con: duckdb.DuckDBPyConnection, derived: dict[str, str], text: dict[str, str], date_formats: dict[str, str],
                 src: str, one_pass: bool) -> str:
    """Add the derived variables (sector from NACE, school year from the date) to ``src`` and ``text``; the relation holding them."""
    from analysis.population.mapping import school_year_from_date_sql, sector_from_nace_sql

    extra = []
    for var in derived:
        if var == "sector":
            extra.append(f"{sector_from_nace_sql(text['nace'])} AS {q(var)}")
        elif var == "school_year":
            extra.append(f"{school_year_from_date_sql(_date_sql(text['application_date'], date_formats['application_date']))} AS {q(var)}")
        text[var] = q(var)
    if extra and one_pass:
        con.execute(f"CREATE TEMP VIEW {src}_derived AS SELECT *, {', '.join(extra)} FROM {src}")
        return f"{src}_derived"
    if extra:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {src} AS SELECT *, {', '.join(extra)} FROM {src}")
    return src


def _insz_columns(types: dict[str, str]) -> list[str]:
    """The file's columns that can hold an INSZ (not dates, timestamps or flags)."""
    return [c for c in types if not (types[c].upper() in ("DATE", "BOOLEAN") or types[c].upper().startswith("TIMESTAMP"))]


def _date_sql(text: str, fmt: str) -> str:
    return f"CAST(TRY_STRPTIME({text}, {lit(fmt)}) AS DATE)"


def scan_insz(con: duckdb.DuckDBPyConnection, plan: InputPlan, key: bytes | None) -> dict[str, int]:
    """Count INSZ-like values in every column of the file; refuse them where they would be ingested.

    Key columns: refused (no key) or pseudonymised (key).  Other mapped columns: refused.  Columns
    that are not ingested: counted (returned) and reported, never stored.  No value is ever shown.
    """
    src = plan.file_table
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {src}").fetchall() if r[0] != "source_row"}
    cols = list(types)
    if not cols:
        return {}
    # dates and flags cannot hold an INSZ; in the macro a CASE lets a cheap length, first-digit and
    # shape test guard the mod-97 check (a plain AND would evaluate the whole check for every value)
    cols = _insz_columns(types)
    if not cols:
        return {}
    hit = ", ".join(
        f"popeval_insz({e}) AS h{i}"
        for i, e in enumerate(text_sql(c, types[c], plan.source.format) for c in cols)
    )
    agg = ", ".join(f"count_if(h{i}), min(CASE WHEN h{i} THEN source_row END)" for i in range(len(cols)))
    res = con.execute(f"SELECT {agg} FROM (SELECT source_row, {hit} FROM {src})").fetchall()[0]
    hits = {c: (int(res[2 * i]), int(res[2 * i + 1] or 0)) for i, c in enumerate(cols)}
    key_cols = {plan.columns[c.name] for c in plan.table.columns if c.pseudo_key}
    used = {v for v in plan.columns.values() if v is not None}
    ignored: dict[str, int] = {}
    for c in cols:
        n, row = hits[c]
        if not n:
            continue
        if c in key_cols:
            if key is None:
                raise DataValidationError(
                    f"An identifier looks like a raw national register number (INSZ) in {plan.table.name}",
                    file=plan.path,
                    row=row,
                    column=c,
                    expected="a pseudonymous key (32 hex digits)" if not plan.spec.mapped else "a pseudonymous key",
                    found=f"an 11-digit value with a valid INSZ check digit ({n} rows); the value is not shown",
                    hint="raw INSZ numbers must not be ingested: pseudonymise them at the source, or run ingest "
                    "with --pseudonymise (pseudonymise = true in [admin]) and POPEVAL_PSEUDO_KEY set",
                )
        elif c in used:
            raise DataValidationError(
                f"A column holds values that look like raw national register numbers (INSZ) in {plan.table.name}",
                file=plan.path,
                row=row,
                column=c,
                expected="no INSZ outside the person key",
                found=f"{n} value(s) with a valid INSZ check digit; the values are not shown",
                hint="map this column to another variable or remove the INSZ at the source; only the person key is pseudonymised",
            )
        else:
            ignored[c] = n
    return ignored


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: Table,
    *,
    key: bytes | None = None,
    chunk_bytes: int = _CHUNK_BYTES,
    spec: InputSpec | None = None,
    progress: Callable[[str], None] | None = None,
    one_pass: bool = False,
) -> SourceFile:
    """Validate one extract and (re)create its table in ``con``, all in DuckDB SQL.

    Parameters
    ----------
    con
        An open DuckDB connection (the caller manages the transaction).
    path
        The extract.
    table
        Its data-model table.
    key
        When given, raw INSZ numbers in ``person_key`` are replaced by HMAC-SHA256 keyed hashes
        (computed in SQL; equal to :func:`survey.insz.pseudonymise`); when None they are refused.
    chunk_bytes
        Kept for compatibility; DuckDB streams the file itself.
    spec
        How the file is read and mapped (:class:`~analysis.population.mapping.InputSpec`); None for
        a CSV or Parquet file in popeval's own schema.
    progress
        Called with a line per stage.
    one_pass
        Validate, scan for INSZ and write the table in one query (:func:`_write_in_one_pass`);
        a row that breaks a check raises an internal exception (the caller rolls back and ingests
        step by step, which names the row).  Used by :func:`ingest`.

    Returns
    -------
    SourceFile
    """
    del chunk_bytes
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()

    def stage(msg: str) -> None:
        say(f"  {table.name}: {msg} ({time.perf_counter() - t0:.1f} s)")

    # the file's hash is computed beside the queries (hashlib releases the GIL; DuckDB too)
    from concurrent.futures import ThreadPoolExecutor

    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="popeval-sha256")
    sha_future = hasher.submit(sha256_file, path) if Path(path).is_file() else None
    if key is not None:
        from survey.insz import hmac_pads

        ipad, opad = hmac_pads(key)
        con.execute("CREATE OR REPLACE TEMP TABLE _popeval_pads AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", [ipad, opad])
    try:
        return _ingest_table(con, path, table, key, spec, stage, sha_future, one_pass)
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)


class _StepByStepError(Exception):
    """The one-pass ingest found a row that breaks a check: the step-by-step ingest names it."""


def _ingest_table(con: duckdb.DuckDBPyConnection, path: str | Path, table: Table, key: bytes | None, spec: InputSpec | None,
                  stage: Callable[[str], None], sha_future: Any, one_pass: bool = False) -> SourceFile:
    try:
        plan = plan_input(con, path, table, spec, key=key, one_pass=one_pass)
        stage(f"read {plan.source.rows:,} rows from {plan.path.name} ({plan.source.format}) and mapped")
        path = plan.path
        if plan.source.rows == 0:
            raise DataValidationError(
                f"The extract for {table.name} has no data rows",
                file=path,
                row=1,
                expected="at least one data row after the header",
                found="an empty table",
                hint="check the export: the extract seems to hold only its header",
            )
        key_format = ""
        if one_pass:
            pseudonymised, insz_ignored, key_format = _write_in_one_pass(con, plan, key)
            stage("every column scanned for INSZ (in the pass that writes the table)")
            stage("codes mapped and every value validated")
        else:
            insz_ignored = scan_insz(con, plan, key)
            stage("every column scanned for INSZ")
            pseudonymised = 0
            if key is not None:
                kc = next(c.name for c in table.columns if c.pseudo_key)
                pseudonymised = int(con.execute(f"SELECT count(*) FROM {plan.src} WHERE popeval_insz({plan.raw[kc]})").fetchall()[0][0])
            check_codes(con, plan)
            select = validate_plan(con, plan)
            _write_table(con, table, f"SELECT source_row, {select} FROM {plan.src}")
            stage("codes mapped and every value validated")
    finally:
        import contextlib

        import duckdb

        with contextlib.suppress(duckdb.Error):  # an aborted transaction is rolled back by the caller
            con.execute("DROP TABLE IF EXISTS _popeval_pads")
    con.execute(f"DROP {'VIEW' if plan.src_is_view else 'TABLE'} IF EXISTS {plan.src}")
    con.execute(f"DROP VIEW IF EXISTS _map_{table.name}")
    from analysis.population.sources import drop_source

    drop_source(con, table.name)
    _check_unique_key(con, table, path)
    key_format = key_format or _check_key_format(con, plan)
    warnings = cross_checks(con, plan)
    stage("keys unique, checks across fields done")
    sha = sha_future.result() if sha_future is not None else sha256_file(path)
    rows = plan.source.rows
    con.execute(
        """CREATE TABLE IF NOT EXISTS ingest_sources (table_name VARCHAR PRIMARY KEY, file_name VARCHAR,
        sha256 VARCHAR, n_rows BIGINT, pseudonymised BIGINT, ignored_columns VARCHAR, ingested_at TIMESTAMPTZ)"""
    )
    con.execute("DELETE FROM ingest_sources WHERE table_name = ?", [table.name])
    con.execute(
        "INSERT INTO ingest_sources VALUES (?, ?, ?, ?, ?, ?, now())",
        [table.name, path.name, sha, rows, pseudonymised, ",".join(plan.ignored)],
    )
    con.execute("CREATE TABLE IF NOT EXISTS ingest_checks (table_name VARCHAR, check_name VARCHAR, description VARCHAR, n_rows BIGINT, level VARCHAR)")
    con.execute("DELETE FROM ingest_checks WHERE table_name = ?", [table.name])
    for name, desc, n in warnings:
        con.execute("INSERT INTO ingest_checks VALUES (?, ?, ?, ?, 'warning')", [table.name, name, desc, n])
    for c, n in insz_ignored.items():
        con.execute("INSERT INTO ingest_checks VALUES (?, ?, ?, ?, 'warning')",
                    [table.name, "insz_in_ignored_column", f"column {c} (not ingested) holds INSZ-like values", n])
    return SourceFile(
        table.name, path.name, sha, rows, pseudonymised, plan.ignored,
        format=plan.source.format, assumed=plan.assumed, key_format=key_format,
        warnings=tuple((name, n) for name, _, n in warnings) + tuple((f"insz_in_ignored_column:{c}", n) for c, n in insz_ignored.items()),
    )


def _write_in_one_pass(con: duckdb.DuckDBPyConnection, plan: InputPlan, key: bytes | None) -> tuple[int, dict[str, int], str]:
    """Write the table, validating every value and scanning every column for INSZ, in one query.

    Every check of the step-by-step ingest (:func:`scan_insz`, :func:`check_codes`,
    :func:`validate_plan`) is evaluated in the query that writes the table: a row breaking any of
    them is flagged, and the flags and INSZ counts are read back from the written table (one scan of
    a few BOOLEAN columns, which are then dropped).  A flagged row raises :class:`_StepByStepError`: the
    caller rolls back and runs the step-by-step ingest, whose queries name the first offending row.
    Returns the pseudonymised key values, the INSZ-like values per ignored column, and the person
    keys' format when the checks imply it (a key pattern of ``[0-9a-f]{n}`` that every row matched:
    lower-case hex of ``n`` characters; otherwise "" and :func:`_check_key_format` queries it).
    """
    table = plan.table
    checks = column_checks(table, plan.text, options=_check_options(plan))
    bad = [c.cond for c in checks.checks]
    for var in plan.recodes:  # codes seen but not mapped
        bad.append(f"({plan.raw[var]}) IS NOT NULL AND ({plan.text[var]}) IS NULL")
    for var in plan.spec.extract:  # an extraction that found nothing
        bad.append(f"{q('pre__' + var)} IS NOT NULL AND {plan.raw[var]} IS NULL")
    # INSZ in the file: refused in the key (without a key to pseudonymise it) and in every other
    # mapped column, counted in a column that is not ingested
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {plan.file_table}").fetchall() if r[0] != "source_row"}
    key_cols = {plan.columns[c.name] for c in table.columns if c.pseudo_key}
    used = {v for v in plan.columns.values() if v is not None}
    ignored: list[tuple[str, str]] = []
    for i, c in enumerate(_insz_columns(types)):
        if c in key_cols:
            if key is None:
                bad.append(f"_popeval_iz{i}")
        elif c in used:
            bad.append(f"_popeval_iz{i}")
        else:
            ignored.append((c, f"_popeval_iz{i}"))
    flags = [f"coalesce({' OR '.join(f'({b})' for b in bad) or 'false'}, false) AS _popeval_bad"]
    if key is not None:
        kc = next(c.name for c in table.columns if c.pseudo_key)
        flags.append(f"coalesce(popeval_insz({plan.raw[kc]}), false) AS _popeval_pseudo")
    flags += [f"coalesce({flag}, false) AS _popeval_ig{j}" for j, (_, flag) in enumerate(ignored)]
    names = [f.rsplit(" AS ", 1)[1] for f in flags]
    _write_table(con, table, f"SELECT source_row, {checks.select_helped}, {', '.join(flags)} FROM {checks.relation(plan.src)}", names)
    got = con.execute(f"SELECT {', '.join(f'count_if({n})' for n in names)} FROM {table.name}").fetchall()[0]
    if got[0]:
        raise _StepByStepError(table.name)
    for n in names:
        con.execute(f"ALTER TABLE {table.name} DROP COLUMN {n}")
    pseudonymised = int(got[1]) if key is not None else 0
    counts = got[2:] if key is not None else got[1:]
    kc = next(c.name for c in table.columns if c.pseudo_key)
    key_format = ""
    for check in checks.checks:
        m = re.fullmatch(r"\[0-9a-f\]\{(\d+)\}", check.pattern or "") if check.column.name == kc else None
        if m and not table.column(kc).nullable:
            key_format = f"lower-case hex, {int(m.group(1))} characters"
    return pseudonymised, {c: int(n) for (c, _), n in zip(ignored, counts, strict=True) if n}, key_format


def _write_table(con: duckdb.DuckDBPyConnection, table: Table, select: str, flags: Sequence[str] = ()) -> None:
    """(Re)create ``table`` from ``select`` (``source_row``, the data model's columns, BOOLEAN ``flags``).

    The identifiers (the key and the person key: nearly one value per row) are stored uncompressed:
    a dictionary gains them little room and costs most of the writing time.  Rows stay in the
    order of ``select`` (DuckDB preserves insertion order; no sort is needed).
    """
    ids = set(table.key) | {c.name for c in table.columns if c.pseudo_key}
    cols = ["source_row BIGINT"] + [
        f"{q(c.name)} {_SQL_TYPES[c.dtype]}" + (" USING COMPRESSION uncompressed" if c.name in ids and c.dtype == "str" else "")
        for c in table.columns
    ] + [f"{f} BOOLEAN" for f in flags]
    con.execute(f"CREATE OR REPLACE TABLE {table.name} ({', '.join(cols)})")
    con.execute(f"INSERT INTO {table.name} {select}")


def _check_options(plan: InputPlan) -> CheckOptions:
    spec = plan.spec
    return CheckOptions(
        where=f"admin.{'dwse' if plan.table.name.startswith('dwse') else 'vdab'}", mapped=spec.mapped, patterns=spec.patterns,
        true_values=tuple(spec.true_values), false_values=tuple(spec.false_values), decimal=plan.source.settings.get("decimal", "."),
        date_format=spec.date_format, date_formats=plan.date_formats,
    )


def check_codes(con: duckdb.DuckDBPyConnection, plan: InputPlan) -> None:
    """Every code seen and not mapped is an error listing the codes with counts."""
    where = f"admin.{'dwse' if plan.table.name.startswith('dwse') else 'vdab'}"
    for var in plan.recodes:
        raw, out = plan.raw[var], plan.text[var]
        cond = f"({raw}) IS NOT NULL AND ({out}) IS NULL"
        n = int(con.execute(f"SELECT count(*) FROM {plan.src} WHERE {cond}").fetchall()[0][0])
        if not n:
            continue
        found, row, _ = codes_found(con, plan.src, raw, cond)
        col = plan.table.column(var)
        target = ", ".join(vocabulary_of(col)) if col.vocabulary else "popeval's codes"
        rule = plan.spec.rules.get(var)
        raise DataValidationError(
            f"Unmapped codes in {plan.table.name}",
            file=plan.path,
            row=row,
            column=plan.columns[var],
            expected=f"codes of [{where}.codes.{var}]" + (f" or values rule {rule} understands" if rule else "") + f" (popeval's codes: {target})",
            found=found,
            hint=f"add every code to [{where}.codes.{var}], e.g. {found.split(': ', 1)[1].split(' (')[0]} = \"{vocabulary_of(col)[0] if col.vocabulary else '...'}\"",
        )
    for var, pat in plan.spec.extract.items():
        pre = q("pre__" + var)
        cond = f"{pre} IS NOT NULL AND {plan.raw[var]} IS NULL"
        n, row, val = first_row(con, plan.src, cond, pre)
        if n:
            raise DataValidationError(
                f"The extraction for {var} found nothing in {plan.table.name}",
                file=plan.path,
                row=row,
                column=plan.columns[var],
                expected=f"values containing {pat}",
                found=found_text(val, n),
                hint=f"check [{where}.extract] {var} = {pat!r} against the column's values (`popeval check` lists them)",
            )


def validate_plan(con: duckdb.DuckDBPyConnection, plan: InputPlan) -> str:
    """Check every variable of the plan in SQL (:func:`survey.sqlcheck.check_columns`); return the typed SELECT list."""
    return check_columns(con, plan.src, plan.table, plan.path, plan.text, columns=plan.columns, options=_check_options(plan))




def _check_key_format(con: duckdb.DuckDBPyConnection, plan: InputPlan) -> str:
    """The person keys' format (length and characters); more than one format in a file is an error."""
    kc = next(c.name for c in plan.table.columns if c.pseudo_key)
    # grouped by a small integer and the length (no text built per row); named afterwards
    kinds = ("lower-case hex", "upper-case hex", "digits", "letters and digits", "other characters")
    shape = (f"CASE WHEN regexp_full_match({q(kc)}, '[0-9a-f]+') THEN 0 WHEN regexp_full_match({q(kc)}, '[0-9A-F]+') "
             f"THEN 1 WHEN regexp_full_match({q(kc)}, '[0-9]+') THEN 2 WHEN regexp_full_match({q(kc)}, '[A-Za-z0-9]+') "
             "THEN 3 ELSE 4 END")
    got = con.execute(
        f"SELECT {shape} AS k, length({q(kc)}) AS len, count(*) AS n, min(source_row) FROM {plan.table.name} GROUP BY ALL"
    ).fetchall()
    rows = sorted(((f"{kinds[int(k)]}, {int(ln)} characters", int(n), int(r)) for k, ln, n, r in got), key=lambda x: (-x[1], x[0]))
    if len(rows) > 1:
        raise DataValidationError(
            f"Person keys of more than one format in {plan.table.name}",
            file=plan.path,
            row=int(rows[1][2]),
            column=plan.columns.get(kc) or kc,
            expected="one consistent key format in every row (any format: the agencies' pseudonyms are used as they are)",
            found="; ".join(f"{s}: {n} rows" for s, n, _ in rows[:5]),
            hint="ask the data owner for one key format; keys in different formats cannot be linked",
        )
    return str(rows[0][0]) if rows else ""


def cross_checks(con: duckdb.DuckDBPyConnection, plan: InputPlan) -> list[tuple[str, str, int]]:
    """Checks across fields (:data:`~analysis.population.mapping.CROSS_CHECKS`): warnings, or an error above the share."""
    from analysis.population.mapping import (
        CROSS_CHECKS,
        school_year_from_date_sql,
        sector_from_nace_sql,
    )

    t = plan.table.name
    conds: dict[str, tuple[str, str]] = {}
    if t == "dwse_applications":
        conds["date_outside_school_year"] = (f"school_year <> {school_year_from_date_sql('application_date')}", "application_date")
        conds["impossible_age"] = ("year(application_date) - birth_year NOT BETWEEN 16 AND 75", "birth_year")
        if "sector" not in plan.derived:
            conds["nace_sector_mismatch"] = (f"sector <> ({sector_from_nace_sql('nace')})", "sector")
    elif t == "vdab_trajectories":
        conds["end_before_start"] = ("end_date < start_date", "end_date")
    out: list[tuple[str, str, int]] = []
    total = plan.source.rows
    # every check counted (with its first row) in one scan
    agg = ", ".join(f"count_if(coalesce({cond}, false)), min(source_row) FILTER (WHERE {cond})" for cond, _ in conds.values())
    res = con.execute(f"SELECT {agg} FROM {t}").fetchall()[0] if conds else ()
    for i, (name, (_cond, col)) in enumerate(conds.items()):
        n, row = int(res[2 * i]), int(res[2 * i + 1] or 0)
        desc = CROSS_CHECKS[t][name]
        if n and n > plan.spec.max_inconsistent_share * total:
            raise DataValidationError(
                f"Inconsistent fields in {t}: {desc}",
                file=plan.path,
                row=row,
                column=plan.columns.get(col) or col,
                expected=f"at most {plan.spec.max_inconsistent_share:.1%} of the rows (max_inconsistent_share)",
                found=f"{n} of {total} rows ({n / total:.1%})",
                hint="check the mapping of these columns (`popeval check`), correct the extract at the source, "
                "or raise max_inconsistent_share for this input if the inconsistencies are known",
            )
        out.append((name, desc, n))
    return out
def _check_unique_key(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> None:
    check_unique_key(con, table.name, table, path)
