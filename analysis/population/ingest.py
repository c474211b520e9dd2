"""Ingest the DWSE and VDAB extracts into the study's DuckDB database.

Each extract is read in chunks (Arrow's streaming CSV reader or Parquet row batches), every chunk is
validated with :func:`survey.validate.validate_frame` against the data model
(:data:`~survey.datamodel.DWSE_APPLICATIONS`, :data:`~survey.datamodel.VDAB_TRAJECTORIES`), and only
validated, typed rows are written to DuckDB.  Row numbers in errors are rows of the whole file (the
header is row 0).  Keys must be unique across the whole file; that check runs in DuckDB after the load.

Raw INSZ numbers never reach the database: by default an extract that carries them is refused (the
error names the file, row and column but never shows the value); with ``pseudonymise=True`` they are
replaced, chunk by chunk and before anything is written, by ``HMAC-SHA256(POPEVAL_PSEUDO_KEY, INSZ)``
(:func:`survey.insz.pseudonymise`).  The load runs in one transaction: a failed ingest leaves the
database as it was.

Tables written
--------------
``dwse_applications``, ``vdab_trajectories``
    The data model's columns (categories as text, dates as DATE, flags as BOOLEAN) plus
    ``source_row``, the 1-based row in the extract.
``ingest_sources``
    One row per extract: table, file name, SHA-256 of the file, rows, pseudonymised values, ignored
    columns, time of ingest.  The population margins are versioned from these hashes.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.population._db import DEFAULT_DB, connect
from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES, Table
from survey.errors import DataValidationError
from survey.hashing import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    import duckdb
    import pandas as pd

__all__ = ["DEFAULT_DB", "IngestReport", "SourceFile", "ingest", "ingest_table"]

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
    """

    table: str
    name: str
    sha256: str
    rows: int
    pseudonymised: int
    ignored_columns: tuple[str, ...]


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
        Approximate size of the CSV chunks validated at a time (memory use scales with it).

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
    if pseudonymise and key is None:
        from survey.insz import pseudo_key_from_env

        key = pseudo_key_from_env()
    if not _is_connection(db):
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    with connect(db) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            sources = (
                ingest_table(con, dwse, DWSE_APPLICATIONS, key=key if pseudonymise else None, chunk_bytes=chunk_bytes),
                ingest_table(con, vdab, VDAB_TRAJECTORIES, key=key if pseudonymise else None, chunk_bytes=chunk_bytes),
            )
            for derived in ("population", "survey_participants", "linkage_report"):
                con.execute(f"DROP TABLE IF EXISTS {derived}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if not _is_connection(db):
            con.execute("CHECKPOINT")
    name = "<connection>" if _is_connection(db) else Path(db).name
    return IngestReport(db=name, sources=sources, seconds=time.perf_counter() - t0)


def _is_connection(db: Any) -> bool:
    return not isinstance(db, str | Path)


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: Table,
    *,
    key: bytes | None = None,
    chunk_bytes: int = _CHUNK_BYTES,
) -> SourceFile:
    """Validate one extract chunk by chunk and (re)create its table in ``con``.

    Parameters
    ----------
    con
        An open DuckDB connection (the caller manages the transaction).
    path
        The extract.
    table
        Its data-model table.
    key
        When given, raw INSZ numbers in ``person_key`` are replaced by HMAC-SHA256 keyed hashes;
        when None they are refused.
    chunk_bytes
        Approximate CSV chunk size.

    Returns
    -------
    SourceFile
    """
    import numpy as np
    import pyarrow as pa

    path = Path(path)
    _check_file(path, table)
    cols = ", ".join(f'"{c.name}" {_SQL_TYPES[c.dtype]}' for c in table.columns)
    con.execute(f"CREATE OR REPLACE TABLE {table.name} (source_row BIGINT NOT NULL, {cols})")
    select = ", ".join(
        ["source_row"] + [f'CAST("{c.name}" AS {_SQL_TYPES[c.dtype]}) AS "{c.name}"' for c in table.columns]
    )
    offset = 0
    pseudonymised = 0
    ignored: tuple[str, ...] = ()
    for raw in _chunks(path, table, chunk_bytes):
        n = len(raw)
        if key is not None and "person_key" in raw.columns:
            raw, k = _pseudonymise_chunk(raw, key)
            pseudonymised += k
        typed = _validate_chunk(raw, table, path, offset)
        ignored = tuple(typed.attrs.get("ignored_columns", ()))
        typed.insert(0, "source_row", np.arange(offset + 1, offset + n + 1, dtype=np.int64))
        arrow = pa.Table.from_pandas(typed, preserve_index=False)
        con.register("_popeval_chunk", arrow)
        try:
            con.execute(f"INSERT INTO {table.name} SELECT {select} FROM _popeval_chunk")
        finally:
            con.unregister("_popeval_chunk")
        offset += n
    if offset == 0:
        raise DataValidationError(
            f"The extract for {table.name} has no data rows",
            file=path,
            row=1,
            expected="at least one data row after the header",
            found="an empty table",
            hint="check the export: the extract seems to hold only its header",
        )
    _check_unique_key(con, table, path)
    sha = sha256_file(path)
    con.execute(
        """CREATE TABLE IF NOT EXISTS ingest_sources (table_name VARCHAR PRIMARY KEY, file_name VARCHAR,
        sha256 VARCHAR, n_rows BIGINT, pseudonymised BIGINT, ignored_columns VARCHAR, ingested_at TIMESTAMPTZ)"""
    )
    con.execute("DELETE FROM ingest_sources WHERE table_name = ?", [table.name])
    con.execute(
        "INSERT INTO ingest_sources VALUES (?, ?, ?, ?, ?, ?, now())",
        [table.name, path.name, sha, offset, pseudonymised, ",".join(ignored)],
    )
    return SourceFile(table.name, path.name, sha, offset, pseudonymised, ignored)


