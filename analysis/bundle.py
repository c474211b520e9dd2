"""The results bundle: everything a report shows, and nothing else.

A bundle is one folder per run::

    <bundle>/
      manifest.json      input SHA-256s, configuration, package versions, commit, seed
      estimates.json     every estimate (nested: section -> ... -> value)
      tables/<name>.csv  tidy tables (UTF-8, comma, LF, header; floats with up to 12 significant digits)

Timings and host details go to the run log beside the bundle, never into it, so two runs from the
same inputs write byte-identical bundles.  The report (``reports/``) reads only a bundle.

The tables and their columns are fixed by :data:`TABLES`; :func:`write_bundle` refuses unknown
tables or missing columns, so the report can rely on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from survey.errors import DataValidationError

__all__ = ["TABLES", "ResultsBundle", "read_bundle", "write_bundle"]

#: table name -> (required columns, description)
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "pop_share": (
        ("incentive", "n_approved", "n_pop", "pct_pop"),
        "POP-based share of approved applications per incentive, and among loopbaancheque users (incentive='LBC')",
    ),
    "profile": (
        ("variable", "category", "group", "n", "pct"),
        "Profile of POP-based users vs all incentive users (group: 'pop' / 'all') by characteristic",
    ),
    "training_domains": (
        ("group", "in_databank", "domain", "n", "pct"),
        "Top training domains inside and outside the opleidingsdatabank",
    ),
    "outside_databank": (
        ("incentive", "n_pop", "n_outside", "pct_outside"),
        "POP-based approved applications outside the opleidingsdatabank, per incentive and in all ('all')",
    ),
    "linkage": (("source", "status", "n"), "Linkage report: linked/unlinked/duplicate counts per source"),
    "response_flow": (("step", "n"), "Survey response flow: invited, started, completed, linked, analysed"),
    "weighting_margins": (
        ("variable", "category", "population", "n_respondents", "pct_population", "pct_unweighted", "pct_weighted"),
        "Respondents against the population per margin, before and after weighting",
    ),
    "weight_diagnostics": (("statistic", "value"), "Weight diagnostics: range, quantiles, Kish deff, effective n, convergence"),
    "balance": (
        ("variable", "stage", "smd", "variance_ratio", "ecdf_mean", "ecdf_max"),
        "Covariate balance before/after matching (stage: 'before', 'after', 'population')",
    ),
    "effects": (
        (
            "outcome",
            "method",
            "estimand",
            "scale",
            "estimate",
            "std_error",
            "ci_lower",
            "ci_upper",
            "p_value",
            "p_holm",
            "p_bh",
            "n_treated",
            "n_control",
        ),
        "POP effects on the four outcomes per method (scale: 'likert' or 'top2')",
    ),
    "category_shifts": (
        ("outcome", "category", "shift", "std_error", "ci_lower", "ci_upper"),
        "Ordered-logit shifts in category probabilities among the treated",
    ),
    "sensitivity": (
        ("outcome", "p_treated", "p_control", "risk_ratio", "rr_ci_lower", "rr_ci_upper", "e_value", "e_value_ci", "approximation"),
        "E-values of the main estimator on the top-2-box risk-ratio scale (RR = p1 / (p1 - RD), p0 held fixed for the "
        "interval).  No Rosenbaum bounds: they need 1:1 pairs without replacement and no survey weights",
    ),
    "dont_know": (
        ("outcome", "group", "n", "n_dont_know", "pct", "pct_weighted"),
        "'Weet niet' answers per outcome and group (pop / no_pop) within the estimand's support",
    ),
    "dont_know_sensitivity": (
        ("outcome", "scenario", "scale", "estimate"),
        "Main estimate with 'weet niet' left out (complete_case) or set to 3 (as_neutral), 1 for POP and 5 for "
        "the others (against_pop) or the reverse (for_pop)",
    ),
    "overlap": (
        ("kind", "variable", "category", "n_treated", "n_control", "w_treated", "w_control", "status"),
        "Overlap before outcomes are read: POP and non-POP respondents per covariate category (kind 'cell') "
        "and per propensity-score bin (kind 'propensity'); status 'ok', 'sparse', 'empty' (no non-POP) or "
        "'no_treated'",
    ),
    "overlap_excluded": (
        ("variable", "category", "n", "pct"),
        "Profile of the POP respondents outside the estimand's support (excluded group)",
    ),
    "controlled_direct_effect": (
        (),
        "Fixed-effects estimate holding the training domain fixed (a controlled direct effect, not the ATT); "
        "empty unless effects.methods includes 'absorbed'",
    ),
}


@dataclass(frozen=True)
class ResultsBundle:
    """A results bundle in memory."""

    tables: Mapping[str, pd.DataFrame]
    estimates: Mapping[str, Any]
    manifest: Mapping[str, Any]
    path: Path | None = field(default=None, compare=False)

    def table(self, name: str) -> pd.DataFrame:
        """One table; a clear error when the bundle lacks it."""
        if name not in self.tables:
            raise DataValidationError(
                f"The results bundle has no table {name!r}",
                file=self.path,
                expected=", ".join(sorted(TABLES)),
                found=", ".join(sorted(self.tables)) or "no tables",
                hint="rerun `popeval run` so that every step writes its tables",
            )
        return self.tables[name]

    def summary(self) -> str:
        """Tables and their row counts."""
        lines = [f"Results bundle {self.path or ''}".rstrip()]
        lines += [f"  {k:<20} {len(v):>6} rows" for k, v in sorted(self.tables.items())]
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per table with its row count."""
        return pd.DataFrame({"table": sorted(self.tables), "rows": [len(self.tables[k]) for k in sorted(self.tables)]})


