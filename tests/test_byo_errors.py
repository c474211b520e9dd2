"""Every mapping and recoding error names the file, the column, the codes or values found, and a hint.

A small foreign study (:mod:`tests.foreign_study`) is built once; each test breaks one thing in its
description or its files.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from foreign_study import build

from analysis.config import config_from_dict, load_config
from analysis.population import ingest
from survey.errors import ConfigError, DataValidationError


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared_studies import generated_study

    demo = generated_study(1_500, 5)  # read-only; shared with tests/test_byo_study.py
    return build(demo, tmp_path_factory.mktemp("err_foreign"), xlsx=False).parent


def _specs(foreign: Path, dwse: dict | None = None, vdab: dict | None = None):
    cfg = load_config(foreign / "study.toml")
    return dataclasses.replace(cfg.admin.dwse_input, **(dwse or {})), dataclasses.replace(cfg.admin.vdab_input, **(vdab or {}))


def _fails(foreign: Path, tmp_path: Path, *, dwse: dict | None = None, vdab: dict | None = None, vdab_file: Path | None = None,
           dwse_file: Path | None = None) -> DataValidationError:
    ds, vs = _specs(foreign, dwse, vdab)
    with pytest.raises(DataValidationError) as info:
        ingest(dwse_file or foreign / "aanvragen.sav", vdab_file or foreign / "trajecten.csv", tmp_path / "e.duckdb", dwse_spec=ds, vdab_spec=vs)
    err = info.value
    assert err.file is not None and err.hint
    return err


def _without(d: dict, var: str, code: str) -> dict:
    out = {k: dict(v) for k, v in d.items()}
    out[var].pop(code)
    return out


def test_unmapped_code_in_a_code_table(foreign: Path, tmp_path: Path) -> None:
    codes = _without(_specs(foreign)[0].codes, "status", "Geweigerd")
    err = _fails(foreign, tmp_path, dwse={"codes": codes})
    assert err.title == "Unmapped codes in dwse_applications"
    assert Path(err.file).name == "aanvragen.sav" and err.column == "beslissing"
    n = int((pd.read_spss(foreign / "aanvragen.sav")["beslissing"] == "Geweigerd").sum()) if hasattr(pd, "read_spss") else None
    assert "'Geweigerd'" in err.found and (n is None or f"({n} rows)" in err.found)
    assert "[admin.dwse.codes.status]" in err.hint and "Geweigerd" in err.hint


def test_code_a_rule_does_not_understand(foreign: Path, tmp_path: Path) -> None:
    codes = {k: v for k, v in _specs(foreign)[0].codes.items() if k != "province"}
    err = _fails(foreign, tmp_path, dwse={"codes": codes})
    assert err.column == "provincie_nis"
    assert "'00000'" in err.found and "rule nis" in err.expected
    assert "[admin.dwse.codes.province]" in err.hint


def test_unknown_code_lists_every_code_with_counts(foreign: Path, tmp_path: Path) -> None:
    codes = {k: v for k, v in _specs(foreign)[0].codes.items() if k != "statute"}
    err = _fails(foreign, tmp_path, dwse={"codes": codes})
    assert err.title == "Unknown code in dwse_applications" and err.column == "statuut"
    for label in ("Bediende", "Arbeider"):
        assert f"'{label}' (" in err.found
    assert "4 codes" in err.found and "bediende" in err.expected
    assert "codes.statute" in err.hint


def test_missing_mapped_column(foreign: Path, tmp_path: Path) -> None:
    cols = {**_specs(foreign)[0].columns, "educ": "opleiding"}
    err = _fails(foreign, tmp_path, dwse={"columns": cols})
    assert err.column == "opleiding" and err.row == 0
    assert "onderwijsniveau" in err.found and "educ <- opleiding" in err.expected
    assert "[admin.dwse.columns] educ" in err.hint


def test_extraction_that_finds_nothing(foreign: Path, tmp_path: Path) -> None:
    err = _fails(foreign, tmp_path, vdab={"extract": {"loopbaancentrum": r"LBK\d{3}"}})
    assert err.column == "loopbaancentrum" and err.row == 1
    assert "(LBC" in err.found and r"LBK\d{3}" in err.expected
    assert "[admin.vdab.extract]" in err.hint


def _vdab_edit(foreign: Path, tmp_path: Path, edit) -> Path:
    df = pd.read_csv(foreign / "trajecten.csv", sep=";", encoding="latin-1", dtype=str, keep_default_na=False)
    df = edit(df)
    path = tmp_path / "trajecten.csv"
    with path.open("w", encoding="latin-1", newline="") as fh:
        df.to_csv(fh, sep=";", index=False, lineterminator="\r\n")
    return path


def test_school_year_derived_from_the_application_date(foreign: Path, tmp_path: Path) -> None:
    """No school-year column mapped: derived from application_date (1 September to 31 August)."""
    import duckdb

    ds, vs = _specs(foreign)
    cols = {k: v for k, v in ds.columns.items() if k != "school_year"}
    rules = {k: v for k, v in ds.rules.items() if k != "school_year"}
    ds = dataclasses.replace(ds, columns=cols, rules=rules)
    rep = ingest(foreign / "aanvragen.sav", foreign / "trajecten.csv", tmp_path / "d.duckdb", dwse_spec=ds, vdab_spec=vs)
    assert dict(rep.sources[0].warnings)["date_outside_school_year"] == 0
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as con:
        got = con.execute("SELECT school_year, application_date FROM dwse_applications ORDER BY source_row").df()
    d = pd.to_datetime(got["application_date"])
    start = d.dt.year - (d.dt.month < 9)
    expected = start.astype(str) + "-" + ((start + 1) % 100).astype(str).str.zfill(2)
    assert (got["school_year"] == expected).all()
    raw = pd.read_spss(foreign / "aanvragen.sav", usecols=["schooljaar"])["schooljaar"] if hasattr(pd, "read_spss") else None
    if raw is not None:
        assert (got["school_year"].str[:5] + "20" + got["school_year"].str[5:] == raw.str.strip()).all()


def test_dates_of_one_shape_are_read_in_one_pass(foreign: Path, tmp_path: Path) -> None:
    """dd/mm/yyyy dates without a given format: the one-pass ingest guesses the format, and its validation confirms it."""
    lines: list[str] = []
    ds, vs = _specs(foreign)
    rep = ingest(foreign / "aanvragen.sav", foreign / "trajecten.csv", tmp_path / "d.duckdb", dwse_spec=ds, vdab_spec=vs, progress=lines.append)
    assert "dates dd/mm/yyyy" in rep.sources[1].assumed
    assert any("in the pass that writes the table" in line for line in lines)
    assert not [line for line in lines if "step by step" in line]


def test_wrong_date_for_the_given_format(foreign: Path, tmp_path: Path) -> None:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[6, "startdatum"] = "2021-02-31"
        return df

    err = _fails(foreign, tmp_path, vdab={"date_format": "%d/%m/%Y"}, vdab_file=_vdab_edit(foreign, tmp_path, edit))
    assert (err.row, err.column) == (7, "startdatum")
    assert err.found == "'2021-02-31'" and "dd/mm/yyyy" in err.expected and "date_format" in err.hint


def test_mixed_key_formats_in_one_file(foreign: Path, tmp_path: Path) -> None:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[4, "klant_id"] = df.loc[4, "klant_id"].lower()
        return df

    err = _fails(foreign, tmp_path, vdab_file=_vdab_edit(foreign, tmp_path, edit))
    assert err.column == "klant_id" and err.row == 5
    assert "upper-case hex, 32 characters" in err.found and "lower-case hex, 32 characters: 1 rows" in err.found
    assert "one key format" in err.hint


def test_different_key_formats_in_the_two_files(foreign: Path, tmp_path: Path) -> None:
    err = _fails(foreign, tmp_path, vdab_file=_vdab_edit(foreign, tmp_path, lambda df: df.assign(klant_id=df["klant_id"].str.lower())))
    assert err.title == "The two extracts use different person-key formats"
    assert "upper-case hex" in err.expected and "lower-case hex" in err.found


def test_checks_across_fields_warn_then_stop(foreign: Path, tmp_path: Path) -> None:
    """End before start: one row is a counted warning; more than 1% of the rows is an error."""

    def swap(k: int):
        def edit(df: pd.DataFrame) -> pd.DataFrame:
            idx = df.index[df["einddatum"] != ""][:k]
            df.loc[idx, ["startdatum", "einddatum"]] = df.loc[idx, ["einddatum", "startdatum"]].to_numpy()
            return df

        return edit

    ds, vs = _specs(foreign)
    rep = ingest(foreign / "aanvragen.sav", _vdab_edit(foreign, tmp_path, swap(1)), tmp_path / "w.duckdb", dwse_spec=ds, vdab_spec=vs)
    vd = next(s for s in rep.sources if s.table == "vdab_trajectories")
    assert dict(vd.warnings)["end_before_start"] == 1
    assert "end_before_start: 1 rows" in rep.summary()
    n = len(pd.read_csv(foreign / "trajecten.csv", sep=";", encoding="latin-1"))
    k = int(0.05 * n) + 1
    err = _fails(foreign, tmp_path, vdab_file=_vdab_edit(foreign, tmp_path, swap(k)))
    assert "end_date before start_date" in err.title and err.column == "einddatum"
    assert f"{k} of {n} rows" in err.found and "max_inconsistent_share" in err.hint


def test_insz_in_a_mapped_column_other_than_the_key(foreign: Path, tmp_path: Path) -> None:
    from survey.insz import synthetic_insz

    raw = synthetic_insz(np.random.default_rng(9), 1)[0]

    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[2, "opleiding_attest"] = raw
        df.loc[5, "uren_begeleiding"] = raw  # an ignored column: counted, not refused
        return df

    err = _fails(foreign, tmp_path, vdab_file=_vdab_edit(foreign, tmp_path, edit))
    assert (err.row, err.column) == (3, "opleiding_attest")
    assert raw not in str(err) and "not shown" in err.found


def test_csv_parse_error_never_echoes_the_line(foreign: Path, tmp_path: Path) -> None:
    from survey.insz import synthetic_insz

    raw = synthetic_insz(np.random.default_rng(10), 1)[0]
    lines = (foreign / "trajecten.csv").read_bytes().decode("latin-1").split("\r\n")
    lines[3] = lines[3] + f";{raw};extra"
    path = tmp_path / "trajecten.csv"
    path.write_bytes("\r\n".join(lines).encode("latin-1"))
    err = _fails(foreign, tmp_path, vdab_file=path)
    assert "could not be parsed" in err.title
    assert raw not in str(err) and "not shown" in err.hint


# ------------------------------------------------------------------ the TOML itself


@pytest.mark.parametrize(
    ("dwse", "param", "listed"),
    [
        ({"file": "x.sav", "rules": {"educ": "isced97"}}, "admin.dwse.rules.educ", "isced2011"),
        ({"file": "x.sav", "rules": {"sex": "isced2011"}}, "admin.dwse.rules.sex", "applies to educ"),
        ({"file": "x.sav", "codes": {"status": {"Goedgekeurd": "ok"}}}, "admin.dwse.codes.status.Goedgekeurd", "goedgekeurd"),
        ({"file": "x.sav", "columns": {"opleiding": "x"}}, "admin.dwse.columns.opleiding", "application_id"),
        ({"file": "x.sav", "delimeter": ";"}, "admin.dwse.delimeter", "delimiter"),
        ({"file": "x.csv", "format": "xls"}, "admin.dwse.format", "xlsx"),
        ({"columns": {"educ": "x"}}, "admin.dwse.file", "path"),
        (5, "admin.dwse", "a table with file"),
        ({"file": "x.sav", "columns": {"educ": 1}}, "admin.dwse.columns", "variable = \"text\""),
        ({"file": "x.sav", "extract": {"educ": "(["}}, "admin.dwse.extract.educ", "regular expression"),
        ({"file": "x.sav", "codes": "status"}, "admin.dwse.codes", "tables [codes.<variable>]"),
        ({"file": "x.sav", "codes": {"status": {"Goedgekeurd": 1}}}, "admin.dwse.codes.status", "file code"),
        ({"file": "x.sav", "codes": {"opleiding": {"a": "b"}}}, "admin.dwse.codes.opleiding", "a variable of dwse_applications"),
        ({"file": "x.sav", "true_values": "ja"}, "admin.dwse.true_values", "a list of strings"),
        ({"file": "x.sav", "isced_cuts": [4, 2]}, "admin.dwse.isced_cuts", "0 <= low < mid < 8"),
        ({"file": "x.sav", "value_labels": "ja"}, "admin.dwse.value_labels", "true or false"),
        ({"file": "x.sav", "header_row": True}, "admin.dwse.header_row", "a whole number >= 0"),
        ({"file": "x.sav", "max_inconsistent_share": 2}, "admin.dwse.max_inconsistent_share", "between 0 and 1"),
        ({"file": "x.sav", "sheet": 2}, "admin.dwse.sheet", "a string"),
        ({"file": "x.csv", "decimal": ";"}, "admin.dwse.decimal", ". or ,"),
        ({"file": "x.csv", "encoding": "ascii"}, "admin.dwse.encoding", "latin-1"),
    ],
)
def test_invalid_input_description(dwse: object, param: str, listed: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"admin": {"dwse": dwse}})
    assert info.value.param == param
    assert listed in (info.value.expected or "") and info.value.hint


def test_invalid_survey_mapping_and_window() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"survey": {"columns": {"strongerr": "Q5_SQ001"}}})
    assert info.value.param == "survey.columns.strongerr" and "stronger" in info.value.expected
    with pytest.raises(ConfigError) as info:
        config_from_dict({"study": {"school_years": ["2021-2022"]}, "survey": {"survey_id": 461283}})
    assert info.value.param == "study.school_years" and "2021-22" in info.value.expected


# ------------------------------------------------------------------ the survey


def test_survey_mapped_column_missing_stops_the_run_at_the_start(foreign: Path, tmp_path: Path) -> None:
    from analysis.pipeline import run

    text = (foreign / "study.toml").read_text(encoding="utf-8").replace('stronger = "Q5_SQ001"', 'stronger = "Q55_SQ001"')
    text = text.replace('derived_dir = "derived"', f'derived_dir = "{(tmp_path / "derived").as_posix()}"')
    toml = foreign / "broken.toml"
    toml.write_text(text, encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        run(load_config(toml), progress=False)
    err = info.value
    assert err.column == "Q55_SQ001" and Path(err.file).name == "responses.csv"
    assert "stronger <- Q55_SQ001" in err.expected and "Q5_SQ001" in err.found and "[survey.columns]" in err.hint
    assert not list((tmp_path / "derived" / "cache").glob("*.pkl"))


def test_survey_unmapped_answer_code(foreign: Path) -> None:
    from survey.parse import parse_snapshot

    cfg = load_config(foreign / "study.toml")
    m = cfg.survey.mapping()
    answers = {k: dict(v) for k, v in m.answers.items()}
    answers["stronger"].pop("A3")
    broken = dataclasses.replace(m, answers=answers)
    with pytest.raises(DataValidationError) as info:
        parse_snapshot(foreign / "enquete", mapping=broken, participants=foreign / "deelnemers.csv", key_attribute="attribute_2")
    err = info.value
    assert err.title == "Unmapped answer codes for stronger" and err.column == "Q5_SQ001"
    assert "'A3' (" in err.found and "[survey.answers.stronger]" in err.hint


def test_survey_mapping_reads_both_heading_forms(foreign: Path) -> None:
    """Q5_SQ001 and Q5[SQ001] are one column; A6 becomes 'weet niet'."""
    from survey.parse import parse_snapshot, read_responses

    cfg = load_config(foreign / "study.toml")
    resp = parse_snapshot(foreign / "enquete", mapping=cfg.survey.mapping(), participants=foreign / "deelnemers.csv", key_attribute="attribute_2")
    raw = read_responses(foreign / "enquete" / "responses.csv")
    assert "Q5_SQ002" in raw.columns and cfg.survey.columns["job_better"] == "Q5[SQ002]"
    assert resp.counts["dont_know_job_better"] == int((raw["Q5_SQ002"] == "A6").sum())
    assert (resp.frame["job_better"].astype("Int64") == 4).sum() == int((raw["Q5_SQ002"] == "A4").sum()) > 0
    assert int(resp.frame["pop_reported"].sum()) == int((raw["Q3"] == "A1").sum())
    assert resp.counts["linked"] > 0
    assert {"refurl", "ipaddr", "interviewtime"} <= set(resp.extra_columns)


def test_configurable_outcomes_labels_and_scale_direction() -> None:
    """A descending scale (1 = agree most) is turned around; labels go to the bundle's manifest."""
    cfg = config_from_dict({"survey": {"survey_id": 461283, "columns": {"stronger": "Q5_SQ001"}, "answers": {"stronger": {"A1": "1", "A5": "5", "A6": "99"}},
                                       "outcomes": {"stronger": {"nl": "Sterker op het werk", "direction": "descending"}}}})
    m = cfg.survey.mapping()
    got = m.apply(pd.DataFrame({"Q5_SQ001": ["A1", "A5", "A6", None]}), "responses.csv")
    assert got["EFFECT[SQ001]"].tolist() == ["5", "1", "99", None]
    row = m.outcome_table()[0]
    assert (row["name"], row["column"], row["nl"], row["en"], row["direction"]) == (
        "stronger", "Q5_SQ001", "Sterker op het werk", "Professionally stronger", "descending")
    with pytest.raises(ConfigError) as info:
        config_from_dict({"survey": {"survey_id": 461283, "outcomes": {"stronger": {"direction": "up"}}}})
    assert info.value.param == "survey.outcomes.stronger.direction" and "descending" in info.value.expected


