"""Bring your own study: a demo rewritten in the agencies' formats and codes runs through configuration alone.

The foreign study (:mod:`tests.foreign_study`) holds the same persons, applications, trajectories and
answers as the demo it is built from, as SPSS/Excel/Latin-1 CSV files with Dutch names, the agencies'
codes, a survey with its own question and answer codes and a GUI participants export.  ``popeval run``
on it must give exactly the results of the demo in popeval's own schema.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from foreign_study import OWN_OUTCOMES, SNAP, build
from study_toml import study_settings, write_study_toml

from analysis.config import load_config
from analysis.population import ingest, link, load_population
from survey.errors import DataValidationError


@pytest.fixture(scope="module")
def demo() -> Path:
    from shared_studies import generated_study

    return generated_study(20_000, 21)  # the study's default margins and covariates need this many (read-only)


@pytest.fixture(scope="module")
def foreign(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(demo, tmp_path_factory.mktemp("byo_foreign"), xlsx=False).parent


def _native(demo: Path, folder: Path) -> tuple[Path, object]:
    native_db = folder / "native.duckdb"
    ingest(demo / "admin" / "dwse_applications.csv", demo / "admin" / "vdab_trajectories.csv", native_db)
    return native_db, link(native_db, demo / SNAP)


@pytest.fixture(scope="module")
def native(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The demo in popeval's own schema, ingested and linked once: its database and linkage report."""
    return _native(demo, tmp_path_factory.mktemp("byo_native_db"))


@pytest.fixture(scope="module")
def small_demo() -> Path:
    """A 1,500-person study (some 1,900 applications): enough for ingest and linkage, which need no margins."""
    from shared_studies import generated_study

    return generated_study(1_500, 5)  # read-only; shared with tests/test_byo_errors.py


@pytest.fixture(scope="module")
def small_native(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The small study in popeval's own schema, ingested and linked once: its database and linkage report."""
    return _native(small_demo, tmp_path_factory.mktemp("byo_small_native"))


@pytest.fixture(scope="module")
def small_pair(small_demo: Path, small_native: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Path, object]]:
    """The Excel case on the 1,500-person study: its foreign copy (with the .xlsx) and its native database.

    Writing and reading an .xlsx with openpyxl cost about a millisecond a row each, so the Excel
    reader is checked on this small study; the .sav case checks the same on the 20,000-person demo.
    """
    return build(small_demo, tmp_path_factory.mktemp("byo_small_foreign")).parent, small_native