def _clean(obj: Any) -> Any:
    """JSON-safe, deterministic: floats rounded to 12 significant digits, NaN as null."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None
        return float(f"{obj:.12g}")
    return obj


def write_bundle(path: str | Path, tables: Mapping[str, pd.DataFrame], estimates: Mapping[str, Any], manifest: Mapping[str, Any]) -> ResultsBundle:
    """Write a bundle (deterministically) and return it.

    Raises
    ------
    DataValidationError
        For a table that is not in :data:`TABLES` or lacks required columns.
    """
    path = Path(path)
    (path / "tables").mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if name not in TABLES:
            raise DataValidationError(
                "Unknown results table", param=name, expected=", ".join(sorted(TABLES)), found=name, hint="add it to analysis.bundle.TABLES"
            )
        missing = [c for c in TABLES[name][0] if c not in df.columns]
        if missing:
            raise DataValidationError(
                f"Results table {name!r} lacks columns",
                param=name,
                expected=", ".join(TABLES[name][0]),
                found=", ".join(map(str, df.columns)),
                hint=f"missing: {', '.join(missing)}",
            )
        df.to_csv(path / "tables" / f"{name}.csv", index=False, lineterminator="\n", float_format="%.12g")
    (path / "estimates.json").write_text(json.dumps(_clean(estimates), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    (path / "manifest.json").write_text(json.dumps(_clean(manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return read_bundle(path)


def read_bundle(path: str | Path) -> ResultsBundle:
    """Read a bundle written by :func:`write_bundle`."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        raise DataValidationError(
            "Not a results bundle",
            file=path,
            expected="a folder with manifest.json, estimates.json and tables/",
            found="no manifest.json",
            hint="run `popeval run --config study.toml` first and pass its bundle folder",
        )
    tables = {p.stem: pd.read_csv(p, keep_default_na=True) for p in sorted((path / "tables").glob("*.csv"))}
    estimates = json.loads((path / "estimates.json").read_text(encoding="utf-8"))
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return ResultsBundle(tables=tables, estimates=estimates, manifest=manifest, path=path)
