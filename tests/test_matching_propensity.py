"""The numpy propensity-score engine against patsy and statsmodels' GLM.

For formulas made of plain columns and ``C(column)`` terms :func:`propensity_score` builds the
design matrix with numpy and fits the logit by Newton-Raphson; the coefficients (with their
names), standard errors and scores must be those of the patsy + statsmodels fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.matching import propensity_score
from analysis.matching.formula import design_matrix, fast_design_matrix
from analysis.matching.propensity import logit_newton
from survey.errors import ConfigError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20240611)
    n = 4000
    df = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n),
            "income": rng.lognormal(10, 0.5, n),
            "kids": rng.integers(0, 4, n),
            "educ": rng.choice(["low", "mid", "high"], n, p=[0.3, 0.5, 0.2]),
            "region": pd.Categorical(
                rng.choice(["west", "north", "south", "east"], n),
                categories=["west", "north", "south", "east"],
            ),
            "female": rng.uniform(size=n) < 0.45,
            "sw": rng.gamma(2.0, 0.5, n),
        }
    )
    eta = (
        -1.0
        + 0.02 * (df.age - 45)
        + 0.3 * (df.educ == "high")
        - 0.2 * (df.region == "south").to_numpy()
        + 0.25 * df.female
        + 0.1 * df.kids
    )
    df.insert(0, "pop", rng.binomial(1, 1 / (1 + np.exp(-eta))))
    return df


FORMULAS = [
    "pop ~ age + income + kids + educ + region + female",
    "pop ~ age + C(educ) + income + C(region) + female + kids",
    "pop ~ 1 + region + age",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_design_matrix_equals_patsy(data: pd.DataFrame, formula: str) -> None:
    rhs = formula.split("~")[1]
    built = fast_design_matrix(data, rhs)
    assert built is not None
    x, names = built
    ref = patsy.dmatrix(rhs, data, return_type="dataframe")
    assert names == list(ref.columns)
    np.testing.assert_array_equal(x, ref.to_numpy())


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("weights", [None, "sw"])
def test_numpy_fit_equals_statsmodels(data: pd.DataFrame, formula: str, weights: str | None) -> None:
    fast = propensity_score(data, formula, weights=weights)
    slow = propensity_score(data, formula, weights=weights, engine="statsmodels")
    assert (fast.engine, slow.engine) == ("numpy", "statsmodels")
    assert list(fast.params.index) == list(slow.params.index)
    np.testing.assert_allclose(fast.params, slow.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast.bse, slow.bse, rtol=1e-8, atol=0)
    np.testing.assert_allclose(fast.score, slow.score, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast.linear_predictor, slow.linear_predictor, rtol=0, atol=1e-8)
    assert fast.nobs == slow.nobs == len(data)
    assert fast.weighted == slow.weighted
    pd.testing.assert_frame_equal(fast.support[["n", "n_outside"]], slow.support[["n", "n_outside"]])


def test_identical_rows_get_identical_scores(data: pd.DataFrame) -> None:
    """Ties in the score decide matches, so equal covariates must give bit-equal scores."""
    dup = pd.concat([data.iloc[:50]] * 40, ignore_index=True)
    dup["pop"] = np.random.default_rng(1).binomial(1, 0.4, len(dup))
    ps = propensity_score(dup, "pop ~ age + educ + region + female").score.to_numpy()
    assert np.all(ps.reshape(40, 50) == ps[:50])


@pytest.mark.parametrize(
    "formula",
    ["pop ~ age + I(age**2) + educ", "pop ~ age + educ - 1", "pop ~ 0 + age + educ",
     "pop ~ age * female", "pop ~ np.log(income) + educ"],
)
def test_other_formulas_are_built_by_patsy_and_fitted_as_statsmodels_does(data: pd.DataFrame, formula: str) -> None:
    assert fast_design_matrix(data, formula.split("~")[1]) is None
    ours = propensity_score(data, formula)
    glm = propensity_score(data, formula, engine="statsmodels")
    assert ours.engine == "numpy" and glm.engine == "statsmodels"
    assert list(ours.params.index) == list(glm.params.index)
    np.testing.assert_allclose(ours.params.to_numpy(), glm.params.to_numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.score.to_numpy(), glm.score.to_numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "rhs",
    [FORMULAS[0].split("~")[1], "1 + region + age", "age + I(age**2) + educ", "age * female", "0 + age + educ"],
)
def test_the_one_design_matrix_is_patsys_on_every_formula(data: pd.DataFrame, rhs: str) -> None:
    """What the effect estimators build their models with: numpy where it can, patsy elsewhere."""
    x, names = design_matrix(data, rhs)
    ref = patsy.dmatrix(rhs, data, return_type="dataframe", NA_action="raise")
    assert names == list(ref.columns)
    np.testing.assert_array_equal(x, ref.to_numpy())
    holes = data.assign(educ=data.educ.where(data.index % 97 != 0))
    with pytest.raises(patsy.PatsyError):
        design_matrix(holes, rhs if "educ" in rhs else rhs + " + educ")


def test_missing_values_and_unknown_engine(data: pd.DataFrame) -> None:
    holes = data.assign(educ=data.educ.where(data.index % 97 != 0))
    assert fast_design_matrix(holes, "age + educ") is None
    with pytest.raises(ConfigError):
        propensity_score(data, FORMULAS[0], engine="fast")  # type: ignore[arg-type]


def test_singular_design_is_left_to_statsmodels() -> None:
    x = np.column_stack([np.ones(100), np.arange(100.0), 2 * np.arange(100.0)])
    y = (np.arange(100) % 3 == 0).astype(float)
    assert logit_newton(x, y) is None


def _quasi_separated(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A design of categories in which one category has no treated unit (quasi-separation)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 4, n), rng.integers(0, 3, n)
    x = np.column_stack([np.ones(n), a == 1, a == 2, a == 3, b == 1, b == 2]).astype(float)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(-0.5 + 0.4 * (a == 1) - 0.3 * b)))).astype(float)
    y[a == 3] = 0.0
    return x, y, rng.gamma(2.0, 0.5, n)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_deviance_criterion_is_statsmodels_glm_on_a_quasi_separated_sample(weighted: bool) -> None:
    import warnings

    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    from analysis.matching.propensity import expit, logit_fit

    x, y, sw = _quasi_separated(7)
    w = sw if weighted else None
    assert logit_newton(x, y, w) is None  # the maximum does not exist: Newton's criterion never holds
    ref = sm.GLM(y, x, family=sm.families.Binomial(), **({"var_weights": w} if weighted else {})).fit(maxiter=100, tol=1e-10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = logit_newton(x, y, w, tol_criterion="deviance")
    assert [c.category for c in caught] == [PerfectSeparationWarning]  # once per fit
    assert fitted is not None
    beta, bse, eta = fitted
    assert beta[3] < -15  # the separated category's coefficient drifts towards -infinity
    np.testing.assert_allclose(beta, ref.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(bse, ref.bse, rtol=1e-8, atol=0)
    np.testing.assert_allclose(eta, ref.predict(which="linear"), rtol=0, atol=1e-8)
    with pytest.warns(PerfectSeparationWarning):
        lin = logit_fit(x, y, w)[2]  # every propensity score's logit: Newton, then the deviance criterion
    np.testing.assert_allclose(expit(lin), ref.fittedvalues, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lin, eta, rtol=0, atol=0)


def test_the_deviance_criterion_does_not_warn_where_the_maximum_exists(data: pd.DataFrame) -> None:
    import warnings

    built = fast_design_matrix(data, "age + educ + region + female")
    assert built is not None
    x, names = built
    y = data["pop"].to_numpy(dtype=float)
    # a rare category that is not separated: one treated unit in the region 'east'
    east = x[:, names.index("region[T.east]")] == 1
    y[east] = 0.0
    y[np.flatnonzero(east)[0]] = 1.0
    newton = logit_newton(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_deviance = logit_newton(x, y, tol_criterion="deviance")
    assert newton is not None and by_deviance is not None
    for a, b in zip(newton, by_deviance, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def test_an_unknown_convergence_criterion_is_refused() -> None:
    with pytest.raises(ConfigError, match="convergence criterion"):
        logit_newton(np.ones((3, 1)), np.array([0.0, 1.0, 0.0]), tol_criterion="gradient")  # type: ignore[arg-type]
