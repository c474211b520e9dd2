"""Warnings a model fit may raise on a valid sample: counted and reported, never silenced.

A logistic or ordinal fit on a small (replicate) sample may warn of quasi-separation or slow
convergence and still return a usable fit.  :func:`expected_fit_warnings` counts those warnings
(statsmodels' ``ConvergenceWarning``, ``PerfectSeparationWarning``, ``HessianInversionWarning``)
per fit; every other warning is re-emitted, so that it surfaces as it would have.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping

__all__ = ["EXPECTED_FIT_WARNINGS", "MEANINGS", "describe_fit_warning", "expected_fit_warnings", "report_fit_warnings"]

#: Warnings a model fit may raise on a valid sample (the fit still returns); counted and reported.
EXPECTED_FIT_WARNINGS = ("ConvergenceWarning", "PerfectSeparationWarning", "HessianInversionWarning")

#: What each expected warning means for the estimate, logged with its count.
MEANINGS = {
    "PerfectSeparationWarning": (
        "a propensity model was (quasi-)separated: a covariate category had units of one group only "
        "(in a replicate: its other group's respondents were all left out of the resample); their score "
        "goes to 0 or 1, so they get no control of their own category, and the fit (or that replicate) "
        "compares the rest; the replicate SE includes this variation"
    ),
    "ConvergenceWarning": "a fit stopped at its iteration limit; its last step was used",
    "HessianInversionWarning": "a fit's information matrix could not be inverted: its model-based standard errors are unreliable",
}


@contextlib.contextmanager
def expected_fit_warnings(counts: Counter[str], fit: str) -> Iterator[None]:
    """Count the expected warnings of ``fit`` into ``counts`` (``"fit: Warning"``); others surface."""
    from statsmodels.tools import sm_exceptions

    expected = tuple(getattr(sm_exceptions, name) for name in EXPECTED_FIT_WARNINGS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, expected):
            counts[f"{fit}: {w.category.__name__}"] += 1
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def describe_fit_warning(key: str, n: int) -> str:
    """``"<fit>: <Warning> warned <n> time(s) while fitting: <what it means>"`` (:data:`MEANINGS`)."""
    meaning = MEANINGS.get(key.rsplit(": ", 1)[-1])
    return f"{key} warned {n} time(s) while fitting" + (f": {meaning}" if meaning else "")


def report_fit_warnings(counts: Mapping[str, int], log: logging.Logger) -> dict[str, int]:
    """Log the counted fit warnings on ``log`` and return them (sorted) for a result's diagnostics."""
    for key, n in sorted(counts.items()):
        log.warning("%s", describe_fit_warning(key, n))
    return dict(sorted(counts.items()))
