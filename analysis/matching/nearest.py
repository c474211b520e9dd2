"""Nearest-neighbour matching with MatchIt's semantics (estimand ATT)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from analysis.matching.algorithms import (
    combined_weights,
    label_ranks,
    nn_general,
    nn_sorted,
    nn_sorted_all,
    subclass_from_mm,
    tie_canonical,
    weights_from_mm,
)
from analysis.matching.formula import (
    covariate_matrix,
    resolve_weights,
    split_formula,
    treatment_vector,
    variables_of,
)
from analysis.matching.propensity import PropensityScoreResult, propensity_score
from survey.errors import ConfigError, DataValidationError, PopevalError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MatchArrays",
    "MatchResult",
    "mahalanobis_transform",
    "match",
    "match_arrays",
    "processing_order",
    "score_caliper",
]

_M_ORDERS = ("largest", "smallest", "random", "data")
_STRATEGIES = ("keep", "inherit")
_TIES = ("all", "label", "matchit")
#: Distances (propensity scores on the probability scale, or Mahalanobis distances) that differ by
#: at most this much are ties: far above floating-point noise, far below real differences.
TIE_TOLERANCE = 1e-8


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`match`, mirroring a MatchIt ``matchit`` object.

    Attributes
    ----------
    formula
        Treatment formula.
    treat
        0/1 treatment, aligned with the data's index.
    weights
        Matching weights as MatchIt defines them for the ATT (``m$weights``): 1 for matched
        treated units; for a control, the sum over its treated partners of 1/(partner's number of
        matches), scaled so that control weights sum to the number of matched controls; 0 for
        unmatched units.
    subclass
        Pair/subclass number (``m$subclass``; pandas nullable ``Int64``, ``<NA>`` when
        unmatched).  All ``<NA>`` when matching with replacement, as in MatchIt.
    distance
        The propensity score (``m$distance``), or None for ``distance="mahalanobis"``.
    match_matrix
        One row per treated unit (data order), columns ``1..k``, values the index labels of
        the matched controls (``m$match.matrix``), missing where there is no match.  ``k`` is
        ``ratio``, or with ``ties="all"`` the largest number of matches (tied controls included);
        a treated unit's weight is shared equally among its matches.
    s_weights
        Survey weights (all 1 when none were given).
    survey_weight_strategy
        ``"keep"`` or ``"inherit"``; see :attr:`combined_weights`.
    combined_weights
        Survey x matching weights.  ``"keep"``: every unit keeps its own survey weight (Austin et
        al. 2018), ``s_weights * weights``.  ``"inherit"``: a matched control carries the survey
        weights of its treated partners (Lenis et al. 2019), i.e. the sum over partners of the
        partner's survey weight divided by the partner's number of matches; treated units keep
        their own.
    settings
        The matching specification.
    propensity
        The propensity-score fit, or None.
    """

    formula: str
    treat: pd.Series
    weights: pd.Series
    subclass: pd.Series
    distance: pd.Series | None
    match_matrix: pd.DataFrame
    s_weights: pd.Series
    survey_weight_strategy: str
    combined_weights: pd.Series
    settings: Mapping[str, Any] = field(default_factory=dict)
    propensity: PropensityScoreResult | None = None

    @property
    def nobs(self) -> int:
        """Number of units in the data."""
        return int(self.treat.size)

    @property
    def treat_column(self) -> str:
        """Name of the treatment column."""
        return str(self.treat.name)

    def sample_sizes(self) -> pd.DataFrame:
        """MatchIt's ``summary(m)$nn`` table: All (ESS), All, Matched (ESS), Matched, Unmatched."""
        import pandas as pd

        t = self.treat.to_numpy()
        w = self.weights.to_numpy()
        sw = self.s_weights.to_numpy()
        cw = self.combined_weights.to_numpy()

        def ess(x: np.ndarray) -> float:
            return float(x.sum() ** 2 / (x**2).sum()) if (x > 0).any() else 0.0

        rows = {}
        for g, name in ((0, "Control"), (1, "Treated")):
            sel = t == g
            rows[name] = {
                "All (ESS)": ess(sw[sel]),
                "All": float(sel.sum()),
                "Matched (ESS)": ess(cw[sel]),
                "Matched": float((w[sel] > 0).sum()),
                "Unmatched": float(((w == 0) & sel).sum()),
                "Discarded": 0.0,
            }
        return pd.DataFrame(rows)

    def matched_data(self, df: pd.DataFrame) -> pd.DataFrame:
        """MatchIt's ``match.data``: matched rows with ``weights``, ``subclass``, ``distance``.

        Also adds ``s_weights`` and ``combined_weights``.
        """
        if not df.index.equals(self.treat.index):
            raise DataValidationError(
                "The data's index differs from the one matched",
                expected="the data frame passed to match()",
                hint="pass the same data frame (same index) that was matched",
            )
        out = df.copy()
        out["weights"] = self.weights
        out["subclass"] = self.subclass
        if self.distance is not None:
            out["distance"] = self.distance
        out["s_weights"] = self.s_weights
        out["combined_weights"] = self.combined_weights
        return out.loc[self.weights.to_numpy() > 0]

    def to_frame(self) -> pd.DataFrame:
        """Per-unit frame: treatment, distance, weights, subclass, survey and combined weights."""
        import pandas as pd

        cols: dict[str, pd.Series] = {"treat": self.treat}
        if self.distance is not None:
            cols["distance"] = self.distance
        cols.update(
            weights=self.weights,
            subclass=self.subclass,
            s_weights=self.s_weights,
            combined_weights=self.combined_weights,
        )
        return pd.DataFrame(cols)

    def summary(self) -> str:
        """Plain-text description of the specification and sample sizes."""
        spec = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        lines = [
            "Nearest-neighbour matching (estimand ATT)",
            f"formula: {self.formula}",
            f"settings: {spec}",
            f"survey weights: strategy '{self.survey_weight_strategy}'",
            "",
            "Sample sizes:",
            self.sample_sizes().to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        return "\n".join(lines)


def mahalanobis_transform(x: np.ndarray, treat: np.ndarray) -> np.ndarray:
    """Whiten covariates so Euclidean distance equals MatchIt's Mahalanobis distance.

    MatchIt scales the covariates, computes the pooled within-treatment-group covariance
    (denominator n - 2) and uses a (generalised) inverse.  Columns without variance are dropped.

    Parameters
    ----------
    x
        ``(n, p)`` covariate matrix.
    treat
        0/1 treatment.

    Returns
    -------
    numpy.ndarray
        ``(n, q)`` matrix ``z`` with ``||z_i - z_j|| = sqrt((x_i-x_j)' S^+ (x_i-x_j))``.
    """
    x = np.asarray(x, dtype=float)
    keep = np.abs(x.max(axis=0) - x.min(axis=0)) >= np.sqrt(np.finfo(float).eps)
    if not keep.any():
        return x[:, :1]
    x = x[:, keep]
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    centred = x.copy()
    for g in (0, 1):
        sel = treat == g
        centred[sel] -= centred[sel].mean(axis=0)
    s = centred.T @ centred / (x.shape[0] - 2)
    vals, vecs = np.linalg.eigh(s)
    pos = vals > max(1e-8 * vals.max(), 0.0)
    return x @ (vecs[:, pos] / np.sqrt(vals[pos]))


def processing_order(
    score: np.ndarray,
    m_order: str,
    rng: np.random.Generator | None,
    tiebreak: np.ndarray | None = None,
) -> np.ndarray:
    """Processing order of the treated units; equal scores in ``tiebreak`` (else data) order."""
    n1 = score.size
    key = np.arange(n1) if tiebreak is None else np.asarray(tiebreak)
    if m_order == "largest":
        return np.lexsort((key, -score))
    if m_order == "smallest":
        return np.lexsort((key, score))
    if m_order == "random":
        if rng is None:
            raise ConfigError(
                "m_order='random' needs a random generator", param="rng",
                expected="rng=numpy.random.default_rng(seed) or seed=<int>", found="None",
            )
        return rng.permutation(n1)
    return np.arange(n1)


def match(
    df: pd.DataFrame,
    formula: str,
    *,
    ratio: int = 1,
    replace: bool = False,
    caliper: float | Mapping[str, float] | None = None,
    std_caliper: bool = True,
    m_order: Literal["largest", "smallest", "random", "data"] | None = None,
    exact: str | Sequence[str] | None = None,
    distance: Literal["glm", "mahalanobis"] = "glm",
    mahvars: str | Sequence[str] | None = None,
    s_weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    weighted_score: bool = True,
    survey_weight_strategy: Literal["keep", "inherit"] = "keep",
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    compat: Literal["MatchIt-4.5.1"] | None = None,
    ties: Literal["all", "label", "matchit"] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> MatchResult:
    """Greedy nearest-neighbour matching for the ATT, as ``MatchIt::matchit(method="nearest")``.

    Parameters
    ----------
    df
        The data, one row per unit; treatment coded 0/1.
    formula
        ``"treat ~ x1 + x2 + ..."``; the propensity-score model (``distance="glm"``) or the
        Mahalanobis covariates (``distance="mahalanobis"``).
    ratio
        Number of controls per treated unit (k:1).  Without replacement matching proceeds in
        ``ratio`` rounds: every treated unit gets its first match, then its second, ...
    replace
        Match with replacement (controls reused; subclasses are then not defined).
    caliper
        A number: caliper on the propensity score; a dict ``{column: width}``: calipers on
        covariates; the key ``""`` in a dict is the propensity-score caliper.
    std_caliper
        Widths are in standard-deviation units.  As in MatchIt 4.5.1 (``process.caliper``) the SD
        is ``sd()`` of the variable over the whole sample (both groups, denominator n - 1), not a
        pooled within-group SD.
    m_order
        Order in which treated units are matched: ``"largest"`` (default with a propensity score)
        or ``"smallest"`` propensity score first, ``"data"`` (default for Mahalanobis) or
        ``"random"`` (needs ``rng`` or ``seed``; it cannot reproduce R's random stream).
    exact
        Variables to match exactly on (name, list of names or ``"~ a + b"``).  Matching is done
        separately within each combination of their values.
    distance
        ``"glm"`` (logistic propensity score, matched on the probability scale) or
        ``"mahalanobis"`` (Mahalanobis distance on the formula's covariates; no propensity score).
    mahvars
        With ``distance="glm"``: match on the Mahalanobis distance of these variables, using the
        propensity score for the processing order and the caliper.
    s_weights
        Survey weights (name or array).  They enter the propensity-score model (as MatchIt does;
        unless ``weighted_score=False``) and the combined weights.
    weighted_score
        Fit the propensity score with ``s_weights`` (default) or unweighted.
    survey_weight_strategy
        ``"keep"`` (Austin et al. 2018) or ``"inherit"`` (Lenis et al. 2019); see
        :class:`MatchResult`.
    rng, seed
        Random generator (or a seed for one) for ``m_order="random"``.
    compat
        ``"MatchIt-4.5.1"`` reproduces a defect of MatchIt 4.5.1 (the release in Debian 12) for
        matching on a propensity score: its C++ routine ``nn_matchC_vec`` takes the *integer*
        ``abs()`` of differences of doubles, so all score differences below 1 count as 0.  The
        treated unit then always takes the nearest available control with a smaller-or-equal
        score when there is one (else the nearest larger one), and propensity-score calipers
        never bind.  Only for reproducing results of that release; the default is correct
        nearest-neighbour matching.  Mahalanobis matching is unaffected.
    ties
        What to do with controls equally near a treated unit (distances within
        ``tie_tolerance``):

        * ``"all"`` (the default with replacement): every control as near as the ``ratio``-th
          nearest is used and the treated unit's weight is shared equally among them (Abadie &
          Imbens 2006; Stata's ``teffects nnmatch``).  The result does not depend on the row
          order, the processing order or floating-point noise.
        * ``"label"`` (the default without replacement, where every match uses up one control):
          one control per match, ties broken by the order of the index labels, so the result
          does not depend on the row order (given unique labels) or on floating-point noise.
        * ``"matchit"``: MatchIt 4.7's rule for propensity-score matching (checked against the
          source of MatchIt 4.7.0 and 4.7.2, ``find_control_vec`` in ``src/internal.cpp``; CRAN
          is not reachable from the test machines, so by the hand-worked cases and the restated
          walk in ``tests/test_matching.py``): units sorted by (distance, row) as R's
          ``order()`` does; from the treated unit MatchIt steps outwards one sorted position at a
          time, alternating and starting on the left, and of the nearest control on each side
          keeps the nearer, and of two equally near ones the one fewer sorted positions away
          (treated and used units count), the left one at an equal number.  Exact for
          ``ratio = 1``; for ``ratio > 1`` each further control is chosen by the same rule, and
          with ``exact`` positions are counted within the exact-matching group (MatchIt counts
          them over all units).  Mahalanobis matching: the first control in data order among
          equally near ones (not re-checked against 4.7).  With ``compat="MatchIt-4.5.1"`` the
          4.5.1 rule instead (always the left one).  Depends on the row order; for reproducing
          MatchIt only.  Implied by ``compat``.
    tie_tolerance
        Distances differing by at most this much are ties (default 1e-8: on the probability
        scale of the propensity score, or in Mahalanobis units).  Values are merged with
        :func:`analysis.matching.algorithms.tie_canonical` before matching, and calipers are
        widened by the same amount.

    Returns
    -------
    MatchResult

    Notes
    -----
    The processing order (``m_order``) sorts equal scores by label (``ties="label"`` or
    ``"all"``) or data order (``"matchit"``); with ``ties="all"`` the order does not matter.
    ``m_order="data"`` and ``"random"`` depend on the row order by definition.
    """
    import pandas as pd

    lhs, rhs = split_formula(formula)
    ratio, order, tie_rule, tol = _options(ratio, replace, distance, survey_weight_strategy,
                                           m_order, compat, ties, tie_tolerance)
    if rng is None and seed is not None:
        rng = np.random.default_rng(seed)

    treat = treatment_vector(df, lhs)
    n = treat.size
    sw = resolve_weights(df, s_weights, param="s_weights")

    ps_fit: PropensityScoreResult | None = None
    score: np.ndarray | None = None
    if distance == "glm":
        ps_fit = propensity_score(df, formula, weights=sw if weighted_score else None)
        score = ps_fit.score.to_numpy()
    ps_caliper, cov_cal = _calipers(df, caliper, score, std_caliper)
    cal_mat = np.column_stack([df[k].to_numpy(dtype=float) for k in cov_cal]) if cov_cal else None
    cal_width = np.array(list(cov_cal.values())) if cov_cal else None

    z = _mahalanobis_covariates(df, rhs if distance == "mahalanobis" else None, mahvars, treat)
    ex_vars = variables_of(exact, param="exact")
    arrays = match_arrays(
        treat, score=score, z=z, s_weights=sw, ratio=ratio, replace=replace,
        ps_caliper=ps_caliper, cal_mat=cal_mat, cal_width=cal_width, m_order=order, rng=rng,
        ties=tie_rule, tol=tol, tiebreak=None if tie_rule == "matchit" else label_ranks(df.index),
        strata=_exact_strata(df, ex_vars), int_abs=compat == "MatchIt-4.5.1",
        survey_weight_strategy=survey_weight_strategy,
    )
    if not (arrays.match_matrix >= 0).any():
        raise PopevalError(
            "No units were matched", param="caliper" if caliper is not None else "exact",
            hint="widen the caliper or relax exact matching",
        )
    index = df.index
    settings = {
        "ratio": ratio, "replace": replace, "caliper": caliper, "std_caliper": std_caliper,
        "m_order": order, "exact": ex_vars or None, "distance": distance,
        "mahvars": variables_of(mahvars, param="mahvars") or None,
        "caliper_abs": {"<distance>": ps_caliper, **cov_cal} if caliper is not None else None,
        "compat": compat, "ties": tie_rule, "tie_tolerance": tol,
    }
    return MatchResult(
        formula=formula,
        treat=pd.Series(treat, index=index, name=lhs),
        weights=pd.Series(arrays.weights, index=index, name="weights"),
        subclass=_subclass(arrays.match_matrix, treat, index, replace),
        distance=None if score is None else pd.Series(score, index=index, name="distance"),
        match_matrix=_match_matrix_frame(arrays.match_matrix, index, treat),
        s_weights=pd.Series(np.ones(n) if sw is None else sw, index=index, name="s_weights"),
        survey_weight_strategy=survey_weight_strategy,
        combined_weights=pd.Series(arrays.combined_weights, index=index, name="combined_weights"),
        settings=settings,
        propensity=ps_fit,
    )


def _mahalanobis_covariates(
    df: pd.DataFrame, rhs: str | None, mahvars: str | Sequence[str] | None, treat: np.ndarray
) -> np.ndarray | None:
    """The whitened Mahalanobis covariates: of the formula (``rhs``, ``distance="mahalanobis"``),
    else of ``mahvars``, else None."""
    if rhs is None and mahvars is not None:
        rhs = " + ".join(variables_of(mahvars, param="mahvars"))
    if rhs is None:
        return None
    return mahalanobis_transform(covariate_matrix(df, rhs, param="mahvars").to_numpy(), treat)


def _subclass(mm: np.ndarray, treat: np.ndarray, index: pd.Index, replace: bool) -> pd.Series:
    """Matching subclasses (MatchIt's ``mm2subclass``); all missing with replacement."""
    import pandas as pd

    n = treat.size
    if replace:
        return pd.Series(
            pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)),
            index=index, name="subclass",
        )
    sub = subclass_from_mm(mm, np.flatnonzero(treat == 1), n)
    return pd.Series(
        pd.array(np.where(sub > 0, sub, 0), dtype="Int64"), index=index, name="subclass"
    ).mask(sub == 0)


