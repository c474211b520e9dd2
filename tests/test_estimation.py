"""The study estimator: the replicate fast path equals the reported estimator; Rao-Wu factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.estimation import (
    EstimatorSpec,
    design_stage,
    end_to_end_variance,
    estimate_point,
    outcome_stage,
    weight_stage,
)
from analysis.weighting.replicate import rao_wu_factors


@pytest.fixture(scope="module")
def analysis_data() -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    from tests.analysis_data import respondent_frame

    return respondent_frame(persons=40_000, seed=17)  # shared with tests/test_replicates_stacked.py


@pytest.mark.parametrize("cells", [True, False], ids=["cells", "rows"])
@pytest.mark.parametrize("strategy", ["keep", "inherit"])
def test_replicate_fast_path_equals_the_reported_estimator(analysis_data: tuple, strategy: str, cells: bool) -> None:
    frame, totals, _ = analysis_data
    spec = EstimatorSpec(survey_weights=strategy)
    methods = ("matching", "regression", "ipw", "aipw", "ologit", "naive")
    w = weight_stage(frame, totals, spec).weights
    design = design_stage(frame, w, spec, with_balance=False)
    reported = outcome_stage(frame, design, spec, methods=methods).vector()
    fast = estimate_point(frame, totals, spec, inside=design.inside.to_numpy(), methods=methods, cells=cells)
    assert len(fast) == len(reported) == 4 * (6 * 2)  # ologit: log-odds and top-2-box shift
    np.testing.assert_allclose(fast.reindex(reported.index).to_numpy(), reported.to_numpy(), rtol=1e-7, atol=1e-9)


def test_replicate_se_is_positive_and_reproducible(analysis_data: tuple) -> None:
    frame, totals, _ = analysis_data
    spec = EstimatorSpec()
    # 8 replicates: the SE is checked for being there, positive and of the right size, not for precision
    res = end_to_end_variance(frame, totals, spec, n_replicates=8, rng=np.random.default_rng(3))
    rep = res.to_frame()
    assert (rep["n_replicates"] + rep["n_failed"] == 8).all()
    assert res.replicates.shape == (8, len(rep))
    np.testing.assert_allclose(res.bse.to_numpy(), np.nanstd(res.replicates, axis=0, ddof=1))
    assert "replicate SEs" in res.summary()
    # every published estimator has a replicate SE
    assert set(rep.index.get_level_values("method")) == {"matching", "regression", "ipw", "aipw", "ologit"}
    assert (rep["bse"] > 0.01).all()
    mean_scale = rep.index.get_level_values("scale") != "log_odds"
    assert (rep["bse"][mean_scale] < 1.0).all()
    assert (rep["bse"][~mean_scale] < 2.0).all()
    again = end_to_end_variance(frame, totals, spec, n_replicates=8, rng=np.random.default_rng(3)).to_frame()
    pd.testing.assert_frame_equal(rep, again)  # reproducible from the generator
    with pytest.raises(AttributeError):
        res.cells = False  # type: ignore[misc]  # an immutable result


def test_rao_wu_factors() -> None:
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1], [50, 8])
    f = rao_wu_factors(strata, None, 400, rng)
    assert f.shape == (58, 400)
    # without fpc: n_h/(n_h-1) times a multinomial count of n_h-1 draws; every replicate sums to n_h per stratum
    np.testing.assert_allclose(f[strata == 0].sum(axis=0), 50.0)
    np.testing.assert_allclose(f[strata == 1].sum(axis=0), 8.0)
    assert (f >= 0).all()
    assert f[strata == 1].mean() == pytest.approx(1.0)
    # with fpc f_h = n_h/N_h the factors are shrunk towards 1 by sqrt(1 - f_h)
    g = rao_wu_factors(strata, {0: 100.0, 1: 8.0}, 400, np.random.default_rng(0))
    np.testing.assert_allclose(g[strata == 1], 1.0)  # a census stratum does not vary
    np.testing.assert_allclose(g[strata == 0] - 1, np.sqrt(0.5) * (f[strata == 0] - 1))


@pytest.mark.parametrize("ties", ["all", "label"])
def test_main_estimate_does_not_depend_on_row_order(analysis_data: tuple, ties: str) -> None:
    """Categorical covariates make most matches ties; the tie rule must not read the row order."""
    frame, totals, _ = analysis_data
    spec = EstimatorSpec(ties=ties)
    ref = estimate_point(frame, totals, spec)
    # the ordered logit is an iterative fit: its optimiser's path (summation order) moves it by
    # up to ~1e-5 on a small, weakly identified sample; every other estimator is exact
    ologit = ref.index.get_level_values("method") == "ologit"
    for seed in (1, 2):
        shuffled = frame.sample(frac=1.0, random_state=seed)
        got = estimate_point(shuffled, totals, spec).reindex(ref.index).to_numpy()
        np.testing.assert_allclose(got[~ologit], ref.to_numpy()[~ologit], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[ologit], ref.to_numpy()[ologit], rtol=1e-3, atol=1e-4)
    # and the design stage (with the estimand's support) agrees on the shuffled data
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    ref = outcome_stage(frame, design, spec, methods=("matching", "regression", "aipw")).vector()
    shuffled = frame.sample(frac=1.0, random_state=5)
    d2 = design_stage(shuffled, weight_stage(shuffled, totals, spec).weights, spec, with_balance=False)
    pd.testing.assert_series_equal(d2.inside.loc[design.inside.index], design.inside)
    reported = outcome_stage(shuffled, d2, spec, methods=("matching", "regression", "aipw")).vector()
    np.testing.assert_allclose(reported.reindex(ref.index).to_numpy(), ref.to_numpy(), rtol=0, atol=1e-9)


def test_matchit_tie_rule_reads_the_row_order(analysis_data: tuple) -> None:
    """The compatibility rule is what made estimates move with the row order."""
    frame, totals, _ = analysis_data
    spec = EstimatorSpec(ties="matchit")
    ref = estimate_point(frame, totals, spec)
    moved = [
        np.abs(estimate_point(frame.sample(frac=1.0, random_state=s), totals, spec)
               .reindex(ref.index).to_numpy() - ref.to_numpy()).max()
        for s in (1, 2, 3)
    ]
    assert max(moved) > 1e-6


def test_one_method_registry_for_the_configuration() -> None:
    from analysis.config import EFFECT_METHODS
    from analysis.estimation import METHODS, REPLICATE_METHODS

    assert set(METHODS) == set(EFFECT_METHODS)
    assert set(REPLICATE_METHODS) < set(METHODS)


def test_unknown_method_is_refused(analysis_data: tuple) -> None:
    from survey.errors import ConfigError

    frame, totals, _ = analysis_data
    spec = EstimatorSpec()
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    with pytest.raises(ConfigError, match="Unknown estimation method"):
        outcome_stage(frame, design, spec, methods=("doubly_robust",))


ALL_METHODS = ("matching", "regression", "ipw", "aipw", "ologit", "naive")


def _assert_same_estimates(cells: pd.Series, rows: pd.Series) -> None:
    """Identical (outcome, method, scale) keys, NaN in the same places, values to rounding."""
    got = cells.reindex(rows.index).to_numpy()
    ref = rows.to_numpy()
    assert len(cells) == len(rows)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def _point_counting_separation(*args: object, **kwargs: object) -> tuple[pd.Series, int]:
    """:func:`estimate_point` and the number of quasi-separated logit fits it warned about.

    The overlap gap leaves design cells with POP users only, so a (replicate) propensity fit can
    be quasi-separated: the replicates count that warning (``fit_warnings``); every other warning
    stays an error here.
    """
    import warnings

    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error")
        warnings.simplefilter("always", PerfectSeparationWarning)
        est = estimate_point(*args, **kwargs)  # type: ignore[arg-type]
    return est, sum(issubclass(w.category, PerfectSeparationWarning) for w in caught)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"survey_weights": "inherit"},
        {"ratio": 3, "caliper": None},
        {"weighting": "none", "support": "all", "weighted_propensity": False},
        {"trim_upper": 3.0},  # trimming: the replicates re-weight with weight_stage on the rows
    ],
    ids=["default", "inherit", "ratio3-nocaliper", "unweighted-allsupport-unweightedscore", "trimmed"],
)
def test_cells_give_the_rows_estimates_in_every_replicate(analysis_data: tuple, changes: dict) -> None:
    """Replicates on cells of identical respondents equal the replicates on the rows, for every
    method and scale, with the estimand's support and with resampling (Rao-Wu) weights."""
    from dataclasses import replace as _replace

    from analysis.estimation import _prepare

    frame, totals, _ = analysis_data
    spec = _replace(EstimatorSpec(), **changes)
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    inside = design.inside.to_numpy() if spec.support == "comparable" else None
    prep_rows = _prepare(frame, totals, spec, cells=False)
    prep_cells = _prepare(frame, totals, spec, cells=True)
    assert prep_cells.cells and not prep_rows.cells
    assert prep_cells.treat.size < 0.7 * len(frame)  # the compression is real (more so on larger samples)
    # the full-sample weights and two resampled replicates (the same code path for every replicate)
    factors = rao_wu_factors(frame["pop"].to_numpy(), None, 2, np.random.default_rng(11))
    base = frame["w_design"].to_numpy()
    for b in (None, *(base * factors[:, r] for r in range(2))):
        rows, rows_sep = _point_counting_separation(frame, totals, spec, base_weights=b, prepared=prep_rows, inside=inside, methods=ALL_METHODS)
        cells, cells_sep = _point_counting_separation(frame, totals, spec, base_weights=b, prepared=prep_cells, inside=inside, methods=ALL_METHODS)
        assert len(rows) == 4 * 12
        assert cells_sep == rows_sep  # a quasi-separated logit is one on the cells as on the rows
        _assert_same_estimates(cells, rows)


