"""Enforce the study data model (:mod:`survey.datamodel`) on input files.

:func:`read_table` reads a CSV or Parquet extract, checks it against a :class:`~survey.datamodel.Table`
and returns a typed :class:`pandas.DataFrame` (categories as :class:`pandas.CategoricalDtype` with the
vocabulary's codes, dates as ``datetime64``, booleans as ``bool``).  Every failure raises a
:class:`~survey.errors.DataValidationError` naming the file, the first offending row (1-based data
row; the header is row 0) and column, what was expected, what was found, how many rows share the
problem, and a hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survey.datamodel import Column, Table
from survey.errors import DataValidationError
from survey.insz import looks_like_insz

__all__ = ["read_table", "validate_frame"]

_TRUE = {"1", "true", "True", "TRUE", "J", "j", "Y", "y"}
_FALSE = {"0", "false", "False", "FALSE", "N", "n"}


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


def validate_frame(raw: pd.DataFrame, table: Table, source: str | Path = "<frame>", *, duplicate_hint: str | None = None) -> pd.DataFrame:
    """Validate ``raw`` (strings or already-typed columns) against ``table``; return typed columns.

    ``duplicate_hint`` replaces the hint for a repeated key (the default speaks of an extract).

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
    out: dict[str, Any] = {}
    for col in table.columns:
        out[col.name] = _check_column(raw[col.name], col, table, source)
    df = pd.DataFrame(out)
    df.attrs["ignored_columns"] = [c for c in cols if c not in table.names]
    if table.key:
        dup = df.duplicated(list(table.key), keep="first")
        if dup.any():
            pos = int(np.flatnonzero(dup.to_numpy())[0])
            first = df.loc[:, list(table.key)].iloc[pos].tolist()
            earlier = int(
                np.flatnonzero((df.loc[:, list(table.key)] == df.loc[:, list(table.key)].iloc[pos]).all(axis=1).to_numpy())[0]
            )
            raise DataValidationError(
                f"Duplicate key in {table.name}",
                file=source,
                row=pos + 1,
                column=", ".join(table.key),
                expected=f"each {'/'.join(table.key)} exactly once",
                found=f"{first if len(first) > 1 else first[0]!r} again (first at row {earlier + 1}); {int(dup.sum())} duplicate row(s)",
                hint=duplicate_hint or "remove the repeated rows from the extract or ask the data owner for a deduplicated file",
            )
    return df


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _fail(
    table: Table, source: str | Path, col: Column, mask: np.ndarray, values: pd.Series, expected: str, hint: str, title: str
) -> None:
    pos = _first_bad(mask)
    n = int(mask.sum())
    raise DataValidationError(
        f"{title} in {table.name}",
        file=source,
        row=pos + 1,
        column=col.name,
        expected=expected,
        found=f"{values.iloc[pos]!r}" + (f" ({n} rows like this)" if n > 1 else ""),
        hint=hint,
    )


def _as_str(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.ArrowDtype) or pd.api.types.is_string_dtype(s.dtype):
        return s.astype("string")
    return s.astype("string")


def _check_column(s: pd.Series, col: Column, table: Table, source: str | Path) -> pd.Series:
    null = s.isna().to_numpy()
    if not col.nullable and null.any():
        _fail(table, source, col, null, s, "a value (empty is not allowed)", "fill in the value or drop the row at the source", "Missing value")

    if col.pseudo_key:
        sv = _as_str(s)
        raw = looks_like_insz(sv).to_numpy()
        if raw.any():
            pos = _first_bad(raw)
            raise DataValidationError(
                f"An identifier looks like a raw national register number (INSZ) in {table.name}",
                file=source,
                row=pos + 1,
                column=col.name,
                expected="a pseudonymous key (32 hex digits)",
                found=f"an 11-digit value with a valid INSZ check digit ({int(raw.sum())} rows); the value is not shown",
                hint="raw INSZ numbers must not be ingested: pseudonymise them at the source, or run ingest "
                "with --pseudonymise and POPEVAL_PSEUDO_KEY set",
            )

    if col.dtype in ("str", "category"):
        sv = _as_str(s)
        if col.pattern is not None:
            ok = sv.str.fullmatch(col.pattern).fillna(True).astype(bool).to_numpy()
            if not ok.all():
                _fail(
                    table, source, col, ~ok, sv, f"values matching {col.pattern}", "check the column contents and the export settings", "Malformed value"
                )
        if col.dtype == "str":
            return sv
        allowed = [c.code for c in (col.vocabulary or ())]
        ok = (sv.isin(allowed) | sv.isna()).to_numpy()
        if not ok.all():
            _fail(
                table,
                source,
                col,
                ~ok,
                sv,
                "one of " + ", ".join(allowed),
                "recode the value to the data model's codes (see data_raw/README.md)",
                "Unknown code",
            )
        return pd.Series(pd.Categorical(sv.astype(object).where(~sv.isna(), None), categories=allowed), index=s.index)

    if col.dtype in ("int", "float"):
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            num = pd.to_numeric(s, errors="coerce")
            bad = np.zeros(len(s), dtype=bool)
        else:
            sv = _as_str(s)
            num = pd.to_numeric(sv.astype(object), errors="coerce")
            bad = (num.isna() & sv.notna()).to_numpy()
        if col.dtype == "int":
            frac = num.notna().to_numpy() & (np.asarray(num.fillna(0), dtype=float) % 1 != 0)
            bad = bad | frac
        if bad.any():
            _fail(table, source, col, bad, s, f"{'a whole number' if col.dtype == 'int' else 'a number'}", "check the number format (no thousands separators; a point as decimal mark)", "Wrong type")
        arr = num.to_numpy(dtype=float, na_value=np.nan)
        out_of = np.zeros(len(s), dtype=bool)
        if col.min is not None:
            out_of |= arr < col.min
        if col.max is not None:
            out_of |= arr > col.max
        if out_of.any():
            _fail(table, source, col, out_of, s, f"a value between {col.min} and {col.max}", "check the unit and the source of this column", "Value out of range")
        if col.dtype == "int":
            return pd.Series(num, index=s.index).astype("Int64" if col.nullable else "int64")
        return pd.Series(arr, index=s.index)

    if col.dtype == "bool":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.astype(bool)
        sv = _as_str(s)
        t = sv.isin(list(_TRUE)).fillna(False).to_numpy()
        f = sv.isin(list(_FALSE)).fillna(False).to_numpy()
        bad = ~(t | f) & ~null
        if bad.any():
            _fail(table, source, col, bad, sv, "0 or 1 (also true/false)", "encode the flag as 0/1", "Wrong type")
        return pd.Series(t, index=s.index)

    if col.dtype == "date":
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return s
        sv = _as_str(s)
        shape = sv.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(True).astype(bool).to_numpy()
        parsed = pd.to_datetime(sv.astype(object), format="%Y-%m-%d", errors="coerce")
        bad = ~shape | (parsed.isna().to_numpy() & ~null)
        if bad.any():
            _fail(table, source, col, bad, sv, "a date as YYYY-MM-DD", "write dates in ISO format, e.g. 2022-09-15", "Wrong type")
        return pd.Series(parsed, index=s.index)

    raise DataValidationError(f"Unknown dtype {col.dtype!r} in the data model", column=col.name)  # pragma: no cover
