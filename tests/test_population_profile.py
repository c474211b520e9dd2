"""Margins and profile of the admin population, and the raw-INSZ guarantee.

Targets come from the generator (:class:`analysis.synth.SynthParams` and ``truth/truth.json``);
tolerances are four binomial standard errors at the size of the test study, plus one percentage point
where refusals shift the share of *approved* applications away from the share of all applications the
generator calibrates (POP-based applications are refused less often).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.population import DEFAULT_MARGINS, ingest, link, load_population, margins, profile
from analysis.synth import SynthParams
from survey.errors import ConfigError

SNAP = Path("survey") / "461283" / "20230704T080000Z"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A 20,000-person study, ingested and linked once."""
    from shared_studies import generated_study

    out = generated_study(20_000, 5)
    db = tmp_path_factory.mktemp("profile_study") / "popeval.duckdb"
    ingest(out / "admin" / "dwse_applications.csv", out / "admin" / "vdab_trajectories.csv", db)
    rep = link(db, out / SNAP)
    return {
        "out": out,
        "db": db,
        "report": rep,
        "dwse": pd.read_csv(out / "admin" / "dwse_applications.csv", dtype=str),
        "truth": json.loads((out / "truth" / "truth.json").read_text()),
        "profile": profile(db),
    }


def _tol(share: float, n: int, bias: float = 0.01) -> float:
    return 4 * np.sqrt(share * (1 - share) / n) + bias


# ------------------------------------------------------------------ profile recovers the targets

def test_pop_share_per_incentive_recovers_targets(study: dict) -> None:
    p = SynthParams()
    share = study["profile"].pop_share.set_index("incentive")
    for inc, target in (("OC", p.pop_share_oc), ("VOV", p.pop_share_vov), ("VAPOK", p.pop_share_vapok)):
        n = int(share.loc[inc, "total"])
        got = float(share.loc[inc, "pct_pop"]) / 100
        assert abs(got - target) < _tol(target, n), (inc, got, target)


def test_pop_share_counts_exact(study: dict) -> None:
    dwse = study["dwse"]
    ok = dwse[dwse["status"] == "goedgekeurd"]
    share = study["profile"].pop_share.set_index("incentive")
    for inc in ("OC", "VOV", "VAPOK"):
        sub = ok[ok["incentive"] == inc]
        assert int(share.loc[inc, "total"]) == len(sub)
        assert int(share.loc[inc, "pop_based"]) == int((sub["pop_based"] == "1").sum())


def test_loopbaancheque_share_is_exact(study: dict) -> None:
    """The generator links exactly round(3% ...) guidance users to a later POP-based application."""
    lbc = study["profile"].pop_share.set_index("incentive").loc["LBC"]
    assert int(lbc["pop_based"]) == study["truth"]["linked_pop_persons"]
    trajectories = pd.read_csv(study["out"] / "admin" / "vdab_trajectories.csv", dtype=str)
    assert int(lbc["total"]) == trajectories["person_key"].nunique()
    assert abs(float(lbc["pct_pop"]) / 100 - SynthParams().lbc_to_pop_share) < 0.002


def test_share_outside_databank_recovers_target(study: dict) -> None:
    out = study["profile"].outside_databank.set_index("incentive").loc["all"]
    target = SynthParams().pop_outside_databank
    assert abs(float(out["pct_outside"]) / 100 - target) < _tol(target, int(out["pop_based"]), 0.0)
    dom = study["profile"].domains
    assert list(dom.loc[dom["databank"] == "outside", "rank"]) == [1, 2, 3, 4, 5]
    # POP-route trainings concentrate in care and education (generator: 30% and 25%)
    assert set(dom.loc[dom["rank"] <= 2, "training_domain"]) == {"ZORG", "ONDERWIJS"}


