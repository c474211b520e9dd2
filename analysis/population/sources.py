"""Read one input file into a DuckDB table, as it is, with its file row numbers.

Formats: CSV (DuckDB's ``read_csv`` with the study's or detected options), Parquet (``read_parquet``),
SPSS ``.sav`` and Stata ``.dta`` (pyreadstat, value labels applied by default, handed to DuckDB as
Arrow) and Excel ``.xlsx`` (openpyxl in read-only mode, one sheet, a header row that need not be the
first).  The result is a table ``_src_<name>`` with ``source_row`` (the 1-based data row of the file)
and the file's own columns and types; nothing is recoded here (see :mod:`analysis.population.mapping`).

When a CSV setting is not given it is detected and :class:`SourceInfo` says what was assumed (for
example "looks ;-separated, Latin-1, decimal comma").  CSV parse errors never echo a line of the file
(DuckDB's messages quote the offending line; a raw INSZ might be on it): only the line number and the
kind of problem are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    import duckdb

    from analysis.population.mapping import InputSpec

__all__ = ["FORMATS", "SourceInfo", "detect_format", "drop_source", "load_source"]

#: Supported input formats (``format`` in the study TOML; by default from the file extension).
FORMATS = ("csv", "parquet", "sav", "dta", "xlsx")
_EXT = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".sav": "sav", ".zsav": "sav", ".dta": "dta", ".xlsx": "xlsx"}


@dataclass(frozen=True)
class SourceInfo:
    """What was read and how.

    Attributes
    ----------
    format
        The file format.
    settings
        The reading settings actually used (given or detected), e.g. ``{"delimiter": ";"}``.
    assumed
        Human-readable notes on detected settings ("looks ;-separated, Latin-1").
    columns
        The file's columns in order.
    rows
        Data rows.
    """

    format: str
    settings: dict[str, Any]
    assumed: tuple[str, ...]
    columns: tuple[str, ...]
    rows: int


def detect_format(path: Path, given: str = "") -> str:
    """The format of ``path``: ``given`` when set, else from the extension."""
    if given:
        return given
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise DataValidationError(
            "Unsupported file type",
            file=path,
            expected="one of .csv, .parquet, .sav, .dta, .xlsx (or set format = ... for the input)",
            found=path.suffix or "no extension",
            hint="export the extract in one of these formats, or give its format in the study TOML",
        )
    return fmt


def load_source(con: duckdb.DuckDBPyConnection, path: Path, spec: InputSpec, name: str) -> SourceInfo:
    """Create ``_src_<name>`` in ``con`` from ``path`` read with ``spec``'s settings."""
    if not path.is_file():
        raise DataValidationError(
            f"Input file for {name} not found",
            file=path,
            expected="an existing .csv, .parquet, .sav, .dta or .xlsx file",
            found="no such file",
            hint="check the path given to `popeval ingest` or in the study TOML",
        )
    fmt = detect_format(path, spec.format)
    table = f"_src_{name}"
    if fmt == "csv":
        settings, assumed = _csv_settings(path, spec)
        _load_csv(con, path, table, settings)
    elif fmt == "parquet":
        settings, assumed = {}, []
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet(?)", [str(path)])
        except Exception as exc:  # duckdb.Error; the message names the file only
            raise DataValidationError(
                f"The Parquet file for {name} could not be read",
                file=path,
                expected="a valid Parquet file",
                found=type(exc).__name__,
                hint="re-export the extract",
            ) from None
    elif fmt in ("sav", "dta"):
        settings, assumed = {"value_labels": spec.value_labels}, []
        _load_stat(con, table, path, fmt, spec.value_labels, name)
    else:
        arrow, sheet, header_row, notes = _read_xlsx(path, spec, name)
        settings, assumed = {"sheet": sheet, "header_row": header_row}, notes
        _register_arrow(con, table, arrow)
    # the file's data stay in {table}_data; {table} is a view adding source_row: a freshly created
    # table's row ids follow the file's row order (consecutive; inside a transaction they start at a
    # large offset), so no copy of the data is needed
    con.execute(f"DROP TABLE IF EXISTS {table}_data")
    con.execute(f"ALTER TABLE {table} RENAME TO {table}_data")
    for c in [r[0] for r in con.execute(f"DESCRIBE {table}_data").fetchall()]:
        if c.startswith("\ufeff"):
            new = c.lstrip("\ufeff").replace('"', '""')
            con.execute(f'ALTER TABLE {table}_data RENAME "{c.replace(chr(34), chr(34) * 2)}" TO "{new}"')
    offset = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {table}_data").fetchall()[0][0]
    con.execute(f"CREATE TEMP VIEW {table} AS SELECT CAST(rowid - {int(offset)} + 1 AS BIGINT) AS source_row, * FROM {table}_data")
    cols = tuple(r[0] for r in con.execute(f"DESCRIBE {table}").fetchall())[1:]
    rows = int(con.execute(f"SELECT count(*) FROM {table}_data").fetchall()[0][0])
    return SourceInfo(fmt, settings, tuple(assumed), cols, rows)


