"""Design-based survey weighting: raking, post-stratification, calibration and trimming.

In the spirit of R's ``survey`` package: a :class:`SurveyDesign` carries weights, clusters,
strata and finite population corrections; weighting functions return new designs whose
standard errors (by linearisation with calibration residuals, or by re-weighted JK1 and
bootstrap replicates) include the effect of the weighting.

>>> from analysis.weighting import SurveyDesign, rake
>>> d = SurveyDesign(df, weights="pw", cluster="dnum", fpc="fpc")        # doctest: +SKIP
>>> r = rake(d, {"stype": {"E": 4421, "H": 755, "M": 1018}})             # doctest: +SKIP
>>> r.mean("api00").to_frame()                                           # doctest: +SKIP
"""

from analysis.weighting.design import SurveyDesign, SurveyEstimate
from analysis.weighting.diagnostics import MarginCheck, WeightingDiagnostics
from analysis.weighting.methods import (
    WeightingConvergenceError,
    calibrate,
    poststratify,
    rake,
    trim,
)
from analysis.weighting.replicate import as_replicate

__all__ = [
    "MarginCheck",
    "SurveyDesign",
    "SurveyEstimate",
    "WeightingConvergenceError",
    "WeightingDiagnostics",
    "as_replicate",
    "calibrate",
    "poststratify",
    "rake",
    "trim",
]
