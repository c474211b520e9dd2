"""The synthetic study: calibration targets, known truth, messy reality, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.synth import DEMO_SNAPSHOT, DEMO_SURVEY_ID, generate
from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
from survey.errors import ConfigError
from survey.validate import read_table


@pytest.fixture(scope="module")
def study_200k() -> dict:
    from shared_studies import generated_study

    out = generated_study(200_000, 2023)  # the demo study; shared with tests/test_pipeline.py (read-only)
    dwse = read_table(out / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    vdab = read_table(out / "admin" / "vdab_trajectories.csv", VDAB_TRAJECTORIES)
    truth = json.loads((out / "truth" / "truth.json").read_text())
    units = pd.read_parquet(out / "truth" / "units.parquet")
    snap = out / "survey" / str(DEMO_SURVEY_ID) / DEMO_SNAPSHOT
    responses = pd.read_csv(snap / "responses.csv", sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    participants = pd.DataFrame(json.loads((snap / "participants.json").read_text()))
    return {"dwse": dwse, "vdab": vdab, "truth": truth, "units": units, "resp": responses, "part": participants}


def test_pop_shares_per_incentive_hit_published_targets(study_200k: dict) -> None:
    a = study_200k["dwse"][study_200k["dwse"]["status"] == "goedgekeurd"]
    share = a.groupby("incentive", observed=True)["pop_based"].mean()
    assert share["OC"] == pytest.approx(0.06, abs=0.004)
    assert share["VOV"] == pytest.approx(0.008, abs=0.002)
    assert share["VAPOK"] == pytest.approx(0.25, abs=0.02)
    assert share["VOV"] < 0.01


def test_outside_databank_and_loopbaancheque_targets(study_200k: dict) -> None:
    a = study_200k["dwse"][study_200k["dwse"]["status"] == "goedgekeurd"]
    pop = a[a["pop_based"]]
    assert 1 - pop["in_databank"].mean() == pytest.approx(0.11, abs=0.015)
    assert a.loc[~a["pop_based"], "in_databank"].all()  # without a POP only databank trainings
    lbc = set(study_200k["vdab"]["person_key"])
    share = len(lbc & set(pop["person_key"])) / len(lbc)
    assert share == pytest.approx(0.03, abs=0.002)


def test_pop_users_skew_as_published(study_200k: dict) -> None:
    a = study_200k["dwse"][study_200k["dwse"]["status"] == "goedgekeurd"]
    age = a["school_year"].astype(str).str[:4].astype(int) - a["birth_year"]
    a = a.assign(prime_age=(age >= 25) & (age < 45), small=a["company_size"].isin(["1-9", "10-49"]))
    pop, rest = a[a["pop_based"]], a[~a["pop_based"]]
    assert (pop["educ"] == "hoog").mean() > 2 * (rest["educ"] == "hoog").mean()
    assert pop["prime_age"].mean() > rest["prime_age"].mean() + 0.05
    assert pop["sector"].isin(["tertiair", "quartair"]).mean() > rest["sector"].isin(["tertiair", "quartair"]).mean()
    assert (pop["sex"] == "V").mean() > (rest["sex"] == "V").mean() + 0.05
    oc = a[a["incentive"] == "OC"]
    assert oc.loc[oc["pop_based"], "small"].mean() > oc.loc[~oc["pop_based"], "small"].mean()


def test_truth_has_confounding_and_a_positive_att(study_200k: dict) -> None:
    truth = study_200k["truth"]
    units = study_200k["units"]
    assert truth["treated"] == int(units["pop"].sum())
    for name, o in truth["outcomes"].items():
        y0, y1 = units[f"y0_{name}"], units[f"y1_{name}"]
        att = (y1 - y0)[units["pop"]].mean()
        assert o["att_likert"] == pytest.approx(att, rel=1e-12)
        assert o["att_likert"] > 0
    # the naive difference is biased away from the ATT for at least two outcomes
    biased = [o for o in truth["outcomes"].values() if abs(o["naive_difference"] - o["att_likert"]) > 0.05]
    assert len(biased) >= 2
    # true propensities are proper probabilities, away from 0 and 1 enough for common support
    assert units["propensity"].between(0.001, 0.9).all()


def test_survey_sample_misrepresents_the_population(study_200k: dict) -> None:
    units = study_200k["units"]
    resp = units[units["responded"]]
    # POP users are oversampled and respond more
    assert resp["pop"].mean() > 2.5 * units["pop"].mean()
    # response propensity varies with characteristics, not only with POP
    assert resp["response_prob"].std() > 0.03


def test_messy_reality_is_present(study_200k: dict) -> None:
    r, part = study_200k["resp"], study_200k["part"]
    assert (r["submitdate"] == "").mean() == pytest.approx(0.15, abs=0.03)
    effect_cols = [c for c in r.columns if c.startswith("EFFECT[")]
    assert (r[effect_cols] == "99").to_numpy().sum() > 50
    dup_tokens = r.loc[r["submitdate"] != "", "token"].duplicated().sum()
    assert 10 <= dup_tokens <= 100
    orphans = ~r["token"].isin(part["token"])
    assert orphans.sum() >= 1
    assert r["REMARKS"].str.contains("ö|è|é|–", regex=True).any()
    assert r["REMARKS"].str.contains("\n").any()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_gives_byte_identical_files(tmp_path: Path, fmt: str) -> None:
    generate(persons=2_000, seed=5, out=tmp_path / "a", file_format=fmt)
    generate(persons=2_000, seed=5, out=tmp_path / "b", file_format=fmt)
    generate(persons=2_000, seed=6, out=tmp_path / "c", file_format=fmt)
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert len(a) >= 8
    assert a == b
    assert a[f"admin/dwse_applications.{fmt}"] != c[f"admin/dwse_applications.{fmt}"]


def test_generated_extracts_follow_the_data_model(small_study: Path) -> None:
    d = read_table(small_study / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    v = read_table(small_study / "admin" / "vdab_trajectories.csv", VDAB_TRAJECTORIES)
    assert len(d) > 5_000 and len(v) > 1_000
    assert set(v["person_key"]) - set(d["person_key"])  # some guidance users never applied
    assert d["application_id"].is_unique


def test_rejects_too_few_persons(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="persons"):
        generate(persons=10, out=tmp_path)


def test_raw_insz_mode_writes_valid_insz_numbers(tmp_path: Path) -> None:
    from survey.insz import looks_like_insz

    generate(persons=1_000, seed=3, out=tmp_path, raw_insz=True)
    d = pd.read_csv(tmp_path / "admin" / "dwse_applications.csv", dtype=str)
    assert looks_like_insz(d["person_key"]).all()
    assert np.all(d["person_key"].str.len() == 11)
