"""Benchmark: end-to-end replicates on cells of identical respondents vs on the rows.

Usage::

    uv run --frozen python bench/bench_replicates.py [--persons 550000] [--replicates 500]
        [--workers 1] [--seed 2023]

One run on the synthetic study (``--persons`` in the admin population gives about one
respondent per 106 persons: 550,000 persons, about 5,200 respondents).  Both runs compute the
same replicates (the same Rao-Wu weights) of every estimator of the effects table: re-raking,
re-fitting the propensity score, re-matching with all ties used, the matched WLS, regression
adjustment, IPW, AIPW, the ordered logit and the naive difference, restricted to the estimand's
support.  The row-level run (``cells=False``) is the floor this names: the same computation with
every respondent a cell of its own.  Reported: wall time of ``end_to_end_variance`` (data
generation excluded), milliseconds per replicate, the ratio rows / cells, and the largest relative
difference between the two runs' standard errors (they must agree to rounding).  Results go to
``bench/results/replicates.md`` and ``bench/results/replicates.json``.
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
    for name, cells in (("cells", True), ("rows", False)):
        t0 = time.perf_counter()
        rep = end_to_end_variance(
            frame, totals, spec, n_replicates=args.replicates, workers=args.workers,
            rng=np.random.default_rng(args.seed), inside=inside, cells=cells,
        )
        sec = time.perf_counter() - t0
        reps[name] = rep.to_frame()
        runs[name] = {"seconds": sec, "ms_per_replicate": 1000 * sec / args.replicates,
                      "failed_replicates_max": int(rep.n_failed.max())}
    load_after = _load()
    a, b = reps["cells"]["bse"], reps["rows"]["bse"].reindex(reps["cells"].index)
    se_diff = float(np.nanmax(np.abs(a - b) / np.abs(b)))
    same_counts = bool((reps["cells"][["n_replicates", "n_failed"]] == reps["rows"][["n_replicates", "n_failed"]].reindex(reps["cells"].index)).all().all())
    ratio = runs["rows"]["seconds"] / runs["cells"]["seconds"]
    result = {
        "respondents": len(frame),
        "design_cells": int(prep.treat.size),
        "units_per_outcome": {o: int(u.design.size) for o, u in zip(prep.outcomes, prep.units, strict=True)},
        "replicates": args.replicates,
        "workers": args.workers,
        "methods": list(REPLICATE_METHODS),
        "estimates": len(reps["cells"]),
        "runs": runs,
        "ratio_rows_to_cells": ratio,
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
        f"({', '.join(REPLICATE_METHODS)}; {len(reps['cells'])} estimates) within the estimand's support. "
        f"The respondents fall into {prep.treat.size} design cells (POP x covariates x raking variables); "
        "per outcome, units are a cell's respondents with the same answer "
        f"({', '.join(f'{o}: {u.design.size}' for o, u in zip(prep.outcomes, prep.units, strict=True))}). "
        "The floor is the same computation on the rows. One run each, the same replicate weights.",
        "",
        f"Machine: {os.cpu_count()} CPUs shared with other jobs, load average (1, 5, 15 min) {load_before} before "
        f"and {load_after} after: absolute seconds are inflated, the ratio (both measured in the same minutes) "
        "is the figure to compare.",
        "",
        "| run | seconds | ms per replicate | ratio to cells |",
        "|---|---:|---:|---:|",
        f"| cells (`cells=True`) | {runs['cells']['seconds']:.2f} | {runs['cells']['ms_per_replicate']:.1f} | 1.00 |",
        f"| rows (`cells=False`) | {runs['rows']['seconds']:.2f} | {runs['rows']['ms_per_replicate']:.1f} | {ratio:.2f} |",
        "",
        f"Largest relative difference between the two runs' standard errors: {se_diff:.1e}; "
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
