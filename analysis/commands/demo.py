"""``popeval demo``: write the synthetic study with known truth."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval demo``."""
    p.add_argument("--persons", type=int, default=200_000, help="persons in the admin universe (default 200000)")
    p.add_argument("--seed", type=int, default=2023, help="random seed; the same seed gives byte-identical files")
    p.add_argument("--out", default="data_raw/demo", help="output folder (default data_raw/demo)")
    p.add_argument("--format", dest="file_format", choices=["csv", "parquet"], default="csv", help="admin extract format")


def run(args: argparse.Namespace) -> int:
    """Generate, validate and summarise the demo study."""
    from analysis.synth import generate

    summary = generate(persons=args.persons, seed=args.seed, out=args.out, file_format=args.file_format)
    from analysis.plans.synth import generate_plans

    # reads (and so validates) both extracts against the study data model
    plans = generate_plans(summary.out, seed=args.seed)  # POP texts, training catalogue, true codes
    print(summary.summary())
    print(f"  POP texts            {plans['pops']:>10,}  (with POP-attest: {plans['with_attest']:,})")
    print("  validated against the study data model: ok")
    return 0
