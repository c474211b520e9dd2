"""E-values, Rosenbaum bounds, multiplicity, reliability and variance helpers."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.effects import (
    absorbed_effect,
    adjust_pvalues,
    cronbach_alpha,
    e_value,
    hedges_g,
    matched_effect,
    replicate_variance,
    rosenbaum_bounds,
)
from analysis.matching import match


def test_e_value_risk_ratio_hand_computed() -> None:
    # VanderWeele & Ding (2017): RR 3.9 -> E = 3.9 + sqrt(3.9 * 2.9) = 7.26
    ev = e_value(3.9, 1.8, 8.7, scale="RR")
    assert ev.e_value == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert ev.e_value_ci == pytest.approx(1.8 + np.sqrt(1.8 * 0.8))
    assert e_value(0.5, 0.3, 0.8, scale="RR").e_value == pytest.approx(2 + np.sqrt(2))


def test_e_value_conversions() -> None:
    ev = e_value(0.25, 0.05, 0.45, scale="SMD", sd=0.5)
    assert ev.rr == pytest.approx(np.exp(0.91 * 0.5))
    rd = e_value(0.10, -0.02, 0.22, scale="RD", baseline_risk=0.4)
    assert rd.rr == pytest.approx(1.25)
    assert rd.e_value_ci == 1.0  # interval includes the null


def test_rosenbaum_gamma_one_is_wilcoxon() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.5, 1.0, size=80)
    rb = rosenbaum_bounds(d)
    p1 = rb.table.loc[rb.table.gamma == 1.0, "p_upper"].item()
    ref = stats.wilcoxon(d, alternative="greater", method="approx", correction=False).pvalue
    assert p1 == pytest.approx(ref, rel=1e-10)
    # at the critical Gamma the upper p-value equals alpha; p rises with Gamma
    assert rb.gamma_critical > 1
    assert np.all(np.diff(rb.table.p_upper) > 0)
    from analysis.effects.sensitivity import _upper_p

    r = stats.rankdata(np.abs(d))
    assert _upper_p(r, d > 0, rb.gamma_critical) == pytest.approx(0.05, abs=1e-8)
    assert "Gamma" in rb.summary()


def test_multiplicity_holm_bh_hand_computed() -> None:
    holm, bh = adjust_pvalues([0.01, 0.04, 0.03, 0.20])
    np.testing.assert_allclose(holm, [0.04, 0.09, 0.09, 0.20])
    np.testing.assert_allclose(bh, [0.04, 0.16 / 3, 0.16 / 3, 0.20])


def test_multiplicity_equals_statsmodels_multipletests() -> None:
    """Holm and BH as statsmodels' multipletests gives them: ties, p-values near 1, one family of one."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(4)
    for p in (rng.uniform(size=12) ** 3, np.array([0.02, 0.02, 0.5, 0.97, 0.99, 0.001]), np.array([0.3])):
        holm, bh = adjust_pvalues(p)
        np.testing.assert_allclose(holm, multipletests(p, method="holm")[1], rtol=1e-14, atol=0)
        np.testing.assert_allclose(bh, multipletests(p, method="fdr_bh")[1], rtol=1e-14, atol=0)


def _sim(rng: np.random.Generator, n: int = 500) -> pd.DataFrame:
    x1 = rng.normal(size=n)
    t = rng.binomial(1, 1 / (1 + np.exp(-(-0.8 + 0.7 * x1))))
    items = {}
    latent = 0.4 * t + 0.5 * x1 + rng.normal(size=n)
    for k in range(4):
        items[f"q{k + 1}"] = np.clip(np.round(3 + latent + rng.normal(0, 0.6, size=n)), 1, 5)
    return pd.DataFrame({"t": t, "x1": x1, "dom": rng.choice(["a", "b", "c"], size=n),
                         "sw": rng.uniform(0.5, 2, size=n), **items})


def test_family_of_four_outcomes_and_top_box() -> None:
    df = _sim(np.random.default_rng(2))
    m = match(df, "t ~ x1")
    p = np.array([matched_effect(m, df, f"q{k}").pvalue for k in range(1, 5)])
    holm, bh = adjust_pvalues(p)
    assert holm.shape == bh.shape == (4,)
    assert np.all(holm >= p - 1e-15)
    assert np.all(bh <= holm + 1e-15)
    rd = matched_effect(m, df, "q1", top_box=4)
    assert -1 < rd.estimate < 1
    assert rd.outcome == "q1_top"


