"""popeval run: configuration errors, caching, byte-identical bundles, design lock, exports."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_studies import generated_study
from study_toml import study_settings, write_study_toml

from analysis.config import config_from_dict, load_config
from analysis.pipeline import DesignLockError, run
from analysis.synth import DEMO_SNAPSHOT, DEMO_SURVEY_ID
from survey.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


METHODS = ("matching", "regression", "ipw", "aipw", "absorbed", "naive")


def _write_config(path: Path, study: Path, derived: Path, replicates: int = 8, methods: tuple[str, ...] = METHODS, **sections: dict) -> Path:
    return write_study_toml(path, study_settings("test", derived, generated=study, replicates=replicates, methods=methods, **sections))


@pytest.fixture(scope="module")
def study() -> Path:
    """The 20,000-person study of seed 21 (shared with tests/test_byo_study.py; read-only)."""
    return generated_study(20_000, 21)


@pytest.fixture(scope="module")
def first_run(study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    base = tmp_path_factory.mktemp("run1")
    cfg_path = base / "study.toml"
    _write_config(cfg_path, study, base / "derived")
    result = run(load_config(cfg_path), progress=False)
    return cfg_path, result


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ configuration


def test_demo_config_is_valid() -> None:
    cfg = load_config(REPO / "studies" / "demo.toml")
    assert cfg.study.name == "demo"
    assert cfg.weighting.margins[0] == ("pop", "educ")
    assert cfg.effects.outcomes == ("stronger", "job_better", "promotion", "satisfaction")


@pytest.mark.parametrize(
    ("data", "param", "listed"),
    [
        ({"weighting": {"method": "ipf"}}, "weighting.method", "rake, poststratify, linear, logit, none"),
        ({"matching": {"m_order": "biggest"}}, "matching.m_order", "largest, smallest, random, data"),
        ({"effects": {"outcomes": ["stronger", "happiness"]}}, "effects.outcomes", "stronger, job_better, promotion, satisfaction"),
        ({"matching": {"caliper": "wide"}}, "matching.caliper", "a number"),
        ({"matching": {"ratio": 0}}, "matching.ratio", ">= 1"),
        ({"weighting": {"margins": [["pop", "shoe_size"]]}}, "weighting.margins", "pop, educ"),
        ({"study": {"language": "fr"}}, "study.language", "nl, en"),
    ],
)
def test_invalid_settings_list_the_allowed_values(data: dict, param: str, listed: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, source=Path("study.toml"))
    assert e.value.param == param
    assert listed in str(e.value)
    assert "study.toml" in str(e.value)


def test_unknown_section_and_setting() -> None:
    with pytest.raises(ConfigError, match=r"\[weighting\]"):
        config_from_dict({"weigting": {}})
    with pytest.raises(ConfigError) as e:
        config_from_dict({"matching": {"calliper": 0.1}})
    assert e.value.param == "matching.calliper"
    assert "caliper" in str(e.value.expected)


def test_missing_inputs_are_clear_errors(study: Path, tmp_path: Path) -> None:
    _write_config(tmp_path / "s.toml", study, tmp_path / "d", admin={"dwse": (study / "admin" / "nope.csv").as_posix()})
    with pytest.raises(ConfigError) as e:
        run(load_config(tmp_path / "s.toml"), progress=False)
    assert e.value.param == "admin.dwse"
    assert "nope.csv" in str(e.value)


# ------------------------------------------------------------------ the run


def test_run_writes_a_complete_bundle(first_run: tuple[Path, object]) -> None:
    from analysis.bundle import TABLES, read_bundle

    _, result = first_run
    b = read_bundle(result.bundle)
    for name in ("pop_share", "profile", "linkage", "response_flow", "weighting_margins", "weight_diagnostics", "balance", "effects", "sensitivity"):
        assert name in b.tables, name
        assert set(TABLES[name][0]) <= set(b.tables[name].columns)
    eff = b.table("effects")
    assert {"matching", "regression", "ipw", "aipw", "naive"} <= set(eff["method"])
    # the fixed-effects variant holds the training domain (a mediator) fixed: not an ATT, kept apart
    assert "absorbed" not in set(eff["method"])
    cde = b.table("controlled_direct_effect")
    assert set(cde["method"]) == {"absorbed"} and cde["estimand"].str.contains("controlled direct").all()
    # every published estimator carries the end-to-end replicate SE
    assert (eff.loc[eff["method"] != "naive", "se_type"] == "replicate").all()
    # the estimand and its excluded group, decided before outcomes were read
    est = b.estimates["estimand"]
    assert est["name"] == "ATT among POP users with comparable controls"
    assert {"variable": "educ", "category": "hoog"}.items() <= est["excluded_groups"][0].items()
    assert est["n_treated_excluded"] > 0 and 0 < est["share_treated_excluded_weighted"] < 1
    ov = b.table("overlap")
    assert set(ov["kind"]) == {"cell", "propensity"}
    assert ov.loc[(ov["variable"] == "educ") & (ov["category"] == "hoog"), "status"].iloc[0] in ("sparse", "empty")
    assert b.table("overlap_excluded")["n"].sum() > 0
    dk = b.table("dont_know")
    assert set(dk["group"]) == {"pop", "no_pop"} and (dk["n_dont_know"] <= dk["n"]).all()
    assert set(b.table("dont_know_sensitivity")["scenario"]) == {"complete_case", "as_neutral", "against_pop", "for_pop"}
    main = eff[(eff["method"] == "matching") & (eff["scale"] == "likert")]
    assert len(main) == 4
    assert np.isfinite(main["bse"]).all()
    assert (main["bse"] > 0).all()
    assert (main["p_holm"] >= main["p_value"] - 1e-12).all()
    flow = b.table("response_flow").set_index("step")["n"]
    assert flow["invited"] > flow["started"] > flow["completed"] >= flow["linked"] >= flow["analysed"] > 0
    assert b.manifest["seed"] == 7
    assert 0.3 < b.estimates["reliability"]["cronbach_alpha"] < 0.95  # the items share a person effect
    assert set(b.estimates["hedges_g_unadjusted"]) == {"stronger", "job_better", "promotion", "satisfaction"}
    assert all(len(v["sha256"]) == 64 for v in b.manifest["inputs"].values())
    assert "time" not in b.manifest and "host" not in b.manifest
    # the fit warnings of the run are in the bundle, as the run reported them
    fits = b.manifest["fit_warnings"]
    assert all(isinstance(n, int) and n > 0 for n in fits.values())
    said = sorted(w for w in result.warnings if " while fitting" in w)
    assert [w.split(" while fitting")[0] for w in said] == sorted(f"{what} warned {n} time(s)" for what, n in fits.items())
    # each with what it means for the estimate
    assert all(w.split(" while fitting", 1)[1].startswith(": ") for w in said if "Warning warned" in w)


def test_weighted_margins_equal_population(first_run: tuple[Path, object]) -> None:
    from analysis.bundle import read_bundle

    wm = read_bundle(first_run[1].bundle).table("weighting_margins")
    np.testing.assert_allclose(wm["pct_weighted"], wm["pct_population"], atol=1e-6)
    assert (wm["pct_unweighted"] - wm["pct_population"]).abs().max() > 1.0  # respondents were not representative


def test_rerun_reuses_every_step_and_bundle_is_identical(first_run: tuple[Path, object]) -> None:
    cfg_path, result = first_run
    before = _digest(result.bundle)
    again = run(load_config(cfg_path), progress=False)
    assert set(again.reused) >= {"ingest+link", "survey", "design", "outcomes"}
    assert not {"ingest+link", "survey", "design", "outcomes"} & set(again.computed)
    assert _digest(again.bundle) == before


def test_two_independent_runs_give_byte_identical_bundles(study: Path, first_run: tuple[Path, object], tmp_path: Path) -> None:
    cfg = tmp_path / "study.toml"
    _write_config(cfg, study, tmp_path / "elsewhere")
    other = run(load_config(cfg), progress=False)
    assert other.computed[:4] == ("ingest+link", "survey", "design", "outcomes")
    assert _digest(other.bundle) == _digest(first_run[1].bundle)


def test_changed_setting_recomputes_only_what_depends_on_it(first_run: tuple[Path, object], tmp_path: Path) -> None:
    cfg_path, _ = first_run
    cfg = load_config(cfg_path)
    # effects settings (fewer replicates, fewer methods: a cheaper outcomes step) touch the outcomes only
    cfg = dataclasses.replace(cfg, effects=dataclasses.replace(cfg.effects, replicates=4, methods=("matching", "naive")))
    res = run(cfg, progress=False)
    assert "ingest+link" in res.reused and "design" in res.reused
    assert "outcomes" in res.computed


def test_exports_for_spss_and_stata(first_run: tuple[Path, object]) -> None:
    import pyreadstat

    exports = first_run[1].run_dir / "exports"
    df, meta = pyreadstat.read_sav(exports / "analysis_file.sav")
    dta, dmeta = pyreadstat.read_dta(exports / "analysis_file.dta")
    pq = pd.read_parquet(exports / "analysis_file.parquet")
    assert len(df) == len(dta) == len(pq) > 100
    for col in ("w_survey", "w_matching", "w_analysis", "pop", "educ", "stronger"):
        assert col in df.columns
    assert meta.variable_value_labels["educ"] == {1.0: "Laaggeschoold", 2.0: "Middengeschoold", 3.0: "Hooggeschoold"}
    assert meta.variable_value_labels["stronger"][5.0] == "Helemaal akkoord"
    assert dmeta.variable_value_labels["pop"] == {0: "Geen POP", 1: "POP"}
    np.testing.assert_allclose(df["w_analysis"].to_numpy(), pq["w_analysis"].to_numpy())
    assert "person_key" not in pq.columns  # the linkage pseudonym is never exported


# ------------------------------------------------------------------ design before outcomes


def _copy_study(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest)
    for p in dest.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    return dest


def test_design_stage_never_reads_outcomes(study: Path, first_run: tuple[Path, object], tmp_path: Path) -> None:
    """Shuffling every outcome answer leaves the locked design unchanged.

    The design of the study as it is was locked by the first run (the same settings); the copy
    with shuffled answers gets a design stage of its own.
    """
    b = _copy_study(study, tmp_path / "b")
    snap_b = b / "survey" / str(DEMO_SURVEY_ID) / DEMO_SNAPSHOT
    raw = (snap_b / "responses.csv").read_bytes().decode("utf-8-sig")
    lines = raw.split("\r\n")
    header = lines[0].split(";")
    cols = [i for i, h in enumerate(header) if h.startswith('"EFFECT[')]
    rng = np.random.default_rng(0)
    new = [lines[0]]
    for line in lines[1:]:
        if not line:
            new.append(line)
            continue
        fields = line.split(";")
        if len(fields) == len(header):
            for i in cols:
                if fields[i]:
                    fields[i] = f'"{rng.integers(1, 6)}"'
        new.append(";".join(fields))
    (snap_b / "responses.csv").write_bytes(("\ufeff" + "\r\n".join(new)).encode("utf-8"))
    # a different snapshot, so its manifest must say so (snapshots are checked against their manifest)
    import hashlib
    import json as _json

    man = _json.loads((snap_b / "manifest.json").read_text())
    man["files"]["responses.csv"] = hashlib.sha256((snap_b / "responses.csv").read_bytes()).hexdigest()
    (snap_b / "manifest.json").write_text(_json.dumps(man, indent=2, sort_keys=True) + "\n")
    cfg = tmp_path / "b.toml"
    _write_config(cfg, b, tmp_path / "derived_b")
    r = run(load_config(cfg), stage="design", progress=False)
    assert r.bundle is None
    (lock_b,) = (tmp_path / "derived_b" / "locks").glob("test-*.design.lock.json")
    (lock_a,) = (first_run[0].parent / "derived" / "locks").glob("test-*.design.lock.json")
    import json

    a, b_ = json.loads(lock_a.read_text()), json.loads(lock_b.read_text())
    assert a["inputs"]["survey"] != b_["inputs"]["survey"]  # the answers did change
    assert a["design_hash"] == b_["design_hash"]


def test_outcomes_refuse_a_design_changed_after_the_lock(study: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "study.toml"
    # the main estimator without replicates: the lock guards the design, which neither the other
    # methods nor the standard errors touch
    _write_config(cfg_path, study, tmp_path / "derived", replicates=0, methods=("matching",))
    cfg = load_config(cfg_path)
    run(cfg, stage="design", progress=False)
    assert len(list((tmp_path / "derived" / "locks").glob("test-*.design.lock.json"))) == 1
    # the matching specification is changed after the design was locked
    changed = dataclasses.replace(cfg, matching=dataclasses.replace(cfg.matching, caliper=0.05))
    with pytest.raises(DesignLockError, match="changed after it was locked"):
        run(changed, progress=False)
    # re-locking deliberately is allowed, and then the outcomes run
    run(changed, stage="design", progress=False)
    done = run(changed, progress=False)
    assert done.bundle is not None
    # new data (a new wave, a corrected extract) gets its own design: no refusal
    wave2 = _copy_study(study, tmp_path / "wave2")
    dwse = wave2 / "admin" / "dwse_applications.csv"
    lines = dwse.read_text(encoding="utf-8").splitlines(keepends=True)
    dwse.write_text("".join(lines[:-1]), encoding="utf-8")
    cfg2 = tmp_path / "wave2.toml"
    _write_config(cfg2, wave2, tmp_path / "derived", replicates=0, methods=("matching",))
    assert run(dataclasses.replace(load_config(cfg2), matching=changed.matching), progress=False).bundle is not None
    assert len(list((tmp_path / "derived" / "locks").glob("test-*.design.lock.json"))) == 2


def test_weighting_moves_outcome_means_towards_the_population(tmp_path: Path) -> None:
    """On the demo study, weighted respondent means of the outcomes are closer to the true population means.

    The demo study as ``popeval demo`` writes it (200,000 persons, seed 2023; shared with
    tests/test_synth.py): POP users are oversampled, respond more and score higher, and response depends on education and age, so the
    unweighted respondent means are off; raking to the admin margins brings them back.
    """
    import json

    study = generated_study(200_000, 2023)
    cfg = tmp_path / "study.toml"
    _write_config(cfg, study, tmp_path / "derived", replicates=0, methods=("matching",))
    res = run(load_config(cfg), progress=False)
    truth = json.loads((study / "truth" / "truth.json").read_text())["outcomes"]
    af = pd.read_parquet(res.run_dir / "exports" / "analysis_file.parquet")
    err_w, err_u = [], []
    for name, t in truth.items():
        ok = af[name].notna()
        y, w = af.loc[ok, name].to_numpy(), af.loc[ok, "w_survey"].to_numpy()
        err_w.append(abs(np.average(y, weights=w) - t["population_mean"]))
        err_u.append(abs(y.mean() - t["population_mean"]))
    assert sum(err_w) < 0.5 * sum(err_u), (err_w, err_u)
    assert sum(e_w < e_u for e_w, e_u in zip(err_w, err_u, strict=True)) >= 3, (err_w, err_u)
