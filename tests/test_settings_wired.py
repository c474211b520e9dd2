"""Every estimation setting of the study configuration changes what is computed, or is refused.

Settings that were accepted, recorded and then ignored are a silent error: each one here is shown
to reach the computation (changing it changes the result), and the settings popeval does not offer
are refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import RETIRED_SETTINGS, config_from_dict
from analysis.estimation import (
    EstimatorSpec,
    design_stage,
    estimate_point,
    outcome_stage,
    weight_stage,
)
from analysis.synth import DEMO_SURVEY_ID
from analysis.weighting.methods import WeightingConvergenceError
from survey.errors import ConfigError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict]:
    from tests.analysis_data import respondent_frame

    frame, totals, _ = respondent_frame(tmp_path_factory.mktemp("settings"), persons=20_000, seed=29)
    return frame, totals


def _cfg(**sections: dict) -> object:
    return config_from_dict({"survey": {"survey_id": DEMO_SURVEY_ID}, **sections}, source=Path("study.toml"))


def test_the_raking_settings_reach_the_raking(data: tuple) -> None:
    frame, totals = data
    spec = EstimatorSpec.from_config(_cfg(weighting={"max_iter": 1, "tolerance": 1e-3}))
    assert (spec.max_iter, spec.tolerance) == (1, 1e-3)
    with pytest.raises(WeightingConvergenceError):
        weight_stage(frame, totals, EstimatorSpec(max_iter=1, tolerance=1e-14))
    tight = weight_stage(frame, totals, EstimatorSpec(tolerance=1e-12)).weights.to_numpy()
    loose = weight_stage(frame, totals, EstimatorSpec(tolerance=1e-2)).weights.to_numpy()
    diff = np.max(np.abs(loose / tight - 1))
    assert 1e-9 < diff < 0.05  # a looser tolerance stops earlier: other, still close, weights


def test_an_unweighted_propensity_score_changes_the_matching_and_the_replicates_follow(data: tuple) -> None:
    frame, totals = data
    assert EstimatorSpec.from_config(_cfg(matching={"weighted_propensity": False})).weighted_propensity is False
    w = weight_stage(frame, totals, EstimatorSpec()).weights
    scores = {}
    for weighted in (True, False):
        spec = EstimatorSpec(weighted_propensity=weighted)
        design = design_stage(frame, w, spec, with_balance=False)
        scores[weighted] = design.match.distance.to_numpy()
        if not weighted:  # the replicate path fits the same (unweighted) score
            reported = outcome_stage(frame, design, spec, methods=("matching",)).vector()
            fast = estimate_point(frame, totals, spec, inside=design.inside.to_numpy(), methods=("matching",))
            np.testing.assert_allclose(fast.reindex(reported.index).to_numpy(), reported.to_numpy(), rtol=1e-7, atol=1e-9)
    assert np.max(np.abs(scores[True] - scores[False])) > 1e-3


@pytest.mark.parametrize(("section", "key", "value", "reason"), [
    ("effects", "alpha", 0.1, "intervals are 95 %"),
    ("survey", "server", "https://ls.example.org", "only from the environment"),
])
def test_settings_popeval_does_not_offer_are_refused_with_the_reason(section: str, key: str, value: object, reason: str) -> None:
    assert (section, key) in RETIRED_SETTINGS
    data = {"survey": {"survey_id": DEMO_SURVEY_ID}}
    data[section] = {**data.get(section, {}), key: value}
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, source=Path("study.toml"))
    assert e.value.param == f"{section}.{key}" and reason in str(e.value)


def test_a_stage_that_does_not_exist_is_refused() -> None:
    from analysis.pipeline import run

    with pytest.raises(ConfigError, match="Unknown stage") as e:
        run(_cfg(), stage="outcomes")  # type: ignore[arg-type]
    assert "'design' or 'all'" in str(e.value)