def test_cells_give_the_rows_standard_errors_and_failures(analysis_data: tuple) -> None:
    """End to end on a small subsample, where some replicates fail (a raking cell left without
    respondents) and some estimators are not estimable: the same SEs, counts and failures."""
    frame, totals, _ = analysis_data
    small = frame.sample(n=250, random_state=3)
    spec = EstimatorSpec()
    design = design_stage(small, weight_stage(small, totals, spec).weights, spec, with_balance=False)
    kw = {"n_replicates": 16, "inside": design.inside.to_numpy(), "methods": ALL_METHODS}
    res_rows = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), cells=False, **kw)
    res_cells = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), cells=True, **kw)
    assert res_cells.cells and not res_rows.cells
    rows, cells = res_rows.to_frame(), res_cells.to_frame()
    # every replicate's estimates, NaN (not estimable) in the same places
    np.testing.assert_array_equal(np.isnan(res_cells.replicates), np.isnan(res_rows.replicates))
    np.testing.assert_allclose(res_cells.replicates, res_rows.replicates, rtol=1e-9, atol=1e-12)
    assert (rows["n_failed"] > 0).any()  # the case is exercised
    pd.testing.assert_frame_equal(cells[["n_replicates", "n_failed"]], rows[["n_replicates", "n_failed"]])
    np.testing.assert_allclose(cells["bse"], rows["bse"], rtol=1e-8)


