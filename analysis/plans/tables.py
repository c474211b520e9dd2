"""The plans bundle's ``plans_*`` tables: tidy, aggregated, never any POP text.

:data:`PLANS_TABLES` fixes every table's columns; :func:`write_plans_tables` refuses anything else and
writes the bundle atomically with the results bundle's conventions (UTF-8, comma, LF, floats with up
to 12 significant digits, a manifest listing every file's SHA-256).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from survey.errors import DataValidationError

__all__ = ["PLANS_TABLES", "check_plans_tables", "read_plans_tables", "write_plans_tables"]

_EST = ("measure", "stratum", "estimator", "estimate", "bse", "ci_lower", "ci_upper", "n_sample", "N_population")

#: table -> (columns, description)
PLANS_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "plans_frame": (("step", "n"), "Construction of the POP frame: texts read, POPs with an attest, POPs in the frame"),
    "plans_sample": (("stratum", "N_h", "n_h", "pi"), "Strata of the POP sample: population and sample sizes, inclusion probability"),
    "plans_agreement": (
        (
            "code",
            "n_units",
            "n_coders",
            "percent_agreement",
            "percent_agreement_lower",
            "percent_agreement_upper",
            "kappa",
            "kappa_lower",
            "kappa_upper",
            "alpha",
            "alpha_lower",
            "alpha_upper",
            "n_disagreements",
        ),
        "Inter-coder agreement per code with bootstrap intervals, and the disagreements reconciled",
    ),
    "plans_estimates": (_EST, "Design-based (estimator 'design'), combined ('combined') and automated-census ('automated') shares, overall ('alle') and per stratum"),
    "plans_validation": (("flag", "n", "tp", "fp", "fn", "tn", "precision", "recall", "accuracy"), "Automated flags against the reconciled human codes in the sample"),
    "plans_concordance": (
        ("comparison", "category", "n", "pct"),
        "Automated concordance on every POP (pop_vs_attest, pop_vs_followed, attest_vs_followed) and the admin-level attest_matches_training",
    ),
    "plans_changes": (
        ("measure", "estimator", "estimate", "previous", "difference", "bse", "ci_lower", "ci_upper"),
        "Change since the previous wave (overall estimates; independent samples)",
    ),
}


def check_plans_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The plans tables reduced to their columns of :data:`PLANS_TABLES` (what enters any bundle).

    Raises
    ------
    DataValidationError
        For an unknown table, missing columns, or a column named ``text``.
    """
    out = {}
    for name, df in tables.items():
        if name not in PLANS_TABLES:
            raise DataValidationError("Unknown plans table", param=name, expected=", ".join(PLANS_TABLES), found=name)
        cols = PLANS_TABLES[name][0]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataValidationError(f"Plans table {name!r} lacks columns", param=name, expected=", ".join(cols), found=", ".join(map(str, df.columns)), hint=f"missing: {', '.join(missing)}")
        if "text" in df.columns:
            raise DataValidationError("A POP text column must never enter the bundle", param=name, column="text", expected="aggregated tables only")
        out[name] = df[list(cols)]
    return out


def write_plans_tables(bundle: str | Path, tables: Mapping[str, pd.DataFrame], info: Mapping[str, Any]) -> Path:
    """Write the plans bundle: ``tables/plans_*.csv``, ``estimates.json``, ``plans.json`` and a manifest.

    The folder is written as a whole (filled under a temporary name, then moved into place) and its
    ``manifest.json`` lists every file with its SHA-256, as :func:`analysis.bundle.write_bundle` does,
    so :func:`analysis.bundle.read_bundle` verifies it.

    Raises
    ------
    DataValidationError
        For an unknown table, missing columns, or a column named ``text``.
    """
    from analysis.bundle import BUNDLE_FORMAT, jsonable
    from survey.files import atomic_dir
    from survey.hashing import sha256_file

    tables = check_plans_tables(tables)
    with atomic_dir(bundle) as tmp:
        (tmp / "tables").mkdir()
        for name, df in tables.items():
            df.to_csv(tmp / "tables" / f"{name}.csv", index=False, lineterminator="\n", float_format="%.12g")
        (tmp / "estimates.json").write_text("{}\n", encoding="utf-8")
        (tmp / "plans.json").write_text(json.dumps(jsonable(dict(info)), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"part": "plans", "bundle_format": BUNDLE_FORMAT, "codebook_version": info.get("codebook_version"), "files": files}
        (tmp / "manifest.json").write_text(json.dumps(jsonable(manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(bundle)


def read_plans_tables(bundle: str | Path) -> dict[str, pd.DataFrame]:
    """The plans tables of a bundle (those present), after :func:`analysis.bundle.read_bundle` checked
    the bundle against its manifest.

    A plans bundle of an earlier wave written before the bundle format was recorded (format 1)
    named the standard errors ``std_error``; they are read as ``bse`` (the same values), and the
    rename is logged.
    """
    import logging

    from analysis.bundle import read_bundle

    b = read_bundle(bundle)
    out = {n: b.tables[n] for n in PLANS_TABLES if n in b.tables}
    if b.manifest.get("bundle_format") is None:
        for name, df in out.items():
            if "std_error" in df.columns and "bse" not in df.columns:
                out[name] = df.rename(columns={"std_error": "bse"})
                logging.getLogger(__name__).info(
                    "%s: %s is of bundle format 1; its column 'std_error' is read as 'bse'", bundle, name
                )
    return out
