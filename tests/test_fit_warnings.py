"""Model fits count the warnings they are expected to raise and let every other warning through."""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from analysis.fitwarnings import expected_fit_warnings, report_fit_warnings


def test_expected_warnings_are_counted_per_fit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    counts: Counter[str] = Counter()
    with expected_fit_warnings(counts, "ologit"):
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)  # same place: still counted
    with expected_fit_warnings(counts, "propensity score"):
        warnings.warn("perfect separation", PerfectSeparationWarning, stacklevel=1)
    assert counts == {"ologit: ConvergenceWarning": 2, "propensity score: PerfectSeparationWarning": 1}
    with caplog.at_level(logging.WARNING, logger="analysis.estimation"):
        reported = report_fit_warnings(counts, logging.getLogger("analysis.estimation"))
    assert reported == {"ologit: ConvergenceWarning": 2, "propensity score: PerfectSeparationWarning": 1}
    assert "ologit: ConvergenceWarning warned 2 time(s) while fitting: a fit stopped at its iteration limit" in caplog.text
    # what a separation means for the estimate is said with it
    assert "PerfectSeparationWarning warned 1 time(s) while fitting: a propensity model was (quasi-)separated" in caplog.text
    assert "get no control of their own category" in caplog.text


def test_unexpected_warnings_surface() -> None:
    counts: Counter[str] = Counter()
    with pytest.warns(RuntimeWarning, match="overflow"), expected_fit_warnings(counts, "ipw"):
        warnings.warn("overflow in exp", RuntimeWarning, stacklevel=1)
    assert counts == {}


def test_errors_inside_a_fit_propagate() -> None:
    counts: Counter[str] = Counter()
    with pytest.raises(ValueError, match="singular"), expected_fit_warnings(counts, "aipw"):
        raise ValueError("singular design")


def _warning_refit(w):  # type: ignore[no-untyped-def]
    warnings.warn("separation", PerfectSeparationWarning, stacklevel=1)
    return float(w.sum())


def test_replicate_fit_warnings_are_counted_per_replicate_and_summed() -> None:
    import numpy as np
    import pandas as pd

    from analysis.effects.variance import replicate_variance

    df = pd.DataFrame(index=range(4))
    res = replicate_variance(df, np.ones((4, 5)), _warning_refit, n_jobs=1, progress=False)
    assert res.fit_warnings == {"replicates: PerfectSeparationWarning": 5}


def test_a_quasi_separated_replicate_logit_counts_as_perfect_separation() -> None:
    """The replicates' logit warns of quasi-separation as statsmodels' GLM path is counted."""
    import numpy as np
    import pandas as pd

    from analysis.effects.variance import replicate_variance
    from analysis.matching.propensity import expit, logit_fit

    rng = np.random.default_rng(3)
    n = 300
    a = rng.integers(0, 3, n)
    x = np.column_stack([np.ones(n), a == 1, a == 2]).astype(float)
    y = (rng.uniform(size=n) < 0.4).astype(float)
    y[a == 2] = 0.0  # no treated unit in category 2: quasi-separated in every replicate
    reps = rng.gamma(4.0, 0.25, size=(n, 6))

    def refit(w):  # type: ignore[no-untyped-def]
        return float(expit(logit_fit(x, y, np.asarray(w, dtype=float))[2]).mean())

    res = replicate_variance(pd.DataFrame(index=range(n)), reps, refit, n_jobs=1, progress=False)
    assert res.fit_warnings == {"replicates: PerfectSeparationWarning": 6}
    assert res.n_replicates == 6 and np.isfinite(res.bse).all()
    # without the separation nothing is counted
    y[a == 2] = (rng.uniform(size=int((a == 2).sum())) < 0.4).astype(float)
    assert replicate_variance(pd.DataFrame(index=range(n)), reps, refit, n_jobs=1, progress=False).fit_warnings == {}


