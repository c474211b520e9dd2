"""The report: a results bundle turned into the published documents.

* :mod:`analysis.report.labels` -- the vocabulary tables and figures print (nl, en);
* :mod:`analysis.report.formatting` -- numbers, percentages and dates as text, per language;
* :mod:`analysis.report.builder` -- :class:`~analysis.report.builder.Report`, the protected tables,
  figures and facts a ``.qmd`` asks for, read from a bundle; composed of
  :mod:`analysis.report.data` (the bundle, its optional parts, the protected tables),
  :mod:`analysis.report.facts` (the numbers the prose quotes, the verdicts),
  :mod:`analysis.report.tables` and :mod:`analysis.report.figures`;
* :mod:`analysis.report.grid` -- inline text and pandoc grid tables;
* :mod:`analysis.report.protection` -- disclosure control of the report's tables;
* :mod:`analysis.report.render` -- renders a ``.qmd`` with Quarto, or with Quarto's engines
  (Jupyter kernel, pandoc, typst) when the binary is not installed.

The prose lives in the ``.qmd`` files of ``reports/``.
"""
