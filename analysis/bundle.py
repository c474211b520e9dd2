"""The results bundle: everything a report shows, and nothing else.

A bundle is one folder per run::

    <bundle>/
      manifest.json      input SHA-256s, configuration, package versions, commit, seed
      estimates.json     every estimate (nested: section -> ... -> value)
      tables/<name>.csv  tidy tables (UTF-8, comma, LF, header; floats with up to 12 significant digits)

Timings and host details go to the run log beside the bundle, never into it, so two runs from the
same inputs write byte-identical bundles.  The report (``reports/``) reads only a bundle.

The tables and their columns are fixed by :data:`TABLES`; :func:`write_bundle` refuses unknown
tables or missing columns, so the report can rely on them.  The manifest records the bundle's
format (:data:`BUNDLE_FORMAT`); :func:`read_bundle` refuses a bundle of another format rather than
misread its columns.
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

__all__ = ["BUNDLE_FORMAT", "TABLES", "ResultsBundle", "jsonable", "read_bundle", "write_bundle"]

#: The bundle's format, recorded in its manifest (``bundle_format``) and raised whenever a table's
#: columns are renamed or change meaning.  1: standard errors in a column ``std_error`` (no
#: ``bundle_format`` in the manifest); 2: standard errors in ``bse`` (``model_bse`` in estimates.json).
BUNDLE_FORMAT = 2

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
            "bse",
            "ci_lower",
            "ci_upper",
            "p_value",
            "p_holm",
            "p_bh",
            "n_treated",
            "n_control",
        ),
        "POP effects on each of the study's outcomes per method (scale: 'likert' or 'top2'); 'extrapolated' "
        "(regression, aipw, ologit): the weighted share of the method's POP users whose predicted "
        "outcome without a POP lies outside common support (a covariate category the design found without comparable "
        "controls or without any control in the method's sample, or a propensity score above the controls' largest), "
        "empty for the other methods",
    ),
    "category_shifts": (
        ("outcome", "category", "shift", "bse", "ci_lower", "ci_upper"),
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
    "not_estimable": (
        ("outcome", "method", "reason"),
        "Secondary methods that could not be estimated on an outcome (empty when all were): the kind of "
        "failure as a code (column 'code', one of analysis.pipeline.NOT_ESTIMABLE_CODES or 'other'; the "
        "report words it) and the software's message (column 'reason')",
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


def jsonable(obj: Any) -> Any:
    """JSON-safe, deterministic: floats rounded to 12 significant digits, NaN as null."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None
        return float(f"{obj:.12g}")
    return obj