def test_replicates_use_the_rows_where_cells_do_not_pay_or_do_not_apply(analysis_data: tuple) -> None:
    """A continuous covariate makes nearly every respondent a cell of their own: the rows are
    used (cells would still be exact).  Tie rules that pick one control by label or row order
    cannot share weight among identical respondents: rows only."""
    from dataclasses import replace as _replace

    from analysis.estimation import _prepare
    from survey.errors import ConfigError

    frame, totals, _ = analysis_data
    rng = np.random.default_rng(0)
    f2 = frame.assign(age_exact=np.round(rng.uniform(18, 65, size=len(frame)), 1))
    spec = EstimatorSpec(covariates=(*EstimatorSpec().covariates, "age_exact"))
    assert not _prepare(f2, totals, spec).cells
    doubled = pd.concat([frame, frame.set_axis(frame.index.astype(str) + "b")])  # fewer cells per respondent
    assert _prepare(doubled, totals, EstimatorSpec()).cells
    prep_c = _prepare(f2, totals, spec, cells=True)
    b = f2["w_design"].to_numpy() * rao_wu_factors(f2["pop"].to_numpy(), None, 1, rng)[:, 0]
    methods = ("matching", "regression", "naive")
    cells, cells_sep = _point_counting_separation(f2, totals, spec, base_weights=b, prepared=prep_c, methods=methods)
    rows, rows_sep = _point_counting_separation(f2, totals, spec, base_weights=b, prepared=_prepare(f2, totals, spec, cells=False), methods=methods)
    _assert_same_estimates(cells, rows)
    assert cells_sep == rows_sep
    for ties in ("label", "matchit"):
        spec_t = _replace(EstimatorSpec(), ties=ties, replace=ties != "label")
        assert not _prepare(frame, totals, spec_t).cells
        with pytest.raises(ConfigError, match="tie rule 'all'"):
            _prepare(frame, totals, spec_t, cells=True)
