"""Replicate-weight variance of any re-fitted estimate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["ReplicateVariance", "replicate_variance"]


@dataclass(frozen=True)
class ReplicateVariance:
    """Replicate-weight variance of an estimate.

    Attributes
    ----------
    estimate
        The full-sample estimate (one value per component), or the mean of the replicates.
    replicates
        ``(R, k)`` replicate estimates; a failed replicate's row is NaN.
    variance, bse
        Per component ``scale * sum_r rscales_r (theta_r - centre)^2`` over the replicates that
        estimated it, and its square root.
    centre
        ``"full"`` (MSE form, around the full-sample estimate) or ``"mean"`` of the replicates.
    n_replicates
        Per component, the replicates that estimated it.
    n_failed
        Replicates whose re-fit failed with one of the expected errors (counted, not fatal).
    index
        The components' labels when the estimator returns a :class:`pandas.Series`, else None.
    fit_warnings
        Expected fit warnings raised by the re-fits, summed over the replicates
        (``"replicates: <Warning>"`` -> count); any other warning surfaces.
    """

    estimate: np.ndarray
    replicates: np.ndarray
    variance: np.ndarray
    bse: np.ndarray
    centre: str
    n_replicates: np.ndarray
    n_failed: int = 0
    index: pd.Index | None = None
    fit_warnings: Mapping[str, int] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Estimate, SE and the number of replicates per component."""
        import pandas as pd

        return pd.DataFrame(
            {"estimate": self.estimate, "bse": self.bse, "n_replicates": self.n_replicates},
            index=self.index,
        )

    def summary(self) -> str:
        """Plain-text report."""
        return (f"Replicate variance ({self.replicates.shape[0]} replicates, {self.n_failed} "
                f"failed, centred on {self.centre})\n" + self.to_frame().to_string())


def _call(
    refit: Callable[[Any], Any], failures: tuple[type[BaseException], ...], w: Any
) -> tuple[Any, Counter[str]]:
    """One replicate: the re-fitted estimate (None when it fails with an expected error) and
    the expected fit warnings it raised (:func:`analysis.fitwarnings.expected_fit_warnings`)."""
    from analysis.fitwarnings import expected_fit_warnings

    counts: Counter[str] = Counter()
    with expected_fit_warnings(counts, "replicates"):
        try:
            value = refit(w)
        except failures:
            value = None
    return value, counts


def _call_all(refit_all: Callable[[np.ndarray], Sequence[Any]], part: np.ndarray) -> tuple[list[Any], Counter[str]]:
    """The replicates of one part at once (``refit_all`` on its ``(n, r)`` weights) and the
    expected fit warnings they raised."""
    from analysis.fitwarnings import expected_fit_warnings

    counts: Counter[str] = Counter()
    with expected_fit_warnings(counts, "replicates"):
        values = list(refit_all(part))
    return values, counts


#: The replicates computed all at once (``refit_all``) run in this many parts, side by side in the
#: workers, each of at least :data:`STACKED_PART` replicates (fewer parts for fewer replicates).  The
#: parts follow from the number of replicates alone, so the number of workers never changes a result;
#: a larger stack costs less per replicate, so the parts are as few as the workers of a 2-core
#: machine can use.
STACKED_PARTS = 2
STACKED_PART = 50


def _as_array(value: Any, index: Any) -> np.ndarray:
    import pandas as pd

    if isinstance(value, pd.Series) and index is not None and not value.index.equals(index):
        value = value.reindex(index)
    return np.atleast_1d(np.asarray(value, dtype=float))