def _options(
    ratio: int, replace: bool, distance: str, survey_weight_strategy: str, m_order: str | None,
    compat: str | None, ties: str | None, tie_tolerance: float,
) -> tuple[int, str, str, float]:
    """Validate :func:`match`'s options; returns ratio, m_order, ties and the tie tolerance."""
    if not isinstance(ratio, int | np.integer) or isinstance(ratio, bool) or ratio < 1:
        raise ConfigError("ratio must be a positive integer", param="ratio", expected=">= 1",
                          found=repr(ratio))
    if distance not in ("glm", "mahalanobis"):
        raise ConfigError("Unknown distance", param="distance",
                          expected="'glm' or 'mahalanobis'", found=repr(distance))
    if survey_weight_strategy not in _STRATEGIES:
        raise ConfigError("Unknown survey-weight strategy", param="survey_weight_strategy",
                          expected="'keep' or 'inherit'", found=repr(survey_weight_strategy))
    if m_order is None:
        m_order = "largest" if distance == "glm" else "data"
    if m_order not in _M_ORDERS:
        raise ConfigError("Unknown m_order", param="m_order", expected=", ".join(_M_ORDERS),
                          found=repr(m_order))
    if distance == "mahalanobis" and m_order in ("largest", "smallest"):
        raise ConfigError(
            "m_order 'largest'/'smallest' needs a propensity score", param="m_order",
            expected="'data' or 'random' with distance='mahalanobis'", found=repr(m_order),
            hint="use distance='glm' with mahvars=... to order by the propensity score",
        )
    if compat not in (None, "MatchIt-4.5.1"):
        raise ConfigError("Unknown compatibility mode", param="compat",
                          expected="None or 'MatchIt-4.5.1'", found=repr(compat))
    if ties is None:
        ties = "matchit" if compat is not None else ("all" if replace else "label")
    if ties not in _TIES:
        raise ConfigError("Unknown tie rule", param="ties", expected=", ".join(_TIES),
                          found=repr(ties))
    if ties == "all" and not replace:
        raise ConfigError(
            "Using all tied controls needs matching with replacement", param="ties",
            expected="ties='label' or 'matchit' without replacement", found="ties='all'",
            hint="set replace=True, or break ties by label with ties='label'",
        )
    if not np.isfinite(tie_tolerance) or tie_tolerance < 0:
        raise ConfigError("The tie tolerance must be a non-negative number",
                          param="tie_tolerance", found=repr(tie_tolerance))
    return int(ratio), m_order, ties, float(tie_tolerance)


