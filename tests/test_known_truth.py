"""The known-truth simulation (``bench/known_truth.py``): small runs in CI and the committed matrix run.

The small runs (4 synthetic studies of 30,000 persons with 20 end-to-end replicates each, and the
scenario matrix's own code path on two scenarios x two studies) check the machinery and what so few
small studies can show: every estimate lies within a few replicate SEs of the known ATT.  The
criteria of the main estimator (|bias| <= 0.02 Likert points, coverage of its 95 % interval) are
checked on the committed matrix run (``bench/results/known_truth_matrix.json`` and its per-study
records), which is the current known-truth result.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import known_truth as kt  # noqa: E402

SEEDS = tuple(range(7000, 7004))
PERSONS = 30_000
REPLICATES = 20
OUTCOMES = ("stronger", "job_better", "promotion", "satisfaction")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Four small synthetic studies run through the real pipeline, one after another in this process.

    (A worker process imports the whole stack first; the pool of worker processes is checked by
    :func:`test_rerun_resumes`, which has one study recomputed in it.)
    """
    out = tmp_path_factory.mktemp("known_truth")
    records = kt.run_studies(SEEDS, PERSONS, REPLICATES, out / "kt.jsonl", workers=1, progress=False, tmp_root=str(out))
    return out, records


def _values(records: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([r["outcomes"][o][s][key] for r in records for o in OUTCOMES for s in kt.SCALES], dtype=float)


def test_records_are_complete(small_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, records = small_run
    assert sorted(r["seed"] for r in records) == list(SEEDS)
    assert all("error" not in r for r in records), [r.get("error") for r in records]
    for r in records:
        # a replicate whose raking cannot be done (a sparse cell that cannot be merged within its
        # stratum) is counted, not fatal; at 30,000 persons that happens rarely
        assert r["replicates_ok"] >= 0.9 * REPLICATES
        assert r["respondents_pop"] > 0 and r["respondents"] > r["respondents_pop"]
        # the linked population is the generator's study population
        assert r["population_size"] == r["truth_population_size"]
        assert set(r["outcomes"]) == set(OUTCOMES)
    for key in ("estimate", "bse", "model_bse", "naive", "unweighted_matched", "truth"):
        assert np.isfinite(_values(records, key)).all(), key
    assert (_values(records, "bse") > 0).all()
    est, lo, hi = _values(records, "estimate"), _values(records, "ci_lower"), _values(records, "ci_upper")
    assert ((lo < est) & (est < hi)).all()
    # the temporary study folders are removed
    assert not list(out.glob("known_truth_*"))


def test_truth_is_read_from_the_truth_file(small_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    from analysis.synth import generate

    _, records = small_run
    rec = next(r for r in records if r["seed"] == SEEDS[0])
    generate(persons=PERSONS, seed=SEEDS[0], out=tmp_path, file_format="parquet")
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text(encoding="utf-8"))
    import pandas as pd

    units = pd.read_parquet(tmp_path / "truth" / "units.parquet")
    # the estimand's truth: the POP users outside the excluded (regulated) cells
    assert rec["estimand"]["name"] == "ATT among POP users with comparable controls"
    groups = rec["estimand"]["excluded_groups"]
    assert {"variable": "educ", "category": "hoog"}.items() <= groups[0].items() or any(
        g["variable"] == "educ" and g["category"] == "hoog" for g in groups
    )
    keep = units["pop"].astype(bool)
    for g in groups:
        if g["variable"] in units.columns:
            keep &= units[g["variable"]].astype(str) != g["category"]
    for o in OUTCOMES:
        assert rec["outcomes"][o]["likert"]["truth_all_pop"] == truth["outcomes"][o]["att_likert"]
        assert rec["outcomes"][o]["top2"]["truth_all_pop"] == truth["outcomes"][o]["att_top2"]
        expected = float((units.loc[keep, f"y1_{o}"] - units.loc[keep, f"y0_{o}"]).mean())
        assert rec["outcomes"][o]["likert"]["truth"] == pytest.approx(expected, abs=1e-12)
        assert rec["outcomes"][o]["population_naive_difference"] == truth["outcomes"][o]["naive_difference"]
        # every published estimator was estimated with a replicate SE
        meths = rec["outcomes"][o]["likert"]["methods"]
        assert set(meths) == {"matching", "regression", "ipw", "aipw", "naive"}
        assert set(rec["outcomes"][o]["top2"]["methods"]) == set(meths) | {"ologit"}
        assert all(np.isfinite(v["estimate"]) and v["bse"] > 0 for v in meths.values())


def test_errors_are_consistent_with_the_replicate_se(small_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """z = (estimate - truth) / replicate SE over 4 studies x 4 outcomes x 2 scales.

    With an unbiased estimator and a correct SE each z is about Student's t with 19 degrees of
    freedom (an SE from 20 replicates): P(|z| > 4.5) is 2.5e-4 each, so P(any of 32) is at most
    8e-3 (less, as the values of one study are correlated), and the mean of z^2 is about 1.1.  The
    studies' seeds are fixed, so the outcome is the same on every run of the same code.  The bound 3
    on mean z^2 fails when the SE understates the error by a factor above 1.7 or the estimates are
    off by more than about 1.4 SE systematically.
    """
    _, records = small_run
    z = (_values(records, "estimate") - _values(records, "truth")) / _values(records, "bse")
    assert np.abs(z).max() < 4.5, z
    assert float(np.mean(z**2)) < 3.0, z


def test_mean_absolute_error_is_bounded(small_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """Mean |estimate - truth| (Likert) below 1.5 mean replicate SEs; 0.8 is expected (E|N(0, s)| = 0.8 s)."""
    _, records = small_run
    err = np.array([r["outcomes"][o]["likert"]["estimate"] - r["outcomes"][o]["likert"]["truth"] for r in records for o in OUTCOMES])
    se = np.array([r["outcomes"][o]["likert"]["bse"] for r in records for o in OUTCOMES])
    assert float(np.mean(np.abs(err))) < 1.5 * float(np.mean(se))


def test_rerun_resumes(small_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    out, records = small_run
    path = out / "kt.jsonl"
    before = path.read_text(encoding="utf-8")
    again = kt.run_studies(SEEDS, PERSONS, REPLICATES, path, workers=2, progress=False)
    assert path.read_text(encoding="utf-8") == before  # nothing recomputed
    assert sorted(r["seed"] for r in again) == sorted(r["seed"] for r in records)
    # a results file without its last study: only that one is run again, in a worker process of the
    # pool, and gives the record it gave in this process (up to its timings)
    lines = before.splitlines(keepends=True)
    partial = tmp_path / "kt.jsonl"
    partial.write_text("".join(lines[:-1]), encoding="utf-8")
    dropped = json.loads(lines[-1])
    resumed = kt.run_studies(SEEDS, PERSONS, REPLICATES, partial, workers=2, progress=False, tmp_root=str(tmp_path))
    assert partial.read_text(encoding="utf-8").startswith("".join(lines[:-1]))
    assert len(partial.read_text(encoding="utf-8").splitlines()) == len(lines)
    redone = next(r for r in resumed if r["seed"] == dropped["seed"])
    assert "error" not in redone, redone.get("error")
    assert set(redone) == set(dropped) and redone["seconds"].keys() == dropped["seconds"].keys()
    for key in set(dropped) - {"seconds"}:
        _assert_close(redone[key], dropped[key], key)


def _assert_close(got: Any, want: Any, where: str) -> None:
    """Equal records: the same keys, texts and integers, floats to 1e-9 (NaN where NaN)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert got == want, where


def test_summary_and_report(small_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, records = small_run
    s = kt.summarise(records)
    cols = {
        "outcome", "scale", "studies", "mean_truth", "mean_estimate", "bias", "bias_mc_se", "rmse", "empirical_sd",
        "mean_bse", "coverage", "coverage_mc_se", "naive_bias", "naive_bias_mc_se", "unweighted_matched_bias",
    }
    assert cols <= set(s.columns)
    assert len(s) == len(OUTCOMES) * len(kt.SCALES)
    assert (s["studies"] == len(SEEDS)).all()
    assert s["coverage"].between(0, 1).all()
    assert np.isfinite(s[["bias", "bias_mc_se", "rmse", "empirical_sd", "mean_bse", "naive_bias"]].to_numpy()).all()
    settings = {"studies": len(SEEDS), "persons": PERSONS, "replicates": REPLICATES, "workers": 1, "seed0": SEEDS[0]}
    payload = kt.write_report(records, s, out / "kt", settings)
    assert payload["studies"] == len(SEEDS)
    assert payload["criteria"]["studies_at_least_200"] is False
    md = (out / "kt.md").read_text(encoding="utf-8")
    assert "| stronger | likert |" in md and "Estimand" in md
    assert json.loads((out / "kt.json").read_text(encoding="utf-8"))["summary"][0]["outcome"] in OUTCOMES


def _fake(seed: int, est: float, se: float, truth: float, naive: float) -> dict[str, Any]:
    cell = {"truth": truth, "estimate": est, "bse": se, "model_bse": se, "naive": naive, "unweighted_matched": est}
    return {
        "seed": seed,
        "outcomes": {"stronger": {"population_naive_difference": truth + 0.1, "likert": dict(cell), "top2": dict(cell)}},
    }


def test_summary_arithmetic() -> None:
    """Bias, RMSE, coverage and their MC SEs on records whose answers are known by hand."""
    recs = [
        _fake(1, est=0.5, se=0.1, truth=0.4, naive=0.6),  # |error| 0.1 <= 1.96 SE: covered
        _fake(2, est=0.1, se=0.1, truth=0.4, naive=0.6),  # |error| 0.3 > 0.196: not covered
        _fake(3, est=0.4, se=0.1, truth=0.4, naive=0.6),
        _fake(4, est=0.6, se=0.1, truth=0.4, naive=0.6),  # |error| 0.2 > 0.196: not covered
    ]
    s = kt.summarise(recs).set_index("scale").loc["likert"]
    err = np.array([0.1, -0.3, 0.0, 0.2])
    assert s["bias"] == pytest.approx(err.mean())
    assert s["bias_mc_se"] == pytest.approx(err.std(ddof=1) / 2)
    assert s["rmse"] == pytest.approx(math.sqrt(np.mean(err**2)))
    assert s["coverage"] == pytest.approx(0.5)
    assert s["coverage_mc_se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert s["naive_bias"] == pytest.approx(0.2)
    assert s["population_confounding"] == pytest.approx(0.1)
    crit = kt.criteria(kt.summarise(recs), 4)
    assert crit["outcomes"]["stronger"] == {"bias_within_tolerance": True, "coverage_in_range": False, "naive_biased": True}
    assert crit["all_met"] is False


def _fake_methods(seed: int, truth: float, methods: dict[str, tuple[float, float]], matchit_ties: float) -> dict[str, Any]:
    cell = {"truth": truth, "matching_matchit_ties": matchit_ties,
            "methods": {m: {"estimate": e, "bse": se} for m, (e, se) in methods.items()}}
    return {"seed": seed, "outcomes": {"stronger": {"likert": cell, "top2": cell}}}


def test_method_summary_arithmetic() -> None:
    """The matrix's per-method summary (what the committed evidence is recomputed with) on records known by hand."""
    recs = [
        _fake_methods(1, 0.4, {"matching": (0.5, 0.1), "naive": (0.9, 0.2)}, matchit_ties=0.6),  # matching covered
        _fake_methods(2, 0.4, {"matching": (0.1, 0.1), "naive": (0.7, 0.2)}, matchit_ties=0.0),  # not covered
        _fake_methods(3, 0.4, {"matching": (0.4, 0.1), "naive": (0.8, 0.2)}, matchit_ties=0.4),
        {"seed": 4, "error": "failed"},  # a failed study is left out
    ]
    s = kt.summarise_methods(recs)
    got = s[s["scale"] == "likert"].set_index("method")
    assert set(got.index) == {"matching", "naive", "matching_matchit_ties"}
    err = np.array([0.1, -0.3, 0.0])
    m = got.loc["matching"]
    assert m["studies"] == 3
    assert m["bias"] == pytest.approx(err.mean()) and m["bias_mc_se"] == pytest.approx(err.std(ddof=1) / math.sqrt(3))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(err**2))) and m["empirical_sd"] == pytest.approx(err.std(ddof=1))
    assert m["coverage"] == pytest.approx(2 / 3) and m["mean_bse"] == pytest.approx(0.1)
    # naive errors 0.5, 0.3, 0.4 with SE 0.2: only 0.3 <= 1.96 x 0.2
    assert got.loc["naive", "bias"] == pytest.approx(0.4) and got.loc["naive", "coverage"] == pytest.approx(1 / 3)
    ties = got.loc["matching_matchit_ties"]
    assert ties["empirical_sd"] == pytest.approx(np.std([0.2, -0.4, 0.0], ddof=1))
    assert not np.isfinite(ties["mean_bse"]) and not np.isfinite(ties["coverage"])


# --------------------------------------------------------------------------- the committed matrix run
#
# The tests named test_committed_evidence_* read the committed files and so cannot fail from a change
# of code; they check that the committed evidence meets the criteria.  Each claim has a test of the
# code as well: the small runs above and below (unbiased estimates and a replicate SE consistent with
# the errors; every published estimator in the matrix), test_method_summary_arithmetic (the summary),
# tests/test_matching.py::test_all_tied_controls_reduce_the_variance_of_the_matched_estimate.

MATRIX_JSON = BENCH / "results" / "known_truth_matrix.json"
MATRIX_DIR = BENCH / "results" / "known_truth_matrix"
#: studies of the committed baseline run (the issue asks for at least 200)
BASELINE_STUDIES = 200


def _matrix() -> dict[str, Any]:
    return json.loads(MATRIX_JSON.read_text(encoding="utf-8"))


def _rows(scenario: str, method: str, scale: str = "likert") -> dict[str, dict[str, Any]]:
    return {r["outcome"]: r for r in _matrix()["summary"] if r["scenario"] == scenario and r["method"] == method and r["scale"] == scale}


def test_committed_evidence_matrix_baseline_covers_every_published_estimator() -> None:
    rows = [r for r in _matrix()["summary"] if r["scenario"] == "baseline"]
    assert {r["method"] for r in rows} == {*kt.METHODS, "matching_matchit_ties"}
    assert {(r["outcome"], r["scale"]) for r in rows if r["method"] == "aipw"} == {(o, s) for o in OUTCOMES for s in kt.SCALES}
    assert all(r["studies"] >= BASELINE_STUDIES for r in rows)
    assert all(r["failed"] == 0 for r in rows)


def test_committed_evidence_main_estimator_is_unbiased_in_the_baseline() -> None:
    """The issue's criterion: |bias| of the main estimator (``analysis.pipeline.MAIN_METHOD``) <= 0.02 Likert points."""
    from analysis.pipeline import MAIN_METHOD

    rows = _rows("baseline", MAIN_METHOD)
    assert set(rows) == set(OUTCOMES)
    for o, r in rows.items():
        assert abs(r["bias"]) <= kt.BIAS_TOLERANCE_LIKERT, (o, r["bias"], r["bias_mc_se"])


def test_committed_evidence_main_estimator_covers_in_the_baseline() -> None:
    """The issue's criterion: coverage of the main estimator's 95 % interval in [93 %, 97 %] on every outcome,
    with a replicate SE neither below its empirical SD by more than the noise of 20 replicates nor far above it."""
    from analysis.pipeline import MAIN_METHOD

    lo, hi = kt.COVERAGE_RANGE
    for o, r in _rows("baseline", MAIN_METHOD).items():
        assert lo <= r["coverage"] <= hi, (o, r["coverage"])
        assert 0.9 <= r["mean_bse"] / r["empirical_sd"] <= 1.3, (o, r["mean_bse"], r["empirical_sd"])


def test_committed_evidence_all_tied_controls_reduce_the_sd() -> None:
    """Using every tied control (the default) gives a smaller empirical SD than one tied control per POP user."""
    all_ties, one = _rows("baseline", "matching"), _rows("baseline", "matching_matchit_ties")
    for o in OUTCOMES:
        assert all_ties[o]["empirical_sd"] < one[o]["empirical_sd"], o


def test_committed_evidence_summary_matches_its_records() -> None:
    """The committed summary is recomputed from the committed per-study records of each scenario."""
    payload = _matrix()
    st = payload["settings"]
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for r in payload["summary"]:
        by_scenario.setdefault(r["scenario"], []).append(r)
    for sc, committed in by_scenario.items():
        recs = [r for r in kt.read_records(MATRIX_DIR / f"{sc}.jsonl") if r.get("persons") == st["persons"] and r.get("replicates") == st["replicates"]]
        s = kt.summarise_methods(recs)
        got = {(r["method"], r["outcome"], r["scale"]): r for r in s.to_dict(orient="records")}
        for c in committed:
            g = got[(c["method"], c["outcome"], c["scale"])]
            assert g["studies"] == c["studies"], (sc, c["method"])
            for k in ("bias", "rmse", "empirical_sd"):
                assert g[k] == pytest.approx(c[k], rel=1e-6, abs=1e-9), (sc, c["method"], c["outcome"], k)


# --------------------------------------------------------------------------- the scenario matrix, small


@pytest.fixture(scope="module")
def small_matrix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two scenarios x two tiny studies through the matrix's own code path (``--scenarios``)."""
    out = tmp_path_factory.mktemp("matrix") / "m"
    args = ["--scenarios", "baseline,informative_dont_know", "--studies", "2", "--persons", "30000", "--replicates", "8",
            "--workers", "1", "--seed0", "7100", "--out", str(out), "--no-progress", "--tmp", str(out.parent)]
    assert kt.main(args) == 0
    return out, json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))


def test_small_matrix_summary_structure(small_matrix: tuple[Path, dict[str, Any]]) -> None:
    out, payload = small_matrix
    rows = payload["summary"]
    assert {r["scenario"] for r in rows} == {"baseline", "informative_dont_know"}
    for sc in ("baseline", "informative_dont_know"):
        got = {(r["method"], r["outcome"], r["scale"]) for r in rows if r["scenario"] == sc}
        for o in OUTCOMES:
            for m in ("matching", "regression", "ipw", "aipw", "naive", "matching_matchit_ties"):
                assert {(m, o, "likert"), (m, o, "top2")} <= got, (sc, m, o)
            assert ("ologit", o, "top2") in got
        assert len(kt.read_records(out / f"{sc}.jsonl")) == 2
    assert all(r["studies"] == 2 and r["failed"] == 0 for r in rows)
    crit = {(c["scenario"], c["method"]) for c in payload["criteria"]}
    assert ("baseline", "matching") in crit and ("informative_dont_know", "aipw") in crit
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| baseline | matching | stronger | likert | 2 |" in md and "| informative_dont_know |" in md
    assert payload["tolerances"] == {"abs_bias_likert": kt.BIAS_TOLERANCE_LIKERT, "coverage": list(kt.COVERAGE_RANGE)}


def test_small_matrix_values_are_real(small_matrix: tuple[Path, dict[str, Any]]) -> None:
    """Wide bounds a broken estimator or SE would cross: two tiny studies cannot show more."""
    _, payload = small_matrix
    for r in payload["summary"]:
        likert = r["scale"] == "likert"
        assert abs(r["bias"]) < (0.8 if likert else 0.35), r
        assert r["rmse"] >= abs(r["bias"]) - 1e-12 and r["empirical_sd"] >= 0, r
        if r["method"] == "matching_matchit_ties":
            assert r["mean_bse"] is None or not np.isfinite(r["mean_bse"])
            continue
        assert 0.01 < r["mean_bse"] < (0.8 if likert else 0.4), r
        assert 0 <= r["coverage"] <= 1, r
        if r["method"] in ("regression", "aipw", "ologit"):
            assert 0 <= r["mean_extrapolated"] <= 1, r
        else:
            assert r["mean_extrapolated"] is None or not np.isfinite(r["mean_extrapolated"]), r
    for r in payload["summary"]:
        if r["scenario"] == "baseline" and r["method"] == "matching":
            assert 0.3 < r["respondents"] < 1e4 and 0 <= r["excluded_share"] < 1
