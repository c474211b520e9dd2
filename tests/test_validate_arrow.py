"""read_table checks a CSV's text as Arrow; the frame and the errors are those of the Python-object path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES, Table
from survey.errors import DataValidationError
from survey.validate import _read_csv_as_strings, read_table, validate_frame


def _objects(path: Path) -> pd.DataFrame:
    """The CSV's strings as Python objects (``None`` for an empty field): the frame path."""
    raw = _read_csv_as_strings(path).astype(object)
    return raw.where(raw.notna(), None)


def _both(path: Path, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``read_table`` (Arrow text) and ``validate_frame`` of the same strings as Python objects."""
    return read_table(path, table), validate_frame(_objects(path), table, source=path)


def test_arrow_and_object_paths_give_the_same_frame(small_study: Path, tmp_path: Path) -> None:
    for name, table in (("dwse_applications", DWSE_APPLICATIONS), ("vdab_trajectories", VDAB_TRAJECTORIES)):
        a, b = _both(small_study / "admin" / f"{name}.csv", table)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for c in a.columns:
            if isinstance(a[c].dtype, pd.CategoricalDtype):
                assert list(a[c].cat.categories) == [v.code for v in table.column(c).vocabulary or ()]
                assert a[c].cat.categories.dtype == object and a[c].notna().all()
    # an optional column without any value: DuckDB types it NULL on both paths
    traj = pd.read_csv(small_study / "admin" / "vdab_trajectories.csv", dtype=str, keep_default_na=False)
    traj["end_date"] = ""
    traj["attest_training_id"] = ""
    p = tmp_path / "vdab.csv"
    traj.to_csv(p, index=False)
    a, b = _both(p, VDAB_TRAJECTORIES)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a["end_date"].isna().all() and a["attest_training_id"].isna().all() and len(a) == len(traj)


def test_arrow_and_object_paths_raise_the_same_error(small_study: Path, tmp_path: Path) -> None:
    dwse = pd.read_csv(small_study / "admin" / "dwse_applications.csv", dtype=str, keep_default_na=False)
    dwse.loc[7, "educ"] = "universitair"
    dwse.loc[9, "sector"] = ""
    p = tmp_path / "dwse.csv"
    dwse.to_csv(p, index=False)
    with pytest.raises(DataValidationError) as arrow_error:
        read_table(p, DWSE_APPLICATIONS)
    with pytest.raises(DataValidationError) as object_error:
        validate_frame(_objects(p), DWSE_APPLICATIONS, source=p)
    assert str(arrow_error.value) == str(object_error.value)
    assert "row 8" in str(arrow_error.value) and "educ" in str(arrow_error.value) and "universitair" in str(arrow_error.value)


def _plain_insz(v: object) -> bool:
    """The INSZ rule value by value: 11 digits once separators are removed, a valid check and month."""
    import re

    if v is None or (isinstance(v, float) and v != v):
        return False
    s = re.sub(r"[\s.\-/]", "", str(v))
    if not re.fullmatch(r"\d{11}", s):
        return False
    base, check, month = int(s[:9]), int(s[9:]), int(s[2:4])
    ok = 97 - base % 97 == check or 97 - (base + 2_000_000_000) % 97 == check
    return ok and month <= 52 and (1 <= month % 20 <= 12 or month in (0, 20, 40))


def test_looks_like_insz_with_the_letter_prefilter_is_the_plain_rule() -> None:
    import random

    import numpy as np
    import pyarrow as pa

    from survey.insz import looks_like_insz, synthetic_insz

    valid = synthetic_insz(np.random.default_rng(1), 200)
    rng = random.Random(2)
    values = [*valid, *(f"{v[:2]}.{v[2:4]}.{v[4:6]}-{v[6:9]}.{v[9:]}" for v in valid[:50]), "84dc65f23daec6b349718d42b6a9fb84", None, "", f"{valid[0]}x"]
    values += ["".join(rng.choice("0123456789 .-/aZ") for _ in range(rng.randint(0, 16))) for _ in range(2000)]
    expected = [_plain_insz(v) for v in values]
    assert sum(expected) >= 250
    for dtype in (object, "string", pd.ArrowDtype(pa.string())):
        s = pd.Series(values, dtype=dtype, index=np.arange(len(values))[::-1] * 3)
        got = looks_like_insz(s)
        assert got.index.equals(s.index) and got.tolist() == expected
