"""Ingest and linkage of the admin population, checked against the generated files and their truth.

Every expected count here is computed independently with pandas from the generated extracts (or read
from the generator's ``truth/`` folder), never copied from a previous run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.population import ingest, link, load_population
from survey.errors import ConfigError, DataValidationError

SNAP = Path("survey") / "461283" / "20230704T080000Z"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A 20,000-person study (shared, read-only), ingested and linked once."""
    from shared_studies import generated_study

    out = generated_study(20_000, 5)
    db = tmp_path_factory.mktemp("pop_study") / "popeval.duckdb"
    ing = ingest(out / "admin" / "dwse_applications.csv", out / "admin" / "vdab_trajectories.csv", db)
    rep = link(db, out / SNAP)
    dwse = pd.read_csv(out / "admin" / "dwse_applications.csv", dtype=str)
    vdab = pd.read_csv(out / "admin" / "vdab_trajectories.csv", dtype=str)
    parts = pd.DataFrame(json.loads((out / SNAP / "participants.json").read_text(encoding="utf-8")))
    return {"out": out, "db": db, "ingest": ing, "report": rep, "dwse": dwse, "vdab": vdab, "parts": parts}


@pytest.fixture(scope="module")
def small() -> dict[str, object]:
    """A 1,500-person study (shared, read-only) and its extracts: the bad-input tests break one value in it.

    A check finds the offending row whatever the file's length, so these tests read a small file
    (some 1,900 applications); the tests of rows far from each other (``*_chunks``) keep the 20,000.
    """
    from shared_studies import generated_study

    out = generated_study(1_500, 5)  # shared with tests/test_byo_study.py and tests/test_byo_errors.py
    dwse = pd.read_csv(out / "admin" / "dwse_applications.csv", dtype=str)
    vdab = pd.read_csv(out / "admin" / "vdab_trajectories.csv", dtype=str)
    return {"out": out, "dwse": dwse, "vdab": vdab}


def _approved_oc(dwse: pd.DataFrame) -> pd.DataFrame:
    return dwse[(dwse["incentive"] == "OC") & (dwse["status"] == "goedgekeurd")]


def test_ingest_row_counts_and_hashes(study: dict) -> None:
    import hashlib

    ing = study["ingest"]
    by = {s.table: s for s in ing.sources}
    assert by["dwse_applications"].rows == len(study["dwse"])
    assert by["vdab_trajectories"].rows == len(study["vdab"])
    path = study["out"] / "admin" / "dwse_applications.csv"
    assert by["dwse_applications"].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "dwse_applications" in ing.summary()
    assert list(ing.to_frame()["rows"]) == [len(study["dwse"]), len(study["vdab"])]