def write_bundle(
    path: str | Path,
    tables: Mapping[str, pd.DataFrame],
    estimates: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    extra_tables: Mapping[str, tuple[tuple[str, ...], str]] | None = None,
) -> ResultsBundle:
    """Write a bundle (deterministically and atomically) and return it.

    The folder is filled under a temporary name and moved into place when complete; the manifest
    lists every file of the bundle with its SHA-256 (``files``), so that :func:`read_bundle` can tell
    a complete bundle from an incomplete or edited one.  ``extra_tables`` adds the schemas of tables
    defined by a higher layer (the POP part's ``analysis.plans.tables.PLANS_TABLES``).

    Raises
    ------
    DataValidationError
        For a table that is not in :data:`TABLES` or lacks required columns.
    """
    from survey.files import atomic_dir
    from survey.hashing import sha256_file

    path = Path(path)
    schemas = {**TABLES, **dict(extra_tables or {})}
    for name, df in tables.items():
        if name not in schemas:
            raise DataValidationError(
                "Unknown results table", param=name, expected=", ".join(sorted(schemas)), found=name, hint="add it to analysis.bundle.TABLES"
            )
        missing = [c for c in schemas[name][0] if c not in df.columns]
        if missing:
            raise DataValidationError(
                f"Results table {name!r} lacks columns",
                param=name,
                expected=", ".join(schemas[name][0]),
                found=", ".join(map(str, df.columns)),
                hint=f"missing: {', '.join(missing)}",
            )
    with atomic_dir(path) as tmp:
        (tmp / "tables").mkdir()
        for name, df in tables.items():
            df.to_csv(tmp / "tables" / f"{name}.csv", index=False, lineterminator="\n", float_format="%.12g")
        (tmp / "estimates.json").write_text(json.dumps(jsonable(estimates), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        full = {**dict(manifest), "bundle_format": BUNDLE_FORMAT, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(jsonable(full), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return read_bundle(path)


def _load_json(path: Path, what: str) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise DataValidationError(
            f"The results bundle's {what} is not valid JSON",
            file=path,
            expected="UTF-8 JSON as written by `popeval run`",
            found=where,
            hint="the file was edited or damaged; rerun `popeval run --config study.toml` to write the bundle again",
        ) from exc
    if not isinstance(data, dict):
        raise DataValidationError(
            f"The results bundle's {what} is not a JSON object",
            file=path,
            expected="a JSON object",
            found=type(data).__name__,
            hint="rerun `popeval run --config study.toml` to write the bundle again",
        )
    return data


def _check_format(path: Path, manifest: Mapping[str, Any], listed: Mapping[str, Any]) -> None:
    """Refuse a bundle of another :data:`BUNDLE_FORMAT`.

    A bundle without ``bundle_format`` is of format 1 when it holds tables of :data:`TABLES`; a
    bundle of other tables only (the POP part's own, ``analysis.plans.tables``) has no format.
    """
    fmt = manifest.get("bundle_format")
    if fmt == BUNDLE_FORMAT or (fmt is None and not any(Path(f).stem in TABLES for f in listed)):
        return
    raise DataValidationError(
        "The results bundle was written in another format",
        file=path / "manifest.json",
        expected=f"bundle format {BUNDLE_FORMAT} (standard errors in the column 'bse')",
        found="format 1 (no 'bundle_format' in the manifest; standard errors in 'std_error')" if fmt is None else f"format {fmt!r}",
        hint="the bundle was written by another popeval version; rerun `popeval run --config study.toml` with this one to write it again",
    )


def read_bundle(path: str | Path) -> ResultsBundle:
    """Read a bundle written by :func:`write_bundle`, checking it against its manifest.

    Raises
    ------
    DataValidationError
        When the folder is not a bundle, the bundle is of another format (:data:`BUNDLE_FORMAT`), a
        file the manifest lists is missing, changed (SHA-256) or unreadable, or the bundle holds
        tables the manifest does not list.
    """
    from survey.hashing import sha256_file

    path = Path(path)
    if not (path / "manifest.json").exists():
        raise DataValidationError(
            "Not a results bundle",
            file=path,
            expected="a folder with manifest.json, estimates.json and tables/",
            found="no manifest.json",
            hint="run `popeval run --config study.toml` first and pass its bundle folder",
        )
    manifest = _load_json(path / "manifest.json", "manifest")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or "estimates.json" not in listed:
        raise DataValidationError(
            "The results bundle's manifest does not list the bundle's files",
            file=path / "manifest.json",
            expected="a 'files' entry with the SHA-256 of estimates.json and of every table",
            found="no file list" if not isinstance(listed, dict) else ", ".join(sorted(listed)) or "an empty list",
            hint="the bundle was written by an older popeval or by hand; rerun `popeval run --config study.toml`",
        )
    _check_format(path, manifest, listed)
    missing = sorted(f for f in listed if not (path / f).is_file())
    if missing:
        raise DataValidationError(
            "The results bundle is incomplete",
            file=path,
            expected=f"the {len(listed)} files its manifest lists",
            found=f"{len(missing)} missing: {', '.join(missing)}",
            hint="the run was interrupted or files were removed; rerun `popeval run --config study.toml`",
        )
    changed = sorted(f for f, digest in listed.items() if sha256_file(path / f) != digest)
    if changed:
        raise DataValidationError(
            "The results bundle was changed after it was written",
            file=path,
            expected="files whose SHA-256 matches the manifest",
            found=f"changed: {', '.join(changed)}",
            hint="a bundle is never edited by hand; rerun `popeval run --config study.toml` to write it again",
        )
    unlisted = sorted(p.relative_to(path).as_posix() for p in (path / "tables").glob("*.csv") if p.relative_to(path).as_posix() not in listed)
    # other popeval commands may add their own tables (``popeval plans``); a results table of
    # TABLES that the manifest does not list was not written by `popeval run`
    extra = [f for f in unlisted if Path(f).stem in TABLES]
    if extra:
        raise DataValidationError(
            "The results bundle holds tables its manifest does not list",
            file=path,
            expected=", ".join(sorted(listed)),
            found=", ".join(extra),
            hint="remove the extra files or rerun `popeval run --config study.toml`",
        )
    tables = {}
    for rel in sorted({*[f for f in listed if f.startswith("tables/") and f.endswith(".csv")], *unlisted}):
        p = path / rel
        try:
            tables[p.stem] = pd.read_csv(p, keep_default_na=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataValidationError("A results table cannot be read", file=p, expected="a CSV table", found=str(exc), hint="rerun `popeval run`") from exc
    estimates = _load_json(path / "estimates.json", "estimates.json")
    return ResultsBundle(tables=tables, estimates=estimates, manifest=manifest, path=path)
