"""What the report's ``.qmd`` files read from a results bundle: formatted numbers, tables, figures.

``reports/_setup.qmd`` creates one :class:`Report`; the prose in ``reports/evaluation-<lang>.qmd``
quotes its numbers as inline expressions (```` `{python} r.fact.invited` ````), shows its tables in
labelled cells (``r.table("margins")``, ``#| label: tbl-margins``) and its figures in labelled cells
(``r.figure("forest")``, ``#| label: fig-forest``).  Nothing here is prose: captions, sentences and
notices are in the ``.qmd``; column headers and category labels come from :mod:`analysis.report.labels`
and the codebook.

Every table goes through disclosure control (:func:`~analysis.report.protection.protect`) before it is shown: counts below the
threshold are suppressed, then as many other cells as needed so that none can be recovered from
totals (secondary suppression), and percentages based on suppressed counts with them.  Suppressed
cells show :data:`analysis.report.formatting.SUPPRESSED`.  :meth:`Report.frame` gives the protected table as
a DataFrame of display strings.

:class:`Report` is composed of one class per part, each in its own module of :mod:`analysis.report`:
:class:`~analysis.report.data.ReportData` (the bundle, its optional parts, the protected tables),
:class:`~analysis.report.facts.ReportFacts` (the numbers the prose quotes, the verdicts),
:class:`~analysis.report.tables.ReportTables` and :class:`~analysis.report.figures.ReportFigures`;
the grid tables are in :mod:`analysis.report.grid`, disclosure control in
:mod:`analysis.report.protection`.

Optional parts of the bundle (an ``estimand`` block in ``estimates.json``, ``tables/overlap.csv``,
a ``reason`` column for methods that could not be estimated, outcome labels, the manifest's
``provenance``) are read when present; :meth:`Report.has` tells the ``.qmd`` whether to show them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.report.facts import Facts
from analysis.report.figures import FONT, ReportFigures
from analysis.report.grid import Code, GridTable, Group, Text, grid_table
from analysis.report.protection import (
    DEFAULT_THRESHOLD,
    Protected,
    protect,
    threshold_from_manifest,
)
from analysis.report.tables import ReportTables

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["DEFAULT_THRESHOLD", "FONT", "Code", "Facts", "GridTable", "Group", "Protected", "Report", "Text", "grid_table", "protect", "threshold_from_manifest"]


class Report(ReportFigures, ReportTables):
    """The results bundle as the report's ``.qmd`` files see it.

    Parameters
    ----------
    bundle
        A :class:`~analysis.bundle.ResultsBundle` or the path of a bundle folder.
    lang
        ``'nl'`` (default) or ``'en'``.
    threshold
        Disclosure threshold; default from the bundle's configuration, else 5.
    figdir
        Kept for compatibility; figures are shown by the cells that draw them.
    main_method
        The main estimator (default: ``config.report.main_method``, else ``matching`` when present,
        else the first method in the effects table).
    run_time
        The time of the run (ISO 8601); the report's date.  Default: the bundle's ``created_at``.
    """
