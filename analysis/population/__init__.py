"""The admin population: ingest the DWSE and VDAB extracts, link persons, margins and the profile.

* :func:`ingest` validates the extracts (chunked, with :mod:`survey.validate`) and loads them into
  DuckDB, refusing or pseudonymising raw INSZ numbers;
* :func:`link` builds the study population (opleidingscheque users in the window, with POP status,
  harmonised characteristics and loopbaancheque history) and the :class:`LinkageReport`;
* :func:`margins` gives versioned population margins for weighting (:class:`Margins`);
* :func:`profile` gives the population profile tables with small-cell suppression (:class:`Profile`).
"""

from __future__ import annotations

from analysis.population._db import DEFAULT_DB
from analysis.population.ingest import IngestReport, SourceFile, ingest
from analysis.population.linkage import (
    CHARACTERISTICS,
    CONFLICT_RULE,
    POPULATION_COLUMNS,
    LinkageReport,
    link,
    load_population,
)
from analysis.population.margins import DEFAULT_MARGINS, Margins, margins, vocabulary
from analysis.population.profile import PROFILE_VARIABLES, Profile, profile

__all__ = [
    "CHARACTERISTICS",
    "CONFLICT_RULE",
    "DEFAULT_DB",
    "DEFAULT_MARGINS",
    "POPULATION_COLUMNS",
    "PROFILE_VARIABLES",
    "IngestReport",
    "LinkageReport",
    "Margins",
    "Profile",
    "SourceFile",
    "ingest",
    "link",
    "load_population",
    "margins",
    "profile",
    "vocabulary",
]
