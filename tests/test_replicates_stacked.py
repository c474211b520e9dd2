"""All end-to-end replicates at once (stacked fits) equal the replicates one by one and the rows."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.estimation import (
    SEPARATED_LOG_ODDS,
    EstimatorSpec,
    _prepare,
    _stacked_point,
    design_stage,
    end_to_end_variance,
    estimate_point,
    weight_stage,
)
from analysis.weighting.replicate import rao_wu_factors

ALL_METHODS = ("matching", "regression", "ipw", "aipw", "ologit", "naive")


@pytest.fixture(scope="module")
def analysis_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    from tests.analysis_data import respondent_frame

    return respondent_frame(tmp_path_factory.mktemp("stacked"), persons=40_000, seed=17)


#: A quasi-separated ordered logit has no maximum: its log odds run off (here to 80-140) until the
#: gradient falls below the tolerance, a point that rounding moves by about 1e-7 (relative) — on
#: the cells and on the rows, one by one, as well.  The stacked fits leave such fits to one fit.
SEPARATED = 20.0


def _same(a: np.ndarray, b: np.ndarray, separated_rtol: float = 1e-9) -> None:
    """NaN in the same places, values to rounding (a separated fit's log odds to ``separated_rtol``)."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    sep = np.abs(np.nan_to_num(b)) > SEPARATED
    np.testing.assert_allclose(a[~sep], b[~sep], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a[sep], b[sep], rtol=separated_rtol)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"survey_weights": "inherit"},
        {"ratio": 3, "caliper": None},
        {"weighting": "none", "support": "all", "weighted_propensity": False},
    ],
    ids=["default", "inherit", "ratio3-nocaliper", "unweighted-allsupport-unweightedscore"],
)
def test_stacked_replicates_equal_the_replicates_one_by_one_and_the_rows(analysis_data: tuple, changes: dict) -> None:
    frame, totals, _ = analysis_data
    spec = replace(EstimatorSpec(), **changes)
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    inside = design.inside.to_numpy() if spec.support == "comparable" else None
    kw: dict[str, Any] = {"n_replicates": 6, "inside": inside, "methods": ALL_METHODS}
    stacked = end_to_end_variance(frame, totals, spec, rng=np.random.default_rng(5), cells=True, **kw)
    one = end_to_end_variance(frame, totals, spec, rng=np.random.default_rng(5), cells=True, stacked=False, **kw)
    rows = end_to_end_variance(frame, totals, spec, rng=np.random.default_rng(5), cells=False, **kw)
    rows_one = end_to_end_variance(frame, totals, spec, rng=np.random.default_rng(5), cells=False, stacked=False, **kw)
    assert stacked.stacked and stacked.cells
    assert not one.stacked and one.cells
    assert rows.stacked and not rows.cells
    assert not rows_one.stacked and not rows_one.cells
    assert stacked.replicates.shape == (6, 4 * 12)
    assert np.isfinite(stacked.replicates).all()
    _same(rows.replicates, rows_one.replicates)
    for other, sep_rtol in ((one, 1e-9), (rows, 1e-6), (rows_one, 1e-6)):
        assert list(other.bse.index) == list(stacked.bse.index)
        _same(stacked.replicates, other.replicates, separated_rtol=sep_rtol)
        assert stacked.fit_warnings == other.fit_warnings
        pd.testing.assert_series_equal(stacked.n_failed, other.n_failed)