def _check_file(path: Path, table: Table) -> None:
    if not path.is_file():
        raise DataValidationError(
            f"Input file for {table.name} not found",
            file=path,
            expected="an existing .csv or .parquet file",
            found="no such file",
            hint="check the path given to `popeval ingest`",
        )
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DataValidationError(
            f"Unsupported file type for {table.name}",
            file=path,
            expected=".csv or .parquet",
            found=path.suffix or "no extension",
            hint="export the extract as CSV (UTF-8, comma-separated, with a header) or Parquet",
        )


def _chunks(path: Path, table: Table, chunk_bytes: int) -> Iterator[pd.DataFrame]:
    """Raw chunks of the file: strings for CSV, the stored types for Parquet."""
    import pandas as pd
    import pyarrow as pa

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataValidationError(
                f"The Parquet file for {table.name} could not be read",
                file=path,
                expected="a valid Parquet file",
                found=str(exc).splitlines()[0],
                hint="re-export the extract",
            ) from exc
        rows = max(10_000, chunk_bytes // 200)
        for batch in pf.iter_batches(batch_size=rows):
            yield pa.Table.from_batches([batch]).to_pandas()
        return

    import pyarrow.csv as pacsv

    with path.open("rb") as fh:
        head = fh.readline()
    names = [h.strip().strip('"') for h in head.decode("utf-8-sig", errors="replace").rstrip("\r\n").split(",")]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=chunk_bytes),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch]).to_pandas(types_mapper=pd.ArrowDtype)
    except pa.ArrowInvalid as exc:
        raise DataValidationError(
            f"The CSV file for {table.name} could not be parsed",
            file=path,
            expected="UTF-8, comma-separated, one header row, the same number of fields on every row",
            found=str(exc).splitlines()[0],
            hint="re-export the extract; check for unquoted commas or line breaks inside values",
        ) from exc


def _pseudonymise_chunk(raw: pd.DataFrame, key: bytes) -> tuple[pd.DataFrame, int]:
    from survey.insz import looks_like_insz, pseudonymise

    s = raw["person_key"].astype("string")
    mask = looks_like_insz(s).to_numpy()
    k = int(mask.sum())
    if k:
        s = s.astype(object)
        s[mask] = pseudonymise(s[mask], key).to_numpy()
        raw = raw.assign(person_key=s.astype("string"))
    return raw, k


def _validate_chunk(raw: pd.DataFrame, table: Table, path: Path, offset: int) -> pd.DataFrame:
    from survey.validate import validate_frame

    try:
        return validate_frame(raw, table, source=path)
    except DataValidationError as exc:
        if offset == 0:
            raise
        found = exc.found
        if found is not None:
            found = re.sub(r"first at row (\d+)", lambda m: f"first at row {int(m.group(1)) + offset}", found)
        raise DataValidationError(
            exc.title,
            file=exc.file,
            row=exc.row + offset if exc.row else exc.row,
            column=exc.column,
            param=exc.param,
            expected=exc.expected,
            found=found,
            hint=exc.hint,
            detail=exc.detail,
        ) from exc


def _check_unique_key(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> None:
    if not table.key:
        return
    keys = ", ".join(f'"{k}"' for k in table.key)
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT {keys}, source_row,
                   row_number() OVER (PARTITION BY {keys} ORDER BY source_row) AS rn,
                   min(source_row) OVER (PARTITION BY {keys}) AS first_row
            FROM {table.name}
        )
        SELECT source_row, first_row, {keys}, (SELECT count(*) FROM r WHERE rn > 1) AS n
        FROM r WHERE rn > 1 ORDER BY source_row LIMIT 1
        """
    ).fetchall()
    if not rows:
        return
    row = rows[0]
    source_row, first_row, *key_values, n = row
    shown = key_values[0] if len(key_values) == 1 else tuple(key_values)
    raise DataValidationError(
        f"Duplicate key in {table.name}",
        file=path,
        row=int(source_row),
        column=", ".join(table.key),
        expected=f"each {'/'.join(table.key)} exactly once",
        found=f"{shown!r} again (first at row {int(first_row)}); {int(n)} duplicate row(s)",
        hint="remove the repeated rows from the extract or ask the data owner for a deduplicated file",
    )
