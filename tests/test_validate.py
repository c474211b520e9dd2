"""Each kind of bad extract is refused with a message naming file, row, column, expected and found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
from survey.errors import DataValidationError
from survey.insz import is_valid_insz, looks_like_insz, pseudonymise, synthetic_insz
from survey.validate import read_table


def _dwse(small_study: Path) -> pd.DataFrame:
    return pd.read_csv(small_study / "admin" / "dwse_applications.csv", dtype=str, keep_default_na=False)


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def test_missing_column(small_study: Path, tmp_path: Path) -> None:
    p = _write(_dwse(small_study).drop(columns=["educ"]), tmp_path / "dwse.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, DWSE_APPLICATIONS)
    msg = str(e.value)
    assert "Missing column" in msg and "dwse.csv" in msg and "column 'educ'" in msg and "row 0" in msg
    assert e.value.column == "educ" and e.value.hint


def test_wrong_type(small_study: Path, tmp_path: Path) -> None:
    df = _dwse(small_study)
    df.loc[41, "birth_year"] = "1980.5"
    df.loc[99, "birth_year"] = "negentig"
    p = _write(df, tmp_path / "dwse.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, DWSE_APPLICATIONS)
    assert e.value.row == 42 and e.value.column == "birth_year"
    assert "'1980.5'" in str(e.value) and "2 rows" in str(e.value) and "whole number" in str(e.value)


def test_wrong_date(small_study: Path, tmp_path: Path) -> None:
    df = _dwse(small_study)
    df.loc[7, "application_date"] = "15/09/2021"
    p = _write(df, tmp_path / "dwse.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, DWSE_APPLICATIONS)
    assert (e.value.row, e.value.column) == (8, "application_date")
    assert "YYYY-MM-DD" in str(e.value)


def test_unknown_code(small_study: Path, tmp_path: Path) -> None:
    df = _dwse(small_study)
    df.loc[3, "educ"] = "universitair"
    p = _write(df, tmp_path / "dwse.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, DWSE_APPLICATIONS)
    assert (e.value.row, e.value.column) == (4, "educ")
    assert "laag, midden, hoog" in str(e.value) and "'universitair'" in str(e.value)


def test_duplicate_key(small_study: Path, tmp_path: Path) -> None:
    df = _dwse(small_study)
    df.loc[10, "application_id"] = df.loc[2, "application_id"]
    p = _write(df, tmp_path / "dwse.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, DWSE_APPLICATIONS)
    assert (e.value.row, e.value.column) == (11, "application_id")
    assert "first at row 3" in str(e.value)


def test_identifier_that_looks_like_raw_insz(small_study: Path, tmp_path: Path) -> None:
    df = pd.read_csv(small_study / "admin" / "vdab_trajectories.csv", dtype=str, keep_default_na=False)
    insz = synthetic_insz(np.random.default_rng(1), 1)[0]
    df.loc[5, "person_key"] = insz
    p = _write(df, tmp_path / "vdab.csv")
    with pytest.raises(DataValidationError) as e:
        read_table(p, VDAB_TRAJECTORIES)
    msg = str(e.value)
    assert (e.value.row, e.value.column) == (6, "person_key")
    assert "INSZ" in msg and "vdab.csv" in msg
    assert insz not in msg  # the error never repeats the number


def test_missing_value_and_unsupported_file(small_study: Path, tmp_path: Path) -> None:
    df = _dwse(small_study)
    df.loc[0, "status"] = ""
    with pytest.raises(DataValidationError, match="Missing value") as e:
        read_table(_write(df, tmp_path / "dwse.csv"), DWSE_APPLICATIONS)
    assert e.value.row == 1
    (tmp_path / "dwse.xlsx").touch()
    with pytest.raises(DataValidationError, match=r"\.xlsx"):
        read_table(tmp_path / "dwse.xlsx", DWSE_APPLICATIONS)


def test_parquet_round_trip(small_study: Path, tmp_path: Path) -> None:
    csv = read_table(small_study / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    raw = _dwse(small_study)
    raw.to_parquet(tmp_path / "dwse.parquet")
    pq = read_table(tmp_path / "dwse.parquet", DWSE_APPLICATIONS)
    pd.testing.assert_frame_equal(csv.reset_index(drop=True), pq.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("93051822361", True),  # documented example
        ("93.05.18-223.61", True),
        ("93051822362", False),  # wrong check digits
        ("93251822337", False),  # bis month 25 but checksum off
        ("12345678901", False),
        ("abc", False),
    ],
)
def test_insz_detection(value: str, valid: bool) -> None:
    assert is_valid_insz(value) is valid


def test_insz_bis_and_post_2000_numbers() -> None:
    base = 3252182  # 03-25-21 (bis, month+20), serial 82
    nine = f"{base:07d}"[:6] + "082"
    n = int(nine)
    check = 97 - ((n + 2_000_000_000) % 97)
    assert is_valid_insz(f"{nine}{check:02d}")
    values = pd.Series(synthetic_insz(np.random.default_rng(0), 200))
    assert looks_like_insz(values).all()


def test_pseudonymise_is_keyed_and_stable() -> None:
    s = pd.Series(["93051822361", "93.05.18-223.61"])
    a = pseudonymise(s, b"k" * 32)
    b = pseudonymise(s, b"other-key-000000")
    assert a.iloc[0] == a.iloc[1]  # separators do not matter
    assert a.iloc[0] != b.iloc[0]
    assert a.str.fullmatch(r"[0-9a-f]{32}").all()


def test_data_model_documentation_is_complete() -> None:
    from survey.datamodel import ALL_TABLES

    doc = (Path(__file__).resolve().parents[1] / "data_raw" / "README.md").read_text(encoding="utf-8")
    for table in ALL_TABLES.values():
        assert f"### `{table.name}`" in doc
        for col in table.columns:
            assert f"| `{col.name}` | {col.dtype} | {col.nl} | {col.en} |" in doc
