"""The central-difference Jacobian used where an estimator has no closed-form derivative."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["central_jacobian"]


def central_jacobian(fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, rel_step: float) -> np.ndarray:
    """``d fun / d theta`` by central differences: column ``j`` is ``(fun(theta + h e_j) - fun(theta - h e_j)) / 2h``.

    ``h = rel_step * max(1, |theta_j|)``; ``fun`` maps the ``k`` parameters to ``m`` values, the
    result is ``(m, k)``.
    """
    k = theta.size
    columns = []
    for j in range(k):
        h = rel_step * max(1.0, abs(float(theta[j])))
        tp, tm = theta.copy(), theta.copy()
        tp[j] += h
        tm[j] -= h
        columns.append((np.asarray(fun(tp)) - np.asarray(fun(tm))) / (2 * h))
    return np.column_stack(columns) if columns else np.empty((0, 0))