def test_ingested_values_equal_survey_validate(study: dict) -> None:
    """The chunked DuckDB load holds exactly what survey.validate.read_table returns."""
    import duckdb

    from survey.datamodel import DWSE_APPLICATIONS
    from survey.validate import read_table

    ref = read_table(study["out"] / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    with duckdb.connect(str(study["db"]), read_only=True) as con:
        got = con.execute("SELECT * EXCLUDE (source_row) FROM dwse_applications ORDER BY source_row").df()
    assert len(got) == len(ref)
    for c in DWSE_APPLICATIONS.names:
        left = got[c].astype(str).to_numpy() if c != "application_date" else got[c].dt.strftime("%Y-%m-%d").to_numpy()
        right = ref[c].astype(str).to_numpy() if c != "application_date" else ref[c].dt.strftime("%Y-%m-%d").to_numpy()
        np.testing.assert_array_equal(left, right, err_msg=c)


def test_linkage_counts_exact(study: dict) -> None:
    rep, dwse, vdab, parts = study["report"], study["dwse"], study["vdab"], study["parts"]
    oc = _approved_oc(dwse)
    pop_persons = set(oc["person_key"])
    pop_users = set(oc.loc[oc["pop_based"] == "1", "person_key"])
    persons = set(dwse["person_key"])
    any_oc = set(dwse.loc[dwse["incentive"] == "OC", "person_key"])
    assert rep.dwse_applications == len(dwse)
    assert rep.dwse_persons == len(persons)
    assert rep.population == len(pop_persons)
    assert rep.pop_users == len(pop_users)
    assert rep.oc_applications_in_population == len(oc)
    assert rep.excluded_no_oc == len(persons - any_oc)
    assert rep.excluded_oc_refused == len(any_oc - pop_persons)
    assert rep.excluded_oc_outside_window == 0
    assert rep.population + rep.excluded_no_oc + rep.excluded_oc_refused + rep.excluded_oc_outside_window == rep.dwse_persons
    assert rep.persons_multiple_oc == int((oc.groupby("person_key").size() > 1).sum())
    vp = set(vdab["person_key"])
    assert rep.vdab_trajectories == len(vdab)
    assert rep.vdab_persons == len(vp)
    assert rep.vdab_linked == len(vp & pop_persons)
    assert rep.vdab_dwse_only == len((vp & persons) - pop_persons)
    assert rep.vdab_unlinked == len(vp - persons)
    assert rep.participants == len(parts)
    assert rep.participants_linked == int(parts["attribute_1"].isin(pop_persons).sum())
    assert rep.participants_unlinked == int((~parts["attribute_1"].isin(pop_persons)).sum())
    assert rep.participants_unlinked > 0  # the generator writes a few stale keys
    assert rep.population_invited == len(set(parts["attribute_1"]) & pop_persons)


def test_population_matches_generator_truth(study: dict) -> None:
    truth = json.loads((study["out"] / "truth" / "truth.json").read_text())
    units = pd.read_parquet(study["out"] / "truth" / "units.parquet")
    pop = load_population(study["db"])
    assert len(pop) == truth["population_size"]
    assert int(pop["pop"].sum()) == truth["treated"]
    merged = units.merge(pop[["person_key", "pop"]], on="person_key", how="outer", suffixes=("_true", ""), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["pop_true"] == merged["pop"]).all()


def test_characteristics_follow_latest_approved_oc_rule(study: dict) -> None:
    from survey.datamodel import age_band

    oc = _approved_oc(study["dwse"]).sort_values(["person_key", "application_date", "application_id"])
    latest = oc.groupby("person_key").tail(1).set_index("person_key")
    pop = load_population(study["db"]).set_index("person_key").loc[latest.index]
    for c in ("sex", "educ", "sector", "nace", "company_size", "province", "statute"):
        np.testing.assert_array_equal(pop[c].astype(str).to_numpy(), latest[c].to_numpy(), err_msg=c)
    ages = latest["application_date"].str[:4].astype(int) - latest["birth_year"].astype(int)
    np.testing.assert_array_equal(pop["age_band"].astype(str).to_numpy(), [age_band(a) for a in ages])
    np.testing.assert_array_equal(pop["reference_application_id"].to_numpy(), latest["application_id"].to_numpy())


def test_conflict_counts_per_variable(study: dict) -> None:
    rep, dwse = study["report"], study["dwse"]
    in_pop = dwse[dwse["person_key"].isin(set(_approved_oc(dwse)["person_key"]))]
    nun = in_pop.groupby("person_key")[list(rep.conflicts)].nunique()
    for var, n in rep.conflicts.items():
        assert n == int((nun[var] > 1).sum()), var
    assert rep.conflicts["company_size"] > 0  # the generator plants such conflicts
    frame = rep.to_frame()
    assert set(frame["section"]) == {"dwse", "vdab", "survey", "conflicts"}
    assert "resolved by" in rep.summary()


def test_loopbaancheque_flags(study: dict) -> None:
    dwse, vdab = study["dwse"], study["vdab"]
    oc = _approved_oc(dwse)
    pop = load_population(study["db"]).set_index("person_key")
    guided = set(vdab["person_key"])
    np.testing.assert_array_equal(pop["had_guidance"].to_numpy(), pop.index.isin(guided))
    pairs = vdab.merge(oc, left_on=["person_key", "attest_training_id"], right_on=["person_key", "training_id"])
    np.testing.assert_array_equal(pop["attest_matches_training"].to_numpy(), pop.index.isin(set(pairs["person_key"])))
    made = set(vdab.loc[vdab["pop_made"] == "1", "person_key"])
    np.testing.assert_array_equal(pop["pop_made"].to_numpy(), pop.index.isin(made))
    assert pop["attest_matches_training"].sum() > 0


def test_study_window_counts_excluded_persons(study: dict, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "w.duckdb"
    shutil.copy(study["db"], db)
    years = ["2021-22", "2022-23"]
    rep = link(db, None, school_years=years)
    dwse = study["dwse"]
    oc = dwse[dwse["incentive"] == "OC"]
    inw = oc[oc["school_year"].isin(years)]
    ok = set(inw.loc[inw["status"] == "goedgekeurd", "person_key"])
    assert rep.population == len(ok)
    assert rep.excluded_oc_refused == len(set(inw["person_key"]) - ok)
    assert rep.excluded_oc_outside_window == len(set(oc["person_key"]) - set(inw["person_key"]))
    assert rep.participants == 0
    with pytest.raises(ConfigError, match="school year"):
        link(db, None, school_years=["2030-31"])


def test_parquet_input_gives_the_same_population(study: dict, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for name in ("dwse_applications", "vdab_trajectories"):
        frame = study["dwse"] if name.startswith("dwse") else study["vdab"]
        p = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), p)
        paths.append(p)
    db = tmp_path / "pq.duckdb"
    ingest(paths[0], paths[1], db)
    rep = link(db, study["out"] / SNAP)
    assert rep == study["report"]


def test_cli_ingest(study: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    out = study["out"]
    db = tmp_path / "cli.duckdb"
    code = main(["ingest", "--dwse", str(out / "admin" / "dwse_applications.csv"),
                 "--vdab", str(out / "admin" / "vdab_trajectories.csv"), "--participants", str(out / SNAP), "--db", str(db)])
    assert code == 0
    text = capsys.readouterr().out
    assert f"{study['report'].population:,} opleidingscheque users" in text
    code = main(["ingest", "--dwse", str(out / "admin" / "nope.csv"), "--vdab", str(out / "admin" / "vdab_trajectories.csv"),
                 "--db", str(db)])
    assert code == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------ bad extracts: one test per kind

def _bad_copy(study: dict, tmp_path: Path, edit, name: str = "dwse_applications.csv") -> Path:
    frame = (study["dwse"] if name.startswith("dwse") else study["vdab"]).copy()
    frame = edit(frame)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _ingest_bad(study: dict, tmp_path: Path, path: Path, **kw) -> DataValidationError:
    out = study["out"]
    dwse = path if path.name.startswith("dwse") else out / "admin" / "dwse_applications.csv"
    vdab = path if path.name.startswith("vdab") else out / "admin" / "vdab_trajectories.csv"
    db = tmp_path / "bad.duckdb"
    with pytest.raises(DataValidationError) as info:
        ingest(dwse, vdab, db, **kw)
    err = info.value
    assert err.file is not None and Path(err.file).name == path.name
    assert err.expected and err.found and err.hint
    return err


def _set(col: str, row: int, value: object):
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f[col] = f[col].astype(object)
        f.loc[row - 1, col] = value
        return f

    return edit


def test_bad_missing_column(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, lambda f: f.drop(columns="educ")))
    assert (err.row, err.column) == (0, "educ")


def test_bad_unknown_code(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("educ", 17, "universitair")))
    assert (err.row, err.column) == (17, "educ")
    assert "universitair" in err.found and "hoog" in err.expected