@pytest.mark.parametrize("ties", ["label", "matchit"])
def test_stacked_replicates_on_the_rows_with_a_tie_rule_of_the_rows(analysis_data: tuple, ties: str) -> None:
    """On the rows (as with a continuous covariate, where nearly every respondent is a cell of
    its own) with a tie rule the cells do not allow: all replicates at once give the replicates
    one by one, failures, NaN and fit warnings included."""
    frame, totals, _ = analysis_data
    small = frame.sample(n=300, random_state=4)
    spec = EstimatorSpec(ties=ties)
    design = design_stage(small, weight_stage(small, totals, spec).weights, spec, with_balance=False)
    kw: dict[str, Any] = {"n_replicates": 12, "inside": design.inside.to_numpy(), "methods": ALL_METHODS, "cells": False}
    stacked = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(3), **kw)
    one = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(3), stacked=False, **kw)
    assert stacked.stacked and not stacked.cells and not one.stacked
    assert np.isfinite(stacked.replicates).sum() > 0.9 * stacked.replicates.size
    _same(stacked.replicates, one.replicates)
    pd.testing.assert_frame_equal(stacked.to_frame(), one.to_frame())
    assert stacked.fit_warnings == one.fit_warnings


def test_stacked_replicates_fail_and_warn_as_one_by_one(analysis_data: tuple) -> None:
    """A small sample: replicates that fail (a raking cell left without respondents), estimators
    not estimable in some replicates (NaN there), quasi-separated propensity fits (counted)."""
    frame, totals, _ = analysis_data
    small = frame.sample(n=250, random_state=3)
    spec = EstimatorSpec()
    design = design_stage(small, weight_stage(small, totals, spec).weights, spec, with_balance=False)
    kw: dict[str, Any] = {"n_replicates": 16, "inside": design.inside.to_numpy(), "methods": ALL_METHODS, "cells": True}
    stacked = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), **kw)
    one = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), stacked=False, **kw)
    assert stacked.stacked and not one.stacked
    assert (one.n_failed > 0).any()  # the case is exercised
    _same(stacked.replicates, one.replicates)
    pd.testing.assert_frame_equal(stacked.to_frame(), one.to_frame())
    assert stacked.fit_warnings == one.fit_warnings


def test_stacked_replicates_with_a_category_absent_from_a_resample(analysis_data: tuple) -> None:
    """Replicates that leave out every respondent of a covariate category, of a reference
    category, or every matched respondent with the top answer (the ordered logit then has a
    category fewer): each gives what its own replicate gives.  One whose IPW is not estimable
    for an item (no control answered it) is left to the replicate one by one (its NaN there).  Without re-weighting (raking cannot reach a
    margin whose category has no respondent: such a replicate fails, as one by one)."""
    frame, totals, _ = analysis_data
    spec = EstimatorSpec(weighting="none")
    cov = "sector"
    cats = sorted(frame[cov].astype(str).unique())  # the first is the reference category
    assert len(cats) > 2
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    inside = design.inside.to_numpy()
    prep = _prepare(frame, totals, spec, cells=True)
    base = frame["w_design"].to_numpy()
    f = rao_wu_factors(frame["pop"].to_numpy(), None, 5, np.random.default_rng(8))
    b = base[:, None] * f
    b[(frame[cov].astype(str) == cats[-1]).to_numpy(), 1] = 0.0  # a category absent
    b[(frame[cov].astype(str) == cats[0]).to_numpy(), 2] = 0.0  # the reference category absent
    b[(frame[spec.outcomes[0]] == 5).to_numpy(), 3] = 0.0  # an answer absent for one outcome
    # the controls who answered one item left out: IPW is not estimable for it, the rest is
    o = max(spec.outcomes, key=lambda c: int((frame[c].isna() & (frame["pop"] == 0)).sum()))
    b[(frame[o].notna() & (frame["pop"] == 0)).to_numpy(), 4] = 0.0
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        stacked = _stacked_point(b, prep, spec, inside, ALL_METHODS)
        one_4 = estimate_point(frame, totals, spec, base_weights=b[:, 4], prepared=prep, inside=inside, methods=ALL_METHODS)
    assert all(stacked[r] is not None for r in (0, 1, 2))  # the stacked fits take these
    assert stacked[4] is None  # an estimate not finite: one by one, which gives its NaN
    other = next(c for c in spec.outcomes if c != o)
    assert np.isnan(one_4[(o, "ipw", "likert")]) and np.isfinite(one_4[(other, "ipw", "likert")])
    for r in (0, 1, 2, 3):
        with warnings.catch_warnings(record=True):  # quasi-separated propensity fits, as stacked
            warnings.simplefilter("always")
            own = estimate_point(frame, totals, spec, base_weights=b[:, r], prepared=prep, inside=inside, methods=ALL_METHODS)
            rows = estimate_point(frame, totals, spec, base_weights=b[:, r], inside=inside, methods=ALL_METHODS, cells=False)
        est = stacked[r]
        log_odds = own.xs(("ologit", "log_odds"), level=("method", "scale"))
        # a separated POP coefficient of the ordered logit (no maximum): one by one
        assert (est is None) == bool((log_odds.abs() > SEPARATED_LOG_ODDS).any())
        if est is None:
            continue
        assert list(est.index) == list(own.index)
        _same(est.to_numpy(), own.to_numpy())
        _same(est.to_numpy(), rows.reindex(est.index).to_numpy(), separated_rtol=1e-6)


