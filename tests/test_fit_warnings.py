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
    assert "ologit: ConvergenceWarning warned 2 time(s)" in caplog.text


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
    from analysis.matching.propensity import fit_logit

    rng = np.random.default_rng(3)
    n = 300
    a = rng.integers(0, 3, n)
    x = np.column_stack([np.ones(n), a == 1, a == 2]).astype(float)
    y = (rng.uniform(size=n) < 0.4).astype(float)
    y[a == 2] = 0.0  # no treated unit in category 2: quasi-separated in every replicate
    reps = rng.gamma(4.0, 0.25, size=(n, 6))

    def refit(w):  # type: ignore[no-untyped-def]
        return float(fit_logit(x, y, np.asarray(w, dtype=float))[0].mean())

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
