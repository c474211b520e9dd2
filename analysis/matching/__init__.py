"""Propensity scores, nearest-neighbour matching with MatchIt's semantics, and balance.

The public surface:

* :func:`propensity_score` -> :class:`PropensityScoreResult`
* :func:`match` -> :class:`MatchResult`
* :func:`balance` -> :class:`BalanceResult`
"""

from analysis.matching.balance import BalanceResult, balance
from analysis.matching.nearest import MatchResult, mahalanobis_transform, match
from analysis.matching.propensity import PropensityScoreResult, propensity_score

__all__ = [
    "BalanceResult",
    "MatchResult",
    "PropensityScoreResult",
    "balance",
    "mahalanobis_transform",
    "match",
    "propensity_score",
]