def test_composition_counts_and_direction(study: dict) -> None:
    from survey.datamodel import age_band

    dwse = study["dwse"]
    ok = dwse[dwse["status"] == "goedgekeurd"].sort_values(["person_key", "application_date", "application_id"])
    latest = ok.groupby("person_key").tail(1).set_index("person_key")
    pop_users = set(ok.loc[ok["pop_based"] == "1", "person_key"])
    latest["age_band"] = [age_band(int(d[:4]) - int(b)) for d, b in zip(latest["application_date"], latest["birth_year"], strict=True)]
    comp = study["profile"].composition
    for var in ("educ", "age_band", "sex"):
        want_all = latest[var].value_counts()
        want_pop = latest.loc[latest.index.isin(pop_users), var].value_counts()
        got = comp[comp["variable"] == var].set_index("category")
        for cat in got.index:
            assert int(got.loc[cat, "all_users"]) == int(want_all.get(cat, 0)), (var, cat)
            assert int(got.loc[cat, "pop_users"]) == int(want_pop.get(cat, 0)), (var, cat)
    educ = comp[comp["variable"] == "educ"].set_index("category")
    assert educ.loc["hoog", "pct_pop_users"] > 2 * educ.loc["hoog", "pct_all_users"]
    sex = comp[comp["variable"] == "sex"].set_index("category")
    assert sex.loc["V", "pct_pop_users"] > sex.loc["V", "pct_all_users"]


def test_profile_suppresses_small_cells(study: dict) -> None:
    strict = profile(study["db"], threshold=200)
    comp = strict.composition
    assert strict.suppressed_cells > 0
    small = study["profile"].composition["pop_users"] < 200
    assert comp.loc[small & (study["profile"].composition["pop_users"] > 0), "pop_users"].isna().all()
    assert comp.loc[comp["pop_users"].isna(), "pct_pop_users"].isna().all()
    # no variable block has exactly one suppressed POP-user cell
    per_var = comp.groupby("variable")["pop_users"].apply(lambda s: int(s.isna().sum()))
    assert not (per_var == 1).any()
    assert "suppressed" in strict.summary()
    assert set(strict.to_frame()["table"]) == {"pop_share", "composition", "domains", "outside_databank"}


# ------------------------------------------------------------------ margins

def test_margins_equal_population_counts(study: dict) -> None:
    pop = load_population(study["db"])
    m = margins(study["db"])
    assert m.population == len(pop) == study["report"].population
    for key in DEFAULT_MARGINS:
        cols = [key] if isinstance(key, str) else list(key)
        want = pop.groupby(cols, observed=False).size()
        got = m.totals[key]
        assert sum(got.values()) == len(pop)
        for cell, n in got.items():
            assert n == int(want.get(cell, 0)), (key, cell)
    assert m.totals[("pop", "educ")][(True, "hoog")] == int(((pop["pop"]) & (pop["educ"] == "hoog")).sum())
    assert set(m.table.columns) == {"margin", "variables", "category", "count"}
    assert (m.to_frame()["version"] == m.version).all()


def test_margins_list_empty_cells_and_are_versioned(study: dict, tmp_path: Path) -> None:
    m = margins(study["db"], ["province", ("age_band", "sex")])
    assert len(m.totals["province"]) == 7
    assert len(m.totals[("age_band", "sex")]) == 10
    again = margins(study["db"], ["province", ("age_band", "sex")])
    assert again.version == m.version
    assert margins(study["db"], ["province"]).version != m.version
    assert [s[0] for s in m.sources] == ["dwse_applications", "vdab_trajectories"]
    # from a frame: same counts
    frame = margins(load_population(study["db"]), ["province", ("age_band", "sex")])
    pd.testing.assert_frame_equal(frame.table, m.table)
    with pytest.raises(ConfigError, match="Unknown margin variable"):
        margins(study["db"], ["shoe_size"])
    with pytest.raises(ConfigError, match="non-empty"):
        margins(study["db"], [])
    assert "pm-" in m.summary()