def test_bad_malformed_identifier(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("training_id", 5, "X12"), "dwse_applications.csv"))
    assert (err.row, err.column) == (5, "training_id")


def test_bad_date(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("start_date", 9, "31/02/2021"), "vdab_trajectories.csv"))
    assert (err.row, err.column) == (9, "start_date")
    assert "YYYY-MM-DD" in err.expected


def test_bad_number_out_of_range(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("birth_year", 3, "1850")))
    assert (err.row, err.column) == (3, "birth_year")


def test_bad_missing_value(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("status", 11, None)))
    assert (err.row, err.column) == (11, "status")


def test_bad_flag(small: dict, tmp_path: Path) -> None:
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("pop_made", 2, "misschien"), "vdab_trajectories.csv"))
    assert (err.row, err.column) == (2, "pop_made")


def test_a_bad_row_in_the_trajectories_leaves_the_applications_to_the_one_pass(small: dict, tmp_path: Path) -> None:
    """After the rollback only the refused extract is validated step by step; the other is written in one pass again."""
    lines: list[str] = []
    path = _bad_copy(small, tmp_path, _set("pop_made", 2, "misschien"), "vdab_trajectories.csv")
    with pytest.raises(DataValidationError) as info:
        ingest(small["out"] / "admin" / "dwse_applications.csv", path, tmp_path / "bad.duckdb", progress=lines.append)
    assert (info.value.row, info.value.column) == (2, "pop_made")
    assert sum("vdab_trajectories: a row breaks a check; validating step by step" in line for line in lines) == 1
    dwse = [line.strip() for line in lines if line.strip().startswith("dwse_applications: every column scanned for INSZ")]
    assert len(dwse) == 2 and all("(in the pass that writes the table)" in line for line in dwse)


