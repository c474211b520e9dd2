"""The POP frame from the DWSE columns it reads, and stratum labels built column by column."""

from __future__ import annotations

import pandas as pd
from shared_studies import generated_study

from analysis.plans.frame import FOLLOWED_COLUMNS, build_frame, read_texts
from analysis.plans.sample import stratum_labels
from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
from survey.validate import read_table


def test_frame_needs_only_the_followed_columns_and_labels_join_strata() -> None:
    study = generated_study(20_000, 5, plans=True)
    texts = read_texts(study / "plans" / "pop_texts.parquet")
    traj = read_table(study / "admin" / "vdab_trajectories.csv", VDAB_TRAJECTORIES)
    dwse = read_table(study / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    full, counts = build_frame(texts, traj, dwse, "attest")
    few, few_counts = build_frame(texts, traj, dwse[list(FOLLOWED_COLUMNS)], "attest")
    pd.testing.assert_frame_equal(full, few, check_exact=True)
    pd.testing.assert_frame_equal(counts, few_counts, check_exact=True)
    assert full["followed_training_id"].notna().any() and set(full["incentive"]) >= {"geen", "OC"}

    for cols in (["incentive"], ["incentive", "centre_size"], ("incentive", "centre_size", "school_year", "has_attest")):
        expected = full[list(cols)].astype(str).agg("/".join, axis=1).rename("stratum")
        pd.testing.assert_series_equal(stratum_labels(full, cols), expected, check_exact=True)
    assert stratum_labels(full, ["incentive", "centre_size"]).iloc[0].count("/") == 1
    assert stratum_labels(full, []).eq("alle").all()
    assert stratum_labels(full.iloc[:0], ["incentive", "centre_size"]).empty