def _calipers(
    df: pd.DataFrame, caliper: float | Mapping[str, float] | None, score: np.ndarray | None,
    std_caliper: bool,
) -> tuple[float | None, dict[str, float]]:
    """Absolute caliper widths: on the propensity score, and per covariate."""
    ps_caliper: float | None = None
    cov_cal: dict[str, float] = {}
    if caliper is None:
        return ps_caliper, cov_cal
    items = caliper.items() if isinstance(caliper, Mapping) else [("", caliper)]
    for key, width in items:
        if not np.isfinite(width) or width <= 0:
            raise ConfigError("Caliper widths must be positive numbers", param="caliper",
                              found=f"{key or '<distance>'}={width!r}")
        if key == "":
            if score is None:
                raise ConfigError(
                    "A propensity-score caliper needs distance='glm'", param="caliper",
                    hint="name the covariates: caliper={'age': 0.5}",
                )
            ps_caliper = score_caliper(score, float(width), std_caliper)
        else:
            if key not in df.columns:
                raise DataValidationError("A caliper variable is not in the data",
                                          column=key, param="caliper")
            col = df[key].to_numpy(dtype=float)
            if np.unique(col).size <= 2:
                raise ConfigError("Calipers cannot be used with binary variables",
                                  column=key, param="caliper")
            cov_cal[key] = float(width) * (float(np.std(col, ddof=1)) if std_caliper else 1.0)
    return ps_caliper, cov_cal


