"""Stacked fits (many weight vectors at once) give every row's own fit: logit, WLS, ordered logit, raking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def _design(rng: np.random.Generator, n: int, intercept: bool = True) -> np.ndarray:
    """Intercept (optional), a 0/1 column and dummies of a 4- and a 3-category covariate."""
    a, b = rng.integers(0, 4, n), rng.integers(0, 3, n)
    cols = [rng.integers(0, 2, n).astype(float)] + [(a == k).astype(float) for k in (1, 2, 3)] + [(b == k).astype(float) for k in (1, 2)]
    return np.column_stack(([np.ones(n)] if intercept else []) + cols)


def _weights(rng: np.random.Generator, x: np.ndarray, R: int, first: int) -> np.ndarray:
    """Resampling-like weights; row 1 lacks a category (column ``first + 1`` all 0), row 2 the
    reference category of that covariate (its dummies sum to the constant)."""
    w = rng.gamma(2.0, 1.0, (R, x.shape[0])) * (rng.random((R, x.shape[0])) < 0.8)
    w[1, x[:, first + 1] == 1] = 0.0
    w[2, x[:, first : first + 3].sum(axis=1) == 0] = 0.0
    return w


def test_stacked_logit_is_every_rows_own_fit_with_its_warnings() -> None:
    from analysis.matching.propensity import expit, identified_columns, logit_fit, logit_fit_stacked

    rng = np.random.default_rng(0)
    x = _design(rng, 300)
    y = (rng.random(300) < expit(x @ rng.normal(scale=0.5, size=x.shape[1]))).astype(float)
    w = _weights(rng, x, 24, 2)
    for r in range(5, 10):  # quasi-separation: one category has POP users only
        w[r, (x[:, 2] == 1) & (y == 0)] = 0.0
    _, se, eta, warned = logit_fit_stacked(x, y, w)
    n_warn = 0
    for r in range(w.shape[0]):
        pos = w[r] > 0
        cols = identified_columns(x[pos])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _b1, se1, eta1 = logit_fit(x[pos][:, cols], y[pos], w[r, pos])
        assert [c.category for c in caught] == [c.category for c in warned[r]]
        n_warn += len(caught)
        np.testing.assert_allclose(expit(eta[r, pos]), expit(eta1), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(se[r, cols], se1, rtol=1e-8)
    assert n_warn == 5  # each separated row warns once, as alone
    assert np.isnan(se[1, 3])  # the absent category's coefficient is not identified
    with warnings.catch_warnings(record=True) as caught:  # logit_fit with stacked weights raises them
        warnings.simplefilter("always")
        eta_2 = logit_fit(x, y, w)[2]
    assert len(caught) == 5
    np.testing.assert_array_equal(eta_2, eta)


def test_stacked_wls_is_every_rows_minimum_norm_fit() -> None:
    from analysis.effects.regression import wls_params

    rng = np.random.default_rng(1)
    x = _design(rng, 200)
    x = np.column_stack([x, x[:, 2] + x[:, 3]])  # a collinear column: one null space for every row
    w = _weights(rng, x, 16, 2)
    y = rng.normal(size=(16, 200))
    b = wls_params(y, x, w)
    for r in range(16):
        np.testing.assert_allclose(b[r], wls_params(y[r], x, w[r]), rtol=1e-9, atol=1e-12)


def test_stacked_ordered_logit_is_every_rows_own_fit() -> None:
    from analysis.effects.ordinal import ordered_logit_fit, treatment_probability_shifts

    rng = np.random.default_rng(2)
    x = _design(rng, 400, intercept=False)
    y = np.digitize(x @ rng.normal(size=x.shape[1]) + rng.logistic(size=400), [-1.5, -0.5, 0.5, 1.5])
    w = _weights(rng, x, 20, 1)
    w[5, y == 0] = 0.0  # a category without weight: not fitted stacked
    theta = ordered_logit_fit(x, y, w, 5)
    shifts = treatment_probability_shifts(theta, x, w, 0)
    assert np.isnan(theta[5]).all()
    for r in (0, 1, 2, 3, 4, 6, 7):
        pos = w[r] > 0
        cols = np.flatnonzero(np.any(x[pos] != 0, axis=0))
        own = ordered_logit_fit(x[pos][:, cols], y[pos], w[r, pos], 5)
        full = np.zeros(theta.shape[1])
        full[cols], full[x.shape[1]:] = own[: cols.size], own[cols.size :]
        if r == 2:  # the reference category absent: the cut-points and dummies trade off; the
            # POP coefficient and the probabilities are identified
            np.testing.assert_allclose(theta[r, 0], own[0], rtol=1e-9)
        else:
            np.testing.assert_allclose(theta[r], full, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(shifts[r], treatment_probability_shifts(own, x[pos][:, cols], w[r, pos], 0), rtol=1e-9, atol=1e-12)


def test_stacked_raking_is_every_columns_own_raking() -> None:
    import pandas as pd

    from analysis.weighting.methods import WeightingConvergenceError
    from analysis.weighting.replicate import ReplicateRaking

    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"a": rng.choice(list("xyz"), n), "b": rng.choice(list("pq"), n)})
    margins = {"a": {"x": 500.0, "y": 300.0, "z": 200.0}, "b": {"p": 600.0, "q": 400.0}}
    rr = ReplicateRaking.prepare(df, margins, min_cell=1, tol=1e-10, max_iter=100)
    W = rng.gamma(2.0, 1.0, (n, 6))
    W[(df["a"] == "z").to_numpy(), 4] = 0.0  # a margin category without weight: cannot be raked
    raked, ok = rr.many(W)
    assert ok.tolist() == [True, True, True, True, False, True]
    for r in np.flatnonzero(ok):
        np.testing.assert_allclose(raked[:, r], rr(W[:, r]), rtol=1e-12)
    with pytest.raises(WeightingConvergenceError):
        rr(W[:, 4])


def test_a_single_fit_is_a_stack_of_one_row() -> None:
    """One set of weights through the stacked path (merged rows, a column basis) gives the fit."""
    from analysis.effects.ordinal import ordered_logit_fit
    from analysis.effects.regression import wls_params
    from analysis.matching.propensity import expit, logit_fit

    rng = np.random.default_rng(4)
    x = _design(rng, 300)
    w = rng.gamma(2.0, 1.0, 300)
    y = (rng.random(300) < expit(x @ rng.normal(scale=0.5, size=x.shape[1]))).astype(float)
    b1, se1, eta1 = logit_fit(x, y, w)
    b, se, eta = logit_fit(x, y, w[None, :])
    np.testing.assert_allclose(b[0], b1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(se[0], se1, rtol=1e-8)
    np.testing.assert_allclose(eta[0], eta1, rtol=1e-9, atol=1e-12)
    yw = x @ rng.normal(size=x.shape[1]) + rng.normal(size=300)
    np.testing.assert_allclose(wls_params(yw, x, w[None, :])[0], wls_params(yw, x, w), rtol=1e-9, atol=1e-12)
    xo = x[:, 1:]
    yo = np.digitize(xo @ rng.normal(size=xo.shape[1]) + rng.logistic(size=300), [-1.5, -0.5, 0.5, 1.5])
    np.testing.assert_allclose(ordered_logit_fit(xo, yo, w[None, :], 5)[0], ordered_logit_fit(xo, yo, w, 5),
                               rtol=1e-9, atol=1e-12)


def test_units_with_weight_zero_do_not_count_in_a_logit_or_its_warnings() -> None:
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    from analysis.matching.propensity import expit, logit_fit

    rng = np.random.default_rng(5)
    x = _design(rng, 300)
    y = (rng.random(300) < expit(x @ rng.normal(scale=0.5, size=x.shape[1]))).astype(float)
    w = rng.gamma(2.0, 1.0, 300)
    w[(x[:, 2] == 1) & (y == 0)] = 0.0  # with weight, the category has POP users only
    pos = w > 0
    fits = []
    for args in ((x, y, w), (x[pos], y[pos], w[pos])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits.append(logit_fit(*args))
        assert [c.category for c in caught] == [PerfectSeparationWarning]
    (b0, se0, eta0), (b1, se1, eta1) = fits
    assert b0[2] > 20 and b1[2] > 20  # the separated coefficient runs off towards +infinity
    np.testing.assert_allclose(b0, b1, rtol=1e-9)
    np.testing.assert_allclose(se0, se1, rtol=1e-8)
    np.testing.assert_allclose(eta0[pos], eta1, rtol=1e-9, atol=1e-12)


def test_a_separated_stacked_ordered_logit_is_left_to_its_caller_when_asked() -> None:
    """With ``separated``, a row whose first coefficient runs off (the 0/1 column separates the
    categories) is left NaN, where by default it is fitted alone; the other rows are unchanged."""
    from analysis.effects.ordinal import ordered_logit_fit

    rng = np.random.default_rng(4)
    x = _design(rng, 300, intercept=False)
    y = np.digitize(x @ rng.normal(size=x.shape[1]) + rng.logistic(size=300), [-1.5, -0.5, 0.5, 1.5])
    w = rng.gamma(2.0, 1.0, (4, 300))
    # row 3: the units of the first column in the top category only, the others below it
    w[3, (x[:, 0] == 1) & (y < 4)] = 0.0
    w[3, (x[:, 0] == 0) & (y == 4)] = 0.0
    default = ordered_logit_fit(x, y, w, 5)
    left = ordered_logit_fit(x, y, w, 5, separated=15.0)
    assert np.isfinite(default).all() and abs(default[3, 0]) > 15.0  # fitted alone: it ran off
    assert np.isnan(left[3]).all()
    np.testing.assert_allclose(left[:3], default[:3], rtol=1e-12, atol=1e-14)
