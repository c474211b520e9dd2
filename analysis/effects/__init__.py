"""Treatment-effect estimation: matched regression, ordered logit, IPW/AIPW, variance, sensitivity.

The public surface:

* :func:`matched_effect` (ATT by WLS on the matched sample; mean or top-box risk difference),
  :func:`weighted_ols`, :func:`absorbed_effect` (linearmodels, absorbed fixed effects)
* :func:`ordered_logit` (weighted proportional odds, sandwich SEs, probability shifts)
* :func:`ipw`, :func:`aipw` (ATT and ATE), :func:`regression_att`; the same point estimators on
  arrays: :func:`att_regression`, :func:`att_ipw`, :func:`att_aipw`, :func:`mean_difference`
* :func:`replicate_variance` (the end-to-end replicates run by it)
* :func:`adjust_pvalues` (Holm and Benjamini-Hochberg)
* :func:`e_value`, :func:`rosenbaum_bounds`
* :func:`cronbach_alpha`, :func:`hedges_g`
"""

from analysis.effects.ordinal import OrderedLogitResult, ordered_logit
from analysis.effects.regression import (
    absorbed_effect,
    adjust_pvalues,
    matched_effect,
    weighted_ols,
)
from analysis.effects.reliability import Reliability, cronbach_alpha, hedges_g
from analysis.effects.results import EffectEstimate
from analysis.effects.sensitivity import EValue, RosenbaumBounds, e_value, rosenbaum_bounds
from analysis.effects.variance import ReplicateVariance, replicate_variance
from analysis.effects.weighting_estimators import (
    aipw,
    att_aipw,
    att_ipw,
    att_regression,
    controls_model,
    ipw,
    mean_difference,
    regression_att,
)

__all__ = [
    "EValue",
    "EffectEstimate",
    "OrderedLogitResult",
    "Reliability",
    "ReplicateVariance",
    "RosenbaumBounds",
    "absorbed_effect",
    "adjust_pvalues",
    "aipw",
    "att_aipw",
    "att_ipw",
    "att_regression",
    "controls_model",
    "cronbach_alpha",
    "e_value",
    "hedges_g",
    "ipw",
    "matched_effect",
    "mean_difference",
    "ordered_logit",
    "regression_att",
    "replicate_variance",
    "rosenbaum_bounds",
    "weighted_ols",
]