def score_caliper(score: np.ndarray, width: float, std_caliper: bool = True) -> float:
    """Absolute caliper on the score: ``width`` SDs (``sd()`` over all units, as MatchIt)."""
    return float(width) * (float(np.std(score, ddof=1)) if std_caliper else 1.0)


def _exact_strata(df: pd.DataFrame, ex_vars: Sequence[str]) -> np.ndarray | None:
    """Stratum number per unit for exact matching (None without exact matching)."""
    if not ex_vars:
        return None
    missing = [v for v in ex_vars if v not in df.columns]
    if missing:
        raise DataValidationError("Exact-matching variables are not in the data",
                                  column=missing[0], param="exact")
    strata = df[list(ex_vars)].astype(str).agg("\x1f".join, axis=1).to_numpy()
    return np.unique(strata, return_inverse=True)[1]


def _match_matrix_frame(mm: np.ndarray, index: pd.Index, treat: np.ndarray) -> pd.DataFrame:
    """MatchIt's ``match.matrix``: index labels of the matched controls per treated unit."""
    import pandas as pd

    labels = np.asarray(index)
    mm_cols: dict[int, np.ndarray] = {}
    for j in range(mm.shape[1]):
        col = mm[:, j]
        values = labels[np.clip(col, 0, None)].astype(object)
        values[col < 0] = None
        mm_cols[j + 1] = values
    return pd.DataFrame(mm_cols, index=index[np.flatnonzero(treat == 1)], dtype=object)


