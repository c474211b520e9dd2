"""Enforce the study data model (:mod:`survey.datamodel`) on input files.

:func:`read_table` reads a CSV or Parquet extract, checks it against a :class:`~survey.datamodel.Table`
and returns a typed :class:`pandas.DataFrame` (categories as :class:`pandas.CategoricalDtype` with the
vocabulary's codes, dates as ``datetime64``, booleans as ``bool``).  Every failure raises a
:class:`~survey.errors.DataValidationError` naming the file, the first offending row (1-based data
row; the header is row 0) and column, what was expected, what was found, how many rows share the
problem, and a hint.  The checks are those of every input (:func:`survey.sqlcheck.check_columns`,
DuckDB queries, as for the ingested extracts and the participants); this module reads and types.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survey.datamodel import Table
from survey.errors import DataValidationError
from survey.insz import looks_like_insz

__all__ = ["read_table", "refuse_raw_insz", "validate_frame"]



def read_table(path: str | Path, table: Table) -> pd.DataFrame:
    """Read and validate one extract.

    Parameters
    ----------
    path
        A ``.csv`` (UTF-8, comma-separated, header row; a UTF-8 BOM is tolerated) or ``.parquet`` file.
    table
        The table it must follow.

    Returns
    -------
    pd.DataFrame
        Typed columns in the order of ``table``; extra columns are dropped (and listed in
        ``df.attrs['ignored_columns']``).
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(
            f"Input file for {table.name} not found",
            file=path,
            expected="an existing .csv or .parquet file",
            found="no such file",
            hint="check the path in the study configuration",
        )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = pq.read_table(path).to_pandas()
    elif suffix == ".csv":
        raw = _read_csv_as_strings(path)
    else:
        raise DataValidationError(
            f"Unsupported file type for {table.name}",
            file=path,
            expected=".csv or .parquet",
            found=suffix or "no extension",
            hint="export the extract as CSV (UTF-8, comma-separated, with a header) or Parquet",
        )
    return validate_frame(raw, table, source=path)