def test_stacked_replicates_where_they_do_not_apply(analysis_data: tuple) -> None:
    """Trimmed weights re-weight with the weighting stage: one by one (and refused if asked)."""
    from survey.errors import ConfigError

    frame, totals, _ = analysis_data
    spec = replace(EstimatorSpec(), trim_upper=3.0)
    with pytest.raises(ConfigError, match="Stacked replicates need"):
        end_to_end_variance(frame, totals, spec, n_replicates=2, cells=True, stacked=True)
    assert not end_to_end_variance(frame, totals, spec, n_replicates=2, cells=True).stacked


def test_no_progress_bar_when_every_replicate_ran_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The progress bar counts the replicates refitted one by one: none, when all ran at once."""
    from analysis.effects.variance import replicate_variance

    df = pd.DataFrame({"y": np.arange(6.0)})
    w = np.random.default_rng(1).gamma(2.0, 1.0, (6, 4))

    def one(weights: pd.Series) -> pd.Series:
        return pd.Series({"mean": float(np.average(df["y"], weights=weights))})

    def all_at_once(mat: np.ndarray) -> list[pd.Series]:
        return [one(pd.Series(mat[:, r])) for r in range(mat.shape[1])]

    rv = replicate_variance(df, w, one, progress=True, refit_all=all_at_once)
    assert rv.n_replicates == 4
    assert "rep" not in capsys.readouterr().err
    replicate_variance(df, w, one, progress=True, n_jobs=1)
    assert "replicates" in capsys.readouterr().err  # one by one: the bar is shown


def test_workers_compute_the_stacked_replicates_side_by_side_with_the_same_results(analysis_data: tuple) -> None:
    """The replicates computed all at once run in parts (as many as the number of replicates
    gives) side by side in the workers: two workers give exactly what one gives, failures, NaN and
    fit warnings included."""
    from analysis.effects.variance import STACKED_PART, STACKED_PARTS

    frame, margins, _ = analysis_data
    totals = {k: dict(v) for k, v in margins.items()}  # plain mappings: the workers receive them pickled
    small = frame.sample(n=250, random_state=3)
    spec = EstimatorSpec()
    design = design_stage(small, weight_stage(small, totals, spec).weights, spec, with_balance=False)
    assert STACKED_PARTS >= 2
    kw: dict[str, Any] = {"n_replicates": 2 * STACKED_PART + 10, "inside": design.inside.to_numpy(), "methods": ALL_METHODS, "cells": True}
    one = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), workers=1, **kw)
    two = end_to_end_variance(small, totals, spec, rng=np.random.default_rng(2), workers=2, **kw)
    assert one.stacked and two.stacked
    np.testing.assert_array_equal(one.replicates, two.replicates)
    pd.testing.assert_frame_equal(one.to_frame(), two.to_frame())
    assert one.fit_warnings == two.fit_warnings and sum(one.fit_warnings.values()) > 0
    assert (one.n_failed > 0).any()