def _refit_each(
    one: Callable[[Any], tuple[Any, Counter[str]]], weights: list[Any], n_jobs: int | None, executor: str, progress: bool,
) -> list[tuple[Any, Counter[str]]]:
    """``one`` on every weight column, serially or in a pool, with a progress bar."""
    import os
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    from functools import partial

    from tqdm.auto import tqdm

    from analysis.processes import worker_initializer

    bar = partial(tqdm, total=len(weights), disable=not progress or not weights, desc="replicates", unit="rep", leave=False)
    if n_jobs == 1 or len(weights) < 2:
        return [one(w) for w in bar(weights)]
    workers = n_jobs or os.cpu_count() or 1
    pool = (
        ProcessPoolExecutor(max_workers=workers, initializer=worker_initializer, initargs=(os.getpid(),))
        if executor == "process" else ThreadPoolExecutor(max_workers=workers)
    )
    with pool:
        return list(bar(pool.map(one, weights, chunksize=max(1, len(weights) // (4 * workers)))))


def replicate_variance(
    df: pd.DataFrame,
    replicate_weights: Sequence[str] | np.ndarray,
    refit: Callable[[pd.Series], float | Sequence[float] | np.ndarray | pd.Series],
    *,
    full_weight: str | None = None,
    scale: float | None = 1.0,
    rscales: Sequence[float] | np.ndarray | None = None,
    mse: bool = True,
    n_jobs: int | None = None,
    executor: str = "process",
    progress: bool = True,
    failures: tuple[type[BaseException], ...] = (),
    refit_all: Callable[[np.ndarray], Sequence[Any]] | None = None,
) -> ReplicateVariance:
    """Variance of an estimate from replicate weights, re-fitting it once per replicate.

    ``refit(weights) -> estimate`` receives one weight column (a Series aligned to ``df``) and
    must redo *everything* that depends on the weights (re-weighting, propensity score, matching,
    outcome model) for the variance to be end-to-end.  Replicates run in parallel with
    :mod:`concurrent.futures` (processes by default, so ``refit`` must be picklable, e.g. a
    module-level function or :func:`functools.partial`; the workers die with this process and
    leave Ctrl-C to it, :func:`analysis.processes.worker_initializer`), with a tqdm progress bar.

    Parameters
    ----------
    df
        Data holding the replicate weight columns (and ``full_weight``).
    replicate_weights
        Names of the replicate weight columns, or an ``(n, R)`` array of replicate weights.
    refit
        The estimator as a function of a weight column; a component it returns as NaN is left
        out of that component's variance (and of its ``n_replicates``).
    full_weight
        Full-sample weight column; the estimate is ``refit(df[full_weight])``.  Default: the mean
        of the replicate estimates is reported and used as the centre.
    scale, rscales
        Variance ``scale * sum_r rscales_r (theta_r - centre)^2`` (e.g. JK1: ``(R-1)/R``, 1;
        bootstrap: ``1/(R-1)``, 1; BRR: ``1/R``, 1; Fay: ``1/(R (1-rho)^2)``, 1).
        ``scale=None``: ``1/(R_k - 1)`` with ``R_k`` the replicates that estimated component
        ``k`` (the sample variance of a bootstrap, centred on the replicates' mean).
    mse
        Centre on the full-sample estimate (True, as ``survey``'s ``mse=TRUE``) or on the mean of
        the replicates.
    n_jobs
        Worker count (default: all cores); 1 runs serially.
    executor
        ``"process"`` or ``"thread"``.
    progress
        Show a progress bar.
    failures
        Errors of ``refit`` that mark a replicate as failed (counted in ``n_failed``) instead of
        stopping; any other error surfaces.  At least half of the replicates must succeed.
    refit_all
        Optionally, the estimator of many replicates at once: from ``(n, r)`` replicate weights,
        every replicate's estimate, or None for a replicate it leaves to ``refit`` (e.g. one whose
        fit failed, for ``refit`` to fail or warn as it does).  It runs on :data:`STACKED_PARTS`
        parts of the replicates, side by side in the workers (so it must be picklable too); its
        expected fit warnings are counted as ``refit``'s.

    Returns
    -------
    ReplicateVariance
    """
    from functools import partial

    import pandas as pd

    cols: list[str] | None = None
    mat = np.zeros((len(df), 0))
    if isinstance(replicate_weights, np.ndarray):
        mat = np.asarray(replicate_weights, dtype=float)
        if mat.ndim != 2 or mat.shape[0] != len(df):
            raise ConfigError("Replicate weights need one row per unit", param="replicate_weights",
                              expected=f"shape ({len(df)}, R)", found=str(mat.shape))
    else:
        cols = list(replicate_weights)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataValidationError("Replicate weight columns are missing", column=missing[0],
                                      param="replicate_weights")
    if full_weight and full_weight not in df.columns:
        raise DataValidationError("The full-sample weight column is missing", column=full_weight,
                                  param="full_weight")
    n_rep = mat.shape[1] if cols is None else len(cols)
    if n_rep < 2:
        raise ConfigError("At least two replicates are needed", param="replicate_weights",
                          found=str(n_rep))
    rs = np.ones(n_rep) if rscales is None else np.asarray(rscales, dtype=float)
    if rs.shape != (n_rep,):
        raise ConfigError("rscales needs one value per replicate", param="rscales",
                          expected=str(n_rep), found=str(rs.shape))
    if executor not in ("process", "thread"):
        raise ConfigError("Unknown executor", param="executor", expected="'process' or 'thread'",
                          found=repr(executor))
    fit_warnings: Counter[str] = Counter()
    done: list[Any] = [None] * n_rep
    if refit_all is not None:
        full = mat if cols is None else np.column_stack([df[c].to_numpy(dtype=float) for c in cols])
        size = max(STACKED_PART, -(-n_rep // STACKED_PARTS))
        parts = [full[:, start : start + size] for start in range(0, n_rep, size)]
        computed = _refit_each(partial(_call_all, refit_all), parts, n_jobs, executor, False)
        done = [value for values, _ in computed for value in values]
        for _, counts in computed:
            fit_warnings += counts
    todo = [r for r in range(n_rep) if done[r] is None]
    # a weight column per replicate refitted
    weights = [pd.Series(mat[:, r], index=df.index) if cols is None else df[cols[r]] for r in todo]
    refitted = _refit_each(partial(_call, refit, tuple(failures)), weights, n_jobs, executor, progress)
    results: list[tuple[Any, Counter[str]]] = [(v, Counter()) for v in done]
    for r, res in zip(todo, refitted, strict=True):
        results[r] = res
    fit_warnings += sum((c for _, c in results), Counter())
    results = [r for r, _ in results]
    good = [r for r in results if r is not None]
    if len(good) < max(2, n_rep // 2):
        raise DataValidationError(
            "Too many replicates failed",
            expected=f"at least half of {n_rep} replicates estimable",
            found=f"{len(good)} succeeded",
            hint="the sample may be too small for the specification; loosen the caliper or exact matching",
        )
    index = good[0].index if isinstance(good[0], pd.Series) else None
    k = _as_array(good[0], index).size
    R = np.vstack([np.full(k, np.nan) if r is None else _as_array(r, index) for r in results])
    ok = np.isfinite(R)
    n_ok = ok.sum(axis=0)
    mean = np.divide(np.where(ok, R, 0.0).sum(axis=0), n_ok, out=np.full(k, np.nan), where=n_ok > 0)
    est = _as_array(refit(df[full_weight]), index) if full_weight else mean
    centre = est if mse and full_weight else mean
    dev2 = np.where(ok, rs[:, None] * (R - centre) ** 2, 0.0).sum(axis=0)
    if scale is None:
        var = np.divide(dev2, n_ok - 1, out=np.full(k, np.nan), where=n_ok > 1)
    else:
        var = np.where(n_ok > 0, scale * dev2, np.nan)
    return ReplicateVariance(
        estimate=est, replicates=R, variance=var, bse=np.sqrt(var),
        centre="full" if (mse and full_weight) else "mean", n_replicates=n_ok,
        n_failed=n_rep - len(good), index=index, fit_warnings=dict(sorted(fit_warnings.items())),
    )