def test_bad_duplicate_key_across_chunks(study: dict, tmp_path: Path) -> None:
    """The duplicate sits far from its first occurrence, in another chunk: found in DuckDB."""
    n = len(study["dwse"])

    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[n - 1, "application_id"] = f.loc[0, "application_id"]
        return f

    err = _ingest_bad(study, tmp_path, _bad_copy(study, tmp_path, edit), chunk_bytes=1 << 18)
    assert (err.row, err.column) == (n, "application_id")
    assert "first at row 1" in err.found


def test_bad_row_numbers_are_file_rows_in_later_chunks(study: dict, tmp_path: Path) -> None:
    n = len(study["dwse"])
    err = _ingest_bad(study, tmp_path, _bad_copy(study, tmp_path, _set("sex", n - 3, "X")), chunk_bytes=1 << 18)
    assert (err.row, err.column) == (n - 3, "sex")


def test_bad_raw_insz_refused_without_showing_it(small: dict, tmp_path: Path) -> None:
    from survey.insz import synthetic_insz

    raw = synthetic_insz(np.random.default_rng(3), 1)[0]
    err = _ingest_bad(small, tmp_path, _bad_copy(small, tmp_path, _set("person_key", 8, raw), "vdab_trajectories.csv"))
    assert (err.row, err.column) == (8, "person_key")
    assert raw not in str(err)
    assert "--pseudonymise" in err.hint


def test_bad_unparseable_csv(small: dict, tmp_path: Path) -> None:
    path = tmp_path / "dwse_applications.csv"
    text = (small["out"] / "admin" / "dwse_applications.csv").read_text().splitlines()
    text[4] = text[4] + ",extra,fields"
    path.write_text("\n".join(text) + "\n")
    err = _ingest_bad(small, tmp_path, path)
    assert "parsed" in err.title


def test_bad_empty_extract(small: dict, tmp_path: Path) -> None:
    path = _bad_copy(small, tmp_path, lambda f: f.iloc[:0])
    err = _ingest_bad(small, tmp_path, path)
    assert "no data rows" in err.title


def test_bad_file_type_and_missing_file(small: dict, tmp_path: Path) -> None:
    path = tmp_path / "dwse_applications.docx"
    path.write_bytes(b"not an extract")
    err = _ingest_bad(small, tmp_path, path)
    assert err.found == ".docx"
    path = tmp_path / "dwse_applications.xlsx"
    path.write_bytes(b"not really a workbook")
    err = _ingest_bad(small, tmp_path, path)
    assert "could not be read" in err.title and err.found == "BadZipFile"
    err = _ingest_bad(small, tmp_path, tmp_path / "dwse_applications.csv")
    assert err.found == "no such file"


def test_failed_ingest_leaves_database_unchanged(study: dict, small: dict, tmp_path: Path) -> None:
    """The 20,000-person study's database, a broken small extract ingested into it: the database keeps its tables."""
    import shutil

    import duckdb

    db = tmp_path / "keep.duckdb"
    shutil.copy(study["db"], db)
    bad = _bad_copy(small, tmp_path, _set("educ", 40, "??"))
    with pytest.raises(DataValidationError):
        ingest(bad, small["out"] / "admin" / "vdab_trajectories.csv", db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dwse_applications").fetchall()[0][0] == len(study["dwse"])
        assert con.execute("SELECT count(*) FROM population").fetchall()[0][0] == study["report"].population


def test_pseudonymise_needs_a_key(study: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POPEVAL_PSEUDO_KEY", raising=False)
    out = study["out"]
    with pytest.raises(ConfigError, match="pseudonymisation key"):
        ingest(out / "admin" / "dwse_applications.csv", out / "admin" / "vdab_trajectories.csv", tmp_path / "k.duckdb",
               pseudonymise=True)
