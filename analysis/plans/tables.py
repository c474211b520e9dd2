"""The bundle's ``plans_*`` tables: tidy, aggregated, never any POP text.

:data:`PLANS_TABLES` fixes every table's columns; :func:`write_plans_tables` refuses anything else and
writes atomically (a temporary file renamed into place), with the bundle's CSV conventions (UTF-8,
comma, LF, floats with up to 12 significant digits).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from survey.errors import DataValidationError

__all__ = ["PLANS_TABLES", "read_plans_tables", "write_plans_tables"]

_EST = ("measure", "stratum", "estimator", "estimate", "std_error", "ci_lower", "ci_upper", "n_sample", "N_population")

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
        ("measure", "estimator", "estimate", "previous", "difference", "std_error", "ci_lower", "ci_upper"),
        "Change since the previous wave (overall estimates; independent samples)",
    ),
}


def write_plans_tables(bundle: str | Path, tables: Mapping[str, pd.DataFrame], info: Mapping[str, Any]) -> Path:
    """Write the plans tables and ``plans.json`` into ``bundle`` (created when absent).

    A folder without ``manifest.json`` gets a minimal one, so that it is a readable bundle.
    """
    from analysis.bundle import _clean

    bundle = Path(bundle)
    (bundle / "tables").mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if name not in PLANS_TABLES:
            raise DataValidationError("Unknown plans table", param=name, expected=", ".join(PLANS_TABLES), found=name)
        cols = PLANS_TABLES[name][0]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataValidationError(f"Plans table {name!r} lacks columns", param=name, expected=", ".join(cols), found=", ".join(map(str, df.columns)), hint=f"missing: {', '.join(missing)}")
        if "text" in df.columns:
            raise DataValidationError("A POP text column must never enter the bundle", param=name, column="text", expected="aggregated tables only")
        path = bundle / "tables" / f"{name}.csv"
        tmp = path.with_suffix(".csv.tmp")
        df[list(cols)].to_csv(tmp, index=False, lineterminator="\n", float_format="%.12g")
        tmp.replace(path)
    blob = json.dumps(_clean(dict(info)), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    tmp = bundle / "plans.json.tmp"
    tmp.write_text(blob, encoding="utf-8")
    tmp.replace(bundle / "plans.json")
    if not (bundle / "manifest.json").exists():
        (bundle / "estimates.json").write_text("{}\n", encoding="utf-8")
        (bundle / "manifest.json").write_text(json.dumps({"part": "plans"}, indent=2) + "\n", encoding="utf-8")
    return bundle


def read_plans_tables(bundle: str | Path) -> dict[str, pd.DataFrame]:
    """The plans tables of a bundle (those present)."""
    bundle = Path(bundle)
    return {n: pd.read_csv(bundle / "tables" / f"{n}.csv") for n in PLANS_TABLES if (bundle / "tables" / f"{n}.csv").exists()}
