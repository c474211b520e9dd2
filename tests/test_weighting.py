"""analysis.weighting: invariants, bad cases, diagnostics and the public surface."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analysis.weighting as aw
from analysis.weighting import (
    SurveyDesign,
    WeightingConvergenceError,
    as_replicate,
    calibrate,
    poststratify,
    rake,
    trim,
)
from survey.errors import ConfigError, DataValidationError

HERE = Path(__file__).resolve().parent
STRAT = pd.read_csv(HERE / "data" / "api_strat.csv")
CLUS1 = pd.read_csv(HERE / "data" / "api_clus1.csv")
STYPE = {"E": 4421.0, "H": 755.0, "M": 1018.0}
SCHWIDE = {"No": 1072.0, "Yes": 5122.0}
JOINT = {
    ("E", "No"): 472.0,
    ("E", "Yes"): 3949.0,
    ("H", "No"): 334.0,
    ("H", "Yes"): 421.0,
    ("M", "No"): 266.0,
    ("M", "Yes"): 752.0,
}


def dclus1() -> SurveyDesign:
    return SurveyDesign(CLUS1, weights="pw", cluster="dnum", fpc="fpc")


def dstrat() -> SurveyDesign:
    return SurveyDesign(STRAT, weights="pw", strata="stype", fpc="fpc")


def weighted_table(d: SurveyDesign, cols: str | list[str]) -> pd.Series:
    return d.weights.groupby([d.data[c] for c in ([cols] if isinstance(cols, str) else cols)]).sum()


# ---------------------------------------------------------------------------------------------
# public surface


def test_public_api_is_explicit() -> None:
    assert set(aw.__all__) >= {"SurveyDesign", "rake", "poststratify", "calibrate", "trim"}
    for name in aw.__all__:
        assert getattr(aw, name) is not None


def test_weights_aligned_to_index_and_inputs_not_mutated() -> None:
    df = CLUS1.copy()
    df.index = pd.RangeIndex(1000, 1000 + len(df))
    before = df.copy()
    d = SurveyDesign(df, weights="pw", cluster="dnum", fpc="fpc")
    r = rake(d, {"stype": STYPE, "sch.wide": SCHWIDE})
    assert r is not d
    assert r.weights.index.equals(df.index)
    pd.testing.assert_frame_equal(df, before)
    np.testing.assert_array_equal(d.weights.to_numpy(), df["pw"].to_numpy())
    with pytest.raises(AttributeError):
        r.foo = 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="read-only"):
        r._weights[0] = 0.0
    w = r.weights
    w.iloc[0] = -1.0  # a copy: the design is unaffected
    assert r.weights.iloc[0] > 0


def test_estimate_result_is_immutable_and_renders() -> None:
    est = rake(dclus1(), {"stype": STYPE}).mean(["api00", "awards"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.statistic = "total"  # type: ignore[misc]
    frame = est.to_frame()
    assert list(frame.columns) == ["estimate", "bse", "ci_lower", "ci_upper"]
    assert list(frame.index) == ["api00", "awards=No", "awards=Yes"]
    assert est.params["awards=No"] + est.params["awards=Yes"] == pytest.approx(1.0)
    ci = est.conf_int(0.1)
    assert (ci["lower"] < est.params).all()
    assert (est.params < ci["upper"]).all()
    assert "linearisation" in est.summary()
    assert est.nobs == len(CLUS1)


def test_by_domains_sum_to_total() -> None:
    d = rake(dclus1(), {"stype": STYPE, "sch.wide": SCHWIDE})
    by = d.total("enroll", by="stype")
    assert by.params.sum() == pytest.approx(d.total("enroll").params.iloc[0])
    assert by.params.index.names == ["stype", "term"]
    prop = d.proportion("stype")
    np.testing.assert_allclose(prop.params.to_numpy(), np.array(list(STYPE.values())) / 6194)
    # raked margins have (numerically) no sampling variance
    assert prop.bse.max() < 1e-6


# ---------------------------------------------------------------------------------------------
# invariants


def test_raked_margins_equal_targets_including_joint_margin() -> None:
    awards = {"No": 2000.0, "Yes": 4194.0}
    r = rake(dstrat(), {("stype", "sch.wide"): JOINT, "awards": awards}, tol=1e-12)
    joint = weighted_table(r, ["stype", "sch.wide"])
    for key, total in JOINT.items():
        assert joint[key] == pytest.approx(total, rel=1e-10)
    aw_t = weighted_table(r, "awards")
    for key, total in awards.items():
        assert aw_t[key] == pytest.approx(total, rel=1e-10)
    diag = r.diagnostics
    assert diag is not None
    assert diag.converged
    assert diag.max_rel_error < 1e-10
    frame = diag.margins_frame()
    assert set(frame["margin"]) == {"stype x sch.wide", "awards"}
    np.testing.assert_allclose(frame["weighted_after"], frame["population"], rtol=1e-10)


def test_poststratified_cells_equal_targets_and_replicates_too() -> None:
    d = poststratify(as_replicate(dclus1(), "JK1"), {"stype": STYPE})
    np.testing.assert_allclose(weighted_table(d, "stype")[list(STYPE)], list(STYPE.values()))
    rw = d.replicate_weights
    assert rw is not None
    for col in rw.columns:
        sums = rw[col].groupby(CLUS1["stype"]).sum()
        np.testing.assert_allclose(sums[list(STYPE)], list(STYPE.values()))


@pytest.mark.parametrize(
    ("calfun", "bounds"),
    [("linear", None), ("raking", None), ("logit", (0.7, 1.7)), ("linear", (0.4, 1.8))],
)
def test_calibrated_totals_equal_targets(calfun: str, bounds: tuple[float, float] | None) -> None:
    api99 = 3914069.0
    d0 = dclus1()
    d = calibrate(d0, {"stype": STYPE, "api99": api99}, calfun=calfun, bounds=bounds, tol=1e-12)
    np.testing.assert_allclose(
        weighted_table(d, "stype")[list(STYPE)], list(STYPE.values()), rtol=1e-9
    )
    assert float(d.weights @ CLUS1["api99"]) == pytest.approx(api99, rel=1e-9)
    g = d.weights.to_numpy() / d0.weights.to_numpy()
    if bounds is not None:
        assert g.min() >= bounds[0] - 1e-9
        assert g.max() <= bounds[1] + 1e-9
    assert d.diagnostics is not None
    assert d.diagnostics.method == f"calibrate({calfun})"


def test_calibrate_with_population_size_and_numeric_only() -> None:
    d = calibrate(dclus1(), {"api99": 3914069.0}, population_size=6194.0)
    assert d.weights.sum() == pytest.approx(6194.0)
    assert float(d.weights @ CLUS1["api99"]) == pytest.approx(3914069.0)


def test_raking_calfun_equals_ipf() -> None:
    margins = {"stype": STYPE, "sch.wide": SCHWIDE}
    a = rake(dclus1(), margins, tol=1e-13, max_iter=1000)
    b = calibrate(dclus1(), margins, calfun="raking", tol=1e-13)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-9)


def test_trim_keeps_total_and_bounds() -> None:
    d = rake(dstrat(), {"stype": STYPE, "sch.wide": SCHWIDE})
    t = trim(d, upper=44.18, lower=15.1)
    assert t.weights.sum() == pytest.approx(d.weights.sum())
    s = trim(d, upper=44.18, lower=15.1, strict=True)
    assert s.weights.max() <= 44.18 + 1e-9
    assert s.weights.min() >= 15.1 - 1e-9
    assert s.weights.sum() == pytest.approx(d.weights.sum())
    assert s.diagnostics is not None
    assert s.diagnostics.trimmed > 0
    c = trim(d, upper=40.0, redistribute=False)
    assert c.weights.max() == pytest.approx(40.0)
    assert c.weights.sum() < d.weights.sum()


def test_trim_infeasible_strict_is_an_error() -> None:
    with pytest.raises(WeightingConvergenceError, match="Strict trimming"):
        trim(dstrat(), upper=20.0, strict=True)  # mean weight is 31: cannot all be <= 20


@st.composite
def freq_data(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    n = draw(st.integers(12, 30))
    a = draw(st.lists(st.sampled_from(["a1", "a2", "a3"]), min_size=n, max_size=n))
    b = draw(st.lists(st.sampled_from(["b1", "b2"]), min_size=n, max_size=n))
    f = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    y = draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n))
    df = pd.DataFrame({"a": a, "b": b, "f": f, "y": y})
    # targets are the margins of some positive weighting of the rows, so they are feasible
    u = np.asarray(draw(st.lists(st.floats(0.5, 20.0), min_size=n, max_size=n)))
    margins = {
        c: {k: float(v) for k, v in pd.Series(u).groupby(df[c]).sum().items()} for c in ("a", "b")
    }
    return df, margins


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(freq_data())
def test_frequency_weights_equal_replicated_rows(case: tuple[pd.DataFrame, dict]) -> None:
    df, margins = case
    long = df.loc[df.index.repeat(df["f"])].reset_index(drop=False)
    d_freq = SurveyDesign(df, weights="f")
    d_long = SurveyDesign(long)
    assert d_freq.mean("y").params.iloc[0] == pytest.approx(
        d_long.mean("y").params.iloc[0], abs=1e-9
    )
    assert d_freq.total("y").params.iloc[0] == pytest.approx(
        d_long.total("y").params.iloc[0], abs=1e-8
    )
    r_freq = rake(d_freq, margins, tol=1e-12, max_iter=2000, min_cell=1)
    r_long = rake(d_long, margins, tol=1e-12, max_iter=2000, min_cell=1)
    # the raked weight of a row is f times the raked weight of each of its copies
    per_row = r_long.weights.groupby(long["index"].to_numpy()).sum()
    np.testing.assert_allclose(r_freq.weights.to_numpy(), per_row.to_numpy(), rtol=1e-8)
    assert r_freq.mean("y", by="a").params.to_numpy() == pytest.approx(
        r_long.mean("y", by="a").params.to_numpy(), abs=1e-7
    )


@settings(max_examples=30, deadline=None)
@given(freq_data(), st.randoms(use_true_random=False))
def test_rake_hits_margins_and_ignores_row_order(case: tuple[pd.DataFrame, dict], rnd) -> None:
    df, margins = case
    r = rake(SurveyDesign(df, weights="f"), margins, tol=1e-12, max_iter=2000, min_cell=1)
    for col, spec in margins.items():
        got = r.weights.groupby(df[col]).sum()
        for k, v in spec.items():
            assert got[k] == pytest.approx(v, rel=1e-9)
    order = list(df.index)
    rnd.shuffle(order)
    shuffled = df.loc[order]
    r2 = rake(SurveyDesign(shuffled, weights="f"), margins, tol=1e-12, max_iter=2000, min_cell=1)
    np.testing.assert_allclose(r2.weights.loc[df.index].to_numpy(), r.weights.to_numpy(), rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# bad cases


def test_sample_category_missing_from_margin_names_variable_and_category() -> None:
    with pytest.raises(DataValidationError) as err:
        rake(dclus1(), {"stype": {"E": 4421.0, "H": 755.0}})
    assert err.value.column == "stype"
    assert "'M'" in str(err.value)


def test_margin_category_absent_from_sample_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        rake(dclus1(), {"sch.wide": {"No": 1072.0, "yes": 5122.0, "Yes": 0.0}})
    assert err.value.param == "sch.wide"
    assert "'yes'" in str(err.value)


def test_inconsistent_margin_totals_are_an_error() -> None:
    with pytest.raises(ConfigError, match="different sizes"):
        rake(dclus1(), {"stype": STYPE, "sch.wide": {"No": 1072.0, "Yes": 5000.0}})


def test_non_convergence_names_the_worst_margin() -> None:
    with pytest.raises(WeightingConvergenceError) as err:
        rake(dclus1(), {"stype": STYPE, "sch.wide": SCHWIDE}, tol=1e-14, max_iter=1)
    assert "worst margin 'stype'" in str(err.value)


def test_sparse_cell_is_collapsed_logged_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    # apiclus1 has 3 high schools without a school-wide target met (H x No)
    with caplog.at_level(logging.WARNING, logger="analysis.weighting"):
        r = rake(dclus1(), {("stype", "sch.wide"): JOINT}, min_cell=5)
    assert "H x No" in caplog.text
    diag = r.diagnostics
    assert diag is not None
    assert len(diag.collapsed) == 1
    rec = diag.collapsed[0]
    assert rec.reason == "sparse"
    assert rec.margin == "stype x sch.wide"
    assert "H x No" in rec.merged
    assert rec.label in set(diag.margins_frame()["category"])
    # merged population totals add up and are reached
    assert diag.margins_frame()["population"].sum() == pytest.approx(6194.0)
    assert diag.max_rel_error < 1e-9
    with pytest.raises(DataValidationError, match="sparse"):
        rake(dclus1(), {("stype", "sch.wide"): JOINT}, min_cell=5, collapse=False)


def test_declared_empty_category_is_collapsed() -> None:
    df = CLUS1.copy()
    df["stype"] = pd.Categorical(df["stype"], categories=["E", "K", "H", "M"])
    spec = {"E": 4000.0, "K": 421.0, "H": 755.0, "M": 1018.0}
    r = rake(SurveyDesign(df, weights="pw"), {"stype": spec}, min_cell=1)
    assert r.diagnostics is not None
    (rec,) = r.diagnostics.collapsed
    assert rec.reason == "empty"
    # merged with the neighbour that has fewer respondents (H: 14, E: 144)
    assert rec.merged == ("K", "H")
    assert r.weights[df["stype"] == "H"].sum() == pytest.approx(421.0 + 755.0)
    assert r.weights[df["stype"] == "E"].sum() == pytest.approx(4000.0)


def test_missing_values_in_weighting_variable() -> None:
    df = CLUS1.copy()
    df.loc[3, "stype"] = None
    with pytest.raises(DataValidationError) as err:
        rake(SurveyDesign(df, weights="pw"), {"stype": STYPE})
    assert err.value.row == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"calfun": "logit"}, "needs bounds"),
        ({"calfun": "probit"}, "Unknown calibration"),
        ({"bounds": (1.2, 2.0)}, "enclose 1"),
    ],
)
def test_calibrate_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        calibrate(dclus1(), {"stype": STYPE}, **kwargs)


def test_numeric_totals_only_in_calibrate() -> None:
    with pytest.raises(ConfigError, match="only allowed in calibrate"):
        rake(dclus1(), {"api99": 3914069.0})


def test_design_argument_errors() -> None:
    with pytest.raises(ConfigError, match="weights column"):
        SurveyDesign(CLUS1, weights="nope")
    bad = CLUS1.assign(pw=-CLUS1["pw"])
    with pytest.raises(DataValidationError, match="non-negative"):
        SurveyDesign(bad, weights="pw")
    one_psu = CLUS1.assign(s=np.where(CLUS1["dnum"] == CLUS1["dnum"].iloc[0], "a", "b"))
    d = SurveyDesign(one_psu, weights="pw", cluster="dnum", strata="s")
    with pytest.raises(DataValidationError, match="single primary sampling unit"):
        d.mean("api00")


def test_replicate_argument_errors() -> None:
    with pytest.raises(ConfigError, match="unstratified"):
        as_replicate(dstrat(), "JK1")
    with pytest.raises(ConfigError, match="before weighting"):
        as_replicate(rake(dclus1(), {"stype": STYPE}), "JK1")
    with pytest.raises(ConfigError, match="random generator"):
        as_replicate(dclus1(), "subbootstrap")


# ---------------------------------------------------------------------------------------------
# replicates and diagnostics


def test_bootstrap_is_reproducible_and_resamples_psus() -> None:
    a = as_replicate(dclus1(), "subbootstrap", replicates=20, rng=np.random.default_rng(7))
    b = as_replicate(dclus1(), "subbootstrap", replicates=20, rng=np.random.default_rng(7))
    ra, rb = a.replicate_weights, b.replicate_weights
    assert ra is not None
    assert rb is not None
    pd.testing.assert_frame_equal(ra, rb)
    fac = ra.to_numpy() / CLUS1["pw"].to_numpy()[:, None]
    # one factor per PSU; 15 PSUs drawn per replicate (counts sum to n_h)
    per_psu = pd.DataFrame(fac).groupby(CLUS1["dnum"].to_numpy()).first()
    assert (pd.DataFrame(fac).groupby(CLUS1["dnum"].to_numpy()).nunique() == 1).all().all()
    np.testing.assert_allclose(per_psu.sum(axis=0), 15.0)
    se_boot = rake(a, {"stype": STYPE}).mean("api00").bse.iloc[0]
    se_lin = rake(dclus1(), {"stype": STYPE}).mean("api00").bse.iloc[0]
    assert 0.5 < se_boot / se_lin < 2.0


def test_diagnostics_fields() -> None:
    d0 = dclus1()
    r = rake(d0, {"stype": STYPE, "sch.wide": SCHWIDE})
    diag = r.diagnostics
    assert diag is not None
    w = r.weights.to_numpy()
    assert diag.kish_deff == pytest.approx(len(w) * (w**2).sum() / w.sum() ** 2)
    assert diag.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert diag.kish_deff_before == pytest.approx(1.0)  # apiclus1 weights are all equal
    assert diag.weight_range == (pytest.approx(w.min()), pytest.approx(w.max()))
    assert 1 <= diag.iterations < 100
    frame = diag.margins_frame()
    before = frame.set_index(["margin", "category"])["weighted_before"]
    assert before[("stype", "E")] == pytest.approx(float(CLUS1["pw"][CLUS1["stype"] == "E"].sum()))
    json.dumps(diag.to_dict())
    text = diag.summary()
    assert "Kish deff" in text
    assert "converged: True" in text
    assert diag.to_frame().loc["converged", "value"] is True
    assert "SurveyDesign" in r.summary()


def test_replicate_that_empties_a_cell_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    # stype "H" occurs in a single district of this subset: deleting it empties the H cell
    h_districts = CLUS1.loc[CLUS1["stype"] == "H", "dnum"].unique()
    only = h_districts[0]
    df = CLUS1[(CLUS1["stype"] != "H") | (CLUS1["dnum"] == only)].reset_index(drop=True)
    jk = as_replicate(SurveyDesign(df, weights="pw", cluster="dnum", fpc="fpc"), "JK1")
    with caplog.at_level(logging.WARNING, logger="analysis.weighting"):
        r = rake(jk, {"stype": STYPE, "sch.wide": SCHWIDE}, min_cell=1)
    assert "left out of the variance" in caplog.text
    rw = r.replicate_weights
    assert rw is not None
    dropped = rw.columns[rw.isna().all()]
    assert len(dropped) == 1
    est = r.mean("api00")
    assert np.isfinite(est.bse.iloc[0])
    assert "replicates gave undefined estimates" in caplog.text


def test_mse_variance_is_at_least_the_centred_one() -> None:
    base = as_replicate(dclus1(), "JK1")
    mse = as_replicate(dclus1(), "JK1", mse=True)
    a = rake(base, {"stype": STYPE}).mean("api00").bse.iloc[0]
    b = rake(mse, {"stype": STYPE}).mean("api00").bse.iloc[0]
    assert b >= a
    assert b == pytest.approx(a, rel=0.05)


def test_trim_replicates_keeps_deleted_units_at_zero() -> None:
    jk = rake(as_replicate(dstrat_unstratified(), "JK1"), {"stype": STYPE, "sch.wide": SCHWIDE})
    t = trim(jk, upper=44.18, lower=15.1, strict=True)
    rw_before, rw = jk.replicate_weights, t.replicate_weights
    assert rw_before is not None
    assert rw is not None
    zero = rw_before.to_numpy() == 0
    assert (rw.to_numpy()[zero] == 0).all()
    positive = rw.to_numpy()[~zero]
    assert positive.max() <= 44.18 + 1e-9
    assert positive.min() >= 15.1 - 1e-9
    np.testing.assert_allclose(rw.sum(axis=0), rw_before.sum(axis=0))


def dstrat_unstratified() -> SurveyDesign:
    """The stratified sample treated as clustered by district (for JK1)."""
    return SurveyDesign(STRAT, weights="pw", cluster="dnum")


def test_missing_values_and_na_rm_domain() -> None:
    df = CLUS1.copy()
    df.loc[[0, 5, 9], "api00"] = np.nan
    d = SurveyDesign(df, weights="pw", cluster="dnum", fpc="fpc")
    with pytest.raises(DataValidationError, match="missing values"):
        d.mean("api00")
    est = d.mean("api00", na_rm=True)
    keep = df["api00"].notna()
    expected = np.average(df.loc[keep, "api00"], weights=df.loc[keep, "pw"])
    assert est.params.iloc[0] == pytest.approx(expected)
    assert est.nobs == int(keep.sum())


def test_proportion_by_domain_sums_to_one() -> None:
    d = rake(dclus1(), {"stype": STYPE})
    est = d.proportion("awards", by="stype")
    sums = est.params.groupby(level="stype").sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    assert (est.bse > 0).all()


def test_collapse_never_merges_across_the_first_variable_of_a_joint_margin() -> None:
    """A sparse 'no POP x high' cell merges with another no-POP cell, never with a POP cell."""
    rng = np.random.default_rng(3)
    pop = np.r_[np.zeros(300, int), np.ones(100, int)]
    educ = np.r_[rng.choice(["laag", "midden"], 297), ["hoog"] * 3, rng.choice(["hoog", "laag", "midden"], 100)]
    df = pd.DataFrame({"pop": pop, "educ": educ, "w": 1.0})
    totals = {(p, e): float(((df["pop"] == p) & (df["educ"] == e)).sum() * 10) for p in (0, 1) for e in ("hoog", "laag", "midden")}
    r = rake(SurveyDesign(df, weights="w"), {("pop", "educ"): totals}, min_cell=5)
    assert r.diagnostics is not None
    (rec,) = r.diagnostics.collapsed
    assert rec.merged == ("0 x hoog", "0 x laag")  # the 1 x ... cells stay apart
    # the POP stratum keeps its total exactly
    assert r.weights[df["pop"] == 1].sum() == pytest.approx(1000.0)
    # a stratum that is one sparse cell cannot be merged within itself: a clear error
    lone = {("pop", "educ"): {(0, "laag"): 2000.0, (1, "hoog"): 50.0}}
    d2 = pd.DataFrame({"pop": [0] * 40 + [1] * 3, "educ": ["laag"] * 40 + ["hoog"] * 3, "w": 1.0})
    with pytest.raises(DataValidationError, match="within its stratum"):
        rake(SurveyDesign(d2, weights="w"), lone, min_cell=5)


def test_replicate_raking_equals_rake_on_rows_and_on_cells() -> None:
    """The replicates' raking (margins encoded once) gives rake()'s weights, also on cells."""
    from analysis.weighting.replicate import ReplicateRaking

    rng = np.random.default_rng(4)
    n = 400
    df = pd.DataFrame({
        "a": rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2]),
        "b": rng.choice(["u", "v"], size=n),
        "c": rng.choice(["p", "q", "r", "s"], size=n),
    })
    margins = {"a": {"x": 500.0, "y": 300.0, "z": 200.0}, ("b", "c"): {(b, c): 125.0 for b in "uv" for c in "pqrs"}}
    rr = ReplicateRaking.prepare(df, margins, min_cell=5, tol=1e-10, max_iter=500)
    cell = df.groupby(["a", "b", "c"], sort=True).ngroup().to_numpy()
    _, first = np.unique(cell, return_index=True)
    rc = rr.compress(first)
    for _r in range(3):
        w0 = rng.uniform(0.5, 2.0, size=n) * rng.integers(0, 3, size=n)
        ref = rake(SurveyDesign(df.assign(w=w0), weights="w"), margins, min_cell=5, tol=1e-10, max_iter=500).weight_array
        np.testing.assert_allclose(rr(w0), ref, rtol=1e-12)
        wc = np.bincount(cell, weights=w0)
        g = np.divide(rc(wc), wc, out=np.zeros_like(wc), where=wc > 0)
        np.testing.assert_allclose(w0 * g[cell], ref, rtol=1e-10)
    # a resample without weight in a category fails at once, as rake() fails after max_iter
    w0 = np.where(df["a"].to_numpy() == "z", 0.0, 1.0)
    with pytest.raises(WeightingConvergenceError, match="no weight"):
        rr(w0)
    with pytest.raises(WeightingConvergenceError):
        rake(SurveyDesign(df.assign(w=w0), weights="w"), margins, min_cell=5, tol=1e-10, max_iter=50)