def drop_source(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop what :func:`load_source` created for ``name``."""
    con.execute(f"DROP VIEW IF EXISTS _src_{name}")
    con.execute(f"DROP TABLE IF EXISTS _src_{name}_data")


def _register_arrow(con: duckdb.DuckDBPyConnection, table: str, arrow: Any) -> None:
    con.register("_popeval_arrow", arrow)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _popeval_arrow")
    finally:
        con.unregister("_popeval_arrow")


# --------------------------------------------------------------------------- CSV


def _csv_settings(path: Path, spec: InputSpec) -> tuple[dict[str, Any], list[str]]:
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    assumed: list[str] = []
    encoding = spec.encoding
    if not encoding:
        try:
            head.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # a cut multi-byte character at the end of the sample is still UTF-8
            encoding = "utf-8" if exc.start >= len(head) - 3 else "latin-1"
        if encoding == "latin-1":
            assumed.append("Latin-1 (not valid UTF-8)")
    text = head.decode("latin-1" if encoding.lower().replace("_", "-") in ("latin-1", "latin1", "iso-8859-1", "cp1252") else "utf-8", errors="replace")
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    skip = max(spec.header_row - 1, 0)
    header = lines[skip] if len(lines) > skip else ""
    delimiter = spec.delimiter
    if not delimiter:
        counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
        if delimiter != ",":
            assumed.append(f"{'tab' if delimiter == chr(9) else delimiter}-separated")
    decimal = spec.decimal
    if not decimal:
        body = "\n".join(lines[skip + 1 : skip + 200])
        decimal = "," if delimiter != "," and re.search(r"(^|[" + re.escape(delimiter) + r"])-?\d+,\d+($|[" + re.escape(delimiter) + r"])", body, re.M) else "."
        if decimal == ",":
            assumed.append("decimal comma")
    if "\r\n" in text:
        assumed.append("CRLF line ends")
    settings = {"encoding": encoding, "delimiter": delimiter, "decimal": decimal, "header_row": skip + 1}
    return settings, assumed


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, table: str, settings: dict[str, Any]) -> None:
    enc = str(settings["encoding"]).lower().replace("_", "-")
    enc = {"latin1": "latin-1", "iso-8859-1": "latin-1", "cp1252": "latin-1", "utf8": "utf-8", "utf-8-sig": "utf-8"}.get(enc, enc)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv(?, header = true, all_varchar = true,
            delim = ?, quote = '"', escape = '"', encoding = ?, skip = ?, nullstr = '', allow_quoted_nulls = false,
            strict_mode = true, null_padding = false)""",
            [str(path), settings["delimiter"], enc, int(settings["header_row"]) - 1],
        )
    except Exception as exc:  # duckdb.Error: keep the kind and line, never the quoted line itself
        msg = str(exc)
        line = re.search(r"[Ll]ine:? (\d+)", msg)
        kind = msg.split("\n", 1)[0]
        kind = re.sub(r"^[A-Za-z ]*Error: ", "", kind)
        kind = re.sub(r"\d[\d.\-\s/]{5,}\d", "<number>", kind)[:160]
        raise DataValidationError(
            "The CSV file could not be parsed",
            file=path,
            row=None,
            expected=f"{'tab' if settings['delimiter'] == chr(9) else repr(settings['delimiter'])}-separated, {settings['encoding']}, "
            "one header row, the same number of fields on every row",
            found=(f"a problem at line {line.group(1)}: " if line else "") + kind,
            hint="re-export the extract; check for unquoted separators or line breaks inside values, "
            "or set delimiter/encoding for this input in the study TOML (the line itself is not shown)",
        ) from None


# --------------------------------------------------------------------------- SPSS / Stata