def test_reliability_and_hedges_g() -> None:
    df = _sim(np.random.default_rng(3))
    rel = cronbach_alpha(df, ["q1", "q2", "q3", "q4"])
    # hand formula: k/(k-1) (1 - sum var_i / var_total)
    items = df[["q1", "q2", "q3", "q4"]]
    k = 4
    alpha = k / (k - 1) * (1 - items.var(ddof=1).sum() / items.sum(axis=1).var(ddof=1))
    assert rel.alpha == pytest.approx(alpha)
    a, b = df.q1[df.t == 1].to_numpy(), df.q1[df.t == 0].to_numpy()
    sp = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1))
                 / (a.size + b.size - 2))
    j = 1 - 3 / (4 * (a.size + b.size) - 9)
    assert hedges_g(a, b) == pytest.approx((a.mean() - b.mean()) / sp * j, rel=1e-3)


def test_absorbed_effect_equals_dummy_regression() -> None:
    df = _sim(np.random.default_rng(4))
    e = absorbed_effect(df, "q1", "t", ["x1"], ["dom"])
    import statsmodels.formula.api as smf

    ref = smf.ols("q1 ~ t + x1 + C(dom)", df).fit()
    assert e.estimate == pytest.approx(ref.params["t"], rel=1e-8)


def _att_refit(w: pd.Series, df: pd.DataFrame) -> float:
    m = match(df, "t ~ x1", s_weights=w.to_numpy())
    return matched_effect(m, df, "q1").estimate


def test_replicate_variance_jackknife_matches_hand_formula() -> None:
    rng = np.random.default_rng(6)
    df = _sim(rng, 200)
    R = 5
    groups = rng.integers(0, R, size=len(df))
    for r in range(R):
        df[f"rep{r}"] = np.where(groups == r, 0.0, R / (R - 1))
    df["full"] = 1.0
    refit = functools.partial(_att_refit, df=df)
    res = replicate_variance(df, [f"rep{r}" for r in range(R)], refit, full_weight="full",
                             scale=(R - 1) / R, n_jobs=1, progress=False)
    reps = np.array([refit(df[f"rep{r}"]) for r in range(R)])
    full = refit(df["full"])
    assert res.bse[0] == pytest.approx(np.sqrt((R - 1) / R * ((reps - full) ** 2).sum()))
    par = replicate_variance(df, [f"rep{r}" for r in range(R)], refit, full_weight="full",
                             scale=(R - 1) / R, n_jobs=2, executor="thread", progress=False)
    np.testing.assert_allclose(par.replicates, res.replicates)




def _flaky_refit(w: pd.Series) -> pd.Series:
    """Mean of x under weights w; fails (expected error) when the first weight is 0, NaN for b."""
    from numpy.linalg import LinAlgError

    if w.iloc[0] == 0:
        raise LinAlgError("singular")
    x = np.arange(w.size, dtype=float)
    return pd.Series({"a": float(np.average(x, weights=w)), "b": float("nan") if w.iloc[1] == 0 else 1.0})


def test_replicate_variance_counts_expected_failures_and_skips_missing_components() -> None:
    from numpy.linalg import LinAlgError

    df = pd.DataFrame(index=range(6))
    rng = np.random.default_rng(4)
    W = rng.uniform(0.5, 2.0, size=(6, 8))
    W[0, [2, 5]] = 0.0  # two replicates fail
    W[1, [0, 3, 6]] = 0.0  # three replicates miss component b
    res = replicate_variance(df, W, _flaky_refit, scale=None, mse=False, n_jobs=1, progress=False,
                             failures=(LinAlgError,))
    assert res.n_failed == 2
    assert list(res.index) == ["a", "b"]
    np.testing.assert_array_equal(res.n_replicates, [6, 3])
    ok = [r for r in range(8) if r not in (2, 5)]
    means = [np.average(np.arange(6.0), weights=W[:, r]) for r in ok]
    assert res.bse[0] == pytest.approx(np.std(means, ddof=1))
    assert res.bse[1] == 0.0
    with pytest.raises(LinAlgError):  # an error not declared expected surfaces
        replicate_variance(df, W, _flaky_refit, n_jobs=1, progress=False)
