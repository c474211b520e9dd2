"""The study's estimator, from an analysis frame to the POP effects, and its end-to-end variance.

The **main estimator** of the study (documented in the report's methods appendix):

1. *Weighting.*  Respondents start from their design weight (population count over invited count in
   their sampling stratum, POP or no POP) and are raked to the administrative population margins
   (by default POP x education, age band, sex, sector and company size).
2. *Design.*  Overlap diagnostics first (:func:`support_stage`): covariate cells and propensity
   regions without comparable controls; by default the estimand is the ATT among the POP users
   *with* comparable controls, and the excluded group is named in the bundle.  Then a
   survey-weighted logistic propensity score ``pop ~ covariates`` and nearest-neighbour matching
   on it (with replacement; caliper 0.2 SD of the score on the probability scale, the SD unweighted
   over all respondents in the design; every control tied with the nearest one is used with a
   shared weight); matched controls keep their own survey weight (Austin et al. 2018) or inherit
   their treated unit's (Lenis et al. 2019).  This stage never reads an outcome.
3. *Outcomes.*  For each outcome, weighted least squares of the outcome on POP and the covariates on
   the matched sample with survey x matching weights: the ATT in Likert points (Likert as interval)
   and, with the top-2-box indicator (4 or 5), as a risk difference.
4. *Variance.*  End-to-end replicates: a Rao-Wu rescaling bootstrap of respondents within the
   sampling strata (POP / no POP); every replicate is re-raked to the margins, the propensity score
   re-fitted and the matching redone.  A finite-population correction is available but off by
   default: the ATT among *all* POP users includes the unobserved Y(0) of the POP users who did not
   respond, a variance component no replicate reproduces and that roughly offsets the correction.

Alternatives reported next to it, for the same estimand and each with the same end-to-end replicate
SE: regression adjustment (g-computation: the POP users' outcomes minus their predicted outcomes
without a POP from a weighted regression on the controls), IPW and AIPW (doubly robust) for the ATT
with survey weights, the weighted ordered logit on the matched sample (log odds, and its ATT on the
top-2-box scale), and the naive unweighted difference.  The fixed-effects regression that absorbs
the training domain adjusts for a mediator (the POP names the training): it is reported apart, as a
controlled direct effect, not as an estimate of the ATT.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from analysis.config import EffectsConfig, MatchingConfig, WeightingConfig
from analysis.fitwarnings import expected_fit_warnings
from survey.errors import ConfigError, DataValidationError, PopevalError

__all__ = [
    "METHODS",
    "DesignResult",
    "EndToEndVariance",
    "EstimatorSpec",
    "MethodResult",
    "OutcomeSample",
    "StudyEstimates",
    "design_stage",
    "end_to_end_variance",
    "estimate_point",
    "outcome_stage",
    "weight_stage",
]

MarginSpec = Mapping[str | tuple[str, ...], Mapping[Hashable, float]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstimatorSpec:
    """What the estimator does (built from the study configuration; defaults are the configuration's)."""

    covariates: tuple[str, ...] = MatchingConfig.covariates
    margins: tuple[tuple[str, ...], ...] = WeightingConfig.margins
    weighting: str = WeightingConfig.method
    min_cell: int = WeightingConfig.min_cell
    trim_upper: float | None = WeightingConfig.trim_upper
    max_iter: int = WeightingConfig.max_iter
    tolerance: float = WeightingConfig.tolerance
    ratio: int = MatchingConfig.ratio
    replace: bool = MatchingConfig.replace
    caliper: float | None = MatchingConfig.caliper
    m_order: str = MatchingConfig.m_order
    exact: tuple[str, ...] = MatchingConfig.exact
    distance: str = MatchingConfig.distance
    survey_weights: str = MatchingConfig.survey_weights
    weighted_propensity: bool = MatchingConfig.weighted_propensity
    ties: str = MatchingConfig.ties
    tie_tolerance: float = MatchingConfig.tie_tolerance
    support: str = MatchingConfig.support
    overlap_rule: str = MatchingConfig.overlap_rule
    min_controls: int = MatchingConfig.min_controls
    min_control_ratio: float = MatchingConfig.min_control_ratio
    trim_alpha: float = MatchingConfig.trim_alpha
    outcomes: tuple[str, ...] = EffectsConfig.outcomes
    estimand: str = EffectsConfig.estimand
    methods: tuple[str, ...] = ("matching", "regression", "ipw", "aipw", "ologit")
    top_box: int = 4
    seed: int = 2023

    @property
    def ps_formula(self) -> str:
        """``pop ~ C(x1) + C(x2) + ...``."""
        return "pop ~ " + " + ".join(f"C({c})" for c in self.covariates)

    @property
    def rhs(self) -> str:
        """Covariate adjustment right-hand side."""
        return " + ".join(f"C({c})" for c in self.covariates)

    @classmethod
    def from_config(cls, cfg: Any) -> EstimatorSpec:
        """From a :class:`analysis.config.StudyConfig`."""
        return cls(
            covariates=tuple(cfg.matching.covariates),
            margins=tuple(cfg.weighting.margins),
            weighting=cfg.weighting.method,
            min_cell=cfg.weighting.min_cell,
            trim_upper=cfg.weighting.trim_upper,
            max_iter=cfg.weighting.max_iter,
            tolerance=cfg.weighting.tolerance,
            ratio=cfg.matching.ratio,
            replace=cfg.matching.replace,
            caliper=cfg.matching.caliper,
            m_order=cfg.matching.m_order,
            exact=tuple(cfg.matching.exact),
            distance=cfg.matching.distance,
            survey_weights=cfg.matching.survey_weights,
            weighted_propensity=cfg.matching.weighted_propensity,
            ties=cfg.matching.ties,
            tie_tolerance=cfg.matching.tie_tolerance,
            support=cfg.matching.support,
            overlap_rule=cfg.matching.overlap_rule,
            min_controls=cfg.matching.min_controls,
            min_control_ratio=cfg.matching.min_control_ratio,
            trim_alpha=cfg.matching.trim_alpha,
            outcomes=tuple(cfg.effects.outcomes),
            estimand=cfg.effects.estimand,
            methods=tuple(cfg.effects.methods),
            seed=cfg.study.seed,
        )


# --------------------------------------------------------------------------- weighting


def _margin_subset(margins: MarginSpec, keys: Sequence[tuple[str, ...]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k in keys:
        key: str | tuple[str, ...] = k[0] if len(k) == 1 else tuple(k)
        if key not in margins:
            raise ConfigError(
                "A weighting margin is not in the population margins",
                param="weighting.margins",
                expected=", ".join(map(str, margins)),
                found=str(key),
                hint="compute the margin from the admin population (analysis.population) or drop it",
            )
        out[key] = margins[key]
    return out


def weight_stage(frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec, base_weights: np.ndarray | None = None) -> Any:
    """Weight respondents to the population margins; returns the weighted ``SurveyDesign``.

    ``frame`` needs ``w_design`` (or ``base_weights``) and the margin variables.
    """
    from analysis.weighting import SurveyDesign, calibrate, poststratify, rake, trim

    df, m = _weighting_data(frame, margins, spec)
    df["_w0"] = frame["w_design"].to_numpy(dtype=float) if base_weights is None else np.asarray(base_weights, dtype=float)
    d = SurveyDesign(df, weights="_w0")
    if spec.weighting == "none":
        out = d
    elif spec.weighting == "rake":
        out = rake(d, m, min_cell=spec.min_cell, max_iter=spec.max_iter, tol=spec.tolerance)
    elif spec.weighting == "poststratify":
        if len(m) != 1:
            raise ConfigError(
                "Post-stratification takes one (joint) margin",
                param="weighting.margins",
                expected="exactly one margin, e.g. [['pop', 'educ']]",
                found=str(list(m)),
                hint="use method = 'rake' for several margins",
            )
        out = poststratify(d, m)
    else:
        out = calibrate(d, m, calfun="linear" if spec.weighting == "linear" else "logit", max_iter=spec.max_iter, tol=spec.tolerance)
    if spec.trim_upper is not None:
        out = trim(out, upper=spec.trim_upper)
    return out


def _weighting_data(frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec) -> tuple[pd.DataFrame, dict[Any, Any]]:
    """The respondents as the weighting sees them, and the margins of ``spec``."""
    df = frame.copy()
    m = _margin_subset(margins, spec.margins)
    # A category of the population margins that no respondent has (e.g. no respondent in the
    # primary sector in a small wave) is a genuine empty cell: declare it, so that the collapse
    # rule merges it with a neighbour of the same stratum instead of refusing the margin.
    for key, totals in m.items():
        cols = (key,) if isinstance(key, str) else tuple(key)
        cells = list(totals.index if hasattr(totals, "index") else totals)
        for level, c in enumerate(cols):
            declared = list(dict.fromkeys(cell[level] if len(cols) > 1 else cell for cell in cells))
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                continue
            seen = set(pd.unique(df[c]))
            if seen < set(declared):
                df[c] = pd.Categorical(df[c], categories=declared)
    return df, m


# --------------------------------------------------------------------------- support


def support_stage(frame: pd.DataFrame, weights: pd.Series | np.ndarray, spec: EstimatorSpec) -> Any:
    """Overlap diagnostics and the estimand's support (design stage: reads no outcome).

    Returns an :class:`analysis.matching.overlap.OverlapResult`; multiply the survey weights by
    ``result.inside`` to restrict every later step to the estimand's population.
    """
    from analysis.matching.overlap import overlap

    return overlap(
        frame, "pop", spec.covariates, weights=np.asarray(weights, dtype=float),
        support=spec.support, rule=spec.overlap_rule, min_controls=spec.min_controls,
        min_control_ratio=spec.min_control_ratio, alpha=spec.trim_alpha, tol=spec.tie_tolerance,
    )


# --------------------------------------------------------------------------- design


@dataclass(frozen=True)
class DesignResult:
    """The locked design: weights, propensity score, matching and balance (no outcomes)."""

    weights: pd.Series
    match: Any
    balance: Any
    n_treated: int
    n_control: int
    n_matched_treated: int
    n_matched_control: int
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    #: per respondent: inside the estimand's support (see :func:`support_stage`)
    inside: pd.Series | None = None
    #: the overlap diagnostics (:class:`analysis.matching.overlap.OverlapResult`)
    overlap: Any = None

    @property
    def analysis_weights(self) -> pd.Series:
        """Survey weights restricted to the estimand's support (0 outside)."""
        if self.inside is None:
            return self.weights
        return self.weights * self.inside.astype(float)

    def summary(self) -> str:
        """One paragraph."""
        return (
            f"Design: {self.n_treated} POP and {self.n_control} non-POP respondents; matched "
            f"{self.n_matched_treated} POP with {self.n_matched_control} controls."
        )

    def to_frame(self) -> pd.DataFrame:
        """Per respondent: survey weight, propensity, matching weight, subclass."""
        m = self.match
        return pd.DataFrame(
            {
                "w_survey": self.weights,
                "propensity": m.distance,
                "w_matching": m.weights,
                "w_analysis": m.combined_weights,
                "subclass": m.subclass,
                **({} if self.inside is None else {"inside_support": self.inside.astype(int)}),
            }
        )


def design_stage(frame: pd.DataFrame, weights: pd.Series | np.ndarray, spec: EstimatorSpec, *, with_balance: bool = True) -> DesignResult:
    """Overlap, propensity score, matching and balance on the weighted respondents; reads no outcome.

    The overlap diagnostics (:func:`support_stage`) come first; with ``spec.support =
    "comparable"`` the propensity score and the matching use only the respondents inside the
    estimand's support.
    """
    from analysis.matching import balance, match

    cols = ["pop", *spec.covariates]
    df = frame.loc[:, cols].copy()
    w_all = np.asarray(weights, dtype=float)
    ov = support_stage(frame, w_all, spec)
    inside = ov.inside.to_numpy()
    w = w_all * inside
    df["_sw"] = w
    keep = w > 0
    sub = df.loc[keep]
    if sub["pop"].nunique() < 2:
        raise DataValidationError(
            "Cannot match: the respondents are all POP users or all non-POP users",
            column="pop",
            expected="both groups present",
            found=f"{int(sub['pop'].sum())} POP of {len(sub)}",
            hint="check the linkage of respondents to the admin population",
        )
    fit_warnings: Counter[str] = Counter()
    with expected_fit_warnings(fit_warnings, "propensity score"):
        m = match(
            sub,
            spec.ps_formula,
            ratio=spec.ratio,
            replace=spec.replace,
            caliper=spec.caliper,
            m_order=spec.m_order,  # type: ignore[arg-type]
            exact=list(spec.exact) or None,
            distance=spec.distance,  # type: ignore[arg-type]
            s_weights="_sw",
            weighted_score=spec.weighted_propensity,
            survey_weight_strategy=spec.survey_weights,  # type: ignore[arg-type]
            seed=spec.seed,
            ties=spec.ties,  # type: ignore[arg-type]
            tie_tolerance=spec.tie_tolerance,
        )
    bal = balance(m, sub, spec.rhs.replace("C(", "").replace(")", "")) if with_balance else None
    t = sub["pop"].to_numpy() == 1
    mw = m.weights.to_numpy()
    return DesignResult(
        weights=pd.Series(w_all, index=frame.index),
        inside=pd.Series(inside, index=frame.index, name="inside_support"),
        overlap=ov,
        match=m,
        balance=bal,
        n_treated=int(t.sum()),
        n_control=int((~t).sum()),
        n_matched_treated=int(((mw > 0) & t).sum()),
        n_matched_control=int(((mw > 0) & ~t).sum()),
        diagnostics={"fit_warnings": _report_fit_warnings(fit_warnings + Counter(ov.fit_warnings))},
    )


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class StudyEstimates:
    """Point estimates of every (outcome, method, scale) with their model-based SEs."""

    table: pd.DataFrame
    category_shifts: pd.DataFrame
    details: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The effects table as text."""
        return self.table.to_string(index=False)

    def to_frame(self) -> pd.DataFrame:
        """The effects table."""
        return self.table.copy()

    def vector(self) -> pd.Series:
        """Estimates keyed by (outcome, method, scale)."""
        return self.table.set_index(["outcome", "method", "scale"])["estimate"]


def _row(outcome: str, method: str, estimand: str, scale: str, est: float, se: float, nt: int, nc: int) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "method": method,
        "estimand": estimand,
        "scale": scale,
        "estimate": float(est),
        "bse": float(se),
        "n_treated": int(nt),
        "n_control": int(nc),
        "extrapolated": float("nan"),
    }


@dataclass(frozen=True)
class OutcomeSample:
    """What every estimation method receives: one outcome's analysis sample and the design.

    Attributes
    ----------
    outcome
        The outcome's name.
    data
        Respondents inside the estimand's support with an observed answer: the outcome as float,
        ``<outcome>_top2`` (the top-box indicator) and ``_sw`` (survey weights).
    support
        Every respondent inside the support (``data`` before dropping missing answers), as the
        matching saw them.
    design, spec
        The locked design and the estimator's specification.
    fit_warnings
        Counter of the expected fit warnings (:func:`analysis.fitwarnings.expected_fit_warnings`).
    """

    outcome: str
    data: pd.DataFrame
    support: pd.DataFrame
    design: DesignResult
    spec: EstimatorSpec
    fit_warnings: Counter[str]

    @property
    def treated(self) -> np.ndarray:
        """POP users among :attr:`data`."""
        return np.asarray(self.data["pop"].to_numpy() == 1)

    def scales(self) -> tuple[tuple[str, str], ...]:
        """(scale, column): the Likert score and the top-box indicator."""
        return (("likert", self.outcome), ("top2", f"{self.outcome}_top2"))


@dataclass(frozen=True)
class MethodResult:
    """What an estimation method returns: effects-table rows, and optional extra tables."""

    rows: list[dict[str, Any]]
    category_shifts: pd.DataFrame | None = None
    #: For a model-based method: the sample (and its weights) on which it predicts the POP users'
    #: outcome without a POP, checked for extrapolation outside common support.
    prediction_sample: tuple[pd.DataFrame, np.ndarray] | None = None


def _fit_matching(s: OutcomeSample) -> MethodResult:
    """Matched WLS (:func:`analysis.effects.regression.matched_effect`), the main method."""
    from analysis.effects.regression import matched_effect

    sub_m = _restrict_match(s.design.match, s.data.index)
    sel = sub_m.weights.to_numpy() > 0
    tm = sub_m.treat.to_numpy() == 1
    mdata = s.support.assign(**{s.outcome: s.support[s.outcome].astype(float)})
    rows = []
    for scale, top in (("likert", None), ("top2", s.spec.top_box)):
        e = matched_effect(sub_m, mdata, s.outcome, s.spec.rhs, top_box=top)
        rows.append(_row(s.outcome, "matching", "ATT", scale, e.estimate, e.bse[e.term], (sel & tm).sum(), (sel & ~tm).sum()))
    return MethodResult(rows)


def _fit_regression(s: OutcomeSample) -> MethodResult:
    """G-computation ATT (:func:`analysis.effects.weighting_estimators.regression_att`)."""
    from analysis.effects.weighting_estimators import regression_att

    d, t = s.data, s.treated
    rows = []
    for scale, col in s.scales():
        with expected_fit_warnings(s.fit_warnings, "regression"):
            e = regression_att(d, f"{col} ~ {s.spec.rhs}", "pop", weights=d["_sw"].to_numpy())
        rows.append(_row(s.outcome, "regression", "ATT", scale, e.estimate, e.bse[e.term], t.sum(), (~t).sum()))
    return MethodResult(rows, prediction_sample=(d, d["_sw"].to_numpy()))


def _fit_ipw(s: OutcomeSample) -> MethodResult:
    """IPW (:func:`analysis.effects.weighting_estimators.ipw`)."""
    from analysis.effects.weighting_estimators import ipw

    d, t = s.data, s.treated
    rows = []
    for scale, col in s.scales():
        with expected_fit_warnings(s.fit_warnings, "ipw"):
            e = ipw(d, col, s.spec.ps_formula, estimand=s.spec.estimand, weights=d["_sw"].to_numpy())  # type: ignore[arg-type]
        rows.append(_row(s.outcome, "ipw", s.spec.estimand, scale, e.estimate, e.bse[e.term], t.sum(), (~t).sum()))
    return MethodResult(rows)


def _fit_aipw(s: OutcomeSample) -> MethodResult:
    """AIPW, doubly robust (:func:`analysis.effects.weighting_estimators.aipw`)."""
    from analysis.effects.weighting_estimators import aipw

    d, t = s.data, s.treated
    rows = []
    for scale, col in s.scales():
        with expected_fit_warnings(s.fit_warnings, "aipw"):
            e = aipw(d, f"{col} ~ {s.spec.rhs}", s.spec.ps_formula, estimand=s.spec.estimand, weights=d["_sw"].to_numpy())  # type: ignore[arg-type]
        rows.append(_row(s.outcome, "aipw", s.spec.estimand, scale, e.estimate, e.bse[e.term], t.sum(), (~t).sum()))
    return MethodResult(rows, prediction_sample=(d, d["_sw"].to_numpy()))


#: The estimand of the absorbed regression (not the ATT; see :func:`_fit_absorbed`).
CONTROLLED_DIRECT = "controlled direct effect (training domain held fixed)"


def _fit_absorbed(s: OutcomeSample) -> MethodResult:
    """Regression with the training domain absorbed (:func:`analysis.effects.absorbed_effect`).

    The training domain is chosen in the POP (the POP names the training): holding it fixed
    adjusts for a mediator.  This is a controlled direct effect (the effect of a POP at a given
    training domain), not another estimate of the ATT, so it is kept out of the effects table.
    """
    from analysis.effects import absorbed_effect

    d, t = s.data, s.treated
    d2 = d.assign(_domain=d["train_domain"].astype(str) if "train_domain" in d else "unknown")
    rows = []
    for scale, col in s.scales():
        with expected_fit_warnings(s.fit_warnings, "absorbed"):
            e = absorbed_effect(d2, col, "pop", [], ["_domain", *s.spec.covariates], weights="_sw")
        rows.append(_row(s.outcome, "absorbed", CONTROLLED_DIRECT, scale, e.estimate, e.bse[e.term], t.sum(), (~t).sum()))
    return MethodResult(rows)


def _fit_naive(s: OutcomeSample) -> MethodResult:
    """The unweighted difference in means (Welch SE)."""
    from analysis.effects.weighting_estimators import mean_difference

    d, t = s.data, s.treated
    rows = []
    for scale, col in s.scales():
        a, b = d.loc[t, col], d.loc[~t, col]
        se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
        est = float(mean_difference(d[col].to_numpy(dtype=float), t.astype(float)))
        rows.append(_row(s.outcome, "naive", "unadjusted", scale, est, se, len(a), len(b)))
    return MethodResult(rows)


def _fit_ologit(s: OutcomeSample) -> MethodResult:
    """Weighted ordered logit on the matched sample (:func:`analysis.effects.ordered_logit`).

    Its POP coefficient (log odds) and its ATT on the top-2-box scale (the shift in
    P(Y >= top_box) among the matched POP users; no model SE, the replicates give it).
    """
    from analysis.effects.ordinal import ordered_logit

    d, outcome, spec = s.data, s.outcome, s.spec
    sub_m = _restrict_match(s.design.match, d.index)
    mw = sub_m.combined_weights.reindex(d.index).fillna(0.0)
    dm = d.loc[mw > 0].copy()
    dm["_mw"] = mw[mw > 0]
    dm[outcome] = dm[outcome].astype(int)
    with expected_fit_warnings(s.fit_warnings, "ologit"):
        # the categories observed in the matched sample (an absent one is not identified)
        res = ordered_logit(dm, f"{outcome} ~ pop + {spec.rhs}", weights="_mw", treat="pop", categories=sorted(dm[outcome].unique().tolist()))
    nt, nc = (dm["pop"] == 1).sum(), (dm["pop"] == 0).sum()
    rows = [_row(outcome, "ologit", "ATT", "log_odds", res.params["pop"], res.bse["pop"], nt, nc)]
    top = float("nan")
    sh = None
    if res.prob_shifts is not None:
        shifts_o = res.prob_shifts["shift"]
        top = float(shifts_o[np.asarray(shifts_o.index, dtype=float) >= spec.top_box].sum())
        sh = res.prob_shifts.reset_index().rename(columns={"lower": "ci_lower", "upper": "ci_upper"})
        sh.insert(0, "outcome", outcome)
    rows.append(_row(outcome, "ologit", "ATT", "top2", top, float("nan"), nt, nc))
    return MethodResult(rows, sh, prediction_sample=(dm, dm["_mw"].to_numpy()))


#: The estimation methods (configuration ``effects.methods``), in the effects table's order;
#: each takes an :class:`OutcomeSample` and returns a :class:`MethodResult`.
METHODS: dict[str, Callable[[OutcomeSample], MethodResult]] = {
    "matching": _fit_matching,
    "regression": _fit_regression,
    "ipw": _fit_ipw,
    "aipw": _fit_aipw,
    "absorbed": _fit_absorbed,
    "naive": _fit_naive,
    "ologit": _fit_ologit,
}
#: Methods whose rows are not estimates of the ATT (reported apart, ``details["controlled_direct_effect"]``).
DIRECT_EFFECT_METHODS = ("absorbed",)

_COLUMNS = ["outcome", "method", "estimand", "scale", "estimate", "bse", "n_treated", "n_control", "extrapolated"]


def outcome_stage(
    frame: pd.DataFrame,
    design: DesignResult,
    spec: EstimatorSpec,
    *,
    methods: Sequence[str] | None = None,
) -> StudyEstimates:
    """Effects of POP on every outcome under every method (:data:`METHODS`)."""
    methods = tuple(methods or spec.methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError("Unknown estimation method", param="effects.methods", expected=", ".join(METHODS), found=", ".join(unknown))
    rows: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []
    shifts: list[pd.DataFrame] = []
    fit_warnings: Counter[str] = Counter()
    w = design.analysis_weights.to_numpy()
    base = frame.loc[w > 0].copy()
    base["_sw"] = w[w > 0]
    for outcome in spec.outcomes:
        y = base[outcome].astype(float)
        ok = y.notna().to_numpy()
        d = base.loc[ok].copy()
        d[outcome] = y[ok]
        d[f"{outcome}_top2"] = (y[ok] >= spec.top_box).astype(float)
        sample = OutcomeSample(outcome, d, base, design, spec, fit_warnings)
        for name, fit in METHODS.items():
            if name not in methods:
                continue
            res = fit(sample)
            if res.prediction_sample is not None:
                share = _extrapolated_share(*res.prediction_sample, design, spec)
                for r in res.rows:
                    r["extrapolated"] = share
            (direct if name in DIRECT_EFFECT_METHODS else rows).extend(res.rows)
            if res.category_shifts is not None:
                shifts.append(res.category_shifts)
    table = pd.DataFrame(rows, columns=_COLUMNS)
    cs = pd.concat(shifts, ignore_index=True) if shifts else pd.DataFrame(columns=["outcome", "category", "shift", "bse", "ci_lower", "ci_upper"])
    cde = pd.DataFrame(direct, columns=_COLUMNS)
    return StudyEstimates(table=table, category_shifts=cs, details={"controlled_direct_effect": cde, "fit_warnings": _report_fit_warnings(fit_warnings)})


def _extrapolated_share(sample: pd.DataFrame, w: np.ndarray, design: DesignResult, spec: EstimatorSpec) -> float:
    """Weighted share of the sample's POP users whose predicted outcome without a POP extrapolates.

    See :func:`analysis.matching.overlap.extrapolated`: the design's cells without comparable
    controls, covariate categories without controls in the sample, propensity scores above the
    controls' largest.
    """
    from analysis.matching.overlap import extrapolated

    dist = getattr(design.match, "distance", None)
    score = None if dist is None else dist.reindex(sample.index).to_numpy(dtype=float)
    cells = design.overlap.excluded_cells if design.overlap is not None else pd.DataFrame(columns=["variable", "category"])
    flag = extrapolated(
        sample, "pop", spec.covariates, weights=w, score=score, tol=spec.tie_tolerance,
        excluded_cells=list(zip(cells["variable"].astype(str), cells["category"].astype(str), strict=True)),
    ).to_numpy()
    treated = (sample["pop"].to_numpy() == 1) & (w > 0)
    tot = float(w[treated].sum())
    return float(w[flag & treated].sum() / tot) if tot > 0 else float("nan")


def _report_fit_warnings(counts: Mapping[str, int]) -> dict[str, int]:
    from analysis.fitwarnings import report_fit_warnings

    return report_fit_warnings(counts, log)


def _restrict_match(m: Any, index: pd.Index) -> Any:
    """The matching restricted to rows with an observed outcome (weights of others set to 0)."""
    keep = m.weights.index.isin(index)
    return replace(
        m,
        weights=m.weights.where(keep, 0.0),
        combined_weights=m.combined_weights.where(keep, 0.0),
    )


# --------------------------------------------------------------------------- variance

#: Compress the rows into cells when there are at most this many cells per respondent (every
#: covariate categorical); with a continuous covariate nearly every row is a cell of its own and
#: the replicates run on the rows.
CELL_SHARE = 0.5


@dataclass(frozen=True)
class _Units:
    """Units of one outcome: respondents with the same design cell and the same answer.

    Attributes
    ----------
    ids
        Unit of every respondent.
    design
        Design cell of every unit.
    y
        The answer of every unit (NaN: missing).
    """

    ids: np.ndarray
    design: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class _Prepared:
    """What stays fixed across replicates (only the weights change).

    The replicates run on *design cells* (respondents with the same POP, covariates and raking
    variables) and, per outcome, on *units* (a design cell's respondents with the same answer),
    each carrying the summed weights of its respondents (``cells``), or on the respondents
    themselves (every row its own cell).  Every estimator of the effects table is invariant to
    merging identical rows into one with their summed weight, and matching with all ties used
    shares a treated unit's weight among identical controls; so both give the same estimates.
    """

    cells: bool
    design_ids: np.ndarray  # design cell of every respondent
    treat: np.ndarray  # per design cell
    X: np.ndarray  # per design cell: intercept + covariate dummies
    pop_col: int
    Xo: np.ndarray  # per design cell: intercept, pop, dummies
    outcomes: tuple[str, ...]
    units: tuple[_Units, ...]  # per outcome
    base: np.ndarray  # design weight of every respondent
    tiebreak: np.ndarray | None  # rank of the respondent labels per design cell (rows only)
    raking: Any  # analysis.weighting.replicate.ReplicateRaking on the design cells, or None


def _weighting_method(spec: EstimatorSpec) -> str:
    """How a replicate re-weights: ``"rake"`` / ``"none"`` on arrays, else :func:`weight_stage`."""
    if spec.trim_upper is None and spec.weighting in ("rake", "none"):
        return spec.weighting
    return "stage"


def _prepare(frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec, cells: bool | None = None) -> _Prepared:
    """Design matrices, cells and units, and the encoded margins, for the replicates.

    ``cells``: compress into cells (True), use the rows (False) or decide (None: cells when
    there are at most :data:`CELL_SHARE` cells per respondent and the tie rule is ``"all"``).
    Compressed units are exact ties, which only the tie rule ``"all"`` shares among them.
    """
    from analysis.matching.algorithms import label_ranks

    n = len(frame)
    margin_cols = [c for k in spec.margins for c in k]
    key_cols = list(dict.fromkeys(["pop", *spec.covariates, *margin_cols]))
    if cells is None or cells:
        design_ids = frame.groupby(key_cols, sort=True, dropna=False, observed=True).ngroup().to_numpy()
        n_cells = int(design_ids.max()) + 1 if n else 0
        if cells is None:
            cells = spec.ties == "all" and n_cells <= CELL_SHARE * n
        elif spec.ties != "all":
            raise ConfigError(
                "Replicates on cells need the tie rule 'all'",
                param="matching.ties", expected="'all'", found=repr(spec.ties),
                hint="identical respondents are exact ties; run the replicates on the rows (cells=False)",
            )
    if not cells:
        design_ids = np.arange(n)
    _, first = np.unique(design_ids, return_index=True)
    dummies = pd.get_dummies(frame.loc[:, list(spec.covariates)].astype(str), drop_first=True, dtype=float).to_numpy()[first]
    ones = np.ones((first.size, 1))
    treat = frame["pop"].to_numpy(dtype=float)[first]
    X = np.hstack([ones, dummies])
    Xo = np.hstack([ones, treat[:, None], dummies])
    units = []
    for o in spec.outcomes:
        y = frame[o].to_numpy(dtype=float)
        if cells:
            codes, values = pd.factorize(y, sort=True)  # NaN: code -1
            _, ufirst, ids = np.unique(design_ids * (values.size + 1) + codes + 1, return_index=True, return_inverse=True)
            units.append(_Units(ids=ids, design=design_ids[ufirst], y=y[ufirst]))
        else:
            units.append(_Units(ids=design_ids, design=design_ids, y=y))
    raking = None
    if _weighting_method(spec) == "rake":
        from analysis.weighting.replicate import ReplicateRaking

        df, m = _weighting_data(frame, margins, spec)
        raking = ReplicateRaking.prepare(df, m, min_cell=spec.min_cell, tol=spec.tolerance, max_iter=spec.max_iter)
        if cells:
            raking = raking.compress(first)
    return _Prepared(
        cells=bool(cells), design_ids=design_ids, treat=treat, X=X, pop_col=1, Xo=Xo,
        outcomes=tuple(spec.outcomes), units=tuple(units), base=frame["w_design"].to_numpy(dtype=float),
        tiebreak=None if cells else label_ranks(frame.index), raking=raking,
    )


def _logit_score(X: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Propensity score of the weighted logit (:func:`analysis.matching.propensity.logit_fit`)."""
    from analysis.matching.propensity import expit, identified_columns, logit_fit

    return np.asarray(expit(logit_fit(X[:, identified_columns(X)], t, w)[2]))


#: Methods the replicates re-estimate (every method of the effects table).
REPLICATE_METHODS = ("matching", "regression", "ipw", "aipw", "ologit", "naive")


def _survey_weights(prep: _Prepared, b: np.ndarray, frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec) -> np.ndarray:
    """Every respondent's survey weight from the base weights ``b``: raked to the margins."""
    how = _weighting_method(spec)
    if how == "stage":
        return np.asarray(weight_stage(frame, margins, spec, base_weights=b).weights.to_numpy(dtype=float))
    if how == "none":
        return b
    if not prep.cells:
        return np.asarray(prep.raking(b))
    # the raking factor is the same for every respondent of a cell: rake the cells' totals
    bd = np.bincount(prep.design_ids, weights=b, minlength=prep.treat.size)
    wd = prep.raking(bd)
    g = np.divide(wd, bd, out=np.zeros_like(wd), where=bd > 0)
    return np.asarray(b * g[prep.design_ids])


def _by_design(design: np.ndarray, w: np.ndarray, y: np.ndarray, n: int, collapse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units merged into their design cells: (cells, summed weights, weighted mean answers).

    Least squares, the weighted logit and the weighted means of the linear estimators do not
    change when rows that share every regressor are merged with their summed weight and mean
    answer.  Without ``collapse`` (rows) the units are returned as they are.
    """
    if not collapse:
        return design, w, y
    W = np.bincount(design, weights=w, minlength=n)
    Y = np.bincount(design, weights=w * y, minlength=n)
    idx = np.flatnonzero(W > 0)
    return idx, W[idx], Y[idx] / W[idx]


def _match_design(prep: _Prepared, spec: EstimatorSpec, d: np.ndarray, score: np.ndarray, s_weights: np.ndarray, counts: np.ndarray) -> Any:
    """One replicate's matching (:func:`analysis.matching.nearest.match_arrays`) of the design
    cells ``d`` in the design (their scores, summed survey weights and respondent counts): on
    cells with their respondent counts, on the rows with the rows' tie-break ranks."""
    from analysis.matching.nearest import match_arrays, score_caliper

    rows = np.repeat(score, counts.astype(np.int64)) if prep.cells else score
    return match_arrays(
        prep.treat[d].astype(int), score=score, s_weights=s_weights, ratio=spec.ratio, replace=spec.replace,
        ps_caliper=None if spec.caliper is None else score_caliper(rows, float(spec.caliper)),
        m_order=spec.m_order, rng=np.random.default_rng(spec.seed), ties=spec.ties,
        tol=float(spec.tie_tolerance),
        tiebreak=None if (prep.tiebreak is None or spec.ties == "matchit") else prep.tiebreak[d],
        survey_weight_strategy=spec.survey_weights, counts=counts if prep.cells else None,
    )


def _replicate_estimates(
    prep: _Prepared, b: np.ndarray, freq: np.ndarray, inside: np.ndarray | None, spec: EstimatorSpec,
    methods: Sequence[str] | None, frame: pd.DataFrame, margins: MarginSpec,
) -> pd.Series:
    """Every estimator of the effects table for one set of base weights: one replicate.

    It reproduces :func:`weight_stage` + :func:`design_stage` + :func:`outcome_stage` for a
    propensity-score distance without exact matching (checked by the tests) with the library's
    estimators on arrays: the matched WLS (``matching``), the g-computation ATT
    (``regression``), IPW and AIPW for the ATT, the ordered logit on the matched sample
    (``ologit``) and the naive difference, which in a replicate weights respondents by their
    bootstrap factors ``freq`` only.
    """

    methods = tuple(m for m in (methods or spec.methods) if m in REPLICATE_METHODS)
    sw = _survey_weights(prep, b, frame, margins, spec)
    if inside is not None:
        sw = sw * inside
    pos = (sw > 0).astype(float)
    nd = prep.treat.size
    # the propensity score of the design: on the design cells in the design (weight > 0),
    # survey-weighted or (matching.weighted_propensity = false) every respondent counted once
    swd = np.bincount(prep.design_ids, weights=sw, minlength=nd)
    ind = np.flatnonzero(swd > 0)
    score_d = np.full(nd, np.nan)
    wps = swd if spec.weighted_propensity else np.bincount(prep.design_ids, weights=pos, minlength=nd)
    score_d[ind] = _logit_score(prep.X[ind], prep.treat[ind], wps[ind])
    # every outcome's units in the design, with their summed weights, and their matching
    samples = []
    matched: dict[int, np.ndarray] = {}
    for u in prep.units:
        SW = np.bincount(u.ids, weights=sw)
        idx = np.flatnonzero(SW > 0)
        C = np.bincount(u.ids, weights=pos)[idx]
        F = np.bincount(u.ids, weights=freq * pos)[idx]
        d = u.design[idx]
        samples.append((d, SW[idx], C, F, u.y[idx]))
        if ("matching" in methods or "ologit" in methods) and id(u.ids) not in matched:
            matched[id(u.ids)] = _match_design(prep, spec, d, score_d[d], SW[idx], C).combined_weights
    out: dict[tuple[str, str, str], float] = {}
    for o, u, (d, w, _c, f, y) in zip(prep.outcomes, prep.units, samples, strict=True):
        comb = matched.get(id(u.ids), np.zeros(d.size))
        try:
            _outcome_estimates(out, o, prep, d, w, f, y, comb, score_d, methods, spec)
        except (PopevalError, np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError):
            # one estimator failing in one replicate (e.g. an empty arm) leaves the others
            for meth in methods:
                for scale in (("log_odds", "top2") if meth == "ologit" else ("likert", "top2")):
                    out.setdefault((o, meth, scale), float("nan"))
    return pd.Series(np.fromiter(out.values(), dtype=float, count=len(out)), index=_estimate_index(tuple(out)))


@cache
def _estimate_index(keys: tuple[tuple[str, str, str], ...]) -> pd.MultiIndex:
    """The (outcome, method, scale) index of a replicate's estimates, built once per process (the
    same in every replicate; building it cost as much as some of the estimators)."""
    return pd.MultiIndex.from_tuples(list(keys), names=["outcome", "method", "scale"])


def _outcome_estimates(
    out: dict[tuple[str, str, str], float], o: str, prep: _Prepared, d: np.ndarray, w: np.ndarray,
    f: np.ndarray, y: np.ndarray, comb: np.ndarray, score_d: np.ndarray, methods: tuple[str, ...],
    spec: EstimatorSpec,
) -> None:
    """The estimators of one outcome in :func:`_replicate_estimates` (written into ``out``).

    ``d``, ``w``, ``f``, ``y``, ``comb``: per unit in the design, its design cell, summed survey
    weights, summed bootstrap factors, answer and summed survey x matching weights.
    """
    from analysis.effects.regression import wls_params
    from analysis.effects.weighting_estimators import (
        att_aipw,
        att_ipw,
        att_regression,
        controls_model,
        mean_difference,
    )

    nd = prep.treat.size
    obs = ~np.isnan(y)
    e_d = np.full(nd, np.nan)
    if "ipw" in methods or "aipw" in methods:
        # IPW and AIPW fit their propensity score on the respondents who answered the item
        cd, wd, _ = _by_design(d[obs], w[obs], np.zeros(int(obs.sum())), nd, prep.cells)
        e_d[cd] = _logit_score(prep.X[cd], prep.treat[cd], wd)
    top2 = np.where(obs, (y >= spec.top_box).astype(float), np.nan)
    for scale, yy in (("likert", y), ("top2", top2)):
        if "matching" in methods:
            sel = (comb > 0) & obs
            cd, wd, ym = _by_design(d[sel], comb[sel], yy[sel], nd, prep.cells)
            out[(o, "matching", scale)] = float(wls_params(ym, prep.Xo[cd], wd)[prep.pop_col])
        cd, wd, ym = _by_design(d[obs], w[obs], yy[obs], nd, prep.cells)
        t = prep.treat[cd]
        if "regression" in methods or "aipw" in methods:
            b0 = controls_model(ym, prep.X[cd], t, wd)
        if "regression" in methods:
            out[(o, "regression", scale)] = float(att_regression(ym, prep.X[cd], t, wd, b0))
        if "aipw" in methods:
            out[(o, "aipw", scale)] = float(att_aipw(ym, prep.X[cd], t, wd, e_d[cd], b0))
        if "ipw" in methods:
            out[(o, "ipw", scale)] = float(att_ipw(ym, t, wd, e_d[cd]))
        if "naive" in methods:
            cf, wf, yf = _by_design(d[obs], f[obs], yy[obs], nd, prep.cells)
            out[(o, "naive", scale)] = float(mean_difference(yf, prep.treat[cf], wf))
    if "ologit" in methods:
        from analysis.effects.ordinal import ordered_logit_fit, treatment_probability_shifts

        sel = (comb > 0) & obs
        Xs = prep.Xo[d[sel]][:, 1:]
        Xs = Xs[:, np.any(Xs != 0, axis=0)]  # categories absent from the matched sample
        try:
            with np.errstate(all="ignore"):  # overflow in the line search of a weakly identified fit
                cats, codes = np.unique(y[sel], return_inverse=True)
                theta = ordered_logit_fit(Xs, codes, comb[sel], cats.size)
                shifts = treatment_probability_shifts(theta, Xs, comb[sel], 0)
            out[(o, "ologit", "log_odds")] = float(theta[0])
            out[(o, "ologit", "top2")] = float(shifts[cats >= spec.top_box].sum())
        except (PopevalError, np.linalg.LinAlgError):  # e.g. a category absent in a replicate
            out[(o, "ologit", "log_odds")] = float("nan")
            out[(o, "ologit", "top2")] = float("nan")


# --------------------------------------------------------------------------- replicates, all at once

#: Errors of one replicate in the stacked computation that leave it to the one-by-one path
#: (which reproduces them, or the NaN they give, exactly as it always has).
_STACKED_FALLBACK: tuple[type[BaseException], ...] = (PopevalError, np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError)


def _stacked_applies(spec: EstimatorSpec) -> bool:
    """The replicates run all at once (:func:`_stacked_estimates`, on the design cells or on the
    rows): re-weighted by raking on arrays or not re-weighted."""
    return _weighting_method(spec) in ("rake", "none")


def _aggregate(ids: np.ndarray, k: int) -> Any:
    """The sparse ``(k, n)`` matrix that sums the ``n`` values of every group ``ids`` (``A @ v``)."""
    from scipy import sparse

    n = ids.size
    return sparse.csr_matrix((np.ones(n), (ids, np.arange(n))), shape=(k, n))


def _sums(a: Any, values: np.ndarray) -> np.ndarray:
    """Group sums of every row of ``values`` (R, n): (R, k)."""
    return np.asarray((a @ values.T).T)


def _stacked_estimates(
    base_weights: np.ndarray, prep: _Prepared, spec: EstimatorSpec, inside: np.ndarray | None,
    methods: Sequence[str] | None,
) -> list[pd.Series | None]:
    """Every replicate of :func:`_replicate_estimates` at once, from the ``(n, R)`` base weights.

    The replicates' weights form ``(R, cells)`` matrices and every step runs on all of them
    together: the raking (:meth:`analysis.weighting.replicate.ReplicateRaking.many`), the
    propensity logits (:func:`analysis.matching.propensity.logit_fit_stacked`), the regressions
    (stacked :func:`analysis.effects.regression.wls_params`), the ordered logits (stacked
    :func:`analysis.effects.ordinal.ordered_logit_fit`) and the linear estimators; the matching
    (:func:`analysis.matching.nearest.match_arrays`) runs replicate by replicate on the design
    cells (once for every outcome: every outcome is matched on the same respondents; a cell's
    units share its matching weight).  On the rows every respondent is a design cell of its own.  Every fit gives what the replicate's own fit gives (to
    rounding).  A replicate in which any step fails, or any estimate is not finite, is left to
    :func:`_replicate_estimates` (None in the list), which raises its error or gives its NaN
    exactly as before; the fit warnings of the others are raised here, as theirs would be.
    """
    methods = tuple(m for m in (methods or spec.methods) if m in REPLICATE_METHODS)
    st = _StackedDesign.of(np.asarray(base_weights, dtype=float), prep, spec, inside)
    if "matching" in methods or "ologit" in methods:
        st.match(prep, spec)
    cols: dict[tuple[str, str, str], np.ndarray] = {}
    for o, u in zip(prep.outcomes, prep.units, strict=True):
        _stacked_outcome(cols, o, u, st, prep, spec, methods)
    keys = tuple(cols)
    est = np.column_stack([cols[k] for k in keys]) if keys else np.zeros((st.ok.size, 0))
    st.ok &= np.all(np.isfinite(est), axis=1)
    for r in np.flatnonzero(st.ok):
        for w in st.warned[r]:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    index = _estimate_index(keys)
    return [pd.Series(est[r], index=index) if st.ok[r] else None for r in range(st.ok.size)]


@dataclass
class _StackedDesign:
    """The weights, propensity scores and matching of all replicates (``(R, ...)`` arrays) in
    :func:`_stacked_estimates`; ``ok``: the replicates still estimated there."""

    SW: np.ndarray  # (R, n) survey weights of the respondents
    pos: np.ndarray  # (R, n) 1.0 where positive
    freq: np.ndarray  # (R, n) bootstrap factors
    swd: np.ndarray  # (R, cells) summed survey weights
    counts: np.ndarray  # (R, cells) respondents with positive weight
    score: np.ndarray  # (R, cells) propensity score (NaN outside the design)
    ok: np.ndarray
    warned: list[list[Any]]  # every replicate's fit warnings, raised if it is kept
    match_w: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (R, cells) matching weight
    comb: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (R, cells) summed combined weights

    @classmethod
    def of(cls, base_weights: np.ndarray, prep: _Prepared, spec: EstimatorSpec, inside: np.ndarray | None) -> _StackedDesign:
        """Rake every replicate (:func:`_survey_weights`) and fit its propensity score."""
        from analysis.matching.propensity import expit

        B = np.ascontiguousarray(base_weights.T)  # (R, n)
        R = B.shape[0]
        ok = np.ones(R, dtype=bool)
        freq = np.divide(B, prep.base, out=np.ones_like(B), where=prep.base > 0)
        a_d = _aggregate(prep.design_ids, prep.treat.size)
        if _weighting_method(spec) == "rake":
            bd = _sums(a_d, B)
            wd, ok_rake = prep.raking.many(bd.T)
            ok &= ok_rake
            g = np.divide(wd.T, bd, out=np.zeros_like(bd), where=bd > 0)
            SW = B * g[:, prep.design_ids]
        else:
            SW = B.copy()
        if inside is not None:
            SW *= inside
        pos = (SW > 0).astype(float)
        swd = _sums(a_d, SW)
        counts = _sums(a_d, pos)
        ind = swd > 0
        warned: list[list[Any]] = [[] for _ in range(R)]
        with np.errstate(all="ignore"):
            eta = _stacked_logit(prep.X, prep.treat, np.where(ind, swd if spec.weighted_propensity else counts, 0.0), warned)
        ok &= np.all(np.isfinite(eta) | ~ind, axis=1)
        return cls(SW, pos, freq, swd, counts, np.where(ind, expit(eta), np.nan), ok, warned)

    def match(self, prep: _Prepared, spec: EstimatorSpec) -> None:
        """Match every replicate on its design cells (:func:`analysis.matching.nearest.match_arrays`),
        as :func:`_replicate_estimates` does: on cells with their respondent counts, on the rows
        with the rows' tie-break ranks."""

        self.match_w = np.zeros_like(self.swd)
        self.comb = np.zeros_like(self.swd)
        for r in np.flatnonzero(self.ok):
            ind = np.flatnonzero(self.swd[r] > 0)
            try:
                m = _match_design(prep, spec, ind, self.score[r, ind], self.swd[r, ind], self.counts[r, ind])
            except _STACKED_FALLBACK:
                self.ok[r] = False
                continue
            self.match_w[r, ind] = m.weights
            self.comb[r, ind] = m.combined_weights

    def unit_combined(self, u: _Units, SWu: np.ndarray, treat: np.ndarray, strategy: str) -> np.ndarray:
        """Every unit's summed combined weights (R, units): a design cell's units share its
        matching weight; with inherited survey weights a control unit carries its cell's
        combined weight by its share of the cell's respondents."""
        if strategy == "keep":
            return np.asarray(SWu * self.match_w[:, u.design])
        cu = _sums(_aggregate(u.ids, u.design.size), self.pos)
        cd = self.counts[:, u.design]
        share = np.divide(cu, cd, out=np.zeros_like(cu), where=cd > 0)
        return np.where(treat[u.design] == 1, SWu * self.match_w[:, u.design], self.comb[:, u.design] * share)


def _stacked_outcome(
    cols: dict[tuple[str, str, str], np.ndarray], o: str, u: _Units, st: _StackedDesign, prep: _Prepared,
    spec: EstimatorSpec, methods: tuple[str, ...],
) -> None:
    """The estimators of one outcome in every replicate (:func:`_outcome_estimates`), into ``cols``."""
    from analysis.effects.ordinal import ordered_logit_fit
    from analysis.matching.propensity import expit

    nd = prep.treat.size
    a_u = _aggregate(u.ids, u.design.size)
    SWu = _sums(a_u, st.SW)
    obs = ~np.isnan(u.y)
    a_o = _aggregate(u.design[obs], nd)  # observed units -> design cells
    comb_u = st.unit_combined(u, SWu, prep.treat, spec.survey_weights) if st.match_w.size else np.zeros_like(SWu)
    wo = _sums(a_o, SWu[:, obs])
    score = np.zeros_like(wo)
    if "ipw" in methods or "aipw" in methods:
        # IPW and AIPW fit their propensity score on the respondents who answered the item
        with np.errstate(all="ignore"):
            e_d = expit(_stacked_logit(prep.X, prep.treat, wo, st.warned))
        st.ok &= np.all(np.isfinite(e_d) | (wo <= 0), axis=1)
        score = np.where(wo > 0, e_d, 0.0)  # a cell outside the sample counts for nothing
    fu = _sums(a_u, st.freq * st.pos)[:, obs] if "naive" in methods else None
    y = u.y[obs]
    for scale, yy in (("likert", y), ("top2", (y >= spec.top_box).astype(float))):
        _stacked_linear(cols, (o, scale), yy, comb_u[:, obs], SWu[:, obs], wo, score, fu, a_o, prep, methods)
    if "ologit" in methods:
        cols.update(_stacked_ologit(o, prep, u, comb_u, spec, st.ok, ordered_logit_fit))


def _stacked_linear(
    cols: dict[tuple[str, str, str], np.ndarray], key: tuple[str, str], yy: np.ndarray, comb: np.ndarray,
    sw: np.ndarray, wo: np.ndarray, score: np.ndarray, fu: np.ndarray | None, a_o: Any, prep: _Prepared,
    methods: tuple[str, ...],
) -> None:
    """The matched WLS, regression, AIPW, IPW and naive estimates of one (outcome, scale) on the
    design cells (the observed units merged into them, :func:`_by_design`) of every replicate."""
    from analysis.effects.regression import wls_params
    from analysis.effects.weighting_estimators import (
        att_aipw,
        att_ipw,
        att_regression,
        controls_model,
        mean_difference,
    )

    o, scale = key
    t = prep.treat
    with np.errstate(all="ignore"):
        if "matching" in methods:
            cm = _sums(a_o, comb)
            ym = _sums(a_o, comb * yy) / np.where(cm > 0, cm, 1.0)
            cols[(o, "matching", scale)] = wls_params(ym, prep.Xo, cm)[:, prep.pop_col]
        ym = _sums(a_o, sw * yy) / np.where(wo > 0, wo, 1.0)
        if "regression" in methods or "aipw" in methods:
            b0 = controls_model(ym, prep.X, t, wo)
        if "regression" in methods:
            cols[(o, "regression", scale)] = np.asarray(att_regression(ym, prep.X, t, wo, b0))
        if "aipw" in methods:
            cols[(o, "aipw", scale)] = np.asarray(att_aipw(ym, prep.X, t, wo, score, b0))
        if "ipw" in methods:
            cols[(o, "ipw", scale)] = np.asarray(att_ipw(ym, t, wo, score))
        if fu is not None:  # the naive difference weights by the bootstrap factors only
            fo = _sums(a_o, fu)
            cols[(o, "naive", scale)] = np.asarray(mean_difference(_sums(a_o, fu * yy) / np.where(fo > 0, fo, 1.0), t, fo))


def _stacked_logit(X: np.ndarray, t: np.ndarray, w: np.ndarray, warned: list[list[Any]]) -> np.ndarray:
    """Linear predictors of the stacked logits (:func:`analysis.matching.propensity.logit_fit_stacked`),
    every row's fit warnings added to ``warned``."""
    from analysis.matching.propensity import logit_fit_stacked

    _, _, eta, rows = logit_fit_stacked(X, t, w)
    for acc, new in zip(warned, rows, strict=True):
        acc.extend(new)
    return eta


def _stacked_ologit(
    o: str, prep: _Prepared, u: _Units, comb_u: np.ndarray, spec: EstimatorSpec, ok: np.ndarray, fit: Callable[..., np.ndarray],
) -> dict[tuple[str, str, str], np.ndarray]:
    """The ordered logit of one outcome on its matched units in every replicate (log odds and the
    top-2-box shift, :func:`analysis.effects.ordinal.treatment_probability_shifts`), on the
    answer categories of its matched sample (the replicates with the same categories fitted
    together); a replicate with fewer than two is marked not ``ok``."""
    from analysis.effects.ordinal import treatment_probability_shifts

    R = comb_u.shape[0]
    obs = ~np.isnan(u.y)
    cats, codes = np.unique(u.y[obs], return_inverse=True)
    w = comb_u[:, obs]
    X = prep.Xo[u.design[obs]][:, 1:]
    present = np.stack([(w[:, codes == k] > 0).any(axis=1) for k in range(cats.size)], axis=1)
    ok &= present.sum(axis=1) >= 2
    run = np.flatnonzero(ok)
    log_odds, top = np.full(R, np.nan), np.full(R, np.nan)
    if run.size == 0:
        return {(o, "ologit", "log_odds"): log_odds, (o, "ologit", "top2"): top}
    patterns, group = np.unique(present[run], axis=0, return_inverse=True)
    for i, pat in enumerate(patterns):
        rows = run[group.ravel() == i]
        keep = pat[codes]  # the units of the categories present, recoded 0..K-1
        sub = (np.cumsum(pat) - 1)[codes[keep]]
        with np.errstate(all="ignore"):
            # a fit whose steps fail or whose POP log odds run off (separated) is left NaN: its
            # replicate is redone one by one
            theta = fit(X[keep], sub, w[np.ix_(rows, keep)], int(pat.sum()), separated=SEPARATED_LOG_ODDS)
            shifts = treatment_probability_shifts(theta, X[keep], w[np.ix_(rows, keep)], 0)
        log_odds[rows] = theta[:, 0]
        top[rows] = shifts[:, cats[pat] >= spec.top_box].sum(axis=1)
    # a separated POP coefficient (no maximum) stops where rounding lets it: as one by one
    ok &= ~(np.abs(log_odds) > SEPARATED_LOG_ODDS)
    return {(o, "ologit", "log_odds"): log_odds, (o, "ologit", "top2"): top}


#: An ordered logit's POP log odds beyond this (an odds ratio of 3e6) are (quasi-)separated: the
#: replicate is left to the replicates one by one (:func:`_stacked_ologit`).
SEPARATED_LOG_ODDS = 15.0


def estimate_point(
    frame: pd.DataFrame,
    margins: MarginSpec,
    spec: EstimatorSpec,
    base_weights: np.ndarray | None = None,
    prepared: _Prepared | None = None,
    inside: np.ndarray | None = None,
    methods: Sequence[str] | None = None,
    cells: bool | None = None,
) -> pd.Series:
    """Weight, restrict to the estimand's support, match and estimate once (one replicate).

    Parameters
    ----------
    frame, margins, spec
        As for :func:`end_to_end_variance`.
    base_weights
        The replicate's base weights (default the design weights).
    prepared
        Arrays from :func:`_prepare` (reused across replicates).
    inside
        Per respondent: inside the estimand's support (:func:`support_stage`); the support is a
        fixed part of the estimand, the same in every replicate.
    methods
        Methods to estimate (default: those of ``spec`` that the replicates support).
    cells
        Estimate on cells of identical respondents (True), on the rows (False) or decide
        (None); see :func:`end_to_end_variance`.  Ignored with ``prepared``.

    Returns
    -------
    pd.Series
        Estimates keyed by (outcome, method, scale).
    """
    prep = prepared if prepared is not None else _prepare(frame, margins, spec, cells)
    base = prep.base
    if base_weights is None:
        b, freq = base, np.ones(len(base))
    else:
        b = np.asarray(base_weights, dtype=float)
        freq = np.divide(b, base, out=np.ones(len(base)), where=base > 0)
    ins = None if inside is None else np.asarray(inside, dtype=float)
    return _replicate_estimates(prep, b, freq, ins, spec, methods, frame, margins)


@contextmanager
def _quiet_weighting() -> Iterator[None]:
    """The full-sample weighting already reported its collapsed cells: not again per replicate."""
    wlog = logging.getLogger("analysis.weighting")
    level = wlog.level
    wlog.setLevel(logging.ERROR)
    try:
        yield
    finally:
        wlog.setLevel(level)


@cache
def _thread_controller() -> Any:
    """This process's BLAS/OpenMP thread pools (found once: the search costs more than a replicate)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _replicate_point(
    w: pd.Series, frame: pd.DataFrame, margins: MarginSpec, spec: EstimatorSpec, prep: _Prepared,
    inside: np.ndarray | None, methods: tuple[str, ...] | None,
) -> pd.Series:
    """One end-to-end replicate (:func:`estimate_point` with the replicate's base weights)."""
    with _quiet_weighting(), _thread_controller().limit(limits=1):
        return estimate_point(frame, margins, spec, base_weights=w.to_numpy(), prepared=prep, inside=inside, methods=methods)


def _stacked_point(
    weights: np.ndarray, prep: _Prepared, spec: EstimatorSpec, inside: np.ndarray | None, methods: tuple[str, ...] | None,
) -> list[pd.Series | None]:
    """All end-to-end replicates at once (:func:`_stacked_estimates`), single-threaded, in chunks
    of at most :data:`STACKED_CELLS` respondent x replicate values."""
    ins = None if inside is None else inside.astype(float)
    step = max(1, STACKED_CELLS // max(1, weights.shape[0]))
    out: list[pd.Series | None] = []
    with _quiet_weighting(), _thread_controller().limit(limits=1):
        for start in range(0, weights.shape[1], step):
            out.extend(_stacked_estimates(weights[:, start : start + step], prep, spec, ins, methods))
    return out


#: Largest number of respondent x replicate values the stacked replicates hold at once (each of
#: their few (replicates, respondents) arrays is then at most 64 MB).
STACKED_CELLS = 8_000_000


@dataclass(frozen=True)
class EndToEndVariance:
    """End-to-end replicate standard errors of every (outcome, method, scale).

    Attributes
    ----------
    bse
        Replicate standard error per (outcome, method, scale): the standard deviation of the
        replicates that estimated it.
    n_replicates
        Per estimate, the replicates that estimated it.
    n_failed
        Per estimate, the replicates that did not (a failed replicate, or the estimator not
        estimable in it).
    replicates
        ``(R, k)`` replicate estimates in the order of ``bse`` (NaN where not estimated).
    cells
        Whether the replicates ran on cells of identical respondents (else on the rows).
    stacked
        Whether all replicates ran at once (stacked fits; see :func:`end_to_end_variance`).
    fit_warnings
        The expected fit warnings of the replicates, summed (``"replicates: <Warning>"`` -> count).
    """

    bse: pd.Series
    n_replicates: pd.Series
    n_failed: pd.Series
    replicates: np.ndarray
    cells: bool
    fit_warnings: Mapping[str, int] = field(default_factory=dict)
    stacked: bool = False

    def to_frame(self) -> pd.DataFrame:
        """Index (outcome, method, scale); columns ``bse``, ``n_replicates``, ``n_failed``."""
        return pd.DataFrame({"bse": self.bse, "n_replicates": self.n_replicates, "n_failed": self.n_failed})

    def summary(self) -> str:
        """The standard errors as text."""
        head = (f"End-to-end replicate SEs: {self.replicates.shape[0]} replicates on "
                f"{'cells of identical respondents' if self.cells else 'the rows'}"
                f"{', all at once' if self.stacked else ''}")
        return head + "\n" + self.to_frame().to_string()


#: Errors that make one replicate inestimable (e.g. raking that cannot converge on a resample):
#: the replicate is counted as failed.  Any other error is a bug and surfaces.
REPLICATE_FAILURES: tuple[type[BaseException], ...] = (PopevalError, np.linalg.LinAlgError)


def end_to_end_variance(
    frame: pd.DataFrame,
    margins: MarginSpec,
    spec: EstimatorSpec,
    *,
    n_replicates: int = 100,
    population_sizes: Mapping[Any, float] | None = None,
    strata_column: str = "pop",
    workers: int = 1,
    rng: np.random.Generator | None = None,
    progress: bool = False,
    inside: np.ndarray | None = None,
    methods: Sequence[str] | None = None,
    cells: bool | None = None,
    stacked: bool | None = None,
) -> EndToEndVariance:
    """Replicate standard errors in which every replicate re-weights, re-fits and re-matches.

    Every estimator of the effects table (:data:`REPLICATE_METHODS`) is re-estimated in every
    replicate, so all of them get the same end-to-end SE (raking, the sampling strata, the
    propensity score and the matching included).  ``inside`` restricts every replicate to the
    estimand's support (see :func:`estimate_point`).  The replicates are Rao-Wu bootstrap
    weights (:func:`analysis.weighting.replicate.rao_wu_factors`) run by
    :func:`analysis.effects.variance.replicate_variance`.

    With categorical covariates the respondents fall into a few hundred cells (the same POP,
    covariates and raking variables); ``cells`` (default: decide, see :data:`CELL_SHARE`) runs
    every replicate on the cells with their summed weights, which gives the estimates of the
    rows (:class:`_Prepared`) in a fraction of the time.  ``cells=False`` uses the rows.  With
    raking on arrays or no re-weighting, all replicates run at once, on the cells or on the rows
    (:func:`_stacked_estimates`: weights as ``(R, cells)`` matrices, a row its own cell on the
    rows; stacked fits) and give the estimates of the replicates one by one; ``stacked``
    (default: where it applies) chooses, ``stacked=False`` runs them one by one.

    Returns
    -------
    EndToEndVariance
    """
    from functools import partial

    from analysis.effects.variance import replicate_variance
    from analysis.weighting.replicate import rao_wu_factors

    rng = rng or np.random.default_rng(spec.seed)
    factors = rao_wu_factors(frame[strata_column].to_numpy(), population_sizes, n_replicates, rng)
    base = frame["w_design"].to_numpy(dtype=float)
    if spec.distance != "glm" or spec.exact:
        raise ConfigError(
            "End-to-end replicates support propensity-score matching without exact matching",
            param="matching.distance",
            expected="distance = 'glm' and exact = []",
            found=f"distance = {spec.distance!r}, exact = {list(spec.exact)!r}",
            hint="use the model-based standard errors for this specification",
        )
    with _quiet_weighting():
        prep = _prepare(frame, margins, spec, cells)
    ins = None if inside is None else np.asarray(inside, dtype=bool)
    meth = None if methods is None else tuple(methods)
    refit = partial(_replicate_point, frame=frame, margins=margins, spec=spec, prep=prep, inside=ins, methods=meth)
    use_stacked = _stacked_applies(spec) if stacked is None else bool(stacked)
    if use_stacked and not _stacked_applies(spec):
        raise ConfigError(
            "Stacked replicates need raking on arrays (or no re-weighting)",
            param="stacked", expected="weighting 'rake' or 'none' without trimming",
            found=f"weighting={spec.weighting!r}, trim_upper={spec.trim_upper!r}",
            hint="run the replicates one by one (stacked=False)",
        )
    refit_all = partial(_stacked_point, prep=prep, spec=spec, inside=ins, methods=meth) if use_stacked else None
    rv = replicate_variance(
        frame, base[:, None] * factors, refit, scale=None, mse=False, n_jobs=max(1, workers),
        progress=progress, failures=REPLICATE_FAILURES, refit_all=refit_all,
    )
    return EndToEndVariance(
        bse=pd.Series(rv.bse, index=rv.index, name="bse"),
        n_replicates=pd.Series(rv.n_replicates, index=rv.index, name="n_replicates"),
        n_failed=pd.Series(n_replicates - rv.n_replicates, index=rv.index, name="n_failed"),
        replicates=rv.replicates, cells=prep.cells, fit_warnings=_report_fit_warnings(rv.fit_warnings),
        stacked=use_stacked,
    )


# --------------------------------------------------------------------------- 'weet niet' and sensitivity


#: Scenarios for the 'weet niet' answers: the value they take, for POP users and for the others.
DONT_KNOW_SCENARIOS: dict[str, tuple[float | None, float | None]] = {
    "complete_case": (None, None),  # the main analysis: 'weet niet' left out per outcome
    "as_neutral": (3.0, 3.0),
    "against_pop": (1.0, 5.0),  # worst case for the POP effect
    "for_pop": (5.0, 1.0),  # best case for the POP effect
}


def dont_know_analysis(frame: pd.DataFrame, design: DesignResult, spec: EstimatorSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """'Weet niet' rates by group and the main estimate under scenarios for those answers.

    An outcome is 'weet niet' where ``<outcome>_dont_know`` is set (else where it is missing
    among the analysed, complete responses).  The main analysis drops these answers outcome by
    outcome; the scenarios give them a value instead (3, the neutral middle; 1 for POP users and
    5 for the others, the worst case for the POP effect; and the reverse) and rerun the matched
    estimator on the same design.  The extreme scenarios bound what informative 'weet niet'
    answers could do to the estimate.

    Returns
    -------
    (rates, sensitivity)
        ``rates``: outcome, group (``pop`` / ``no_pop``), n, n_dont_know, pct, pct_weighted (within
        the estimand's support).  ``sensitivity``: outcome, scenario, scale, estimate.
    """
    w = design.analysis_weights.to_numpy()
    inside = w > 0
    t = frame["pop"].to_numpy() == 1
    rows = []
    for o in spec.outcomes:
        flag = f"{o}_dont_know"
        dk = frame[flag].fillna(False).to_numpy(dtype=bool) if flag in frame else frame[o].isna().to_numpy()
        for g, sel in (("pop", t), ("no_pop", ~t)):
            s = sel & inside
            n = int(s.sum())
            rows.append({
                "outcome": o, "group": g, "n": n, "n_dont_know": int((dk & s).sum()),
                "pct": 100.0 * float((dk & s).sum()) / n if n else float("nan"),
                "pct_weighted": 100.0 * float(w[dk & s].sum() / w[s].sum()) if n else float("nan"),
            })
    sens = []
    for name, (v_pop, v_other) in DONT_KNOW_SCENARIOS.items():
        f = frame.copy()
        if v_pop is not None and v_other is not None:
            for o in spec.outcomes:
                flag = f"{o}_dont_know"
                dk = f[flag].fillna(False).to_numpy(dtype=bool) if flag in f else f[o].isna().to_numpy()
                f.loc[dk & t, o] = v_pop
                f.loc[dk & ~t, o] = v_other
        est = outcome_stage(f, design, spec, methods=("matching",)).table
        for r in est.itertuples():
            sens.append({"outcome": r.outcome, "scenario": name, "scale": r.scale, "estimate": r.estimate})
    return pd.DataFrame(rows), pd.DataFrame(sens)


def top2_e_values(frame: pd.DataFrame, design: DesignResult, effects: pd.DataFrame, spec: EstimatorSpec) -> pd.DataFrame:
    """E-values of the main estimator on the risk-ratio scale of the top-2-box outcome.

    E-values are defined for risk ratios.  The matched top-2-box risk difference ``RD`` (with its
    replicate interval) is turned into a risk ratio ``RR = p1 / (p1 - RD)``, where ``p1`` is the
    weighted top-2-box share of the matched POP users and ``p0 = p1 - RD`` the estimated share
    without a POP; the interval limits use the same ``p0`` (held fixed: an approximation that
    ignores its own sampling error).  A hidden confounder associated with both POP and the
    outcome by risk ratios of at least the E-value (each) could explain the estimate away.

    Returns
    -------
    pd.DataFrame
        outcome, p_treated, p_control, risk_ratio, rr_ci_lower, rr_ci_upper, e_value, e_value_ci,
        approximation.
    """
    from analysis.effects.sensitivity import e_value

    m = design.match
    cw = m.combined_weights
    rows = []
    for o in spec.outcomes:
        sel_r = effects[(effects["outcome"] == o) & (effects["method"] == "matching") & (effects["scale"] == "top2")]
        if sel_r.empty:
            continue
        r = sel_r.iloc[0].to_dict()
        y = frame[o].reindex(cw.index)
        tsel = (m.treat == 1) & (cw > 0) & y.notna()
        p1 = float(np.average((y[tsel] >= spec.top_box).astype(float), weights=cw[tsel]))
        p0 = p1 - float(r["estimate"])
        lo, hi = float(r["ci_lower"]), float(r["ci_upper"])
        ok = 0 < p0 < 1 and p0 + lo > 0 and lo <= r["estimate"] <= hi
        ev = e_value(float(r["estimate"]), lo, hi, scale="RD", baseline_risk=p0) if ok else None
        rows.append({
            "outcome": o, "p_treated": p1, "p_control": p0,
            "risk_ratio": ev.rr if ev else float("nan"),
            "rr_ci_lower": ev.rr_lower if ev else float("nan"),
            "rr_ci_upper": ev.rr_upper if ev else float("nan"),
            "e_value": ev.e_value if ev else float("nan"),
            "e_value_ci": ev.e_value_ci if ev else float("nan"),
            "approximation": "top-2-box risk ratio p1 / (p1 - RD); p0 held fixed at its estimate for the interval",
        })
    return pd.DataFrame(rows)
