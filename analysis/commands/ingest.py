"""``popeval ingest``: load the admin extracts into DuckDB and link the study population."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval ingest``."""
    p.epilog = (
        "A separate step for exploring the admin data: `popeval run` does not read this database; "
        "it validates, pseudonymises and links the extracts named in the study configuration itself."
    )
    p.add_argument("--config", default=None, help="a study TOML: its [admin] inputs (with their mappings), survey participants and window")
    p.add_argument("--dwse", default=None, help="DWSE applications extract in popeval's own schema (.csv or .parquet)")
    p.add_argument("--vdab", default=None, help="VDAB loopbaancheque trajectories extract in popeval's own schema (.csv or .parquet)")
    p.add_argument(
        "--participants",
        default=None,
        help="survey snapshot folder, its participants.json or the GUI's participants CSV to link; optional",
    )
    p.add_argument("--db", default="data_derived/popeval.duckdb", help="DuckDB file (default data_derived/popeval.duckdb)")
    p.add_argument(
        "--pseudonymise",
        action="store_true",
        help="replace raw INSZ numbers by HMAC-SHA256 keyed hashes (key in POPEVAL_PSEUDO_KEY) instead of refusing them",
    )
    p.add_argument(
        "--school-years",
        nargs="+",
        default=None,
        metavar="YEAR",
        help="study window as school years, e.g. 2020-21 2021-22 (default: study.school_years, else 2019-20 to 2023-24)",
    )


def run(args: argparse.Namespace) -> int:
    """Ingest, link and print both reports."""
    from typing import Any

    from analysis.population import ingest, link
    from survey.errors import ConfigError

    dwse, vdab, participants = args.dwse, args.vdab, args.participants
    specs: dict[str, Any] = {}
    pseudonymise, years, key_attribute = args.pseudonymise, args.school_years, "attribute_1"
    if args.config:
        from analysis.config import load_config

        cfg = load_config(args.config)
        dwse = dwse or cfg.path(cfg.admin.dwse)
        vdab = vdab or cfg.path(cfg.admin.vdab)
        specs = {"dwse_spec": cfg.admin.dwse_input, "vdab_spec": cfg.admin.vdab_input}
        pseudonymise = pseudonymise or cfg.admin.pseudonymise
        years = years or (list(cfg.study.school_years) or None)
        key_attribute = cfg.survey.key_attribute
        if participants is None and cfg.survey.participants:
            participants = cfg.path(cfg.survey.participants)
    if dwse is None or vdab is None:
        raise ConfigError("No admin extracts given", param="--dwse/--vdab", expected="--dwse and --vdab, or --config study.toml",
                          found="none", hint="popeval ingest --config study.toml")
    key = None
    if pseudonymise:
        from survey.insz import pseudo_key_from_env

        key = pseudo_key_from_env()
    # progress lines on standard error (the summaries on standard output)
    report = ingest(dwse, vdab, args.db, pseudonymise=pseudonymise, key=key, progress=True, **specs)
    print(report.summary())
    linkage = link(args.db, participants, school_years=years, key_attribute=key_attribute, pseudo_key=key, progress=True)
    print(linkage.summary())
    return 0