@pytest.mark.parametrize(
    ("survey", "effects", "param", "expected", "found", "hint"),
    [
        ({"outcomes": {"career": {"nl": "Loopbaan"}}, "columns": {"career": "Q5_SQ001"}}, {}, "survey.outcomes.career.en",
         "English (en) label", "no en", "[survey.outcomes.career]"),
        ({"outcomes": {"career": {"nl": "Loopbaan", "en": "Career"}}}, {}, "survey.columns.career",
         "a survey column for every outcome", "no column for career", 'career = "Q5_SQ001"'),
        ({"outcomes": {"Loopbaan!": {"nl": "Loopbaan", "en": "Career"}}}, {}, "survey.outcomes.Loopbaan!",
         "lower-case letters", "Loopbaan!", "career_chances"),
        ({"outcomes": {"educ": {"nl": "Opleiding", "en": "Education"}}}, {}, "survey.outcomes.educ", "not the name of another variable", "educ", "another name"),
        ({"outcomes": {"career": {"nl": "Loopbaan", "en": "Career"}}, "columns": {"career": "Q5_SQ001"}}, {"outcomes": ["career", "stronger"]},
         "effects.outcomes", "values among career", "stronger", "[survey.outcomes.stronger]"),
        ({"columns": {"career": "Q5_SQ001"}}, {}, "survey.columns.career", "a survey variable of popeval", "career", "[survey.outcomes.career]"),
    ],
)
def test_outcomes_of_the_surveys_own_misdescribed(survey: dict, effects: dict, param: str, expected: str, found: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"survey": {"survey_id": 461283, **survey}, "effects": effects})
    err = info.value
    assert err.param == param and expected in err.expected and found in err.found and hint in err.hint


