"""analysis.weighting: margins are encoded the same way whatever the columns' dtype.

The margin columns are factorised once and matched against the margins' categories on their
distinct values; these tests pin that the weights do not depend on how a column is stored
(text, categorical, pandas string, integers) and that the errors still name the row and values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.weighting import SurveyDesign, rake
from survey.errors import DataValidationError

REGION = ["north", "south", "east", "west"]
SEX = ["F", "M"]
EDUC = ["low", "mid", "high"]


def _sample(n: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "region": np.asarray(REGION, dtype=object)[rng.integers(0, 4, n)],
            "sex": np.asarray(SEX, dtype=object)[rng.integers(0, 2, n)],
            "educ": np.asarray(EDUC, dtype=object)[rng.choice(3, n, p=[0.2, 0.5, 0.3])],
            "w": rng.uniform(1.0, 3.0, n),
        }
    )


MARGINS = {
    "region": {"north": 3000.0, "south": 2500.0, "east": 2500.0, "west": 2000.0},
    ("sex", "educ"): {
        ("F", "low"): 900.0,
        ("F", "mid"): 2600.0,
        ("F", "high"): 1500.0,
        ("M", "low"): 1100.0,
        ("M", "mid"): 2400.0,
        ("M", "high"): 1500.0,
    },
}


def _weights(df: pd.DataFrame) -> np.ndarray:
    return rake(SurveyDesign(df, weights="w"), MARGINS, tol=1e-12).weights.to_numpy()


@pytest.mark.parametrize(
    "convert",
    [
        lambda s: s.astype("category"),
        lambda s: pd.Categorical(s, categories=[*sorted(set(s)), "unused"]),
        lambda s: s.astype("string"),
        lambda s: s.astype("string[pyarrow]"),
    ],
    ids=["categorical", "categorical-unused-category", "string", "string-pyarrow"],
)
def test_weights_identical_for_every_column_dtype(convert) -> None:
    df = _sample()
    reference = _weights(df)
    other = df.assign(**{c: convert(df[c]) for c in ("region", "sex", "educ")})
    np.testing.assert_array_equal(_weights(other), reference)
    # the margins are met (the weights are not merely equal to each other)
    got = pd.Series(reference).groupby(df["region"].to_numpy()).sum()
    for k, v in MARGINS["region"].items():
        assert got[k] == pytest.approx(v, rel=1e-10)
    joint = pd.Series(reference).groupby([df["sex"].to_numpy(), df["educ"].to_numpy()]).sum()
    for k, v in MARGINS[("sex", "educ")].items():
        assert joint[k] == pytest.approx(v, rel=1e-10)


def test_row_order_does_not_change_a_row_s_weight() -> None:
    df = _sample()
    perm = np.random.default_rng(9).permutation(len(df))
    shuffled = df.iloc[perm].reset_index(drop=True)
    np.testing.assert_allclose(_weights(shuffled), _weights(df)[perm], rtol=1e-12)


def test_integer_codes_match_integer_categories() -> None:
    df = _sample()
    codes = {"north": 1, "south": 2, "east": 3, "west": 4}
    as_int = df.assign(region=df["region"].map(codes).astype("int64"))
    margins = {"region": {codes[k]: v for k, v in MARGINS["region"].items()}}
    w_int = rake(SurveyDesign(as_int, weights="w"), margins, tol=1e-12).weights.to_numpy()
    w_str = rake(SurveyDesign(df, weights="w"), {"region": MARGINS["region"]}, tol=1e-12).weights.to_numpy()
    np.testing.assert_array_equal(w_int, w_str)


def test_missing_value_error_names_the_first_row_and_the_count() -> None:
    df = _sample()
    df.loc[[7, 40, 41], "educ"] = None
    with pytest.raises(DataValidationError, match="missing values") as exc:
        rake(SurveyDesign(df, weights="w"), MARGINS)
    err = exc.value
    assert err.column == "educ"
    assert err.row == 8
    assert "3 missing value(s)" in str(err)


def test_sample_categories_absent_from_the_margin_are_listed_in_order_of_appearance() -> None:
    df = _sample()
    df.loc[5, "region"] = "centre"
    df.loc[2, "region"] = "islands"
    with pytest.raises(DataValidationError, match="absent from the population margin") as exc:
        rake(SurveyDesign(df, weights="w"), MARGINS)
    assert "'islands', 'centre'" in str(exc.value)


def test_joint_combination_absent_from_the_margin_is_named() -> None:
    df = _sample()
    margins = {
        "region": MARGINS["region"],
        ("sex", "educ"): {k: v for k, v in MARGINS[("sex", "educ")].items() if k != ("M", "high")} | {("F", "high"): 3000.0},
    }
    with pytest.raises(DataValidationError, match="absent from the population margin") as exc:
        rake(SurveyDesign(df, weights="w"), margins)
    assert "M x high" in str(exc.value)
