"""The survey design object and its estimators (means, totals, proportions, by domains)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from analysis.weighting._calibration import Step, blas_single_thread, residualise
from analysis.weighting._margins import cell_sums
from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from analysis.weighting.diagnostics import WeightingDiagnostics

__all__ = ["ReplicateWeights", "SurveyDesign", "SurveyEstimate"]


class ReplicateWeights(Protocol):
    """What a design needs of its replicate weights.

    :class:`analysis.weighting.replicate.Replicates` implements it; naming the protocol here keeps
    ``design`` from importing ``replicate`` (which builds on :class:`SurveyDesign`).
    """

    @property
    def weights(self) -> np.ndarray: ...

    @property
    def method(self) -> str: ...

    def with_weights(self, weights: np.ndarray) -> ReplicateWeights: ...

    def variance(
        self, X: np.ndarray, D: np.ndarray, p: int, statistic: str, est: np.ndarray
    ) -> np.ndarray: ...


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class _Structure:
    """Strata, primary sampling units and finite population corrections, as integer codes."""

    stratum: np.ndarray  # (n,) stratum code per row
    psu: np.ndarray  # (n,) PSU code per row, unique across strata
    psu_stratum: np.ndarray  # (P,) stratum of each PSU
    n_psu: np.ndarray  # (H,) PSUs per stratum
    popsize: np.ndarray | None  # (H,) population PSUs per stratum, or None
    stratum_labels: tuple[str, ...] = field(default=())

    def fpc_factor(self) -> np.ndarray:
        """``1 - n_h / N_h`` per stratum (1 without fpc)."""
        if self.popsize is None:
            return np.ones(len(self.n_psu))
        return np.where(np.isinf(self.popsize), 1.0, (self.popsize - self.n_psu) / self.popsize)

    def variance(self, x: np.ndarray) -> np.ndarray:
        """With-replacement-of-PSUs variance of the totals of the columns of ``x``, by stratum.

        ``sum_h (1 - f_h) n_h / (n_h - 1) sum_i (z_hi - zbar_h)(z_hi - zbar_h)'`` with
        ``z_hi`` the PSU totals, as R's ``svyrecvar`` (single stage).
        """
        f = self.fpc_factor()
        n_h = self.n_psu.astype(float)
        lonely = (n_h < 2) & (f >= 1e-7)
        if lonely.any():
            label = (
                self.stratum_labels[int(np.flatnonzero(lonely)[0])] if self.stratum_labels else "?"
            )
            raise DataValidationError(
                "A stratum has a single primary sampling unit: its variance cannot be estimated",
                column=label,
                expected="at least two PSUs per stratum",
                found=f"{int(lonely.sum())} stratum/strata with one PSU (first: {label!r})",
                hint="merge the stratum with a similar one",
            )
        z = cell_sums(self.psu, len(self.psu_stratum), x)
        zbar = cell_sums(self.psu_stratum, len(n_h), z) / n_h[:, None]
        d = z - zbar[self.psu_stratum]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(f < 1e-7, 0.0, f * n_h / (n_h - 1.0))
        return (d * scale[self.psu_stratum][:, None]).T @ d


@dataclass(frozen=True, eq=False)
class SurveyEstimate:
    """Estimates with design-based standard errors (immutable).

    Attributes
    ----------
    params
        Point estimates.
    cov
        Estimated covariance matrix of the estimates.
    statistic
        ``"mean"`` or ``"total"``.
    method
        How the standard errors were computed (``"linearisation"`` or the replicate method).
    nobs
        Number of respondents used.
    """

    params: pd.Series
    cov: pd.DataFrame
    statistic: str
    method: str
    nobs: int

    @property
    def bse(self) -> pd.Series:
        """Standard errors."""
        return pd.Series(
            np.sqrt(np.clip(np.diag(self.cov.to_numpy()), 0, None)),
            index=self.params.index,
            name="bse",
        )

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Normal-theory confidence intervals (as R's ``confint`` on ``svystat``)."""
        # the normal quantile (norm.ppf), without loading scipy.stats
        from scipy.special import ndtri

        q = ndtri(1 - alpha / 2)
        se = self.bse
        return pd.DataFrame({"lower": self.params - q * se, "upper": self.params + q * se})

    def to_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """Estimates, standard errors and confidence limits as a data frame."""
        ci = self.conf_int(alpha)
        return pd.DataFrame(
            {
                "estimate": self.params,
                "bse": self.bse,
                "ci_lower": ci["lower"],
                "ci_upper": ci["upper"],
            }
        )

    def summary(self) -> str:
        """Plain-text table."""
        head = f"Survey {self.statistic} ({self.method} standard errors; n = {self.nobs})"
        return head + "\n" + self.to_frame().to_string(float_format=lambda v: f"{v:.6g}")

    def __repr__(self) -> str:
        return self.summary()