def test_overlap_counts_the_warnings_of_its_propensity_score(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import pandas as pd

    from analysis.matching import propensity
    from analysis.matching.overlap import overlap

    real = propensity.propensity_score

    def warning_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        warnings.warn("slow", ConvergenceWarning, stacklevel=1)
        warnings.warn("other", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(propensity, "propensity_score", warning_fit)
    rng = np.random.default_rng(1)
    n = 80
    df = pd.DataFrame({"t": rng.integers(0, 2, size=n), "z": rng.choice(["u", "v"], size=n)})
    with pytest.warns(UserWarning, match="other"):  # an unexpected warning surfaces
        res = overlap(df, "t", ["z"], weights=np.ones(n), support="all", rule="none")
    assert res.fit_warnings == {"overlap propensity score: ConvergenceWarning": 1}


def test_no_warning_is_silenced_wholesale() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    bad = [
        str(p.relative_to(root))
        for pkg in ("analysis", "survey")
        for p in (root / pkg).rglob("*.py")
        if 'simplefilter("ignore")' in p.read_text(encoding="utf-8")
        or 'filterwarnings("ignore")' in p.read_text(encoding="utf-8")
    ]
    assert bad == []


def _quasi_separated(seed: int, separated: bool):  # type: ignore[no-untyped-def]
    """A sample whose covariate category 'c' has POP users only (when ``separated``)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = 400
    df = pd.DataFrame({"g": rng.choice(["a", "b", "c"], size=n), "z": rng.normal(size=n)})
    t = (rng.uniform(size=n) < 0.4).astype(int)
    if separated:
        t[df["g"].to_numpy() == "c"] = 1
    df["t"] = t
    df["w"] = rng.uniform(0.5, 2.0, size=n)
    return df


@pytest.mark.parametrize("separated", [True, False])
def test_the_design_stage_score_warns_of_quasi_separation_as_the_replicates_do(separated: bool) -> None:
    """The study's propensity score (a formula) is fitted by the replicates' logit, which warns of
    a quasi-separation that statsmodels' GLM (the cross-check engine) fits silently."""
    import numpy as np

    from analysis.matching import propensity_score

    df = _quasi_separated(5, separated)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = propensity_score(df, "t ~ C(g) + z", weights="w")
    names = [w.category.__name__ for w in caught]
    assert names == (["PerfectSeparationWarning"] if separated else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glm = propensity_score(df, "t ~ C(g) + z", weights="w", engine="statsmodels")
    assert [w.category.__name__ for w in caught] == []  # statsmodels: no warning either way
    assert ours.engine == "numpy" and glm.engine == "statsmodels"
    np.testing.assert_allclose(ours.score.to_numpy(), glm.score.to_numpy(), atol=1e-8)
    # a formula numpy does not build (a transformation) goes through patsy's matrix, same fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patsy_built = propensity_score(df, "t ~ C(g) + np.abs(z)", weights="w")
    assert [w.category.__name__ for w in caught] == names
    assert patsy_built.engine == "numpy" and "np.abs(z)" in patsy_built.params.index


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_ipw_propensity_fits_warn_of_quasi_separation_for_both_links(link: str) -> None:
    import numpy as np

    from analysis.effects.weighting_estimators import _fit_ps

    for separated in (True, False):
        df = _quasi_separated(7, separated)
        g = df["g"].to_numpy()
        Z = np.column_stack([np.ones(len(df)), g == "b", g == "c", df["z"]]).astype(float)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gamma = _fit_ps(df["t"].to_numpy(dtype=float), Z, df["w"].to_numpy(), link)
        assert [w.category.__name__ for w in caught] == (["PerfectSeparationWarning"] if separated else [])
        # the separated category's coefficient drifts off (logit far, probit less: thinner tail)
        assert bool(gamma[2] > 5.0) is separated


def test_a_missing_covariate_in_a_propensity_formula_is_a_clear_error() -> None:
    import numpy as np

    from analysis.matching import propensity_score
    from survey.errors import PopevalError

    df = _quasi_separated(1, False)
    df.loc[3, "z"] = np.nan
    with pytest.raises(PopevalError, match="could not be built") as exc:
        propensity_score(df, "t ~ C(g) + z", weights="w")
    assert "impute missing covariates" in str(exc.value)
