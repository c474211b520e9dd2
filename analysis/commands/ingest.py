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
    p.add_argument("--dwse", required=True, help="DWSE applications extract (.csv or .parquet)")
    p.add_argument("--vdab", required=True, help="VDAB loopbaancheque trajectories extract (.csv or .parquet)")
    p.add_argument(
        "--participants",
        default=None,
        help="survey snapshot folder (or its participants.json) to link; optional",
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
        help="study window as school years, e.g. 2020-21 2021-22 (default: all years of the data model)",
    )


def run(args: argparse.Namespace) -> int:
    """Ingest, link and print both reports."""
    from analysis.population import ingest, link

    report = ingest(args.dwse, args.vdab, args.db, pseudonymise=args.pseudonymise)
    print(report.summary())
    linkage = link(args.db, args.participants, school_years=args.school_years)
    print(linkage.summary())
    return 0