def _read_csv_as_strings(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with path.open("rb") as fh:
        head = fh.readline()
    header = head.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    names = [h.strip().strip('"') for h in header.split(",")]
    try:
        tab = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataValidationError(
            "The CSV file could not be parsed",
            file=path,
            expected="UTF-8, comma-separated, one header row, the same number of fields on every row",
            found=str(exc).splitlines()[0],
            hint="re-export the extract; check for unquoted commas or line breaks inside values",
        ) from exc
    # the BOM, if any, is stripped by Arrow from the first name
    return tab.to_pandas(types_mapper=pd.ArrowDtype)


def validate_frame(raw: pd.DataFrame, table: Table, source: str | Path = "<frame>", *, duplicate_hint: str | None = None,
                   columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Validate ``raw`` (strings or already-typed columns) against ``table``; return typed columns.

    ``duplicate_hint`` replaces the hint for a repeated key (the default speaks of an extract);
    ``columns`` names, per variable, the file's column in errors (default: the variable).

    Raises
    ------
    DataValidationError
        At the first problem, naming file, row, column, expected and found values.
    """
    cols = [str(c).lstrip("\ufeff") for c in raw.columns]
    raw = raw.set_axis(cols, axis=1)
    missing = [c for c in table.names if c not in cols]
    if missing:
        raise DataValidationError(
            f"Missing column{'s' if len(missing) > 1 else ''} in {table.name}",
            file=source,
            row=0,
            column=missing[0],
            expected="columns " + ", ".join(table.names),
            found="columns " + ", ".join(cols),
            hint=f"the extract lacks {', '.join(missing)}; see data_raw/README.md for the data model",
        )
    for col in table.columns:
        if col.pseudo_key:
            refuse_raw_insz(raw[col.name], table.name, source, (columns or {}).get(col.name, col.name))
    df = _checked_in_duckdb(raw, table, source, duplicate_hint, columns)
    df.attrs["ignored_columns"] = [c for c in cols if c not in table.names]
    return df


def refuse_raw_insz(s: pd.Series, table_name: str, source: str | Path, column: str, *, raw: np.ndarray | None = None, hint: str | None = None) -> None:
    """Raise :class:`DataValidationError` when ``s`` holds a raw INSZ (``raw``: the flags, when known); the value is never shown."""
    raw = looks_like_insz(s.astype("string")).to_numpy() if raw is None else raw
    if raw.any():
        pos = int(np.flatnonzero(raw)[0])
        raise DataValidationError(
            f"An identifier looks like a raw national register number (INSZ) in {table_name}",
            file=source,
            row=pos + 1,
            column=column,
            expected="a pseudonymous key",
            found=f"an 11-digit value with a valid INSZ check digit ({int(raw.sum())} rows); the value is not shown",
            hint=hint or "raw INSZ numbers must not be ingested: pseudonymise them at the source, or run ingest "
            "with --pseudonymise and POPEVAL_PSEUDO_KEY set",
        )


def _arrow_text(s: pd.Series) -> bool:
    import pyarrow as pa

    return isinstance(s.dtype, pd.ArrowDtype) and (pa.types.is_string(s.dtype.pyarrow_dtype) or pa.types.is_large_string(s.dtype.pyarrow_dtype))


def _arrow_frame(frame: pd.DataFrame) -> Any:
    """``source_row`` and the text columns of ``frame`` as an Arrow table, typed as DuckDB types the
    same columns as Python strings: ``VARCHAR``, or ``NULL`` for a column without any value."""
    import pyarrow as pa

    tab = pa.Table.from_pandas(frame, preserve_index=False)
    cols: dict[str, Any] = {"source_row": pa.array(np.arange(1, len(frame) + 1, dtype="int64"))}
    for name, a in zip(tab.column_names, tab.columns, strict=True):
        cols[name] = pa.nulls(len(a)) if a.null_count == len(a) else a
    return pa.table(cols)


def _categorical(values: Any, categories: list[str]) -> pd.Categorical:
    """An Arrow text column as a categorical of ``categories`` (missing, or not a category: NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pos = pc.index_in(values.cast(pa.string()), value_set=pa.array(categories, pa.string()))
    codes = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int8 if len(categories) < 127 else np.int32)
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def _checked_in_duckdb(raw: pd.DataFrame, table: Table, source: str | Path, duplicate_hint: str | None,
                       columns: Mapping[str, str] | None) -> pd.DataFrame:
    """The frame checked by :func:`survey.sqlcheck.check_columns` (the ingest's checks) and typed."""
    import duckdb

    from survey.sqlcheck import check_columns, check_unique_key, q, text_sql

    frame: Any = raw.loc[:, list(table.names)].reset_index(drop=True)
    arrow = all(_arrow_text(frame[c]) for c in table.names)
    if arrow:  # a CSV read as text: handed to DuckDB as Arrow, read in place
        frame = _arrow_frame(frame)
    else:
        frame = frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in table.names
                                if isinstance(frame[c].dtype, pd.ArrowDtype) or pd.api.types.is_string_dtype(frame[c].dtype)})
        frame.insert(0, "source_row", np.arange(1, len(frame) + 1, dtype="int64"))
    with duckdb.connect() as con:
        con.register("_frame", frame)
        if arrow:
            con.execute("CREATE TEMP VIEW _checked AS SELECT * FROM _frame")
        else:  # Python objects: copied once, not converted in every check's scan
            con.execute("CREATE TEMP TABLE _checked AS SELECT * FROM _frame")
            con.unregister("_frame")
        types = {r[0]: r[1] for r in con.execute("DESCRIBE _checked").fetchall()}
        text = {c: text_sql(c, types[c], "csv") for c in table.names}
        select = check_columns(con, "_checked", table, source, text, columns=dict(columns or {}))
        con.execute(f"CREATE TEMP TABLE _typed AS SELECT source_row, {select} FROM _checked")
        check_unique_key(con, "_typed", table, source, duplicate_hint)
        # coded columns as Arrow (straight to category codes, no Python string per value), the others as pandas
        coded = [c.name for c in table.columns if c.dtype == "category"]
        others = [c for c in table.names if c not in coded]
        out = con.execute(f"SELECT {', '.join(q(c) for c in others)} FROM _typed ORDER BY source_row").df() if others else pd.DataFrame(index=raw.index)
        codes = con.sql(f"SELECT {', '.join(q(c) for c in coded)} FROM _typed ORDER BY source_row").to_arrow_table() if coded else None
    out.index = raw.index
    typed: dict[str, Any] = {}
    for col in table.columns:
        if col.dtype == "category":
            typed[col.name] = pd.Series(_categorical(codes[col.name], [c.code for c in (col.vocabulary or ())]), index=raw.index)  # type: ignore[index]
            continue
        v = out[col.name]
        if col.dtype == "str":
            typed[col.name] = v.astype("string")
        elif col.dtype == "int":
            typed[col.name] = v.astype("Int64" if col.nullable else "int64")
        elif col.dtype == "float":
            typed[col.name] = v.astype(float)
        elif col.dtype == "bool":
            typed[col.name] = v.astype(bool)
        else:  # date
            typed[col.name] = pd.to_datetime(v).astype("datetime64[ns]")
    return pd.DataFrame(typed, index=raw.index)