@pytest.fixture(scope="module")
def foreign_ingested(foreign: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The foreign study (.sav) ingested through its configuration once: its database (read-only) and report."""
    return _ingest_foreign(foreign, tmp_path_factory.mktemp("byo_foreign_db"))


def _ingest_foreign(foreign: Path, tmp: Path, dwse_file: str = "aanvragen.sav", **edits) -> tuple[Path, object]:
    cfg = load_config(foreign / "study.toml")
    dspec = dataclasses.replace(cfg.admin.dwse_input, file=dwse_file, **edits.get("dwse", {}))
    vspec = dataclasses.replace(cfg.admin.vdab_input, **edits.get("vdab", {}))
    db = tmp / f"{Path(dwse_file).stem}.duckdb"
    rep = ingest(foreign / dwse_file, foreign / edits.get("vdab_file", "trajecten.csv"), db, dwse_spec=dspec, vdab_spec=vspec,
                 pseudonymise=edits.get("pseudonymise", False), key=edits.get("key"))
    return db, rep


def _population(db: Path) -> pd.DataFrame:
    p = load_population(db).drop(columns=["reference_application_id", "tid", "invited"])
    p["person_key"] = p["person_key"].str.lower()
    return p.sort_values("person_key").reset_index(drop=True)


# ------------------------------------------------------------------ ingest through configuration


@pytest.mark.parametrize("dwse_file", ["aanvragen.sav", "aanvragen.xlsx"])
def test_foreign_files_give_the_native_population(request: pytest.FixtureRequest, tmp_path: Path, dwse_file: str) -> None:
    import shutil

    if dwse_file.endswith(".xlsx"):
        foreign, (native_db, native_report) = request.getfixturevalue("small_pair")
        db, rep = _ingest_foreign(foreign, tmp_path, dwse_file)
    else:
        foreign, (native_db, native_report) = request.getfixturevalue("foreign"), request.getfixturevalue("native")
        ingested, rep = request.getfixturevalue("foreign_ingested")
        db = Path(shutil.copy(ingested, tmp_path / ingested.name))  # linkage writes into the database: a copy
    got = link(db, foreign / "deelnemers.csv", key_attribute="attribute_2")
    for f in ("population", "pop_users", "excluded_no_oc", "excluded_oc_refused", "vdab_linked", "participants_linked", "population_invited"):
        assert getattr(got, f) == getattr(native_report, f), f
    assert dict(got.conflicts) == dict(native_report.conflicts)
    pd.testing.assert_frame_equal(_population(db), _population(native_db))
    by = {s.table: s for s in rep.sources}
    assert by["vdab_trajectories"].format == "csv"
    assert {"Latin-1 (not valid UTF-8)", ";-separated", "decimal comma", "dates dd/mm/yyyy"} <= set(by["vdab_trajectories"].assumed)
    assert by["dwse_applications"].ignored_columns == ("dossierbeheerder",)
    assert by["dwse_applications"].key_format == "upper-case hex, 32 characters"
    if dwse_file.endswith(".xlsx"):
        assert "header in row 3" in by["dwse_applications"].assumed


def test_keys_of_64_hex_digits_link_like_the_native_ones(small_demo: Path, small_native: tuple[Path, Any], tmp_path: Path) -> None:
    """On the small study: the key format is a property of every row, and linkage is compared count by count."""
    demo, native = small_demo, small_native
    foreign = build(demo, tmp_path / "long", long_keys=True, xlsx=False).parent
    db, rep = _ingest_foreign(foreign, tmp_path)
    assert {s.key_format for s in rep.sources} == {"lower-case hex, 64 characters"}
    got = link(db, foreign / "deelnemers.csv", key_attribute="attribute_2")
    for f in ("population", "pop_users", "vdab_linked", "participants_linked", "population_invited"):
        assert getattr(got, f) == getattr(native[1], f), f


def test_derived_values_follow_the_rules(demo: Path, foreign_ingested: tuple[Path, object]) -> None:
    """Recoded and derived columns equal the demo's codes row by row (sector derived from NACE-BEL)."""
    db, _ = foreign_ingested
    native = pd.read_csv(demo / "admin" / "dwse_applications.csv", dtype=str)
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("SELECT * FROM dwse_applications ORDER BY source_row").df()
    for c in ("incentive", "school_year", "status", "training_domain", "sex", "educ", "nace", "sector", "company_size", "province", "statute"):
        np.testing.assert_array_equal(got[c].to_numpy(dtype=str), native[c].to_numpy(dtype=str), err_msg=c)
    np.testing.assert_array_equal(got["application_date"].dt.strftime("%Y-%m-%d").to_numpy(), native["application_date"].to_numpy())
    np.testing.assert_array_equal(got["pop_based"].to_numpy(), native["pop_based"].to_numpy() == "1")
    with duckdb.connect(str(db), read_only=True) as con:
        centres = con.execute("SELECT loopbaancentrum FROM vdab_trajectories ORDER BY source_row").df()["loopbaancentrum"]
    vdab = pd.read_csv(demo / "admin" / "vdab_trajectories.csv", dtype=str)
    np.testing.assert_array_equal(centres.to_numpy(dtype=str), vdab["loopbaancentrum"].to_numpy(dtype=str))


def test_raw_insz_everywhere_pseudonymised_with_one_key(small_demo: Path, small_native: tuple[Path, Any], tmp_path: Path) -> None:
    """Raw INSZ in both extracts and in the participants: pseudonymised alike, so linkage is the native one.

    On the small study: every key is pseudonymised (or refused) row by row, so some 1,900
    applications and their participants show it as well as 20,000 persons would.
    """
    from survey.insz import pseudonymise

    demo, native = small_demo, small_native
    foreign = build(demo, tmp_path / "insz", raw_insz=True, xlsx=False).parent
    key = b"a-test-key-of-sufficient-length"
    db, rep = _ingest_foreign(foreign, tmp_path, pseudonymise=True, key=key)
    assert all(s.pseudonymised == s.rows for s in rep.sources)
    got = link(db, foreign / "deelnemers.csv", key_attribute="attribute_2", pseudo_key=key)
    ref = native[1]
    assert (got.population, got.pop_users, got.participants_linked) == (ref.population, ref.pop_users, ref.participants_linked)
    parts = pd.read_csv(foreign / "deelnemers.csv", dtype=str)
    raw = parts["attribute_2"].dropna().iloc[0]
    with duckdb.connect(str(db), read_only=True) as con:
        keys = set(con.execute("SELECT person_key FROM dwse_applications").df()["person_key"])
        assert raw not in keys
        assert pseudonymise(pd.Series([raw]), key).iloc[0] in set(con.execute("SELECT attribute_1 FROM survey_participants").df()["attribute_1"])
        sql_vs_python = con.execute("SELECT count(*) FROM survey_participants WHERE attribute_1 IN (SELECT person_key FROM population)").fetchall()[0][0]
    assert sql_vs_python == ref.participants_linked
    # refused without the key, and the value is never shown
    nokey = tmp_path / "nokey"
    nokey.mkdir()
    with pytest.raises(DataValidationError) as info:
        _ingest_foreign(foreign, nokey)
    assert info.value.column == "rijksregisternummer_pseudo"
    assert raw not in str(info.value)


# ------------------------------------------------------------------ the whole run


def _bundle(result: object) -> Path:
    return Path(result.bundle)  # type: ignore[attr-defined]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "estimates.json")}


def _estimates(folder: Path) -> dict:
    est = json.loads((folder / "estimates.json").read_text(encoding="utf-8"))
    est.pop("margins_version")  # versioned from the input files' hashes, which differ by construction
    return est


@pytest.fixture(scope="module")
def native_run(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo run in popeval's own schema (the study's default margins and covariates); its bundle."""
    from analysis.pipeline import run

    native_toml = write_study_toml(tmp_path_factory.mktemp("byo_native") / "native.toml", study_settings(
        "eigen-schema", methods=("matching", "regression", "ipw", "naive"),
        survey={"survey_id": 461283, "snapshot": (demo / SNAP).as_posix()},
        admin={"dwse": (demo / "admin" / "dwse_applications.csv").as_posix(), "vdab": (demo / "admin" / "vdab_trajectories.csv").as_posix()}))
    cfg = load_config(native_toml)
    assert cfg.weighting.margins == (("pop", "educ"), ("pop", "age_band"), ("pop", "sex"), ("pop", "sector"), ("pop", "company_size"))
    return _bundle(run(cfg, progress=False))


def test_run_through_configuration_alone_gives_identical_results(native_run: Path, foreign: Path) -> None:
    from analysis.pipeline import run

    cfg = load_config(foreign / "study.toml")
    assert cfg.weighting.margins == load_config(native_run.parents[3] / "native.toml").weighting.margins  # the full default margins
    got = run(cfg, progress=False)
    assert _digest(_bundle(got)) == _digest(native_run)  # every table, byte for byte
    assert _estimates(_bundle(got)) == _estimates(native_run)  # every estimate, exactly
    assert len(_estimates(_bundle(got))["effects"]) >= 16
    man = json.loads((_bundle(got) / "manifest.json").read_text(encoding="utf-8"))
    assert man["provenance"] == "synthetic" and "synthetic" in man["note"]
    assert man["mapping"]["admin"]["dwse"]["columns"]["educ"] == "onderwijsniveau"
    assert man["mapping"]["survey"]["columns"]["stronger"] == "Q5_SQ001"
    assert len(man["mapping"]["hash"]) == 64
    assert [o["name"] for o in man["outcomes"]] == ["stronger", "job_better", "promotion", "satisfaction"]
    assert man["outcomes"][0]["column"] == "Q5_SQ001" and man["outcomes"][0]["nl"] == "Professioneel sterker"
    native_man = json.loads((native_run / "manifest.json").read_text(encoding="utf-8"))
    assert native_man["mapping"]["hash"] != man["mapping"]["hash"]


def test_a_survey_with_outcomes_of_its_own_runs_and_reports_them(demo: Path, native_run: Path, tmp_path: Path) -> None:
    """Three outcomes under other names (one on a descending scale): estimated, bundled and reported by their labels."""
    from analysis.pipeline import run
    from analysis.report.builder import Report
    from analysis.report.render import render_report

    cfg = load_config(build(demo, tmp_path / "own", own_outcomes=True, xlsx=False))
    assert cfg.effects.outcomes == tuple(OWN_OUTCOMES)
    bundle = _bundle(run(cfg, progress=False))
    man = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert [(o["name"], o["column"], o["direction"]) for o in man["outcomes"]] == [
        ("career", "Q5_SQ001", "ascending"), ("skills", "Q5[SQ002]", "descending"), ("confidence", "Q5_SQ003", "ascending")]
    assert man["outcomes"][0]["nl"] == "Betere loopbaankansen" and man["outcomes"][2]["en"] == "More self-confidence"
    # the same answers as the demo's first three outcomes: the same estimates (the descending scale turned around)
    got = pd.read_csv(bundle / "tables" / "effects.csv")
    ref = pd.read_csv(native_run / "tables" / "effects.csv")
    ref = ref[ref["outcome"].isin(OWN_OUTCOMES.values())]
    got["outcome"] = got["outcome"].map(OWN_OUTCOMES)
    cols = ["outcome", "method", "scale", "estimate", "bse", "ci_lower", "ci_upper", "n_treated", "n_control"]
    key = ["outcome", "method", "scale"]
    pd.testing.assert_frame_equal(got[cols].sort_values(key).reset_index(drop=True), ref[cols].sort_values(key).reset_index(drop=True))
    # the exports carry the outcomes by their names and labels
    import pyreadstat

    _, meta = pyreadstat.read_sav(str(bundle.parent / "exports" / "analysis_file.sav"), metadataonly=True)
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["skills"] == "Nieuwe vaardigheden in de job" and "satisfaction" not in labels
    # both reports name them with the configured labels, the count in words
    en = Report(bundle, lang="en", figdir=tmp_path / "fig")
    assert en.fact.n_outcomes_word == "three"
    assert "better career prospects" in en.fact.pp_by_outcome and "more self-confidence" in en.fact.pt_by_outcome
    assert "New skills in the job" in str(en.table("summary"))
    out = render_report(bundle, lang="nl", out=tmp_path / "report", formats=("html",), engine="python")
    html = out.outputs["html"].read_text(encoding="utf-8")
    for text in ("Betere loopbaankansen", "nieuwe vaardigheden in de job", "Meer zelfvertrouwen", "De drie uitkomsten", "drie toetsen per methode"):
        assert text in html, text
    for default in ("Professioneel sterker", "promotiekansen", "Tevreden over de opleiding"):
        assert default not in html, default


def test_provenance_not_the_study_name_decides_the_demo_notice(demo: Path, tmp_path: Path) -> None:
    from analysis.pipeline import _provenance

    assert _provenance(demo / "admin" / "dwse_applications.csv") == "synthetic"
    other = tmp_path / "real" / "admin"
    other.mkdir(parents=True)
    (other / "dwse.csv").write_text("x\n", encoding="utf-8")
    assert _provenance(other / "dwse.csv") == ""


def test_free_text_with_an_insz_is_masked_before_caching(foreign: Path) -> None:
    from survey.parse import parse_snapshot

    cfg = load_config(foreign / "study.toml")
    resp = parse_snapshot(foreign / "enquete", mapping=cfg.survey.mapping(), participants=foreign / "deelnemers.csv", key_attribute="attribute_2")
    assert resp.counts["insz_masked"] >= 1
    text = " ".join(resp.frame["remarks"].dropna().astype(str))
    assert "[INSZ]" in text
    from survey.insz import is_valid_insz
    from survey.mapping import _INSZ_CANDIDATE

    assert not [m for m in _INSZ_CANDIDATE.findall(text) if is_valid_insz(m)]


# ------------------------------------------------------------------ the documentation


def _readme_toml(after: str) -> str:
    import re

    readme = (Path(__file__).resolve().parents[1] / "data_raw" / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```toml\n(.*?)```", readme.split(after, 1)[1], re.S)
    assert match is not None, after
    return match.group(1)


def test_the_worked_example_in_data_raw_readme_is_accepted_and_describes_the_foreign_study(
        foreign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's worked example, with the foreign study's files where it says: `popeval check` accepts it, same mapping."""
    import shutil

    from analysis.cli import main
    from analysis.pipeline import _mapping_record

    root = tmp_path / "golf"
    (root / "studies").mkdir(parents=True)
    (root / "data_raw" / "admin").mkdir(parents=True)
    shutil.copytree(foreign / "enquete", root / "data_raw" / "survey" / "461283" / "20240701T080000Z")
    shutil.copy(foreign / "deelnemers.csv", root / "data_raw" / "survey" / "deelnemers.csv")
    for name in ("aanvragen.sav", "trajecten.csv"):
        shutil.copy(foreign / name, root / "data_raw" / "admin" / name)
    study = root / "studies" / "golf-2024.toml"
    study.write_text(_readme_toml("### Worked example"), encoding="utf-8")
    assert main(["check", "--config", str(study)]) == 0
    out = capsys.readouterr().out
    assert "PROBLEM" not in out and "UNMAPPED" not in out
    assert "stronger             <- Q5_SQ001" in out and "participants: deelnemers.csv" in out
    assert _mapping_record(load_config(study))["hash"] == _mapping_record(load_config(foreign / "study.toml"))["hash"]


def test_the_readme_example_of_outcomes_of_the_surveys_own_parses() -> None:
    import tomllib

    from analysis.config import config_from_dict

    given = tomllib.loads(_readme_toml("**Outcomes of the survey's own.**"))
    cfg = config_from_dict({"survey": {"survey_id": 461283, **given["survey"]}})
    assert cfg.effects.outcomes == ("career", "skills", "confidence")
    assert [(o.name, o.column, o.direction) for o in cfg.survey.mapping().outcome_list()] == [
        ("career", "EFFECT[SQ101]", "ascending"), ("skills", "EFFECT[SQ102]", "descending"), ("confidence", "EFFECT[SQ103]", "ascending")]