def _load_stat(con: duckdb.DuckDBPyConnection, table: str, path: Path, fmt: str, value_labels: bool, name: str, chunk_rows: int = 500_000) -> None:
    """Read an SPSS/Stata file in chunks of rows (bounded memory) into ``table``."""
    import pyarrow as pa
    import pyreadstat

    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    first = True
    try:
        chunks = pyreadstat.read_file_in_chunks(reader, str(path), chunksize=chunk_rows, apply_value_formats=value_labels, formats_as_category=False)
        for df, _meta in chunks:
            arrow = pa.Table.from_pandas(df, preserve_index=False)
            if first:
                _register_arrow(con, table, arrow)
                first = False
            else:
                con.register("_popeval_arrow", arrow)
                try:
                    con.execute(f"INSERT INTO {table} SELECT * FROM _popeval_arrow")
                finally:
                    con.unregister("_popeval_arrow")
    except DataValidationError:
        raise
    except Exception as exc:  # pyreadstat.ReadstatError and friends; the message may quote data
        raise DataValidationError(
            f"The {fmt.upper()} file for {name} could not be read",
            file=path,
            expected=f"a valid {'SPSS .sav' if fmt == 'sav' else 'Stata .dta'} file",
            found=type(exc).__name__,
            hint="re-export the extract",
        ) from None
    if first:  # no rows at all: the columns still come from the file's metadata
        df, _meta = reader(str(path), metadataonly=True)
        _register_arrow(con, table, pa.Table.from_pandas(df, preserve_index=False))


# --------------------------------------------------------------------------- Excel


def _read_xlsx(path: Path, spec: InputSpec, name: str) -> tuple[Any, str, int, list[str]]:
    import openpyxl
    import pyarrow as pa

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException
        raise DataValidationError(
            f"The Excel file for {name} could not be read",
            file=path,
            expected="a valid .xlsx workbook",
            found=type(exc).__name__,
            hint="save the file again as .xlsx (Excel 2007 or later)",
        ) from None
    notes: list[str] = []
    try:
        sheet = _xlsx_sheet(wb.sheetnames, path, spec, name, notes)
        rows = wb[sheet].iter_rows(values_only=True)
        header, header_row = _xlsx_header(rows, spec.header_row, notes)
        names = [str(h).strip() if h is not None else f"column{j + 1}" for j, h in enumerate(header)]
        data = list(rows)  # the rows after the header
    finally:
        wb.close()
    cols = [_xlsx_column([r[j] if j < len(r) else None for r in data]) for j in range(len(names))]
    # trailing blank rows of a sheet are not data
    n = len(data)
    while n and all(data[n - 1][j] is None for j in range(min(len(names), len(data[n - 1])))):
        n -= 1
    arrow = pa.table(cols, names=names).slice(0, n)
    return arrow, sheet, header_row, notes


def _xlsx_sheet(sheets: list[str], path: Path, spec: InputSpec, name: str, notes: list[str]) -> str:
    """The sheet to read: the one named in the spec (which must exist), else the first (noted if there are more)."""
    if spec.sheet:
        if spec.sheet not in sheets:
            raise DataValidationError(
                f"The Excel file for {name} has no sheet {spec.sheet!r}",
                file=path,
                param="sheet",
                expected=f"one of the sheets {', '.join(map(repr, sheets))}",
                found=repr(spec.sheet),
                hint="set sheet = ... for this input in the study TOML",
            )
        return spec.sheet
    if len(sheets) > 1:
        notes.append(f"sheet {sheets[0]!r} (the first of {len(sheets)})")
    return sheets[0]


def _xlsx_header(rows: Iterator[tuple[Any, ...]], header_row: int, notes: list[str]) -> tuple[tuple[Any, ...], int]:
    """Read ``rows`` up to the header (the given row, else the first with two values): the header and its row number."""
    header: tuple[Any, ...] = ()
    i = 0
    for i, r in enumerate(rows, start=1):  # only up to the header: skip title and blank rows
        if header_row and i < header_row:
            continue
        if not header_row and (r is None or sum(v is not None and str(v).strip() != "" for v in r) < 2):
            continue
        header = r
        break
    if not header_row:
        header_row = i
        if i > 1:
            notes.append(f"header in row {i}")
    return header, header_row


def _xlsx_column(vals: list[Any]) -> Any:
    """One sheet column as an Arrow array: dates, integers, numbers, else text."""
    import datetime as dt

    import pyarrow as pa

    kinds = {type(v) for v in vals if v is not None}
    if kinds and kinds <= {dt.datetime, dt.date}:
        return pa.array([v.date() if isinstance(v, dt.datetime) else v for v in vals], type=pa.date32())
    if kinds and kinds <= {int, bool} and bool not in kinds:
        return pa.array(vals, type=pa.int64())
    if kinds and kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in vals], type=pa.float64())
    return pa.array([None if v is None else _xlsx_str(v) for v in vals], type=pa.string())


def _xlsx_str(v: Any) -> str:
    import datetime as dt

    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