def _check_design_columns(df: pd.DataFrame, columns: Mapping[str, str | None]) -> None:
    """The data of a :class:`SurveyDesign`: a non-empty frame holding the design's columns
    (``{parameter: column or None}``), none of them with missing values."""
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(
            "SurveyDesign needs a pandas DataFrame",
            param="df",
            expected="pandas.DataFrame",
            found=type(df).__name__,
        )
    if len(df) == 0:
        raise DataValidationError(
            "The survey data has no rows", expected="respondents", found="0 rows"
        )
    for param, col in columns.items():
        if col is None:
            continue
        if col not in df.columns:
            raise ConfigError(
                f"The {param} column is not in the data",
                param=param,
                expected=f"one of {list(df.columns)[:20]}",
                found=repr(col),
            )
        if df[col].isna().any():
            row = int(np.flatnonzero(df[col].isna().to_numpy())[0]) + 1
            raise DataValidationError(
                f"The {param} column has missing values",
                column=col,
                row=row,
                expected="a value for every respondent",
                found=f"{int(df[col].isna().sum())} missing",
            )


def _base_weights(df: pd.DataFrame, weights: str | None, structure: _Structure) -> np.ndarray:
    """A new design's weights: the ``weights`` column, else ``N_h / n_h`` with an fpc, else 1."""
    if weights is not None:
        w = pd.to_numeric(df[weights], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise DataValidationError(
                "Weights must be finite and non-negative numbers",
                column=weights,
                row=int(np.flatnonzero(bad)[0]) + 1,
                expected="weights >= 0",
                found=f"{int(bad.sum())} invalid weight(s), e.g. {df[weights].iloc[int(np.flatnonzero(bad)[0])]!r}",
            )
        return np.asarray(w)
    if structure.popsize is not None:
        return np.asarray((structure.popsize / structure.n_psu)[structure.stratum])
    return np.ones(len(df))


class SurveyDesign:
    """A survey sample with its design: weights, clusters (PSUs), strata, fpc.

    Designs are immutable: :func:`rake`, :func:`poststratify`, :func:`calibrate`,
    :func:`trim` and :func:`as_replicate` return new designs.

    Parameters
    ----------
    df
        The respondents, one row each.  It is not copied and must not be modified later.
    weights
        Column of sampling (or frequency) weights; default 1, or ``N_h / n_h`` when only
        ``fpc`` is given (as R's ``svydesign``).
    cluster
        Column identifying primary sampling units (single-stage; default: every row).
    strata
        Column identifying strata.
    fpc
        Column with the population number of PSUs in the stratum (values > 1) or the
        sampling fraction (all values <= 1), constant within stratum.

    Examples
    --------
    >>> d = SurveyDesign(df, weights="pw", cluster="dnum", fpc="fpc")  # doctest: +SKIP
    >>> d.mean("api00").to_frame()                                      # doctest: +SKIP
    """

    __slots__ = (
        "_cluster",
        "_data",
        "_diagnostics",
        "_fpc",
        "_replicates",
        "_steps",
        "_strata",
        "_structure",
        "_weights",
        "_weights_column",
    )
    _cluster: str | None
    _data: pd.DataFrame
    _diagnostics: WeightingDiagnostics | None
    _fpc: str | None
    _replicates: ReplicateWeights | None
    _steps: tuple[Step, ...]
    _strata: str | None
    _structure: _Structure
    _weights: np.ndarray
    _weights_column: str | None

    def __init__(
        self,
        df: pd.DataFrame,
        weights: str | None = None,
        cluster: str | None = None,
        strata: str | None = None,
        fpc: str | None = None,
    ) -> None:
        _check_design_columns(df, {"weights": weights, "cluster": cluster, "strata": strata, "fpc": fpc})
        structure = _build_structure(df, cluster, strata, fpc)
        w = _base_weights(df, weights, structure)
        object.__setattr__(self, "_data", df)
        object.__setattr__(self, "_weights", _readonly(np.array(w, dtype=float)))
        object.__setattr__(self, "_weights_column", weights)
        object.__setattr__(self, "_cluster", cluster)
        object.__setattr__(self, "_strata", strata)
        object.__setattr__(self, "_fpc", fpc)
        object.__setattr__(self, "_structure", structure)
        object.__setattr__(self, "_steps", ())
        object.__setattr__(self, "_replicates", None)
        object.__setattr__(self, "_diagnostics", None)

    # ---- immutability ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SurveyDesign is immutable; weighting functions return new designs")

    def derive(
        self,
        *,
        weights: np.ndarray | None = None,
        steps: tuple[Step, ...] | None = None,
        replicates: ReplicateWeights | bool | None = False,
        diagnostics: WeightingDiagnostics | bool | None = False,
    ) -> SurveyDesign:
        """A new design with some parts replaced (what every weighting function returns).

        ``replicates`` and ``diagnostics`` are replaced when given (None clears them).
        """
        new = object.__new__(SurveyDesign)
        for name in SurveyDesign.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        if weights is not None:
            object.__setattr__(new, "_weights", _readonly(np.array(weights, dtype=float)))
        if steps is not None:
            object.__setattr__(new, "_steps", steps)
        if replicates is not False:
            object.__setattr__(new, "_replicates", replicates)
        if diagnostics is not False:
            object.__setattr__(new, "_diagnostics", diagnostics)
        return new

    # ---- properties -----------------------------------------------------------------------
    @property
    def data(self) -> pd.DataFrame:
        """The respondents (shared, not copied)."""
        return self._data

    @property
    def weights(self) -> pd.Series:
        """Current analysis weights, aligned to ``data.index``."""
        return pd.Series(np.array(self._weights), index=self._data.index, name="weight")

    @property
    def nobs(self) -> int:
        """Number of respondents."""
        return len(self._data)

    @property
    def weight_array(self) -> np.ndarray:
        """Current analysis weights as a read-only array (data order)."""
        return self._weights

    @property
    def steps(self) -> tuple[Step, ...]:
        """The calibration steps applied so far (each replicate is re-calibrated by them)."""
        return self._steps

    @property
    def replicates(self) -> ReplicateWeights | None:
        """The replicate weights and variance constants, or None (linearisation)."""
        return self._replicates

    @property
    def structure(self) -> _Structure:
        """Clusters, strata and finite-population corrections of the design."""
        return self._structure

    @property
    def diagnostics(self) -> WeightingDiagnostics | None:
        """Diagnostics of the last weighting step (None for an unweighted design)."""
        return self._diagnostics

    @property
    def replicate_weights(self) -> pd.DataFrame | None:
        """Replicate analysis weights (one column per replicate), or None."""
        if self._replicates is None:
            return None
        w = self._replicates.weights
        return pd.DataFrame(
            np.array(w), index=self._data.index, columns=[f"rep{i + 1}" for i in range(w.shape[1])]
        )

    @property
    def variance_method(self) -> str:
        """``"linearisation"`` or the replicate method."""
        return "linearisation" if self._replicates is None else self._replicates.method

    def summary(self) -> str:
        """A short description of the design."""
        s = self._structure
        w = self._weights
        lines = [
            f"SurveyDesign: {self.nobs} respondents, {len(s.psu_stratum)} PSUs, {len(s.n_psu)} strata",
            f"  weights: {self._weights_column or '(none)'}; cluster: {self._cluster or '(none)'}; "
            f"strata: {self._strata or '(none)'}; fpc: {self._fpc or '(none)'}",
            f"  sum of weights {w.sum():.6g}; range [{w.min():.6g}, {w.max():.6g}]",
            f"  calibration steps: {len(self._steps)}; variance: {self.variance_method}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    # ---- estimators -----------------------------------------------------------------------
    def mean(
        self,
        var: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        *,
        na_rm: bool = False,
    ) -> SurveyEstimate:
        """Weighted mean (proportions for categorical variables), optionally by domains.

        Parameters
        ----------
        var
            Column name(s).  Categorical columns give one proportion per category.
        by
            Domain column(s); estimates are computed per domain (as R's ``svyby``).
        na_rm
            Treat respondents with a missing value as outside the domain (R's ``na.rm``);
            otherwise missing values raise ``DataValidationError``.
        """
        return self._estimate(var, by, "mean", na_rm)

    def total(
        self,
        var: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        *,
        na_rm: bool = False,
    ) -> SurveyEstimate:
        """Weighted total (counts for categorical variables), optionally by domains."""
        return self._estimate(var, by, "total", na_rm)

    def proportion(
        self, var: str, by: str | Sequence[str] | None = None, *, na_rm: bool = False
    ) -> SurveyEstimate:
        """Proportions of the categories of ``var`` (same as :meth:`mean` on a categorical)."""
        return self._estimate([var], by, "mean", na_rm, force_categorical=True)

    def _estimate(
        self,
        var: str | Sequence[str],
        by: str | Sequence[str] | None,
        statistic: str,
        na_rm: bool,
        force_categorical: bool = False,
    ) -> SurveyEstimate:
        with blas_single_thread():
            return _domain_estimate(self, var, by, statistic, na_rm, force_categorical)


def _variance(
    design: SurveyDesign, X: np.ndarray, D: np.ndarray, p: int, statistic: str, est: np.ndarray, den: np.ndarray
) -> tuple[np.ndarray, str]:
    """Covariance of the estimates and its method: linearisation (influence values of the
    totals or means, residualised on the calibration steps) or the replicates'."""
    if design.replicates is not None:
        return design.replicates.variance(X, D, p, statistic, est), design.replicates.method
    w = design.weight_array
    if statistic == "mean":
        Dexp = np.repeat(D, p, axis=1)
        infl = w[:, None] * (X - Dexp * est[None, :]) / den[None, :]
    else:
        infl = w[:, None] * X
    infl = residualise(infl, design.steps)
    return design.structure.variance(infl), "linearisation"


def _domain_estimate(
    design: SurveyDesign,
    var: str | Sequence[str],
    by: str | Sequence[str] | None,
    statistic: str,
    na_rm: bool,
    force_categorical: bool,
) -> SurveyEstimate:
    """:meth:`SurveyDesign.mean` / ``total`` / ``proportion``: the estimates by domain and their
    covariance."""
    df = design.data
    names = [var] if isinstance(var, str) else list(var)
    y, terms, ok = _design_matrix(df, names, na_rm, force_categorical)
    gcodes, glabels, by_names = _domains(df, by, na_rm, ok)
    G, p = len(glabels), len(terms)
    n = len(df)
    y = np.where(ok[:, None], y, 0.0)
    # unweighted domain-expanded values: column g*p + j holds I_g * y_j
    cols = gcodes[:, None] * p + np.arange(p)[None, :]
    X = np.zeros((n, G * p))
    np.put_along_axis(X, cols, y, axis=1)
    D = np.zeros((n, G))
    D[np.arange(n), gcodes] = ok.astype(float)
    w = design.weight_array
    num = X.T @ w
    den = np.repeat(D.T @ w, p)
    if statistic == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            est = num / den
        if np.any(den <= 0):
            raise DataValidationError(
                "A domain has no weighted respondents; its mean is undefined",
                expected="positive weights in every domain",
            )
    else:
        est = num
    cov, method = _variance(design, X, D, p, statistic, est, den)
    if by is None:
        index: pd.Index = pd.Index(terms, name="term")
    else:
        tuples: list[tuple[Any, ...]] = []
        for g in glabels:
            gt = g if isinstance(g, tuple) else (g,)
            tuples.extend((*gt, t) for t in terms)
        index = pd.MultiIndex.from_tuples(tuples, names=[*by_names, "term"])
    params = pd.Series(est, index=index, name=statistic)
    return SurveyEstimate(
        params=params,
        cov=pd.DataFrame(cov, index=index, columns=index),
        statistic=statistic,
        method=method,
        nobs=int(ok.sum()),
    )




def _domains(
    df: pd.DataFrame, by: str | Sequence[str] | None, na_rm: bool, ok: np.ndarray
) -> tuple[np.ndarray, list[Any], list[str]]:
    """Every respondent's domain code, the domains' labels and the ``by`` columns; respondents
    with a missing ``by`` value leave ``ok`` (in place) with ``na_rm``, else an error."""
    if by is None:
        return np.zeros(len(df), dtype=np.intp), [None], []
    by_names = [by] if isinstance(by, str) else list(by)
    for b in by_names:
        if b not in df.columns:
            raise ConfigError("A 'by' column is not in the data", param="by", found=repr(b))
    if df[by_names].isna().any().any():
        if not na_rm:
            raise DataValidationError(
                "A 'by' column has missing values",
                column=",".join(by_names),
                hint="pass na_rm=True to leave those respondents out",
            )
        ok &= ~df[by_names].isna().any(axis=1).to_numpy()
    keys = pd.MultiIndex.from_frame(df[by_names]) if len(by_names) > 1 else df[by_names[0]]
    gcodes_raw, uniques = pd.factorize(keys, sort=True)
    gcodes = np.asarray(gcodes_raw, dtype=np.intp)
    gcodes[gcodes < 0] = 0
    return gcodes, list(uniques), by_names


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _design_matrix(
    df: pd.DataFrame, names: list[str], na_rm: bool, force_categorical: bool
) -> tuple[np.ndarray, list[str], np.ndarray]:
    blocks: list[np.ndarray] = []
    terms: list[str] = []
    ok = np.ones(len(df), dtype=bool)
    for name in names:
        if name not in df.columns:
            raise ConfigError(
                "The variable is not in the data",
                param="var",
                expected=f"one of {list(df.columns)[:20]}",
                found=repr(name),
            )
        s = df[name]
        miss = s.isna().to_numpy()
        if miss.any():
            if not na_rm:
                raise DataValidationError(
                    "The variable has missing values",
                    column=name,
                    row=int(np.flatnonzero(miss)[0]) + 1,
                    found=f"{int(miss.sum())} missing",
                    hint="pass na_rm=True to estimate over respondents with a value",
                )
            ok &= ~miss
        if force_categorical or _is_categorical(s):
            cat = s.astype("category") if not isinstance(s.dtype, pd.CategoricalDtype) else s
            codes = cat.cat.codes.to_numpy()
            k = len(cat.cat.categories)
            block = np.zeros((len(df), k))
            rows = np.flatnonzero(codes >= 0)
            block[rows, codes[rows]] = 1.0
            blocks.append(block)
            terms.extend(f"{name}={c}" for c in cat.cat.categories)
        else:
            blocks.append(s.to_numpy(dtype=float, na_value=0.0)[:, None])
            terms.append(name)
    return np.hstack(blocks), terms, ok


def _build_structure(
    df: pd.DataFrame, cluster: str | None, strata: str | None, fpc: str | None
) -> _Structure:
    n = len(df)
    if strata is None:
        stratum = np.zeros(n, dtype=np.intp)
        slabels: tuple[str, ...] = ("(all)",)
    else:
        sc, su = pd.factorize(df[strata], sort=True)
        stratum = np.asarray(sc, dtype=np.intp)
        slabels = tuple(str(v) for v in su)
    H = len(slabels)
    if cluster is None:
        psu = np.arange(n, dtype=np.intp)
    else:
        key = pd.MultiIndex.from_arrays([stratum, df[cluster].to_numpy()])
        pc, _ = pd.factorize(key)
        psu = np.asarray(pc, dtype=np.intp)
    P = int(psu.max()) + 1
    psu_stratum = np.zeros(P, dtype=np.intp)
    psu_stratum[psu] = stratum
    n_psu = np.bincount(psu_stratum, minlength=H)
    popsize = None
    if fpc is not None:
        f = pd.to_numeric(df[fpc], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(f) | np.isinf(f)) or np.any(f <= 0):
            raise DataValidationError(
                "fpc must be positive numbers", column=fpc, expected="population sizes or fractions"
            )
        lo = np.full(H, np.inf)
        hi = np.full(H, -np.inf)
        np.minimum.at(lo, stratum, f)
        np.maximum.at(hi, stratum, f)
        if np.any(lo != hi):
            h = int(np.flatnonzero(lo != hi)[0])
            raise DataValidationError(
                "fpc varies within a stratum",
                column=fpc,
                expected="one fpc value per stratum",
                found=f"stratum {slabels[h]!r}: values from {lo[h]} to {hi[h]}",
            )
        if np.all(f <= 1):
            popsize = n_psu / lo  # sampling fractions
        else:
            popsize = lo
            if np.any(popsize < n_psu):
                h = int(np.flatnonzero(popsize < n_psu)[0])
                raise DataValidationError(
                    "fpc population size is smaller than the number of sampled PSUs",
                    column=fpc,
                    expected=f">= {n_psu[h]} in stratum {slabels[h]!r}",
                    found=str(popsize[h]),
                )
    return _Structure(
        stratum=_readonly(stratum),
        psu=_readonly(psu),
        psu_stratum=_readonly(psu_stratum),
        n_psu=_readonly(n_psu),
        popsize=None if popsize is None else _readonly(np.asarray(popsize, dtype=float)),
        stratum_labels=slabels,
    )
