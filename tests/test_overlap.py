"""Overlap diagnostics, the estimand's support, and the regression-adjustment ATT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.effects import regression_att
from analysis.matching.overlap import overlap
from survey.errors import ConfigError


@pytest.fixture(scope="module")
def regulated() -> pd.DataFrame:
    """High-educated users have (almost) all a POP, as the opleidingscheque rules require."""
    rng = np.random.default_rng(8)
    n = 3000
    educ = rng.choice(["laag", "midden", "hoog"], size=n, p=[0.3, 0.5, 0.2])
    sex = rng.choice(["M", "V"], size=n)
    lin = -2.5 + 0.8 * (educ == "midden") + 0.5 * (sex == "V")
    pop = rng.binomial(1, 1 / (1 + np.exp(-lin)))
    high = educ == "hoog"
    pop[high] = (rng.random(high.sum()) > 0.01).astype(int)  # 1 % registration errors
    w = rng.uniform(1, 3, n)
    return pd.DataFrame({"pop": pop, "educ": educ, "sex": sex, "w": w}, index=[f"p{i}" for i in range(n)])


def test_regulated_empty_cell_is_excluded_and_named(regulated: pd.DataFrame) -> None:
    ov = overlap(regulated, "pop", ["educ", "sex"], weights="w")
    cells = ov.cells.set_index(["variable", "category"])
    assert cells.loc[("educ", "hoog"), "status"] == "sparse"
    assert (cells.drop(("educ", "hoog"))["status"] == "ok").all()
    high_pop = (regulated["educ"] == "hoog") & (regulated["pop"] == 1)
    assert ov.excluded_treated[high_pop].all()
    assert not ov.inside[regulated["educ"] == "hoog"].any()  # its few controls go too
    assert ov.n_excluded >= int(high_pop.sum())
    share_w = regulated.loc[ov.excluded_treated, "w"].sum() / regulated.loc[regulated["pop"] == 1, "w"].sum()
    assert ov.share_excluded_weighted == pytest.approx(share_w)
    e = ov.estimand()
    assert e["name"] == "ATT among POP users with comparable controls"
    assert e["excluded_groups"][0]["variable"] == "educ" and e["excluded_groups"][0]["category"] == "hoog"
    assert "educ = hoog" in e["statement"]
    prof = ov.profile.set_index(["variable", "category"])
    assert prof.loc[("educ", "hoog"), "n"] == int(high_pop.sum())
    table = ov.to_frame()
    assert set(table["kind"]) == {"cell", "propensity"}
    # the propensity regions hold the POP users the cell rule kept
    in_cells = (regulated["pop"] == 1) & (regulated["educ"] != "hoog")
    assert table.loc[table["kind"] == "propensity", "n_treated"].sum() == int(in_cells.sum())


def test_support_all_keeps_everyone_but_still_diagnoses(regulated: pd.DataFrame) -> None:
    ov = overlap(regulated, "pop", ["educ", "sex"], weights="w", support="all")
    assert ov.inside.all()
    assert (ov.cells["status"] == "sparse").sum() == 1
    assert "extrapolation" in ov.estimand()["statement"]


def test_crump_trimming_and_minmax(regulated: pd.DataFrame) -> None:
    ov = overlap(regulated, "pop", ["educ", "sex"], weights="w", rule="crump", alpha=0.15)
    ps_out = ov.reason == "propensity"
    assert ps_out.any()
    # minmax: nobody in this design has a score outside the other group's range
    ov2 = overlap(regulated, "pop", ["educ", "sex"], weights="w", rule="minmax")
    assert ((ov2.reason == "propensity") & (ov2.treat == 1)).sum() == 0
    with pytest.raises(ConfigError):
        overlap(regulated, "pop", ["educ"], rule="trim")


def test_regression_att_is_the_att_not_the_pooled_coefficient() -> None:
    """With an effect that varies with x, g-computation recovers the ATT; the pooled coefficient does not."""
    rng = np.random.default_rng(2)
    n = 6000
    g = rng.choice(["a", "b"], size=n)
    t = rng.binomial(1, np.where(g == "b", 0.7, 0.2))
    tau = np.where(g == "b", 1.0, 0.0)
    y = 1 + 0.5 * (g == "b") + tau * t + rng.normal(size=n)
    df = pd.DataFrame({"t": t, "g": g, "y": y})
    att = tau[t == 1].mean()
    e = regression_att(df, "y ~ C(g)", "t")
    assert e.estimand == "ATT"
    assert abs(e.estimate - att) < 3 * e.bse[e.term]
    import statsmodels.formula.api as smf

    pooled = smf.ols("y ~ t + C(g)", df).fit().params["t"]
    assert abs(pooled - att) > 4 * e.bse[e.term]  # the coefficient is a variance-weighted average
    # the SE is close to the bootstrap SD of the estimator
    boots = []
    for b in range(40):
        s = df.sample(frac=1.0, replace=True, random_state=b)
        boots.append(regression_att(s, "y ~ C(g)", "t").estimate)
    assert e.bse[e.term] == pytest.approx(np.std(boots, ddof=1), rel=0.3)


def test_extrapolated_flags_pop_users_without_comparable_controls(regulated: pd.DataFrame) -> None:
    """The design's excluded cells, categories without controls in the sample, scores above the controls'."""
    from analysis.matching.overlap import extrapolated

    high_pop = (regulated["educ"] == "hoog") & (regulated["pop"] == 1)
    w = regulated["w"].to_numpy()
    # the hoog cell has a few controls (registration errors): not flagged by the sample alone,
    # flagged as one of the design's cells without comparable controls
    assert not extrapolated(regulated, "pop", ["educ", "sex"], weights=w).any()
    cells = overlap(regulated, "pop", ["educ", "sex"], weights="w", support="all").excluded_cells
    flag = extrapolated(regulated, "pop", ["educ", "sex"], weights=w,
                        excluded_cells=list(zip(cells["variable"], cells["category"], strict=True)))
    assert flag.index.equals(regulated.index)
    assert flag[high_pop].all() and not flag[~high_pop].any()
    # units with weight 0 are not in the sample: without the hoog controls the cell has none
    w0 = w * ~((regulated["educ"] == "hoog") & (regulated["pop"] == 0)).to_numpy()
    assert extrapolated(regulated, "pop", ["educ", "sex"], weights=w0).to_numpy().tolist() == high_pop.tolist()
    # a propensity score above every control's is flagged (beyond the tolerance only)
    score = np.where(regulated["pop"] == 1, 0.3, 0.5)
    others = np.flatnonzero((regulated["pop"] == 1).to_numpy() & ~high_pop.to_numpy())
    score[others[:3]] = 0.5 + 1e-9
    score[others[3:5]] = 0.6
    assert int(extrapolated(regulated, "pop", ["educ", "sex"], weights=w, score=score).sum()) == 2


def test_model_based_rows_state_their_extrapolated_share() -> None:
    """With support = 'all' the POP users of a cell without controls are extrapolated by regression,
    AIPW and the ordered logit (their weighted share); with the default estimand nobody is."""
    from dataclasses import replace

    from analysis.estimation import EstimatorSpec, design_stage, outcome_stage

    rng = np.random.default_rng(11)
    n = 2400
    educ = rng.choice(["laag", "midden", "hoog"], size=n, p=[0.35, 0.45, 0.2])
    sex = rng.choice(["M", "V"], size=n)
    pop = rng.binomial(1, 1 / (1 + np.exp(-(-1.2 + 0.6 * (educ == "midden") + 0.3 * (sex == "V")))))
    pop[educ == "hoog"] = 1  # no control in the cell: by regulation
    y = np.clip(np.round(3 + 0.3 * pop + 0.4 * (educ == "midden") + rng.normal(0, 1, n)), 1, 5)
    frame = pd.DataFrame({"pop": pop, "educ": educ, "sex": sex, "stronger": y}, index=[f"r{i}" for i in range(n)])
    w = rng.uniform(1, 2, n)
    methods = ("matching", "regression", "aipw", "ologit", "naive")
    base = EstimatorSpec(covariates=("educ", "sex"), outcomes=("stronger",), methods=methods, caliper=None)
    t_high = (pop == 1) & (educ == "hoog")
    for support, expected in (("all", w[t_high].sum() / w[pop == 1].sum()), ("comparable", 0.0)):
        spec = replace(base, support=support)
        design = design_stage(frame, w, spec, with_balance=False)
        tab = outcome_stage(frame, design, spec).table.set_index(["method", "scale"])["extrapolated"]
        for key in (("regression", "likert"), ("aipw", "top2")):
            assert tab[key] == pytest.approx(expected, rel=1e-12, abs=1e-12), (support, key)
        assert np.isnan(tab[("matching", "likert")]) and np.isnan(tab[("naive", "likert")])
        if support == "all":
            # the matched sample: hoog POP users matched to controls of other cells
            assert 0 < tab[("ologit", "top2")] <= 1
        else:
            assert tab[("ologit", "top2")] == 0.0
