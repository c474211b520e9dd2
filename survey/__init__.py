"""popeval.survey: the questionnaire as code, LimeSurvey deploy and fetch, and parsing.

This package never imports :mod:`analysis`; :mod:`analysis` builds on it.
"""

__all__: list[str] = []
