"""analysis.weighting against R's survey package (oracle tests).

The reference values come from ``tests/r/weighting_reference.R`` (committed; R and survey
versions are recorded in the JSON it wrote).  Run it from the repository root with
``Rscript tests/r/weighting_reference.R`` to regenerate ``tests/r/weighting_reference.json``
and the data in ``tests/data/api_*.csv``.  CI never needs R.

Tolerance: 1e-6 relative on weights, estimates and standard errors.  R's raking and iterative
calibration are run with ``epsilon = 1e-12``; our tolerances are 1e-12 too, so both sides are
converged far beyond the tolerance of the comparison.  Observed agreement is ~1e-12 or better
except for raked bootstrap designs (~1e-7): R rakes the replicates for as many sweeps as the
full sample needed, while we iterate every replicate to the tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.weighting import (
    SurveyDesign,
    as_replicate,
    calibrate,
    poststratify,
    rake,
    trim,
)

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "r" / "weighting_reference.json").read_text(encoding="utf-8"))
RTOL = 1e-6
TOL = 1e-12


def _data(name: str) -> pd.DataFrame:
    return pd.read_csv(HERE / "data" / f"api_{name}.csv")


STRAT = _data("strat")
CLUS1 = _data("clus1")
M = REF["margins"]
STYPE = {k: float(v) for k, v in M["stype"].items()}
SCHWIDE = {k: float(v) for k, v in M["sch.wide"].items()}
JOINT = {(c["stype"], c["sch.wide"]): float(c["Freq"]) for c in M["joint"]}
API99 = float(M["api99"])
AWARDS = {k: float(v) for k, v in M["awards"].items()}
BOUNDS = tuple(REF["logit_bounds"])
JK_BOUNDS = tuple(REF["jk_logit_bounds"])
TRIM = REF["trim"]


def dstrat() -> SurveyDesign:
    return SurveyDesign(STRAT, weights="pw", strata="stype", fpc="fpc")


def dclus1() -> SurveyDesign:
    return SurveyDesign(CLUS1, weights="pw", cluster="dnum", fpc="fpc")


def _rake(d: SurveyDesign) -> SurveyDesign:
    return rake(d, {"stype": STYPE, "sch.wide": SCHWIDE}, tol=TOL, max_iter=1000)


def _cal_linear(d: SurveyDesign) -> SurveyDesign:
    return calibrate(d, {"stype": STYPE, "api99": API99})


def _cal_raking(d: SurveyDesign) -> SurveyDesign:
    return calibrate(d, {"stype": STYPE, "sch.wide": SCHWIDE}, calfun="raking", tol=TOL)


def _boot(name: str, d: SurveyDesign) -> SurveyDesign:
    return as_replicate(d, "subbootstrap", factors=np.asarray(REF["factors"][name], dtype=float))


RECIPES: dict[str, Callable[[], SurveyDesign]] = {
    "strat_base": dstrat,
    "clus1_base": dclus1,
    "strat_rake": lambda: _rake(dstrat()),
    "clus1_rake": lambda: _rake(dclus1()),
    "clus1_poststrat": lambda: poststratify(dclus1(), {"stype": STYPE}),
    "strat_poststrat_joint": lambda: poststratify(dstrat(), {("stype", "sch.wide"): JOINT}),
    "clus1_cal_linear": lambda: _cal_linear(dclus1()),
    "strat_cal_linear": lambda: _cal_linear(dstrat()),
    "clus1_cal_raking": lambda: _cal_raking(dclus1()),
    "clus1_cal_logit": lambda: calibrate(
        dclus1(), {"stype": STYPE, "api99": API99}, calfun="logit", bounds=BOUNDS, tol=TOL
    ),
    "strat_rake_trim": lambda: trim(_rake(dstrat()), upper=TRIM["upper"], lower=TRIM["lower"]),
    "strat_rake_trim_strict": lambda: trim(
        _rake(dstrat()), upper=TRIM["upper"], lower=TRIM["lower"], strict=True
    ),
    "strat_rake_joint": lambda: rake(
        dstrat(), {("stype", "sch.wide"): JOINT, "awards": AWARDS}, tol=TOL, max_iter=1000
    ),
    "clus1_fpc_only": lambda: SurveyDesign(CLUS1, cluster="dnum", fpc="fpc"),
    "clus1_jk1_base": lambda: as_replicate(dclus1(), "JK1"),
    "clus1_jk1_cal_logit": lambda: calibrate(
        as_replicate(dclus1(), "JK1"),
        {"stype": STYPE, "api99": API99},
        calfun="logit",
        bounds=JK_BOUNDS,
        tol=TOL,
    ),
    "clus1_jk1_rake": lambda: _rake(as_replicate(dclus1(), "JK1")),
    "clus1_jk1_poststrat": lambda: poststratify(as_replicate(dclus1(), "JK1"), {"stype": STYPE}),
    "clus1_jk1_cal_linear": lambda: _cal_linear(as_replicate(dclus1(), "JK1")),
    "clus1_jk1_cal_raking": lambda: _cal_raking(as_replicate(dclus1(), "JK1")),
    "clus1_boot_base": lambda: _boot("clus1", dclus1()),
    "clus1_boot_rake": lambda: _rake(_boot("clus1", dclus1())),
    "strat_boot_base": lambda: _boot("strat", dstrat()),
    "strat_boot_rake": lambda: _rake(_boot("strat", dstrat())),
    "strat_boot_cal_linear": lambda: _cal_linear(_boot("strat", dstrat())),
}

_DESIGNS: dict[str, SurveyDesign] = {}


def design(case: str) -> SurveyDesign:
    if case not in _DESIGNS:
        _DESIGNS[case] = RECIPES[case]()
    return _DESIGNS[case]


def _estimate(d: SurveyDesign, key: str):
    return {
        "mean_api00": lambda: d.mean("api00"),
        "total_enroll": lambda: d.total("enroll"),
        "mean_awards": lambda: d.mean("awards"),
        "by_awards_mean_api00": lambda: d.mean("api00", by="awards"),
        "by_awards_total_enroll": lambda: d.total("enroll", by="awards"),
    }[key]()


def test_every_r_case_has_a_recipe() -> None:
    assert set(RECIPES) == set(REF["cases"])


def test_reference_versions_recorded() -> None:
    assert REF["versions"]["survey"]
    assert REF["versions"]["R"].startswith("R version")


@pytest.mark.parametrize("case", sorted(REF["cases"]))
def test_weights_match_r(case: str) -> None:
    np.testing.assert_allclose(
        design(case).weights.to_numpy(), REF["cases"][case]["weights"], rtol=RTOL
    )


@pytest.mark.parametrize("case", sorted(c for c in REF["cases"] if "scale" in REF["cases"][c]))
def test_replicate_weights_match_r(case: str) -> None:
    d = design(case)
    rw = d.replicate_weights
    assert rw is not None
    np.testing.assert_allclose(
        rw.iloc[:, 0].to_numpy(), REF["cases"][case]["replicate_weights_first"], rtol=RTOL
    )
    assert d._replicates is not None
    np.testing.assert_allclose(d._replicates.scale, REF["cases"][case]["scale"], rtol=1e-12)


ESTIMATE_KEYS = [
    "mean_api00",
    "total_enroll",
    "mean_awards",
    "by_awards_mean_api00",
    "by_awards_total_enroll",
]


@pytest.mark.parametrize("key", ESTIMATE_KEYS)
@pytest.mark.parametrize("case", sorted(REF["cases"]))
def test_estimates_and_standard_errors_match_r(case: str, key: str) -> None:
    ref = REF["cases"][case]["estimates"][key]
    est = _estimate(design(case), key)
    np.testing.assert_allclose(est.params.to_numpy(), np.ravel(ref["estimate"]), rtol=RTOL)
    np.testing.assert_allclose(est.bse.to_numpy(), np.ravel(ref["se"]), rtol=RTOL)
