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
