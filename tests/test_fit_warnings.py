"""Model fits count the warnings they are expected to raise and let every other warning through."""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from analysis.estimation import _expected_fit_warnings, _report_fit_warnings


def test_expected_warnings_are_counted_per_fit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    counts: Counter[str] = Counter()
    with _expected_fit_warnings(counts, "ologit"):
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)  # same place: still counted
    with _expected_fit_warnings(counts, "propensity score"):
        warnings.warn("perfect separation", PerfectSeparationWarning, stacklevel=1)
    assert counts == {"ologit: ConvergenceWarning": 2, "propensity score: PerfectSeparationWarning": 1}
    with caplog.at_level(logging.WARNING, logger="popeval.estimation"):
        reported = _report_fit_warnings(counts)
    assert reported == {"ologit: ConvergenceWarning": 2, "propensity score: PerfectSeparationWarning": 1}
    assert "ologit: ConvergenceWarning warned 2 time(s)" in caplog.text


def test_unexpected_warnings_surface() -> None:
    counts: Counter[str] = Counter()
    with pytest.warns(RuntimeWarning, match="overflow"), _expected_fit_warnings(counts, "ipw"):
        warnings.warn("overflow in exp", RuntimeWarning, stacklevel=1)
    assert counts == {}


def test_errors_inside_a_fit_propagate() -> None:
    counts: Counter[str] = Counter()
    with pytest.raises(ValueError, match="singular"), _expected_fit_warnings(counts, "aipw"):
        raise ValueError("singular design")
