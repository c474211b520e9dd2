"""Treatment-effect estimation: matched regression, ordered logit, IPW/AIPW, variance, sensitivity."""

from analysis.effects.regression import (
    absorbed_effect,
    adjust_pvalues,
    effect_family,
    matched_effect,
    weighted_ols,
)
from analysis.effects.results import EffectEstimate, EffectTable

__all__ = [
    "EffectEstimate",
    "EffectTable",
    "absorbed_effect",
    "adjust_pvalues",
    "effect_family",
    "matched_effect",
    "weighted_ols",
]