def test_outcomes_of_the_surveys_own_in_order_with_a_subset_analysed() -> None:
    cfg = config_from_dict({"survey": {"survey_id": 461283, "columns": {"b_two": "Q9_SQ002", "a_one": "Q9_SQ001", "stronger": "Q9_SQ003"},
                                       "outcomes": {"b_two": {"nl": "Twee", "en": "Two"}, "a_one": {"nl": "Een", "en": "One", "direction": "descending"},
                                                    "stronger": {}}},
                            "effects": {"outcomes": ["a_one", "stronger"]}})
    m = cfg.survey.mapping()
    assert [(o.name, o.column, o.nl, o.direction) for o in m.outcome_list()] == [
        ("b_two", "EFFECT[SQ101]", "Twee", "ascending"), ("a_one", "EFFECT[SQ102]", "Een", "descending"),
        ("stronger", "EFFECT[SQ001]", "Professioneel sterker", "ascending")]
    assert cfg.effects.outcomes == ("a_one", "stronger")
    assert m.questionnaire().question("EFFECT").sub_names == ("b_two", "a_one", "stronger")


@pytest.mark.parametrize(
    ("rows", "title", "row", "column", "found"),
    [
        (["abc,a@example.invalid", "ABC,b@example.invalid"], "Person keys of more than one format", 2, "attribute_1", "lower-case hex, 3 characters: 1 rows"),
        (["{insz},a@example.invalid"], "Raw INSZ numbers in the invitations", 1, "attribute_1", "1 INSZ number(s); not shown"),
        (["abc,{insz}"], "A column other than the key holds INSZ-like values", 1, "email", "not shown"),
        (["abc,a@example.invalid", "abc,b@example.invalid"], "Duplicate pseudonymous key", 2, "attribute_1", "abc"),
    ],
)
def test_invitation_list_errors_never_show_an_insz(tmp_path: Path, rows: list[str], title: str, row: int, column: str, found: str) -> None:
    from survey.deploy import read_invitations
    from survey.insz import synthetic_insz

    insz = synthetic_insz(np.random.default_rng(8), 1)[0]
    inv = tmp_path / "uitnodigingen.csv"
    inv.write_text("attribute_1,email\n" + "".join(r.format(insz=insz) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_invitations(inv)
    err = info.value
    assert str(err).startswith(title) and err.row == row and err.column == column and found in err.found and err.hint
    assert insz not in str(err)


def test_participants_csv_without_the_key_attribute(foreign: Path) -> None:
    from survey.parse import read_participants

    with pytest.raises(DataValidationError) as info:
        read_participants(foreign / "deelnemers.csv", key_attribute="attribute_3")
    err = info.value
    assert err.column == "attribute_3" and "attribute_2" in err.found and "key_attribute" in err.hint


@pytest.mark.parametrize(
    ("edit", "title", "row", "column", "expected", "found", "hint"),
    [
        (lambda p: p.assign(attribute_2=p["attribute_2"].where(p.index != 2, "abc def")), "Malformed value in survey_participants", 3,
         "attribute_2", "values matching", "'abc def'", "export settings"),
        (lambda p: p.assign(tid=p["tid"].astype(str).where(p.index != 1, "t2")), "Wrong type in survey_participants", 2, "tid", "a whole number", "'t2'", "number format"),
        (lambda p: p.assign(tid=p["tid"].where(p.index != 4, p["tid"].iloc[0])), "Duplicate key in survey_participants", 5, "tid", "exactly once", "first at row 1",
         "popeval fetch"),
    ],
)
def test_participants_are_validated_like_the_extracts(foreign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      edit, title: str, row: int, column: str, expected: str, found: str, hint: str) -> None:
    """One validator (DuckDB, as for the extracts): file, row, the file's column, expected, found, hint."""
    import survey.sqlcheck
    from survey.parse import read_participants

    seen: list[str] = []
    checks = survey.sqlcheck.check_columns

    def counted(con: object, src: str, table: object, *a: object, **k: object) -> str:
        seen.append(table.name)  # type: ignore[attr-defined]
        return checks(con, src, table, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(survey.sqlcheck, "check_columns", counted)
    good = read_participants(foreign / "deelnemers.csv", key_attribute="attribute_2")
    assert seen == ["survey_participants"]  # the queries that check the extracts
    assert good["tid"].dtype == "int64" and len(good) == len(pd.read_csv(foreign / "deelnemers.csv"))
    bad = tmp_path / "deelnemers.csv"
    edit(pd.read_csv(foreign / "deelnemers.csv", dtype=str, keep_default_na=False)).to_csv(bad, index=False)
    with pytest.raises(DataValidationError) as info:
        read_participants(bad, key_attribute="attribute_2")
    err = info.value
    assert str(err).startswith(title) and err.file == str(bad) and err.row == row and err.column == column
    assert expected in err.expected and found in err.found and hint in err.hint


# ------------------------------------------------------------------ commands


def test_check_prints_the_mapping_and_computes_nothing(foreign: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    before = sorted(p.name for p in foreign.rglob("*"))
    assert main(["check", "--config", str(foreign / "study.toml")]) == 0
    out = capsys.readouterr().out
    assert "educ                 <- onderwijsniveau  [isced2011]" in out
    assert "Goedgekeurd" in out and "-> goedgekeurd" in out
    assert "sector               <- (derived from nace" in out
    assert "looks Latin-1 (not valid UTF-8), ;-separated" in out
    assert "stronger             <- Q5_SQ001" in out
    assert "validation: every row follows the data model" in out
    assert "true_values" in out  # the settings are documented in the output
    assert sorted(p.name for p in foreign.rglob("*")) == before
    codes = _without(_specs(foreign)[0].codes, "status", "Geweigerd")
    text = (foreign / "study.toml").read_text(encoding="utf-8").replace('Geweigerd = "geweigerd"\n', "")
    assert codes["status"] == {"Goedgekeurd": "goedgekeurd"}
    (foreign / "check.toml").write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(foreign / "check.toml")]) == 1
    out = capsys.readouterr().out
    assert "Geweigerd                                -> UNMAPPED" in out and "PROBLEM: Unmapped codes" in out


def test_init_writes_a_template_that_loads(foreign: Path, tmp_path: Path) -> None:
    from analysis.cli import main

    out = tmp_path / "study.toml"
    assert main(["init", "--dwse", str(foreign / "aanvragen.sav"), "--vdab", str(foreign / "trajecten.csv"),
                 "--snapshot", str(foreign / "enquete"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "(person key; values not shown)" in text and "# true_values" not in text
    assert "#   Q5_SQ001" in text and "#   interviewtime" in text  # the survey's columns, from its export
    cfg = load_config(out)
    assert cfg.admin.dwse_input.columns["educ"] == "onderwijsniveau"
    assert cfg.admin.dwse_input.rules == {"school_year": "school_year", "educ": "isced2011", "nace": "nace_bel", "company_size": "headcount", "province": "nis"}
    assert cfg.admin.dwse_input.codes["status"] == {"Geweigerd": "geweigerd", "Goedgekeurd": "goedgekeurd"}
    assert cfg.admin.vdab_input.extract == {"loopbaancentrum": r"LBC\d{3}"}
    assert main(["init", "--dwse", str(foreign / "aanvragen.sav"), "--vdab", str(foreign / "trajecten.csv"), "--out", str(out)]) == 2


def test_init_survey_skeleton_from_the_lss(tmp_path: Path) -> None:
    import tomllib

    from survey.lss import build_lss, fieldmap_from_lss
    from survey.mapping import skeleton

    text = skeleton(fieldmap_from_lss(build_lss()))
    data = tomllib.loads(text)
    assert data["survey"]["columns"]["stronger"] == "EFFECT[SQ001]"
    assert "#   EFFECT[SQ004]" in text


def test_pseudonymise_an_invitation_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main
    from survey.insz import pseudonymise, synthetic_insz

    monkeypatch.setenv("POPEVAL_PSEUDO_KEY", "k" * 24)
    raw = synthetic_insz(np.random.default_rng(2), 3)
    src = tmp_path / "uitnodigingen.csv"
    pd.DataFrame({"attribute_1": [*raw, "a" * 32], "email": ["a@example.invalid"] * 4}).to_csv(src, index=False)
    dst = tmp_path / "out.csv"
    assert main(["pseudonymise", str(src), "--out", str(dst)]) == 0
    got = pd.read_csv(dst, dtype=str)
    assert got["attribute_1"].tolist()[:3] == pseudonymise(pd.Series(raw), b"k" * 24).tolist()
    assert got["attribute_1"].iloc[3] == "a" * 32
    assert "3 raw INSZ in attribute_1 pseudonymised" in capsys.readouterr().out
    pd.DataFrame({"attribute_1": ["a" * 32], "opmerking": [raw[0]]}).to_csv(src, index=False)
    assert main(["pseudonymise", str(src), "--out", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "opmerking" in err and raw[0] not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("popeval ")


def test_insz_detection_and_keyed_hash_in_sql_equal_python() -> None:
    """The DuckDB macro finds exactly the INSZ that survey.insz finds; the SQL HMAC equals the Python one."""
    import duckdb

    from analysis.population.ingest import _INSZ_MACROS
    from survey.insz import hmac_pads, looks_like_insz, pseudonymise, synthetic_insz

    rng = np.random.default_rng(4)
    valid = synthetic_insz(rng, 300)
    noise = [str(v) for v in rng.integers(10**10, 10**11, 300)]
    vals = pd.Series([*valid, *noise, *(f"{v[:2]}.{v[2:4]}.{v[4:6]}-{v[6:9]}.{v[9:]}" for v in valid[:30]), "abc", "", None], dtype=object)
    con = duckdb.connect()
    con.execute(_INSZ_MACROS)
    con.register("frame", pd.DataFrame({"v": vals}))
    got = con.execute("SELECT coalesce(popeval_insz(v), false) FROM frame").df().iloc[:, 0].to_numpy(dtype=bool)
    np.testing.assert_array_equal(got, looks_like_insz(vals).to_numpy(dtype=bool))
    key = b"another-test-key-1234"
    ipad, opad = hmac_pads(key)
    con.execute("CREATE TEMP TABLE _popeval_pads AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", [ipad, opad])
    sql = con.execute(
        "SELECT substr(sha256((SELECT opad FROM _popeval_pads) || unhex(sha256((SELECT ipad FROM _popeval_pads) || "
        "encode(popeval_insz_norm(v))))), 1, 32) FROM frame WHERE popeval_insz(v)"
    ).df().iloc[:, 0].tolist()
    assert sql == pseudonymise(vals[looks_like_insz(vals)], key).tolist()


def test_cli_ingest_from_the_study_toml(foreign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    assert main(["ingest", "--config", str(foreign / "study.toml"), "--db", str(tmp_path / "cli.duckdb")]) == 0
    cap = capsys.readouterr()
    assert "from aanvragen.sav" in cap.out and "opleidingscheque users" in cap.out
    assert "participants" in cap.out and "0 linked" not in cap.out
    assert "vdab_trajectories: codes mapped and every value validated" in cap.err  # progress per stage


def test_nace_and_sector_cross_checked_when_both_given(tmp_path: Path) -> None:
    """A sector that contradicts the NACE section is counted (a warning below the share, an error above)."""
    from analysis.synth import generate

    demo = tmp_path / "demo"
    generate(persons=1_000, seed=8, out=demo)
    dwse = pd.read_csv(demo / "admin" / "dwse_applications.csv", dtype=str, keep_default_na=False)
    wrong = {"primair": "quartair", "secundair": "tertiair", "tertiair": "secundair", "quartair": "primair"}
    bad = dwse.copy()
    bad.loc[3, "sector"] = wrong[bad.loc[3, "sector"]]
    bad.to_csv(tmp_path / "dwse_applications.csv", index=False)
    rep = ingest(tmp_path / "dwse_applications.csv", demo / "admin" / "vdab_trajectories.csv", tmp_path / "n.duckdb")
    assert dict(rep.sources[0].warnings)["nace_sector_mismatch"] == 1
    k = len(bad) // 20
    bad.loc[: k - 1, "sector"] = bad.loc[: k - 1, "sector"].map(wrong)
    bad.to_csv(tmp_path / "dwse_applications.csv", index=False)
    with pytest.raises(DataValidationError) as info:
        ingest(tmp_path / "dwse_applications.csv", demo / "admin" / "vdab_trajectories.csv", tmp_path / "m.duckdb")
    err = info.value
    assert "NACE section and sector disagree" in err.title and err.column == "sector" and err.row == 1
    from survey.datamodel import NACE_TO_SECTOR

    n_wrong = int((bad["nace"].map(NACE_TO_SECTOR) != bad["sector"]).sum())
    assert f"{n_wrong} of {len(bad)} rows" in err.found
