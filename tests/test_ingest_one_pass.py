"""The one-pass ingest writes what the step-by-step ingest writes, and hands a bad extract to it.

A good extract is validated, scanned for INSZ and written in one query per table; the step-by-step
ingest (a query per stage) runs only when a row breaks a check.  Here the step-by-step ingest is
forced on the same files and every table, every report field and every error is compared.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.population import ingest
from survey.errors import DataValidationError

# the module (the package's name ``ingest`` is the function)
ingest_module = importlib.import_module("analysis.population.ingest")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from analysis.synth import generate

    out = tmp_path_factory.mktemp("one_pass_study")
    generate(persons=3_000, seed=5, out=out)
    return out / "admin" / "dwse_applications.csv", out / "admin" / "vdab_trajectories.csv"


def _step_by_step(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every one-pass load fall back; returns the tables it was asked to write."""
    asked: list[str] = []

    def refuse(con: object, plan: ingest_module.InputPlan, key: bytes | None) -> tuple[int, dict[str, int], str]:
        asked.append(plan.table.name)
        raise ingest_module._StepByStepError(plan.table.name)

    monkeypatch.setattr(ingest_module, "_write_in_one_pass", refuse)
    return asked


def _tables(db: Path) -> dict[str, tuple[list[tuple], pd.DataFrame]]:
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        out = {}
        for t in names:
            cols = "* EXCLUDE (ingested_at)" if t == "ingest_sources" else "*"
            order = "source_row" if t in ("dwse_applications", "vdab_trajectories") else "ALL"
            out[t] = (con.execute(f"DESCRIBE {t}").fetchall(), con.execute(f"SELECT {cols} FROM {t} ORDER BY {order}").df())
    return out


def _same(a: Path, b: Path) -> None:
    ta, tb = _tables(a), _tables(b)
    assert sorted(ta) == sorted(tb) == ["dwse_applications", "ingest_checks", "ingest_sources", "vdab_trajectories"]
    for t in ta:
        assert ta[t][0] == tb[t][0], t  # column names, types, nullability
        pd.testing.assert_frame_equal(ta[t][1], tb[t][1], check_exact=True, obj=t)


def _insz_copy(path: Path, out: Path, rows: list[int]) -> tuple[Path, list[str]]:
    from survey.insz import synthetic_insz

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw = synthetic_insz(np.random.default_rng(9), len(rows))
    df.loc[rows, "person_key"] = raw
    df.to_csv(out, index=False)
    return out, raw


def test_a_good_extract_is_written_in_one_pass_as_step_by_step(files: tuple[Path, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    one = ingest(*files, tmp_path / "one.duckdb")
    lines: list[str] = []
    asked = _step_by_step(monkeypatch)
    steps = ingest(*files, tmp_path / "steps.duckdb", progress=lines.append)
    assert asked == ["dwse_applications"]  # the first refusal rolls back and loads both step by step
    assert any("validating step by step" in line for line in lines)
    assert [s.rows for s in one.sources] == [s.rows for s in steps.sources] == [
        len(pd.read_csv(f, dtype=str)) for f in files
    ]
    for a, b in zip(one.sources, steps.sources, strict=True):
        assert (a.sha256, a.key_format, a.warnings, a.ignored_columns, a.pseudonymised) == (
            b.sha256, b.key_format, b.warnings, b.ignored_columns, b.pseudonymised)
    assert one.sources[0].key_format == "lower-case hex, 32 characters"
    _same(tmp_path / "one.duckdb", tmp_path / "steps.duckdb")


def test_pseudonymised_keys_and_ignored_columns_in_one_pass(files: tuple[Path, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dwse, vdab = files
    bad, raw = _insz_copy(dwse, tmp_path / "dwse_applications.csv", [3, 40, 41])
    df = pd.read_csv(bad, dtype=str, keep_default_na=False)
    df.insert(2, "contact_insz", "")
    df.loc[7, "contact_insz"] = raw[0]  # an INSZ in a column popeval does not ingest: counted, not stored
    df.to_csv(bad, index=False)
    key = b"a test key, not a secret"
    one = ingest(bad, vdab, tmp_path / "one.duckdb", pseudonymise=True, key=key)
    _step_by_step(monkeypatch)
    steps = ingest(bad, vdab, tmp_path / "steps.duckdb", pseudonymise=True, key=key)
    assert one.sources[0].pseudonymised == steps.sources[0].pseudonymised == 3
    assert one.sources[0].ignored_columns == ("contact_insz",)
    assert ("insz_in_ignored_column:contact_insz", 1) in one.sources[0].warnings
    assert one.sources[0].warnings == steps.sources[0].warnings
    _same(tmp_path / "one.duckdb", tmp_path / "steps.duckdb")
    from survey.insz import pseudonymise

    with duckdb.connect(str(tmp_path / "one.duckdb"), read_only=True) as con:
        got = [r[0] for r in con.execute("SELECT person_key FROM dwse_applications WHERE source_row IN (4, 41, 42) ORDER BY source_row").fetchall()]
    assert got == list(pseudonymise(pd.Series(raw), key))


@pytest.mark.parametrize(
    ("column", "row", "value", "title"),
    [
        ("sex", 17, "X", "Unknown code in dwse_applications"),
        ("application_date", 5, "2021-9-01", "Wrong type in dwse_applications"),
        ("birth_year", 30, "1972.5", "Wrong type in dwse_applications"),
        ("person_key", 12, None, "An identifier looks like a raw national register number (INSZ) in dwse_applications"),
    ],
)
def test_a_bad_row_is_named_by_the_step_by_step_ingest(files: tuple[Path, Path], tmp_path: Path, column: str, row: int,
                                                        value: str | None, title: str) -> None:
    dwse, vdab = files
    bad = tmp_path / "dwse_applications.csv"
    if value is None:
        _insz_copy(dwse, bad, [row - 1])
    else:
        df = pd.read_csv(dwse, dtype=str, keep_default_na=False)
        df.loc[row - 1, column] = value
        df.to_csv(bad, index=False)
    lines: list[str] = []
    with pytest.raises(DataValidationError) as info:
        ingest(bad, vdab, tmp_path / "bad.duckdb", progress=lines.append)
    err = info.value
    assert str(err).startswith(title)
    assert (err.row, err.column, Path(err.file).name) == (row, column, "dwse_applications.csv")
    assert any("dwse_applications: a row breaks a check; validating step by step" in line for line in lines)
    with duckdb.connect(str(tmp_path / "bad.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables").fetchall()[0][0] == 0
