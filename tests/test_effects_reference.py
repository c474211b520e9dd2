"""Effect estimators against independent implementations.

* Weighted ordered logit vs R ``survey::svyolr`` (``tests/r/effects_reference.R``: R 4.2.2,
  survey 4.1.1, ``options(digits = 15)``; data simulated there and committed as
  ``tests/r/effects_olr_data.csv``).  svyolr maximises with ``optim(BFGS)`` at its default
  relative tolerance, so its coefficients sit ~1e-5 from the optimum; ours are polished by Newton
  steps to a zero score.  We therefore compare coefficients at 5e-5 absolute and check that ours
  has the higher weighted log-likelihood; SEs agree to 1e-4 relative.
* IPW and AIPW vs Stata 15 ``teffects`` on the cattaneo2 data, as shipped with statsmodels
  (``statsmodels/treatment/tests/results``); the Stata runs used a probit treatment model.
* Cronbach's alpha (with Feldt's interval) and Hedges' g vs pingouin's implementations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.effects import aipw, ipw, ordered_logit

HERE = Path(__file__).resolve().parent
OLR = json.loads((HERE / "r" / "effects_reference.json").read_text())


@pytest.fixture(scope="module")
def olr_fit():
    d = pd.read_csv(HERE / "r" / "effects_olr_data.csv")
    return d, ordered_logit(d, "y ~ treat + x1 + x2", "w", treat="treat")


def test_svyolr_versions() -> None:
    assert OLR["versions"]["survey"] == "4.1.1"


def test_ordered_logit_params_match_svyolr(olr_fit) -> None:
    _, res = olr_fit
    ref = pd.Series(OLR["params"])
    np.testing.assert_allclose(res.params[ref.index].to_numpy(), ref.to_numpy(), atol=5e-5)


def test_ordered_logit_is_at_least_as_good_an_optimum(olr_fit) -> None:
    from analysis.effects.ordinal import _cuts, _scores

    d, res = olr_fit
    ref = pd.Series(OLR["params"])[res.params.index].to_numpy()
    X = d[["treat", "x1", "x2"]].to_numpy(float)
    y = d["y"].to_numpy() - 1
    ll_r = (d["w"].to_numpy() * _scores(ref, X, y, 5)[0]).sum()
    assert res.llf >= ll_r
    assert _cuts(res.params.to_numpy()[3:]).size == 6


def test_ordered_logit_se_match_svyolr(olr_fit) -> None:
    _, res = olr_fit
    ref = pd.Series(OLR["bse"])
    np.testing.assert_allclose(res.bse[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-4)


def test_probability_shifts_sum_to_zero_and_match_direction(olr_fit) -> None:
    _, res = olr_fit
    shifts = res.prob_shifts
    assert shifts is not None
    assert shifts["shift"].sum() == pytest.approx(0.0, abs=1e-12)
    # a positive log odds ratio moves mass from the lowest to the highest category
    assert shifts["shift"].iloc[0] < 0 < shifts["shift"].iloc[-1]
    assert (shifts["bse"] > 0).all()
    assert "probability shifts" in res.effect("y").summary()


@pytest.fixture(scope="module")
def cattaneo():
    import statsmodels

    path = Path(statsmodels.__file__).parent / "treatment" / "tests" / "results" / "cataneo2.csv"
    if not path.exists():  # pragma: no cover - shipped with statsmodels >= 0.14
        pytest.skip("statsmodels does not ship cataneo2.csv")
    from statsmodels.treatment.tests.results import results_teffects as st

    return pd.read_csv(path), st


TREAT_F = "mbsmoke_ ~ mmarried_ + mage + mage2 + fbaby_ + medu"
OUT_F = "bweight ~ prenatal1_ + mmarried_ + mage + fbaby_"


@pytest.mark.parametrize(("estimand", "table"), [("ATE", "table"), ("ATT", "table_t")])
def test_ipw_matches_stata_teffects(cattaneo, estimand: str, table: str) -> None:
    d, st = cattaneo
    ref = getattr(st.results_ipw, table)
    e = ipw(d, "bweight", TREAT_F, estimand=estimand, ps_link="probit")
    assert e.estimate == pytest.approx(ref[0, 0], rel=1e-7)
    assert e.params["POmean0"] == pytest.approx(ref[1, 0], rel=1e-7)
    assert e.bse[e.term] == pytest.approx(ref[0, 1], rel=1e-5)
    assert e.bse["POmean0"] == pytest.approx(ref[1, 1], rel=1e-5)


def test_aipw_ate_matches_stata_teffects(cattaneo) -> None:
    d, st = cattaneo
    ref = st.results_aipw.table
    e = aipw(d, OUT_F, TREAT_F, estimand="ATE", ps_link="probit")
    assert e.estimate == pytest.approx(ref[0, 0], rel=1e-7)
    assert e.params["POmean0"] == pytest.approx(ref[1, 0], rel=1e-7)
    assert e.bse[e.term] == pytest.approx(ref[0, 1], rel=1e-5)


def test_aipw_att_is_doubly_robust() -> None:
    """Wrong propensity model, right outcome model: AIPW-ATT still finds the truth."""
    rng = np.random.default_rng(7)
    n = 40_000
    x = rng.normal(size=n)
    t = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * x + 0.8 * x**2 - 0.5))))
    y = 1.0 + 2.0 * x + 0.5 * t + rng.normal(size=n)
    d = pd.DataFrame({"t": t, "x": x, "y": y})
    e = aipw(d, "y ~ x", "t ~ x", estimand="ATT")
    assert e.estimate == pytest.approx(0.5, abs=4 * e.bse[e.term])
    naive = ipw(d, "y", "t ~ x", estimand="ATT")
    assert abs(naive.estimate - 0.5) > 4 * naive.bse[naive.term]  # IPW with the wrong model is biased


def test_cronbach_alpha_and_hedges_g_equal_pingouins() -> None:
    """Alpha on correlated Likert items with a missing answer (complete cases), at two levels, and g
    of unequal groups, against pingouin (whose interval is rounded to three decimals)."""
    import pingouin as pg

    from analysis.effects.reliability import cronbach_alpha, hedges_g
    from survey.errors import DataValidationError

    rng = np.random.default_rng(3)
    common = rng.normal(size=(400, 1))
    items = pd.DataFrame(np.clip(np.round(3 + common + rng.normal(size=(400, 4))), 1, 5), columns=list("abcd"))
    items.iloc[7, 2] = np.nan
    for level in (0.95, 0.9):
        ours = cronbach_alpha(items, list("abcd"), level=level)
        alpha, ci = pg.cronbach_alpha(data=items, nan_policy="listwise", ci=level)
        assert ours.nobs == 399 and ours.alpha == pytest.approx(alpha, rel=1e-12)
        assert ours.ci == pytest.approx(tuple(ci), abs=5e-4) and ours.ci[0] < ours.alpha < ours.ci[1]
    x, y = rng.normal(0.4, 1.2, 60), rng.normal(0.0, 0.9, 85)
    assert hedges_g(x, y) == pytest.approx(pg.compute_effsize(x, y, paired=False, eftype="hedges"), rel=1e-12)
    with pytest.raises(DataValidationError, match="two items"):
        cronbach_alpha(items, ["a"])


@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
def test_ipw_logit_sandwich_with_its_jacobian_equals_central_differences(estimand: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """IPW with a logit score uses the estimating equations' Jacobian in closed form; the same
    sandwich from central differences of the equations (as for the probit) agrees to 1e-8."""
    import analysis.effects.weighting_estimators as we

    rng = np.random.default_rng(5)
    n = 1500
    df = pd.DataFrame({"a": rng.choice(list("abcd"), n), "b": rng.choice(list("efghij"), n), "x": rng.normal(size=n)})
    df["t"] = (rng.random(n) < 1 / (1 + np.exp(1 - 0.5 * df["x"] + (df["a"] == "b")))).astype(int)
    df["y"] = rng.integers(1, 6, n) + 0.3 * df["t"]
    df["w"] = rng.uniform(0.5, 3.0, n)
    closed = ipw(df, "y", "t ~ C(a) + C(b) + x", weights="w", estimand=estimand)
    monkeypatch.setattr(we, "_ipw_logit_jacobian", lambda *args: None)
    numeric = ipw(df, "y", "t ~ C(a) + C(b) + x", weights="w", estimand=estimand)
    assert np.allclose(closed.params, numeric.params, rtol=0, atol=0)
    assert np.allclose(closed.bse, numeric.bse, rtol=1e-8, atol=0)
    assert closed.bse["effect"] > 0
