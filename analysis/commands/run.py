"""``popeval run``: the whole study from one configuration file."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval run``."""
    p.add_argument("--config", required=True, help="the study configuration (TOML), e.g. studies/demo.toml")
    p.add_argument(
        "--stage",
        choices=["design", "all"],
        default="all",
        help="'design' fits propensity scores, matches and writes the balance report without reading outcomes, and locks the design",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-report", action="store_true", help="skip rendering the report")
    p.add_argument("--wait", action="store_true", help="when another run of the same study is running, wait for it instead of stopping")
    p.epilog = (
        "popeval run validates, pseudonymises and links the admin extracts itself (into a database "
        "under study.derived_dir, rebuilt when the extracts change); it does not read the database "
        "that `popeval ingest` writes. Exit status: 0 done, 2 error, 130 interrupted (Ctrl-C)."
    )


def run(args: argparse.Namespace) -> int:
    """Run the pipeline and print the one-screen summary."""
    import dataclasses
    import sys

    from analysis.config import load_config
    from analysis.pipeline import run as run_pipeline

    cfg = load_config(args.config)
    if args.no_report:
        cfg = dataclasses.replace(cfg, report=dataclasses.replace(cfg.report, render=False))
    result = run_pipeline(cfg, stage=args.stage, progress=not args.no_progress, echo=lambda s: print(s, file=sys.stderr), wait=args.wait)
    print(result.summary())
    return 0
