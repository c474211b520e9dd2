"""Benchmark: end-to-end replicates all at once on cells, one by one on cells, and on the rows.

Usage::

    uv run --frozen python bench/bench_replicates.py [--persons 550000] [--replicates 500]
        [--workers 1] [--seed 2023]

One run on the synthetic study (``--persons`` in the admin population gives about one
respondent per 106 persons: 550,000 persons, about 5,200 respondents).  Both runs compute the
same replicates (the same Rao-Wu weights) of every estimator of the effects table: re-raking,
re-fitting the propensity score, re-matching with all ties used, the matched WLS, regression
adjustment, IPW, AIPW, the ordered logit and the naive difference, restricted to the estimand's
support.  Three runs: all replicates at once on the design cells (stacked fits, the default),
the replicates one by one on the cells (``stacked=False``) and one by one on the rows
(``cells=False``, every respondent a cell of its own: the floor this names).  Reported: CPU
seconds (``time.process_time``; the machine is shared, so wall time is also given but CPU time
is the figure) of ``end_to_end_variance`` (data generation excluded), milliseconds per
replicate, the ratios to the stacked run, and the largest relative difference between the runs'
standard errors (they must agree to rounding).  Run single-threaded
(``OPENBLAS_NUM_THREADS=1``).  Results go to ``bench/results/replicates.md`` and
``bench/results/replicates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _study(persons: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """The analysis frame (with outcomes) and the population margins of a synthetic study."""
    import duckdb

    from analysis.estimation import EstimatorSpec
    from analysis.pipeline import _analysis_frame
    from analysis.population import ingest, link, load_population, margins
    from analysis.synth import generate
    from survey.parse import parse_snapshot

    tmp = Path(tempfile.mkdtemp(prefix="bench_replicates_"))
    try:
        generate(persons=persons, seed=seed, out=tmp, file_format="parquet")
        snap = next((tmp / "survey").glob("*/*/manifest.json")).parent
        con = duckdb.connect(":memory:")
        try:
            ingest(tmp / "admin" / "dwse_applications.parquet", tmp / "admin" / "vdab_trajectories.parquet", db=con)
            link(con, participants=snap)
            population = load_population(con)
            spec = EstimatorSpec()
            mg = margins(con, [k[0] if len(k) == 1 else tuple(k) for k in spec.margins])
        finally:
            con.close()
        frame, _ = _analysis_frame(parse_snapshot(snap), population, spec.outcomes, with_outcomes=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return frame, {k: dict(v) for k, v in mg.totals.items()}


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=550_000)
    ap.add_argument("--replicates", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2023)
    args = ap.parse_args(argv)

    import scipy

    from analysis.estimation import (
        REPLICATE_METHODS,
        EstimatorSpec,
        _prepare,
        design_stage,
        end_to_end_variance,
        weight_stage,
    )

    frame, totals = _study(args.persons, args.seed)
    spec = EstimatorSpec(methods=REPLICATE_METHODS)
    design = design_stage(frame, weight_stage(frame, totals, spec).weights, spec, with_balance=False)
    inside = None if design.inside is None else design.inside.to_numpy()
    prep = _prepare(frame, totals, spec, cells=True)
    load_before = _load()
    runs: dict[str, dict] = {}
    reps: dict[str, pd.DataFrame] = {}
    for name, cells, stacked in (("stacked", True, True), ("cells", True, False), ("rows", False, False)):
        t0, c0 = time.perf_counter(), time.process_time()
        rep = end_to_end_variance(
            frame, totals, spec, n_replicates=args.replicates, workers=args.workers,
            rng=np.random.default_rng(args.seed), inside=inside, cells=cells, stacked=stacked,
        )
        cpu, sec = time.process_time() - c0, time.perf_counter() - t0
        reps[name] = rep.to_frame()
        runs[name] = {"cpu_seconds": cpu, "seconds": sec, "ms_per_replicate": 1000 * cpu / args.replicates,
                      "failed_replicates_max": int(rep.n_failed.max())}
    load_after = _load()
    ref = reps["stacked"]
    se_diff = max(float(np.nanmax(np.abs(ref["bse"] - reps[k]["bse"].reindex(ref.index)) / np.abs(reps[k]["bse"].reindex(ref.index))))
                  for k in ("cells", "rows"))
    same_counts = all(bool((ref[["n_replicates", "n_failed"]] == reps[k][["n_replicates", "n_failed"]].reindex(ref.index)).all().all())
                      for k in ("cells", "rows"))
    ratio = {k: runs[k]["cpu_seconds"] / runs["stacked"]["cpu_seconds"] for k in runs}
    result = {
        "respondents": len(frame),
        "design_cells": int(prep.treat.size),
        "units_per_outcome": {o: int(u.design.size) for o, u in zip(prep.outcomes, prep.units, strict=True)},
        "replicates": args.replicates,
        "workers": args.workers,
        "methods": list(REPLICATE_METHODS),
        "estimates": len(ref),
        "runs": runs,
        "cpu_ratio_to_stacked": ratio,
        "max_rel_se_difference": se_diff,
        "same_replicate_counts": same_counts,
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "pandas": pd.__version__},
    }
    RESULTS.mkdir(exist_ok=True)
    _write(RESULTS / "replicates.json", json.dumps(result, indent=2) + "\n")
    lines = [
        f"# End-to-end replicates: {args.replicates} replicates on {len(frame):,} respondents",
        "",
        "Every replicate re-rakes to the population margins, re-fits the propensity score, re-matches "
        "(all ties used) and re-estimates every method of the effects table "
        f"({', '.join(REPLICATE_METHODS)}; {len(ref)} estimates) within the estimand's support. "
        f"The respondents fall into {prep.treat.size} design cells (POP x covariates x raking variables); "
        "per outcome, units are a cell's respondents with the same answer "
        f"({', '.join(f'{o}: {u.design.size}' for o, u in zip(prep.outcomes, prep.units, strict=True))}). "
        "Stacked: all replicates at once (weights as (replicates x cells) matrices, stacked fits); cells: "
        "one replicate at a time on the cells; the floor is the same computation on the rows. One run each, "
        "the same replicate weights.",
        "",
        f"Machine: {os.cpu_count()} CPUs shared with other jobs, load average (1, 5, 15 min) {load_before} before "
        f"and {load_after} after: CPU seconds (process time) are the figure; the ratios (all measured in the "
        "same minutes) are the figures to compare.",
        "",
        "| run | CPU seconds | wall seconds | CPU ms per replicate | CPU ratio to stacked |",
        "|---|---:|---:|---:|---:|",
        *(f"| {label} | {runs[k]['cpu_seconds']:.2f} | {runs[k]['seconds']:.2f} | {runs[k]['ms_per_replicate']:.1f} | {ratio[k]:.2f} |"
          for k, label in (("stacked", "stacked (default)"), ("cells", "cells, one by one (`stacked=False`)"),
                           ("rows", "rows (`cells=False`)"))),
        "",
        f"Largest relative difference between the stacked run's standard errors and the others': {se_diff:.1e}; "
        f"the same successful and failed replicates per estimate: {'yes' if same_counts else 'NO'}.",
        "",
        f"Workers: {args.workers}. Versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pandas {pd.__version__}.",
        "",
    ]
    _write(RESULTS / "replicates.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
