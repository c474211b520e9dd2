"""Benchmark: ingest, link and margins of the admin population at full scale.

Generates a synthetic study large enough for about 5 million DWSE applications (``--persons``,
default 3,850,000 persons in the admin universe, of whom about 2.3 million have a DWSE application),
then times each step and records its peak memory:

* ``generate``   the synthetic extracts (CSV), not part of the pipeline (with fewer orphan survey
  responses than the default, since the generator keeps only 64 spare tokens for them);
* ``ingest``     chunked validation with :mod:`survey.validate` and the load into DuckDB;
* ``link``       the population table and the linkage report;
* ``margins``    the default margins;
* ``profile``    the suppressed population profile.

Each step runs in a fresh subprocess, so its peak resident memory (``ru_maxrss`` of the child) is its
own.  ``tracemalloc`` would miss DuckDB's and Arrow's native allocations, so it is not used.  Results go
to ``bench/results/population.json`` and ``bench/results/population.md``.

Usage::

    python bench/bench_population.py [--persons N] [--seed S] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

_STEPS = {
    "generate": (
        "from analysis.synth import SynthParams, generate\n"
        "s = generate(persons={persons}, seed={seed}, out=r'{work}/study', params=SynthParams(orphan_response_p=0.0005))\n"
        "info = {{'applications': s.applications, 'trajectories': s.trajectories, 'oc_users': s.oc_users}}\n"
    ),
    "ingest": (
        "from analysis.population import ingest\n"
        "r = ingest(r'{work}/study/admin/dwse_applications.csv', r'{work}/study/admin/vdab_trajectories.csv', r'{work}/popeval.duckdb')\n"
        "info = {{s.table: s.rows for s in r.sources}}\n"
    ),
    "link": (
        "from analysis.population import link\n"
        "r = link(r'{work}/popeval.duckdb', r'{work}/study/survey/461283/20230704T080000Z')\n"
        "info = {{'dwse_persons': r.dwse_persons, 'population': r.population, 'pop_users': r.pop_users,"
        " 'vdab_persons': r.vdab_persons, 'participants': r.participants}}\n"
    ),
    "margins": (
        "from analysis.population import margins\n"
        "m = margins(r'{work}/popeval.duckdb')\n"
        "info = {{'version': m.version, 'cells': len(m.table)}}\n"
    ),
    "profile": (
        "from analysis.population import profile\n"
        "p = profile(r'{work}/popeval.duckdb')\n"
        "info = {{'suppressed_cells': p.suppressed_cells,"
        " 'pop_share_pct': {{r.incentive: round(float(r.pct_pop), 3) for r in p.pop_share.itertuples()}}}}\n"
    ),
}

_WRAP = (
    "import json, resource, time\n"
    "t0 = time.perf_counter()\n"
    "{body}"
    "dt = time.perf_counter() - t0\n"
    "print(json.dumps({{'seconds': dt, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'info': info}}))\n"
)


def _run(step: str, persons: int, seed: int, work: Path) -> dict:
    body = _STEPS[step].format(persons=persons, seed=seed, work=work)
    code = _WRAP.format(body=body)
    root = Path(__file__).resolve().parent.parent
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=3_850_000)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--work", default="bench/_work/population")
    ap.add_argument("--skip-generate", action="store_true", help="reuse a study generated before in --work")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for step in _STEPS:
        if step == "generate" and args.skip_generate:
            continue
        print(f"{step} ...", flush=True)
        results[step] = _run(step, args.persons, args.seed, work)
        print(f"  {results[step]['seconds']:.1f} s, peak RSS {results[step]['peak_rss_mib']:.0f} MiB", flush=True)
    import duckdb

    sizes = {
        "dwse_csv_mib": (work / "study/admin/dwse_applications.csv").stat().st_size / 2**20,
        "vdab_csv_mib": (work / "study/admin/vdab_trajectories.csv").stat().st_size / 2**20,
        "duckdb_mib": (work / "popeval.duckdb").stat().st_size / 2**20,
    }
    record = {
        "benchmark": "admin population: ingest, link, margins, profile",
        "persons_in_universe": args.persons,
        "seed": args.seed,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "duckdb": duckdb.__version__},
        "files": sizes,
        "steps": results,
    }
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "population.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    lines = [
        "# Admin population benchmark",
        "",
        f"Synthetic study: {args.persons:,} persons in the admin universe (seed {args.seed}); "
        f"{results.get('ingest', {}).get('info', {}).get('dwse_applications', 0):,} DWSE applications, "
        f"{results.get('ingest', {}).get('info', {}).get('vdab_trajectories', 0):,} VDAB trajectories; "
        f"{results.get('link', {}).get('info', {}).get('dwse_persons', 0):,} persons with a DWSE application.",
        f"Machine: {_cpus()} CPUs, Python {platform.python_version()}, DuckDB {duckdb.__version__}. "
        f"CSV {sizes['dwse_csv_mib'] + sizes['vdab_csv_mib']:.0f} MiB; database {sizes['duckdb_mib']:.0f} MiB.",
        "",
        "| step | seconds | peak RSS (MiB) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['seconds']:.1f} | {v['peak_rss_mib']:.0f} |" for k, v in results.items()]
    lines += ["", "Each step runs in its own process; peak RSS is that process's maximum resident set size."]
    (out_dir / "population.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    sys.exit(main())
