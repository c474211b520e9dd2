"""Known truth for the POP part (``bench/plans_known_truth.py``): a CI-sized run and the committed full run.

The CI run (30 repeated samples of 200 POPs from one synthetic population of about 880 POPs) checks that the
design-based and the combined estimates are close to the population shares and that their intervals
cover at close to the nominal rate.  The committed run (200 samples of 300) carries the precise
criteria: coverage within two Monte-Carlo SEs of 95 % (or in [92 %, 98 %]) for every share, and a
combined mismatch interval narrower than the sample-only one while it still covers; the test named
``test_committed_evidence_*`` reads it, so no change of code can fail it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import plans_known_truth as pkt  # noqa: E402

FULL = BENCH / "results" / "plans_known_truth.json"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # 12,000 persons hold about 880 POPs, so a sample of 200 is about a quarter of them (the committed
    # run: 300 of 4,607).  The intervals are for sampling from this finite population (with its
    # correction), so their coverage does not need a larger one; each sample's text classifier costs
    # in proportion to the number of POPs
    return pkt.run(reps=30, persons=12_000, n=200, seed=11, tmp_root=str(tmp_path_factory.mktemp("pkt")))


def test_small_run_covers_and_combined_is_narrower(small: dict[str, object]) -> None:
    rows = small["summary"]
    assert isinstance(rows, list) and len(rows) == 12
    for r in rows:
        assert r["reps"] == 30
        assert r["coverage"] >= 0.8, r
        assert abs(r["bias"]) < 4 * r["bias_mcse"] + 0.01, r
        assert 0.6 < r["mean_bse"] / r["empirical_sd"] < 1.6, r
    ratios = small["width_ratio_combined_vs_design"]
    assert isinstance(ratios, dict) and set(ratios) == {"mismatch", "goal_talent", "goal_balance", "goal_reorientation"}
    assert all(v < 0.9 for v in ratios.values())


def test_committed_evidence_full_run_meets_the_criteria() -> None:
    res = json.loads(FULL.read_text(encoding="utf-8"))
    assert res["reps"] >= 200 and res["sample_size"] >= 300
    for r in res["summary"]:
        ok = abs(r["coverage"] - 0.95) <= max(2 * 0.0154, 0.03)
        assert ok, r
        assert abs(r["bias"]) < 3 * r["bias_mcse"] + 0.005, r
    for m in ("mismatch", "goal_talent", "goal_balance", "goal_reorientation"):
        comb = next(r for r in res["summary"] if r["measure"] == m and r["estimator"] == "combined")
        design = next(r for r in res["summary"] if r["measure"] == m and r["estimator"] == "design")
        assert comb["mean_width"] < design["mean_width"] and comb["coverage"] >= 0.92, m
        assert res["width_ratio_combined_vs_design"][m] < 0.8
