"""A stratified sample of POPs to read, with its inclusion probabilities.

Stratified simple random sampling without replacement: the frame is split into strata by the
configured columns (e.g. ``incentive`` and ``centre_size``); stratum ``h`` with ``N_h`` POPs gets
``n_h`` of them, so every sampled POP has inclusion probability ``pi = n_h / N_h`` and design weight
``N_h / n_h``.  Allocation is ``equal`` (the same ``n_h`` in every stratum, capped at ``N_h``; the
remainder goes to the largest strata) or ``proportional`` (``n_h`` proportional to ``N_h``).  Every
stratum gets at least ``min(N_h, min_per_stratum)``; a stratum with fewer than two POPs in the sample
has no variance estimate, so such strata are an error unless they are sampled completely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from survey.errors import ConfigError, DataValidationError

__all__ = ["STRATUM_SEPARATOR", "PlanSample", "allocate", "draw_sample", "stratum_labels"]


@dataclass(frozen=True)
class PlanSample:
    """A drawn sample (immutable): one row per sampled POP, and the strata."""

    units: pd.DataFrame  # pop_id, stratum, N_h, n_h, pi, weight + strata columns
    strata: pd.DataFrame  # stratum, N_h, n_h, pi
    strata_columns: tuple[str, ...]
    seed: int

    @property
    def nobs(self) -> int:
        """Sample size."""
        return len(self.units)

    def to_frame(self) -> pd.DataFrame:
        """The sampled units."""
        return self.units.copy()

    def summary(self) -> str:
        """Strata with population and sample sizes."""
        head = f"POP sample: {self.nobs} of {int(self.strata['N_h'].sum())} POPs in {len(self.strata)} strata ({', '.join(self.strata_columns) or 'none'}); seed {self.seed}"
        return head + "\n" + self.strata.to_string(index=False)


#: What joins the strata columns' values in a stratum's label (``OC/klein``).
STRATUM_SEPARATOR = "/"


def stratum_labels(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Stratum label per row: the strata columns' values joined by :data:`STRATUM_SEPARATOR` (``alle`` without strata)."""
    if not columns:
        return pd.Series("alle", index=frame.index, name="stratum")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            "Unknown stratification variable", param="plans.strata", expected="columns of the POP frame: " + ", ".join(frame.columns), found=missing[0]
        )
    lab = frame[columns[0]].astype(str)
    for c in columns[1:]:  # column by column (no Python step per row)
        lab = lab + STRATUM_SEPARATOR + frame[c].astype(str)
    return lab.rename("stratum")


def allocate(sizes: pd.Series, n: int, allocation: str = "equal", min_per_stratum: int = 2) -> pd.Series:
    """Sample sizes per stratum (index as ``sizes``) summing to ``min(n, sum(sizes))``."""
    N = sizes.astype(int)
    total = int(N.sum())
    n = min(int(n), total)
    floor = np.minimum(N.to_numpy(), min_per_stratum)
    if floor.sum() > n:
        raise ConfigError(
            "The sample is too small for the strata", param="plans.sample_size", expected=f"at least {int(floor.sum())} ({min_per_stratum} per stratum)", found=str(n), hint="raise sample_size or use fewer strata"
        )
    if allocation == "equal":
        target = np.full(len(N), n / len(N))
    elif allocation == "proportional":
        target = n * N.to_numpy() / total
    else:
        raise ConfigError("Unknown allocation", param="plans.allocation", expected="equal or proportional", found=allocation)
    alloc = np.clip(np.floor(target).astype(int), floor, N.to_numpy())
    # hand out the remainder one by one to strata with room, largest shortfall first (ties: larger N, then order)
    order_key = np.arange(len(N))
    while alloc.sum() < n:
        room = alloc < N.to_numpy()
        short = np.where(room, target - alloc, -np.inf)
        if allocation == "equal":
            short = np.where(room, N.to_numpy() - alloc, -np.inf)
        k = int(np.lexsort((order_key, -N.to_numpy(), -short))[0])
        alloc[k] += 1
    while alloc.sum() > n:
        over = np.where(alloc > floor, alloc - target, -np.inf)
        k = int(np.lexsort((order_key, -over))[0])
        alloc[k] -= 1
    return pd.Series(alloc, index=sizes.index, name="n_h")


def draw_sample(
    frame: pd.DataFrame,
    n: int,
    strata: Sequence[str] = (),
    *,
    allocation: str = "equal",
    min_per_stratum: int = 2,
    seed: int = 2023,
) -> PlanSample:
    """Draw a stratified simple random sample of POPs without replacement.

    Parameters
    ----------
    frame
        The POP frame (:func:`analysis.plans.frame.build_frame`), one row per POP with ``pop_id``.
    n
        Total sample size.
    strata
        Frame columns defining the strata.
    allocation
        ``equal`` or ``proportional``.
    min_per_stratum
        Smallest sample per stratum (at least 2, so that each stratum has a variance).
    seed
        The seed; the same frame and seed give the same sample.
    """
    if len(frame) == 0:
        raise DataValidationError("The POP frame is empty", expected="POPs to sample", found="0")
    if min_per_stratum < 2:
        raise ConfigError("Each stratum needs two sampled POPs for a variance", param="plans.min_per_stratum", expected=">= 2", found=str(min_per_stratum))
    lab = stratum_labels(frame, strata)
    sizes = lab.value_counts().sort_index()
    alloc = allocate(sizes, n, allocation, min_per_stratum)
    rng = np.random.default_rng([seed, 31])
    picked = []
    for h in sizes.index:  # sorted labels: deterministic order
        idx = np.flatnonzero((lab == h).to_numpy())
        ids = frame["pop_id"].to_numpy()[idx]
        order = np.argsort(ids, kind="stable")  # independent of the frame's row order
        take = rng.choice(len(idx), size=int(alloc[h]), replace=False)
        picked.append(idx[order][np.sort(take)])
    rows = np.concatenate(picked)
    units = frame.iloc[rows][["pop_id", *strata]].copy()
    units["stratum"] = lab.iloc[rows].to_numpy()
    units["N_h"] = units["stratum"].map(sizes).astype(int)
    units["n_h"] = units["stratum"].map(alloc).astype(int)
    units["pi"] = units["n_h"] / units["N_h"]
    units["weight"] = units["N_h"] / units["n_h"]
    units = units.sort_values("pop_id", kind="stable").reset_index(drop=True)
    st = pd.DataFrame({"stratum": sizes.index, "N_h": sizes.to_numpy(), "n_h": alloc.to_numpy()})
    st["pi"] = st["n_h"] / st["N_h"]
    return PlanSample(units=units, strata=st, strata_columns=tuple(strata), seed=seed)
