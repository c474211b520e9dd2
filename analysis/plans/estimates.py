"""Design-based estimates of the study's POP figures, and the combined (human + automated) estimator.

Design-based estimates
----------------------
The human codes of the stratified sample (:mod:`analysis.plans.sample`) are a
:class:`~analysis.weighting.SurveyDesign` with strata, weights ``N_h / n_h`` and the finite population
correction ``N_h``.  Shares are design means with linearisation standard errors (R's
``svymean``); ``no_reason`` is a domain estimate among POPs that recommend a training.

Combined estimator (automated flags on every POP + human-coded sample)
---------------------------------------------------------------------
With ``f_i`` the automated mismatch flag of every POP of the frame and ``y_i`` the human code in
the sample, the population share is estimated by the difference estimator

    theta = (1/N) sum_{i in U} f_i  +  (1/N) sum_{i in s} (y_i - f_i) / pi_i,

the design-based form of prediction-powered inference: the first term is known exactly (a census
of the flags), the second corrects the flags' errors and is a Horvitz-Thompson total with its
design variance.  It is unbiased however wrong the flags are; it is more precise than the
sample-only estimate when the flags agree with the coders.  Per stratum the same holds with ``N_h``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.plans.codebook import GOALS
from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    from analysis.weighting import SurveyDesign, SurveyEstimate

__all__ = ["MEASURES", "combined_estimate", "design_estimates", "sample_design"]

#: measure -> (code, value counted, domain: (code, value) or None)
MEASURES: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "no_training": ("training_recommended", "nee", None),
    "no_reason": ("reason_derivable", "nee", ("training_recommended", "ja")),
    **{g: (g, "ja", None) for g in GOALS},
    "mismatch": ("attest_match", "mismatch", None),
    "match": ("attest_match", "match", None),
    "undetermined": ("attest_match", "onbepaald", None),
}


def _indicators(codes: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=codes.index)
    for m, (code, value, dom) in MEASURES.items():
        y = (codes[code] == value).astype(float)
        if dom is not None:
            y = y.where(codes[dom[0]] == dom[1])
        out[m] = y
    return out


def sample_design(codes: pd.DataFrame, extra: pd.DataFrame | None = None) -> SurveyDesign:
    """The sample as a :class:`~analysis.weighting.SurveyDesign` (strata, weights, fpc), with a 0/1 (or
    missing outside the domain) column per measure.  ``codes`` holds ``stratum``, ``N_h``, ``weight``."""
    from analysis.weighting import SurveyDesign

    df = pd.concat([codes[["pop_id", "stratum", "N_h", "weight"]].reset_index(drop=True), _indicators(codes).reset_index(drop=True)], axis=1)
    if extra is not None:
        df = pd.concat([df, extra.reset_index(drop=True)], axis=1)
    return SurveyDesign(df, weights="weight", strata="stratum", fpc="N_h")


def _rows(est: SurveyEstimate, measure: str, estimator: str, by: bool, alpha: float, n: pd.Series, N: pd.Series) -> list[dict[str, object]]:
    f = est.to_frame(alpha)
    out = []
    for idx, r in f.iterrows():
        stratum = str(idx[0]) if by and isinstance(idx, tuple) else "alle"
        out.append(
            {
                "measure": measure,
                "stratum": stratum,
                "estimator": estimator,
                "estimate": r["estimate"],
                "bse": r["bse"],
                "ci_lower": max(0.0, r["ci_lower"]),
                "ci_upper": min(1.0, r["ci_upper"]),
                "n_sample": int(n.get(stratum, n.sum() if not by else 0)),
                "N_population": int(N.get(stratum, N.sum() if not by else 0)),
            }
        )
    return out


def design_estimates(codes: pd.DataFrame, *, alpha: float = 0.05, by_stratum: bool = True) -> pd.DataFrame:
    """Design-based shares (overall and per stratum) for every measure in :data:`MEASURES`.

    Parameters
    ----------
    codes
        Reconciled codes of the sampled POPs with ``stratum``, ``N_h`` and ``weight``.

    Returns
    -------
    pd.DataFrame
        ``measure``, ``stratum`` (``alle`` overall), ``estimator`` (``design``), ``estimate``,
        ``bse``, ``ci_lower``, ``ci_upper``, ``n_sample``, ``N_population``.
    """
    d = sample_design(codes)
    n_h = codes.groupby("stratum").size()
    N_h = codes.groupby("stratum")["N_h"].first()
    rows: list[dict[str, object]] = []
    for m in MEASURES:
        rows += _rows(d.mean(m, na_rm=True), m, "design", False, alpha, pd.Series({"alle": len(codes)}), pd.Series({"alle": int(N_h.sum())}))
        if by_stratum:
            rows += _rows(d.mean(m, by="stratum", na_rm=True), m, "design", True, alpha, n_h, N_h)
    return pd.DataFrame(rows)


def combined_estimate(
    codes: pd.DataFrame,
    auto: pd.DataFrame | None,
    frame_strata: pd.DataFrame,
    *,
    measure: str = "mismatch",
    alpha: float = 0.05,
    predictions: tuple[pd.Series, pd.Series] | None = None,
) -> pd.DataFrame:
    """The difference (prediction-powered) estimator of a share, overall and per stratum.

    Parameters
    ----------
    codes
        Reconciled codes of the sample with ``stratum``, ``N_h``, ``weight``.
    auto
        Automated flags of every POP of the frame (``pop_id``, ``auto_attest_match``...).
    frame_strata
        ``pop_id``, ``stratum`` for every POP of the frame.
    measure
        A measure of :data:`MEASURES`: ``mismatch`` (``match``, ``undetermined``) from the automated
        concordance, or any measure with ``predictions``.
    predictions
        Instead of ``auto``: (predictions for every POP of the frame, predictions for the sampled POPs),
        both indexed by ``pop_id`` — e.g. the cross-fitted probabilities of
        :func:`analysis.plans.classify.goal_predictions`.

    Returns
    -------
    pd.DataFrame
        Rows as :func:`design_estimates` with ``estimator`` ``combined`` and ``automated`` (the flags'
        census share, no interval).
    """
    # the normal quantile (scipy.stats' norm.ppf, without loading scipy.stats)
    from scipy.special import ndtri

    code, value, _ = MEASURES[measure]
    fr = frame_strata.set_index("pop_id")
    if predictions is None:
        if auto is None:
            raise ConfigError("combined_estimate needs the automated flags or predictions", param="auto")
        flag = (auto.set_index("pop_id")["auto_attest_match"] == value).astype(float)
        f_all, f_s_series = flag.reindex(fr.index), flag.reindex(codes["pop_id"])
    else:
        f_all, f_s_series = predictions[0].reindex(fr.index).astype(float), predictions[1].reindex(codes["pop_id"]).astype(float)
    if f_all.isna().any() or f_s_series.isna().any():
        raise DataValidationError(
            "Automated flags are missing for some POPs", column=measure, expected="a flag for every POP of the frame", found=f"{int(f_all.isna().sum() + f_s_series.isna().sum())} missing"
        )
    N_h = fr.groupby("stratum").size()
    fbar_h = f_all.groupby(fr["stratum"]).mean()
    y = (codes[code] == value).astype(float).to_numpy()
    f_s = f_s_series.to_numpy()
    diff = pd.DataFrame({"d": y - f_s})
    d = sample_design(codes, extra=diff)
    q = ndtri(1 - alpha / 2)
    n_h = codes.groupby("stratum").size()
    rows: list[dict[str, object]] = []
    tot = d.total("d")
    N = float(N_h.sum())
    est = float(f_all.mean()) + float(tot.params.iloc[0]) / N
    se = float(tot.bse.iloc[0]) / N
    rows.append(_row(measure, "alle", "combined", est, se, q, len(codes), int(N)))
    rows.append(_row(measure, "alle", "automated", float(f_all.mean()), np.nan, q, 0, int(N)))
    tot_h = d.total("d", by="stratum")
    for (h, _term), t, s in zip(tot_h.params.index, tot_h.params.to_numpy(), tot_h.bse.to_numpy(), strict=True):
        e = float(fbar_h[h]) + float(t) / float(N_h[h])
        rows.append(_row(measure, h, "combined", e, float(s) / float(N_h[h]), q, int(n_h.get(h, 0)), int(N_h[h])))
        rows.append(_row(measure, h, "automated", float(fbar_h[h]), np.nan, q, 0, int(N_h[h])))
    return pd.DataFrame(rows)


def _row(measure: str, stratum: str, estimator: str, est: float, se: float, q: float, n: int, N: int) -> dict[str, object]:
    return {
        "measure": measure,
        "stratum": stratum,
        "estimator": estimator,
        "estimate": est,
        "bse": se,
        "ci_lower": max(0.0, est - q * se) if np.isfinite(se) else np.nan,
        "ci_upper": min(1.0, est + q * se) if np.isfinite(se) else np.nan,
        "n_sample": n,
        "N_population": N,
    }
