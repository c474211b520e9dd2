"""``popeval plans``: the POP part of the study, step by step.

``popeval run`` does these steps itself when the study configuration has ``[plans] texts`` (see
:func:`analysis.plans.stage.advance`): the first run draws the sample and writes the sheets, a run
after the coding ingests the sheets (and writes the reconciliation sheet when the coders disagree),
and a run after the reconciliation puts the ``plans_*`` tables into the run's bundle and the section
"Het POP en het POP-attest" into its report.  The subcommands run one step each, e.g. to look at the
agreement before a whole run, or to write a separate plans bundle (working files go to
``<derived_dir>/plans/``)::

    popeval plans sample   --config study.toml   # frame of POPs and the stratified sample
    popeval plans sheets   --config study.toml   # one blind coding sheet per coder
    (the coders fill plans/sheets/coder_<name>.xlsx)
    popeval plans ingest   --config study.toml   # agreement; writes plans/sheets/reconciliation.xlsx
    (the researchers fill 'definitief' in the reconciliation sheet)
    popeval plans ingest   --config study.toml   # the reconciled code set
    popeval plans estimate --config study.toml   # concordance, estimates -> a plans bundle (tables/plans_*.csv)

For the synthetic demo, ``popeval plans simulate --config studies/demo.toml --truth data_raw/demo/truth
--complete`` does the coders' and the reconcilers' work from the known codes (without ``--complete``
it fills the existing coder sheets, with ``--reconciliation`` the reconciliation sheet).
``popeval plans codebook`` prints the codebook.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover

    from analysis.config import StudyConfig

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval plans``."""
    sub = p.add_subparsers(dest="plans_command", metavar="STEP", required=True)
    steps = {
        "codebook": "print the codebook (codes, values, definitions, decision rules)",
        "sample": "build the POP frame and draw the stratified sample",
        "sheets": "write one blind coding sheet (.xlsx) per coder",
        "ingest": "read the filled sheets, compute agreement and the reconciled codes",
        "estimate": "automated concordance on every POP and the estimates; write the plans tables",
        "simulate": "demo only: fill the sheets from the synthetic study's true codes",
    }
    for name, help_ in steps.items():
        s = sub.add_parser(name, help=help_, description=help_)
        if name != "codebook":
            s.add_argument("--config", required=True, help="the study configuration (TOML) with a [plans] section")
        if name in ("sample", "sheets"):
            s.add_argument("--overwrite", action="store_true", help="replace an existing sample / existing sheets")
        if name == "estimate":
            s.add_argument("--out", help="the plans bundle folder to write (default <derived>/plans/bundle)")
            s.add_argument("--previous", help="the previous wave's bundle (overrides [plans] previous)")
        if name == "simulate":
            s.add_argument("--truth", required=True, help="the synthetic study's truth/ folder")
            s.add_argument("--reconciliation", action="store_true", help="fill the reconciliation sheet instead of the coder sheets")
            s.add_argument(
                "--complete",
                action="store_true",
                help="the whole coding work: draw the sample and write the sheets when missing (or drawn from other texts), fill the coder sheets, write and fill the reconciliation sheet",
            )


def _sample(cfg: StudyConfig, overwrite: bool) -> int:
    from analysis.plans.stage import draw

    print(draw(cfg, overwrite=overwrite).summary())
    return 0


def _sheets(cfg: StudyConfig, overwrite: bool) -> int:
    from analysis.plans.stage import write_coder_sheets

    paths = write_coder_sheets(cfg, overwrite=overwrite)
    print(f"Wrote {len(paths)} coding sheets to {paths[0].parent}")
    print("  These files contain personal text: keep them in the study's protected folder.")
    return 0


def _ingest(cfg: StudyConfig) -> int:
    from analysis.plans.stage import ingest

    state, agr = ingest(cfg)
    print(agr.summary())
    print(state.message)
    return 0 if state.ready else 1


def _estimate(cfg: StudyConfig, bundle: str | None, previous: str | None) -> int:
    from analysis.plans.stage import compute_tables, workdir
    from analysis.plans.tables import write_plans_tables

    tables, info = compute_tables(cfg, previous=previous)
    out = Path(bundle) if bundle else workdir(cfg) / "bundle"
    write_plans_tables(out, tables, info)
    est = tables["plans_estimates"]
    head = est[(est["stratum"] == "alle") & (est["estimator"] != "automated")]
    print(head[["measure", "estimator", "estimate", "ci_lower", "ci_upper"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"Plans tables written to {out / 'tables'}")
    return 0


def _simulate(cfg: StudyConfig, truth: str, reconciliation: bool, complete: bool) -> int:
    from analysis.plans.stage import workdir
    from analysis.plans.synth import simulate_coders, simulate_reconciliation

    wd = workdir(cfg)
    tpath = Path(truth) / "plans_codes.parquet"
    if not tpath.exists():
        raise ConfigError("the true POP codes not found", file=tpath, expected="the true POP codes", found="no such file", hint="pass the synthetic study's truth/ folder")
    if complete:
        from analysis.plans.synth import simulate_study

        print(simulate_study(cfg, tpath).summary())
        return 0
    if reconciliation:
        rec = wd / "sheets" / "reconciliation.xlsx"
        if not rec.exists():
            raise ConfigError("the reconciliation sheet not found", file=rec, expected="the reconciliation sheet", found="no such file", hint="run `popeval plans ingest` first")
        simulate_reconciliation(rec, tpath)
        print("Filled the reconciliation sheet from the true codes.")
    else:
        done = simulate_coders(wd / "sheets", tpath, seed=cfg.study.seed)
        print(f"Filled {len(done)} coder sheets from the true codes (with simulated coding errors).")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one step of the POP part."""
    if args.plans_command == "codebook":
        from analysis.plans.codebook import CODEBOOK

        print(CODEBOOK.summary())
        return 0
    from analysis.config import load_config

    cfg = load_config(args.config)
    if args.plans_command == "sample":
        return _sample(cfg, args.overwrite)
    if args.plans_command == "sheets":
        return _sheets(cfg, args.overwrite)
    if args.plans_command == "ingest":
        return _ingest(cfg)
    if args.plans_command == "estimate":
        return _estimate(cfg, args.out, args.previous)
    return _simulate(cfg, args.truth, args.reconciliation, args.complete)
