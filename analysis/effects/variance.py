"""Variance helpers: replicate-weight variance of any re-fitted estimate, Abadie-Imbens SEs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.matching.nearest import MatchResult

__all__ = ["ReplicateVariance", "abadie_imbens_se", "replicate_variance"]


@dataclass(frozen=True)
class ReplicateVariance:
    """Replicate-weight variance of an estimate.

    Attributes
    ----------
    estimate
        The full-sample estimate (one value per component).
    replicates
        ``(R, k)`` replicate estimates.
    variance, se
        ``scale * sum_r rscales_r (theta_r - centre)^2`` and its square root, per component.
    centre
        ``"full"`` (MSE form, around the full-sample estimate) or ``"mean"`` of the replicates.
    """

    estimate: np.ndarray
    replicates: np.ndarray
    variance: np.ndarray
    se: np.ndarray
    centre: str

    def to_frame(self) -> pd.DataFrame:
        """Estimate and SE per component."""
        import pandas as pd

        return pd.DataFrame({"estimate": self.estimate, "se": self.se})

    def summary(self) -> str:
        """Plain-text report."""
        return (f"Replicate variance ({self.replicates.shape[0]} replicates, centred on "
                f"{self.centre})\n" + self.to_frame().to_string())


def _call(refit: Callable[[Any], Any], w: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(refit(w), dtype=float))


def replicate_variance(
    df: pd.DataFrame,
    replicate_columns: Sequence[str],
    refit: Callable[[pd.Series], float | Sequence[float] | np.ndarray],
    *,
    full_weight: str | None = None,
    scale: float = 1.0,
    rscales: Sequence[float] | np.ndarray | None = None,
    mse: bool = True,
    n_jobs: int | None = None,
    executor: str = "process",
    progress: bool = True,
) -> ReplicateVariance:
    """Variance of an estimate from replicate weights, re-fitting it once per replicate.

    ``refit(weights) -> estimate`` receives one weight column (a Series aligned to ``df``) and
    must redo *everything* that depends on the weights (re-weighting, propensity score, matching,
    outcome model) for the variance to be end-to-end.  Replicates run in parallel with
    :mod:`concurrent.futures` (processes by default, so ``refit`` must be picklable, e.g. a
    module-level function or :func:`functools.partial`), with a tqdm progress bar.

    Parameters
    ----------
    df
        Data holding the replicate weight columns (and ``full_weight``).
    replicate_columns
        Names of the replicate weight columns.
    refit
        The estimator as a function of a weight column.
    full_weight
        Full-sample weight column; the estimate is ``refit(df[full_weight])``.  Default: the mean
        of the replicate estimates is reported and used as the centre.
    scale, rscales
        Variance ``scale * sum_r rscales_r (theta_r - centre)^2`` (e.g. JK1: ``(R-1)/R``, 1;
        bootstrap: ``1/(R-1)``, 1; BRR: ``1/R``, 1; Fay: ``1/(R (1-rho)^2)``, 1).
    mse
        Centre on the full-sample estimate (True, as ``survey``'s ``mse=TRUE``) or on the mean of
        the replicates.
    n_jobs
        Worker count (default: all cores); 1 runs serially.
    executor
        ``"process"`` or ``"thread"``.
    progress
        Show a progress bar.

    Returns
    -------
    ReplicateVariance
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from tqdm.auto import tqdm

    cols = list(replicate_columns)
    missing = [c for c in [*cols, *([full_weight] if full_weight else [])] if c not in df.columns]
    if missing:
        raise DataValidationError("Replicate weight columns are missing", column=missing[0],
                                  param="replicate_columns")
    if len(cols) < 2:
        raise ConfigError("At least two replicates are needed", param="replicate_columns",
                          found=str(len(cols)))
    rs = np.ones(len(cols)) if rscales is None else np.asarray(rscales, dtype=float)
    if rs.shape != (len(cols),):
        raise ConfigError("rscales needs one value per replicate", param="rscales",
                          expected=str(len(cols)), found=str(rs.shape))
    if executor not in ("process", "thread"):
        raise ConfigError("Unknown executor", param="executor", expected="'process' or 'thread'",
                          found=repr(executor))
    weights = [df[c] for c in cols]
    if n_jobs == 1:
        reps = [_call(refit, w) for w in tqdm(weights, disable=not progress, desc="replicates")]
    else:
        pool_cls = ProcessPoolExecutor if executor == "process" else ThreadPoolExecutor
        with pool_cls(max_workers=n_jobs) as pool:
            futures = [pool.submit(_call, refit, w) for w in weights]
            reps = [f.result() for f in tqdm(futures, disable=not progress, desc="replicates")]
    R = np.vstack(reps)
    est = _call(refit, df[full_weight]) if full_weight else R.mean(axis=0)
    centre = est if mse and full_weight else R.mean(axis=0)
    var = scale * (rs[:, None] * (R - centre) ** 2).sum(axis=0)
    return ReplicateVariance(estimate=est, replicates=R, variance=var, se=np.sqrt(var),
                             centre="full" if (mse and full_weight) else "mean")


def abadie_imbens_se(
    m: MatchResult,
    df: pd.DataFrame,
    outcome: str,
    *,
    covariates: str | None = None,
    n_variance_matches: int = 1,
) -> tuple[float, float]:
    """ATT and its Abadie-Imbens (2006) standard error for nearest-neighbour matching.

    Implements the variance of the simple matching estimator of Abadie & Imbens (2006,
    Econometrica 74(1), Theorem 7 / eq. for the population ATT) for matching on a fixed metric,
    without bias correction and *without* the Abadie-Imbens (2016) adjustment for an estimated
    propensity score:

        V = 1/N1^2 [ sum_{T=1} (Y_i - Yhat_i(0) - tau)^2
                     + sum_{T=0} (k_i^2 - sum_t 1/M_t^2) sigma^2_i ],

    with ``k_i`` the summed 1/M_t over the treated units ``t`` that control ``i`` serves (for
    constant M, ``k_i^2 - K_i/M^2 = K_i (K_i - 1)/M^2``), and ``sigma^2_i`` estimated by
    matching each control to its ``J = n_variance_matches`` nearest other controls on the same
    metric: ``J/(J+1) (Y_i - mean of those J)^2``.  Intended for matching with replacement; after
    matching without replacement every ``K_i <= 1`` and the second term vanishes.

    Parameters
    ----------
    m
        The matching (unweighted by survey weights: survey weights are not used here).
    df
        The matched data.
    outcome
        Outcome column.
    covariates
        Metric for the variance matches: default the matching metric (propensity score, or the
        Mahalanobis covariates when ``distance="mahalanobis"``/``mahvars``).
    n_variance_matches
        J.

    Returns
    -------
    (att, se)
    """
    from scipy.spatial import cKDTree

    from analysis.matching.formula import covariate_matrix, split_formula
    from analysis.matching.nearest import mahalanobis_transform

    t = m.treat.to_numpy()
    y = df[outcome].to_numpy(dtype=float)
    pos = {lab: i for i, lab in enumerate(df.index)}
    treated_pos = np.array([pos[lab] for lab in m.match_matrix.index])
    mm = np.array([[pos[v] if v is not None and v == v else -1 for v in m.match_matrix[c]]
                   for c in m.match_matrix.columns]).T
    has = (mm >= 0).any(axis=1)
    treated_pos, mm = treated_pos[has], mm[has]
    M = (mm >= 0).sum(axis=1)
    yhat0 = np.array([y[row[row >= 0]].mean() for row in mm])
    tau = float((y[treated_pos] - yhat0).mean())
    n1 = treated_pos.size
    k = np.zeros(t.size)
    k2 = np.zeros(t.size)
    rows, cols = np.nonzero(mm >= 0)
    np.add.at(k, mm[rows, cols], 1.0 / M[rows])
    np.add.at(k2, mm[rows, cols], 1.0 / M[rows] ** 2)
    # metric for sigma^2
    if covariates is not None:
        z = mahalanobis_transform(covariate_matrix(df, covariates.split("~")[-1]).to_numpy(), t)
    elif m.distance is not None and not m.settings.get("mahvars"):
        z = m.distance.to_numpy()[:, None]
    else:
        rhs = (" + ".join(m.settings["mahvars"]) if m.settings.get("mahvars")
               else split_formula(m.formula)[1])
        z = mahalanobis_transform(covariate_matrix(df, rhs).to_numpy(), t)
    ctrl = np.flatnonzero((t == 0) & (k > 0))
    pool = np.flatnonzero(t == 0)
    J = int(n_variance_matches)
    if J < 1 or pool.size <= J:
        raise ConfigError("n_variance_matches must be >= 1 and below the number of controls",
                          param="n_variance_matches", found=str(J))
    tree = cKDTree(z[pool])
    _, nb = tree.query(z[ctrl], k=J + 1)
    nb = np.asarray(nb).reshape(ctrl.size, J + 1)
    sig2 = np.empty(ctrl.size)
    for i, c in enumerate(ctrl):
        others = [pool[j] for j in nb[i] if pool[j] != c][:J]
        sig2[i] = J / (J + 1) * (y[c] - y[others].mean()) ** 2
    v = ((y[treated_pos] - yhat0 - tau) ** 2).sum() + ((k[ctrl] ** 2 - k2[ctrl]) * sig2).sum()
    return tau, float(np.sqrt(v) / n1)
