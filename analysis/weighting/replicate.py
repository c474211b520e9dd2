"""Replicate-weight designs: delete-one-PSU jackknife (JK1) and the Rao-Wu rescaling bootstrap.

Replicate weights follow R's ``as.svrepdesign(type = "JK1" / "subbootstrap")``; every later
:func:`rake`, :func:`poststratify`, :func:`calibrate` or :func:`trim` re-weights every
replicate as well, so replicate standard errors include the effect of the weighting.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.weighting.design import SurveyDesign
from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.weighting._margins import Margin, MarginSpec

__all__ = ["ReplicateRaking", "Replicates", "as_replicate", "rao_wu_factors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Replicates:
    """Replicate analysis weights and the variance constants.

    Attributes
    ----------
    weights
        (n, R) replicate analysis weights.
    scale, rscales
        ``v = scale * sum_r rscales_r (theta_r - centre)^2``.
    mse
        Centre at the full-sample estimate (True) or the mean of the replicates (False, R's
        default).
    method
        ``"JK1"`` or ``"subbootstrap"``.
    """

    weights: np.ndarray
    scale: float
    rscales: np.ndarray
    mse: bool
    method: str

    def with_weights(self, weights: np.ndarray) -> Replicates:
        """Same constants, new replicate weights."""
        w = np.array(weights, dtype=float)
        w.flags.writeable = False
        return Replicates(w, self.scale, self.rscales, self.mse, self.method)

    def variance(
        self, X: np.ndarray, D: np.ndarray, p: int, statistic: str, est: np.ndarray
    ) -> np.ndarray:
        """Replicate covariance of totals or ratio means; ``X`` = domain x term values, ``D`` = domains."""
        W = self.weights
        num = W.T @ X
        if statistic == "mean":
            den = np.repeat(W.T @ D, p, axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                thetas = num / den
        else:
            thetas = num
        good = np.all(np.isfinite(thetas), axis=1)
        if not good.any():
            raise DataValidationError(
                "Every replicate gave an undefined estimate",
                hint="a domain is empty in all replicates; use a larger domain",
            )
        if not good.all():
            logger.warning(
                "%d of %d replicates gave undefined estimates and were discarded (as R does)",
                int((~good).sum()),
                len(good),
            )
        thetas = thetas[good]
        rs = self.rscales[good]
        centre = est if self.mse else thetas[rs > 0].mean(axis=0)
        d = (thetas - centre) * np.sqrt(rs)[:, None]
        return self.scale * (d.T @ d)


def as_replicate(
    design: SurveyDesign,
    method: str = "JK1",
    *,
    replicates: int = 50,
    rng: np.random.Generator | None = None,
    factors: np.ndarray | None = None,
    mse: bool = False,
) -> SurveyDesign:
    """Return a replicate-weight version of an (uncalibrated) design.

    Parameters
    ----------
    design
        A design without calibration steps (calibrate *after* creating replicates, so that
        every replicate is re-calibrated).
    method
        ``"JK1"`` (delete one PSU; unstratified designs) or ``"subbootstrap"`` (the Rao-Wu
        rescaling bootstrap of PSUs within strata, :func:`rao_wu_factors`, as R's
        ``subbootweights``; like R's, without a finite-population correction).  It is the same
        bootstrap as the end-to-end replicates of the effects, drawn over PSUs instead of
        respondents.
    replicates
        Number of bootstrap replicates.
    rng
        Random generator for the bootstrap (required unless ``factors`` is given).
    factors
        (n, R) bootstrap replicate factors to use instead of drawing them (e.g. the
        ``repweights`` R used), multiplied by the sampling weights.
    mse
        Centre the variance at the full-sample estimate instead of the replicate mean.
    """
    if design.steps:
        raise ConfigError(
            "Create replicate weights before weighting the design",
            param="design",
            expected="a design without rake/poststratify/calibrate steps",
            found=f"{len(design.steps)} calibration step(s)",
            hint="call as_replicate(SurveyDesign(...)) first, then rake/calibrate the result",
        )
    s = design.structure
    w = np.asarray(design.weight_array)
    n_h = s.n_psu.astype(float)
    key = method.lower()
    if key == "jk1":
        if len(n_h) > 1:
            raise ConfigError(
                "JK1 needs an unstratified design",
                param="method",
                expected="'bootstrap' for a stratified design",
                found="JK1",
            )
        n = int(n_h[0])
        if n < 2:
            raise DataValidationError("JK1 needs at least two PSUs", found=f"{n} PSU")
        fac = np.full((len(w), n), n / (n - 1.0))
        fac[np.arange(len(w)), s.psu] = 0.0
        fpc = float(s.fpc_factor()[0])
        scale = fpc * (n - 1.0) / n
        name = "JK1"
    elif key == "subbootstrap":
        if factors is None:
            if rng is None:
                raise ConfigError(
                    "The bootstrap needs a random generator",
                    param="rng",
                    expected="numpy.random.Generator",
                    found="None",
                )
            fac = rao_wu_factors(s.psu_stratum, None, replicates, rng)[s.psu]
        else:
            fac = np.asarray(factors, dtype=float)
            if fac.ndim != 2 or fac.shape[0] != len(w):
                raise ConfigError(
                    "factors must have one row per respondent",
                    param="factors",
                    expected=f"shape ({len(w)}, R)",
                    found=str(fac.shape),
                )
        scale = 1.0 / (fac.shape[1] - 1.0)  # the replicates' sample variance
        name = "subbootstrap"
    else:
        raise ConfigError(
            "Unknown replicate method",
            param="method",
            expected="'JK1' or 'subbootstrap'",
            found=repr(method),
            hint="'subbootstrap' is the Rao-Wu rescaling bootstrap (R's as.svrepdesign type = 'subbootstrap')",
        )
    rw = fac * w[:, None]
    rw.flags.writeable = False
    reps = Replicates(rw, float(scale), np.ones(rw.shape[1]), bool(mse), name)
    return design.derive(replicates=reps)


def rao_wu_factors(
    strata: np.ndarray,
    population_sizes: Mapping[Hashable, float] | None,
    n_replicates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rao-Wu rescaling bootstrap adjustment factors (n x R) of units within strata.

    Within each stratum h with n_h units, m_h = n_h - 1 units are drawn with replacement; unit i's
    factor is ``1 - lam + lam * n_h / m_h * r_hi`` with ``lam = sqrt(m_h (1 - f_h) / (n_h - 1))``,
    ``f_h = n_h / N_h`` (Rao, Wu & Yue 1992; without a finite-population correction R's
    ``subbootweights``).  Multiply the base weights by these factors; the variance of an estimate
    is the sample variance of its replicates.  A stratum with one unit keeps factor 1.

    Parameters
    ----------
    strata
        Stratum per unit.
    population_sizes
        Population count ``N_h`` per stratum for the finite-population correction, or None.
    n_replicates
        Number of replicates R.
    rng
        Random generator.
    """
    strata = np.asarray(strata)
    n = len(strata)
    out = np.empty((n, n_replicates))
    for h in np.unique(strata):
        idx = np.flatnonzero(strata == h)
        nh = len(idx)
        if nh < 2:
            out[idx, :] = 1.0
            continue
        mh = nh - 1
        fh = 0.0 if not population_sizes else min(1.0, nh / float(population_sizes[h]))
        lam = np.sqrt(mh * (1 - fh) / (nh - 1))
        draws = rng.integers(0, nh, size=(n_replicates, mh))
        counts = np.zeros((n_replicates, nh))
        np.add.at(counts, (np.repeat(np.arange(n_replicates), mh), draws.ravel()), 1.0)
        out[idx, :] = (1 - lam + lam * (nh / mh) * counts).T
    return out


@dataclass(frozen=True, eq=False)
class ReplicateRaking:
    """Raking of many weight vectors of one sample to the same margins (end-to-end replicates).

    The margins are encoded against the sample and the sparse-cell rule applied once
    (:meth:`prepare`): the sample's rows, hence its cells and their respondent counts, are the
    same in every replicate, only the weights change.  Calling the object rakes one weight
    vector exactly as :func:`analysis.weighting.rake` rakes a design with those weights.

    :meth:`compress` gives the same raking on compressed units (rows that share every raking
    variable, with summed weights): IPF works on the joint cells of the raking variables, so
    raking the units' summed weights and spreading each unit's factor over its rows gives the
    rows' raked weights.

    Attributes
    ----------
    margins
        The encoded margins (one cell code per row or unit).
    tol, max_iter
        As for :func:`analysis.weighting.rake`.
    """

    margins: tuple[Margin, ...]
    tol: float
    max_iter: int

    @classmethod
    def prepare(
        cls, data: pd.DataFrame, margins: MarginSpec, *, min_cell: int = 5, tol: float = 1e-10,
        max_iter: int = 100,
    ) -> ReplicateRaking:
        """Encode ``margins`` against ``data`` with the collapse rule of :func:`rake`.

        The margins are those the full sample was raked to (:func:`rake` checked them).
        """
        from analysis.weighting._margins import prepare_margins

        ms, _, _ = prepare_margins(data, margins, min_cell=min_cell, collapse=True)
        return cls(tuple(ms), float(tol), int(max_iter))

    def compress(self, first: np.ndarray) -> ReplicateRaking:
        """The raking of units whose rows share every raking variable; ``first``: a row of each."""
        from analysis.weighting._margins import Margin

        idx = np.asarray(first, dtype=np.intp)
        ms = tuple(Margin(m.name, m.columns, m.labels, m.codes[idx], m.totals, m.counts) for m in self.margins)
        return ReplicateRaking(ms, self.tol, self.max_iter)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """Raked weights of one weight vector (rows or units, as prepared).

        Raises
        ------
        analysis.weighting.WeightingConvergenceError
            If the margins are not reached (e.g. a resample leaves a margin cell without weight).
        """
        from analysis.weighting._calibration import ipf
        from analysis.weighting.methods import WeightingConvergenceError, raking_not_converged

        w = np.asarray(weights, dtype=float)
        for m in self.margins:
            empty = (m.sums(w) <= 0) & (m.totals > 0)
            if empty.any():  # IPF cannot put weight into a cell without any: it cannot converge
                raise WeightingConvergenceError(
                    "Raking cannot reach a margin: a category has no weight in this sample",
                    param="margins", expected="weight in every category of every margin",
                    found=f"margin '{m.name}', category {m.labels[int(np.argmax(empty))]!r}",
                    hint="a resample without respondents in a category; collapse sparse cells (min_cell)",
                )
        res = ipf(w, list(self.margins), tol=self.tol, max_iter=self.max_iter)
        if not res.converged:
            raise raking_not_converged(res, self.tol, self.max_iter)
        return res.weights

    def many(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raked weights of many weight vectors at once (the columns of ``weights``, (n, R)).

        Every column is raked as :meth:`__call__` rakes it alone (IPF stops for each column at
        its own convergence).  Returns the raked weights and, per column, whether raking
        succeeded; a column that did not (a category without weight, no convergence) is left
        as it was, for :meth:`__call__` to raise its error.
        """
        from analysis.weighting._calibration import column_errors, ipf

        w = np.asarray(weights, dtype=float)
        ok = np.ones(w.shape[1], dtype=bool)
        for m in self.margins:
            ok &= ~((m.sums(w) <= 0) & (m.totals[:, None] > 0)).any(axis=0)
        out = w.copy()
        if ok.any():
            res = ipf(w[:, ok], list(self.margins), tol=self.tol, max_iter=self.max_iter)
            good = column_errors(res.weights, self.margins) < self.tol
            idx = np.flatnonzero(ok)
            ok[idx[~good]] = False
            out[:, idx[good]] = res.weights[:, good]
        return out, ok