def test_margins_feed_rake(study: dict) -> None:
    from analysis.weighting import SurveyDesign, rake

    pop = load_population(study["db"])
    rng = np.random.default_rng(1)
    sample = pop[rng.random(len(pop)) < 0.5].reset_index(drop=True)
    for c in ("sex", "educ", "age_band"):
        sample[c] = sample[c].astype(str)
    spec = ["pop", ("pop", "educ"), ("age_band", "sex")]
    m = margins(study["db"], spec)
    raked = rake(SurveyDesign(sample), dict(m.totals))
    w = raked.weights.to_numpy()
    for cell, total in m.totals[("age_band", "sex")].items():
        sel = ((sample["age_band"] == cell[0]) & (sample["sex"] == cell[1])).to_numpy()
        assert w[sel].sum() == pytest.approx(total, rel=1e-6)


# ------------------------------------------------------------------ raw INSZ never leaves ingest

def test_raw_insz_never_reaches_derived_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    from analysis.cli import main
    from analysis.synth import generate
    from survey.errors import DataValidationError
    from survey.insz import pseudonymise

    study = tmp_path / "raw"
    generate(persons=3_000, seed=2, out=study, raw_insz=True)
    dwse, vdab = study / "admin" / "dwse_applications.csv", study / "admin" / "vdab_trajectories.csv"
    raw = pd.concat([pd.read_csv(dwse, dtype=str)["person_key"], pd.read_csv(vdab, dtype=str)["person_key"]]).unique()
    assert len(raw) > 1000 and all(len(v) == 11 and v.isdigit() for v in raw)

    derived = tmp_path / "data_derived"
    db = derived / "popeval.duckdb"
    with pytest.raises(DataValidationError) as info:
        ingest(dwse, vdab, db)
    assert not any(v in str(info.value) for v in raw)

    secret = "synthetic-test-key-0123456789abcdef"
    monkeypatch.setenv("POPEVAL_PSEUDO_KEY", secret)
    code = main(["ingest", "--dwse", str(dwse), "--vdab", str(vdab), "--participants", str(study / SNAP),
                 "--db", str(db), "--pseudonymise"])
    assert code == 0
    m = margins(db)
    prof = profile(db, threshold=5)
    m.to_frame().to_csv(derived / "margins.csv", index=False)
    prof.to_frame().to_csv(derived / "profile.csv", index=False)
    (derived / "reports.txt").write_text(m.summary() + "\n" + prof.summary() + "\n" + link(db, study / SNAP).summary())

    with duckdb.connect(str(db), read_only=True) as con:
        keys = {r[0] for r in con.execute("SELECT DISTINCT person_key FROM dwse_applications").fetchall()}
        assert keys == set(pseudonymise(pd.Series(pd.read_csv(dwse, dtype=str)["person_key"].unique()), secret.encode()))
        n_ps = con.execute("SELECT sum(pseudonymised) FROM ingest_sources").fetchall()[0][0]
        assert n_ps == len(pd.read_csv(dwse)) + len(pd.read_csv(vdab))
        found = _sql_scan(con, set(raw))
    assert found == []

    files = [p for p in derived.rglob("*") if p.is_file()]
    assert db in files and len(files) >= 4
    needles = {v.encode() for v in raw}
    for path in files:
        # every run of 11 digits in the file (overlapping): a raw INSZ in it is one of them
        windows = {m.group(1) for m in re.finditer(rb"(?=(\d{11}))", path.read_bytes())}
        assert not windows & needles, path.name

    # the scans can fail: a control database with one raw value is caught
    with duckdb.connect(str(tmp_path / "control.duckdb")) as con:
        con.execute("CREATE TABLE t (x VARCHAR)")
        con.execute("INSERT INTO t VALUES (?)", [str(raw[0])])
        assert _sql_scan(con, set(raw)) == [("t", "x")]


def _sql_scan(con, needles: set[str]) -> list[tuple[str, str]]:
    """Every (table, column) of text type holding one of ``needles``."""
    hits = []
    cols = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    ).fetchall()
    probe = pd.DataFrame({"v": sorted(needles)})
    con.register("_needles", probe)
    for table, column in cols:
        n = con.execute(f'SELECT count(*) FROM "{table}" t JOIN _needles n ON strpos(t."{column}", n.v) > 0').fetchall()[0][0]
        if n:
            hits.append((table, column))
    con.unregister("_needles")
    return hits