@dataclass(frozen=True)
class MatchArrays:
    """The matching of :func:`match_arrays` (row positions, not labels).

    Attributes
    ----------
    match_matrix
        ``(n_treated, k)`` row positions of each treated unit's controls (treated in data
        order), -1 where there is no match.
    weights
        Matching weights (as :attr:`MatchResult.weights`).
    combined_weights
        Survey x matching weights (as :attr:`MatchResult.combined_weights`).
    """

    match_matrix: np.ndarray
    weights: np.ndarray
    combined_weights: np.ndarray


def match_arrays(
    treat: np.ndarray,
    *,
    score: np.ndarray | None = None,
    z: np.ndarray | None = None,
    s_weights: np.ndarray | None = None,
    ratio: int = 1,
    replace: bool = False,
    ps_caliper: float | None = None,
    cal_mat: np.ndarray | None = None,
    cal_width: np.ndarray | None = None,
    m_order: str = "largest",
    rng: np.random.Generator | None = None,
    ties: str = "label",
    tol: float = TIE_TOLERANCE,
    tiebreak: np.ndarray | None = None,
    strata: np.ndarray | None = None,
    int_abs: bool = False,
    survey_weight_strategy: str = "keep",
    counts: np.ndarray | None = None,
) -> MatchArrays:
    """Nearest-neighbour matching on arrays: the kernel of :func:`match`, options validated.

    :func:`match` builds the arrays from a data frame and a formula and calls this; the
    end-to-end replicates call it directly with their re-fitted score.

    Parameters
    ----------
    treat
        0/1 treatment.
    score
        Propensity score on the probability scale (the distance when ``z`` is None; else it
        orders the treated units and carries ``ps_caliper``).
    z
        Whitened Mahalanobis covariates (:func:`mahalanobis_transform`), or None.
    s_weights
        Survey weights (None: all 1).
    ratio, replace, m_order, rng, ties, survey_weight_strategy
        As for :func:`match` (``m_order``, ``ties`` resolved).
    ps_caliper, cal_mat, cal_width
        Absolute caliper on the score; covariate values and absolute widths of the covariate
        calipers.
    tol
        Tie tolerance.
    tiebreak
        Rank of every unit's label (:func:`analysis.matching.algorithms.label_ranks`), None for
        ``ties="matchit"``.
    strata
        Exact-matching stratum per unit, or None.
    int_abs
        MatchIt 4.5.1's integer ``abs()`` (``compat="MatchIt-4.5.1"``).
    counts
        Compressed data: the number of identical units (same treatment and covariates, hence
        the same score) each entry stands for, with ``s_weights`` their summed survey weights.
        Identical units are exact ties, so only ``ties="all"`` (which shares a treated unit's
        weight among its tied controls) decomposes over them; the weights returned are each
        unit's matching weight and the entry's summed combined weight, as matching the units
        one by one gives.

    Returns
    -------
    MatchArrays
    """
    n = treat.size
    if counts is not None and (ties != "all" or z is not None or cal_mat is not None):
        raise ConfigError(
            "Compressed units can be matched only with all ties used on a propensity score",
            param="counts", expected="ties='all', distance='glm', no covariate calipers",
            found=f"ties={ties!r}", hint="match the rows (counts=None)",
        )
    stratum_id = np.zeros(n, dtype=np.int64) if strata is None else strata
    ind1_all = np.flatnonzero(treat == 1)
    n1 = ind1_all.size
    score_c = None if score is None else tie_canonical(score, tol)
    local: list[tuple[np.ndarray, np.ndarray]] = []
    row_of_treated = np.empty(n, dtype=np.int64)
    row_of_treated[ind1_all] = np.arange(n1)
    for s in np.unique(stratum_id):
        members = np.flatnonzero(stratum_id == s) if strata is not None else np.arange(n)
        t_loc = treat[members]
        if not (t_loc == 1).any() or not (t_loc == 0).any():
            continue
        loc1 = np.flatnonzero(t_loc == 1)
        tb = None if tiebreak is None else tiebreak[members]
        ord1 = processing_order(
            np.zeros(loc1.size) if score_c is None else score_c[members][loc1], m_order, rng,
            None if tb is None else tb[loc1],
        )
        cal_loc = None if cal_mat is None else cal_mat[members]
        if z is None and score_c is not None:
            if ties == "all" and cal_loc is None:
                mm_loc = nn_sorted_all(score_c[members], t_loc, ratio, ps_caliper, tol,
                                       None if counts is None else counts[members])
            elif ties == "all":  # covariate calipers: the general kernel on the score
                mm_loc = nn_general(score_c[members][:, None], t_loc, ord1, ratio, True,
                                    score_c[members], ps_caliper, cal_loc, cal_width,
                                    tiebreak=tb, tol=tol, all_ties=True)
            else:
                mm_loc = nn_sorted(score_c[members], t_loc, ord1, ratio, replace, ps_caliper,
                                   cal_loc, cal_width, int_abs=int_abs, tiebreak=tb, tol=tol)
        elif z is not None:
            mm_loc = nn_general(z[members], t_loc, ord1, ratio, replace,
                                None if score is None else score[members], ps_caliper,
                                cal_loc, cal_width, tiebreak=tb, tol=tol,
                                all_ties=ties == "all")
        else:
            raise ConfigError("Matching needs a score or Mahalanobis covariates", param="score")
        glob = np.where(mm_loc >= 0, members[np.clip(mm_loc, 0, None)], -1)
        local.append((row_of_treated[members[loc1]], glob))
    width = max([ratio, *(g.shape[1] for _, g in local)])
    mm_global = np.full((n1, width), -1, dtype=np.int64)
    for rows_t, glob in local:
        mm_global[rows_t, : glob.shape[1]] = glob
    w = weights_from_mm(mm_global, treat, ind1_all, counts)
    sw_arr = (np.ones(n) if counts is None else np.asarray(counts, dtype=float)) if s_weights is None else s_weights
    comb = combined_weights(mm_global, treat, ind1_all, sw_arr, w, survey_weight_strategy, counts)
    return MatchArrays(match_matrix=mm_global, weights=w, combined_weights=comb)
