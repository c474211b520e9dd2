"""Treatment-effect estimation: matched regression, ordered logit, IPW/AIPW, variance, sensitivity.

The public surface:

* :func:`matched_effect` (ATT by WLS on the matched sample; mean or top-box risk difference),
  :func:`weighted_ols`, :func:`absorbed_effect` (linearmodels, absorbed fixed effects)
* :func:`ordered_logit` (weighted proportional odds, sandwich SEs, probability shifts)
* :func:`ipw`, :func:`aipw` (ATT and ATE)
* :func:`abadie_imbens_se`, :func:`replicate_variance`
* :func:`adjust_pvalues`, :func:`effect_family` (Holm and Benjamini-Hochberg)
* :func:`e_value`, :func:`rosenbaum_bounds`
* :func:`cronbach_alpha`, :func:`hedges_g` (pingouin)
"""

from analysis.effects.ordinal import OrderedLogitResult, ordered_logit
from analysis.effects.regression import (
    absorbed_effect,
    adjust_pvalues,
    effect_family,
    matched_effect,
    weighted_ols,
)
from analysis.effects.reliability import Reliability, cronbach_alpha, hedges_g
from analysis.effects.results import EffectEstimate, EffectTable
from analysis.effects.sensitivity import EValue, RosenbaumBounds, e_value, rosenbaum_bounds
from analysis.effects.variance import ReplicateVariance, abadie_imbens_se, replicate_variance
from analysis.effects.weighting_estimators import aipw, ipw, regression_att

__all__ = [
    "EValue",
    "EffectEstimate",
    "EffectTable",
    "OrderedLogitResult",
    "Reliability",
    "ReplicateVariance",
    "RosenbaumBounds",
    "abadie_imbens_se",
    "absorbed_effect",
    "adjust_pvalues",
    "aipw",
    "cronbach_alpha",
    "e_value",
    "effect_family",
    "hedges_g",
    "ipw",
    "matched_effect",
    "ordered_logit",
    "regression_att",
    "replicate_variance",
    "rosenbaum_bounds",
    "weighted_ols",
]
