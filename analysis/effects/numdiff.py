"""The central-difference Jacobian used where an estimator has no closed-form derivative."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["central_jacobian"]


def central_jacobian(
    fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, rel_step: float, weights: np.ndarray,
) -> np.ndarray:
    """The weighted sum over observations of ``d fun / d theta``, by central differences.

    ``fun`` maps the ``k`` parameters to an ``(n, m)`` array (one row per observation, e.g. its
    estimating equations or score); column ``j`` of the ``(m, k)`` result is
    ``sum_i weights_i (fun(theta + h e_j) - fun(theta - h e_j))_i / 2h`` with
    ``h = rel_step * max(1, |theta_j|)``.  The rows are differenced before they are summed, so a row
    that does not depend on ``theta_j`` adds exactly zero (a parameter no observation identifies
    gets an exactly zero column, which the callers' pseudo-inverse then sets aside).
    """
    w = np.asarray(weights, dtype=float)[:, None]
    columns = []
    for j in range(theta.size):
        h = rel_step * max(1.0, abs(float(theta[j])))
        tp, tm = theta.copy(), theta.copy()
        tp[j] += h
        tm[j] -= h
        columns.append(((np.asarray(fun(tp)) - np.asarray(fun(tm))) * w).sum(axis=0) / (2 * h))
    return np.column_stack(columns)
