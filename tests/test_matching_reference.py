"""Matching, balance and the matched ATT against R's MatchIt 4.5.1 on the Lalonde data.

Reference values: ``tests/r/matching_reference.R`` (R 4.2.2, MatchIt 4.5.1, sandwich 3.0.2,
``options(digits = 15)``) writes ``tests/r/matching_reference.json``; the data are MatchIt's
``lalonde`` exported to ``tests/data/lalonde.csv`` by the same script.

MatchIt 4.5.1 calls C's integer ``abs()`` on differences of propensity scores in its nearest-
neighbour routine, so every score difference counts as 0 and a treated unit always takes the
nearest available control *below* its score.  ``match(..., compat="MatchIt-4.5.1")`` reproduces
that and must agree exactly; the default (correct nearest neighbour) must differ from R only where
R's control is farther away.  Mahalanobis matching does not go through that routine and is
compared in the default mode.

Tolerances: propensity scores agree to ~3e-9 (R's IRLS stops at a relative deviance change of
1e-8), so balance rows involving the score are compared at 1e-6 absolute; the ATT and its SE
depend only on the matched set and agree to ~1e-10 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.effects import matched_effect
from analysis.matching import balance, match

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "r" / "matching_reference.json").read_text())
FORMULA = "treat ~ age + educ + race + married + nodegree + re74 + re75"
SPECS = {
    "nn1": {},
    "ratio2": {"ratio": 2},
    "replace1": {"replace": True},
    "smallest": {"m_order": "smallest"},
    "data_order": {"m_order": "data"},
    "exact_married": {"exact": "married"},
    "mahalanobis": {"distance": "mahalanobis"},
    "mahvars": {"mahvars": ["age", "educ", "re74", "re75"]},
}


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return pd.read_csv(HERE / "data" / "lalonde.csv", index_col="id")


def _fit(df: pd.DataFrame, name: str):
    kwargs = dict(SPECS[name], ties="matchit")
    if kwargs.get("distance") != "mahalanobis":
        kwargs["compat"] = "MatchIt-4.5.1"
    return match(df, FORMULA, **kwargs)


def _r_match_matrix(name: str) -> np.ndarray:
    cols = REF["results"][name]["match_matrix"]
    return np.array([[-1 if v is None else v - 1 for v in col] for col in cols]).T


def _py_match_matrix(m, df: pd.DataFrame) -> np.ndarray:
    pos = pd.Series(np.arange(len(df)), index=df.index)
    return np.column_stack(
        [[-1 if v is None else pos[v] for v in m.match_matrix[c]] for c in m.match_matrix.columns]
    )


def test_reference_versions_recorded() -> None:
    assert REF["versions"]["MatchIt"] == "4.5.1"
    assert REF["versions"]["R"].startswith("R version")


@pytest.mark.parametrize("name", list(SPECS))
def test_same_matched_set_weights_subclasses(lalonde: pd.DataFrame, name: str) -> None:
    ref = REF["results"][name]
    m = _fit(lalonde, name)
    np.testing.assert_array_equal(_py_match_matrix(m, lalonde), _r_match_matrix(name))
    np.testing.assert_allclose(m.weights.to_numpy(), ref["weights"], rtol=0, atol=1e-12)
    if ref["subclass"] is None:
        assert m.subclass.isna().all()
    else:
        expected = np.array([-1 if v is None else v for v in ref["subclass"]])
        np.testing.assert_array_equal(m.subclass.fillna(-1).to_numpy(dtype=int), expected)
    if ref["distance"] is None:
        assert m.distance is None
    else:
        np.testing.assert_allclose(m.distance.to_numpy(), ref["distance"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("table", ["summary_all", "summary_matched"])
def test_balance_table(lalonde: pd.DataFrame, name: str, table: str) -> None:
    ref = REF["results"][name][table]
    expected = pd.DataFrame(ref["columns"], index=ref["rows"]).astype(float)
    b = balance(_fit(lalonde, name), lalonde)
    got = (b.before if table == "summary_all" else b.after)[expected.columns]
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("name", list(SPECS))
def test_sample_sizes(lalonde: pd.DataFrame, name: str) -> None:
    ref = REF["results"][name]["nn"]
    expected = pd.DataFrame(ref["columns"], index=ref["rows"]).astype(float)
    got = _fit(lalonde, name).sample_sizes().loc[expected.index, expected.columns]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-10)


@pytest.mark.parametrize("name", list(SPECS))
def test_att_and_cluster_robust_se(lalonde: pd.DataFrame, name: str) -> None:
    ref = REF["results"][name]["att"]
    e = matched_effect(_fit(lalonde, name), lalonde, "re78")
    assert e.nobs == ref["nobs"]
    for term, value in ref["params"].items():
        py = {"(Intercept)": "Intercept", "racehispan": "race[T.hispan]",
              "racewhite": "race[T.white]"}.get(term, term)
        assert e.params[py] == pytest.approx(value, rel=1e-6, abs=1e-6)
        assert e.bse[py] == pytest.approx(ref["bse"][term], rel=1e-6)
    expected_type = "HC3" if SPECS[name].get("replace") else "cluster-robust by subclass (HC1)"
    assert e.vcov_type == expected_type


@pytest.mark.parametrize("name", ["nn1", "smallest", "data_order", "replace1", "ratio2"])
def test_default_is_true_nearest_and_differs_from_r_only_by_its_defect(
    lalonde: pd.DataFrame, name: str
) -> None:
    """Where the correct matching differs from MatchIt 4.5.1, R's control is never closer."""
    kwargs = SPECS[name]
    m = match(lalonde, FORMULA, ties="matchit", **kwargs)
    ours = _py_match_matrix(m, lalonde)
    theirs = _r_match_matrix(name)
    d = m.distance.to_numpy()
    treated = np.flatnonzero(m.treat.to_numpy() == 1)
    diff = ours != theirs
    assert diff.any()  # the defect matters on this data
    # R 4.5.1 picks the nearest control with a smaller-or-equal score whenever there is one
    r_scores = d[theirs[diff]]
    t_scores = d[treated[np.nonzero(diff)[0]]]
    assert np.all(r_scores <= t_scores)
    if name == "replace1":
        # with replacement every treated unit gets its globally nearest control
        ctrl = np.flatnonzero(m.treat.to_numpy() == 0)
        best = np.abs(d[treated][:, None] - d[ctrl][None, :]).min(axis=1)
        got = np.abs(d[ours[:, 0]] - d[treated])
        np.testing.assert_allclose(got, best, rtol=0, atol=0)
