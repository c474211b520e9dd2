"""Benchmark: ingest, link, margins and profile of the admin population at full scale, against DuckDB's floor.

Generates a synthetic study large enough for about 5 million DWSE applications (``--persons``,
default 3,850,000 persons in the admin universe), then measures in one run:

* ``generate``  the synthetic extracts (CSV), not part of the pipeline (with fewer orphan survey
  responses than the default, since the generator keeps only 64 spare tokens for them);
* ``floor``     DuckDB alone on the same files: both CSVs read with its own type detection, the
  checks a careful analyst would write (codes, id patterns, duplicate keys, ranges, end before
  start) and a person-level link (latest approved OC application per person, POP status, the
  loopbaancheque history), written to a database file;
* ``popeval``   :func:`~analysis.population.ingest` + :func:`~analysis.population.link` +
  :func:`~analysis.population.margins` + :func:`~analysis.population.profile` in one process, each
  step timed.

The floor runs before and after popeval and its mean is the reference, so that a change of the
machine's load during the run shifts both sides alike; the figure to read is the ratio popeval /
floor.  Each measured part runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is
its own; ``tracemalloc`` would miss DuckDB's and Arrow's native allocations, so it is not used.
The load average is recorded before and after.  Results go to ``bench/results/population.json``
and ``bench/results/population.md``.

Python's compiled bytecode is cached (``PYTHONPYCACHEPREFIX`` under ``--work``) and a warm-up run
on a small study (not measured) fills the cache first, as in an installed environment: without a
bytecode cache every measured process would compile pandas and the other imports from source
(seconds of CPU that neither depend on the data nor belong to the pipeline).

Usage::

    python bench/bench_population.py [--persons N] [--seed S] [--work DIR] [--skip-generate]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

_GENERATE = """
from analysis.synth import SynthParams, generate
s = generate(persons={persons}, seed={seed}, out=r'{work}/study', params=SynthParams(orphan_response_p=0.0005))
info = {{'applications': s.applications, 'trajectories': s.trajectories, 'oc_users': s.oc_users}}
"""

_FLOOR = """
import duckdb
from pathlib import Path
db = Path(r'{work}/floor.duckdb')
db.unlink(missing_ok=True)
con = duckdb.connect(str(db))
con.execute("CREATE TABLE d AS SELECT * FROM read_csv(?, header = true)", [r'{work}/study/admin/dwse_applications.csv'])
con.execute("CREATE TABLE v AS SELECT * FROM read_csv(?, header = true)", [r'{work}/study/admin/vdab_trajectories.csv'])
checks = con.execute(
    "SELECT count_if(incentive NOT IN ('OC', 'VOV', 'VAPOK')), count_if(status NOT IN ('goedgekeurd', 'geweigerd')),"
    " count_if(sex NOT IN ('M', 'V')), count_if(educ NOT IN ('laag', 'midden', 'hoog')),"
    " count_if(NOT regexp_full_match(application_id, '[A-Z]{{2,5}}-[0-9]{{4}}-[0-9]{{7}}')),"
    " count_if(NOT regexp_full_match(training_id, 'OPL[0-9]{{6}}')),"
    " count_if(birth_year NOT BETWEEN 1900 AND 2010), count(*) - count(DISTINCT application_id) FROM d"
).fetchall()[0]
vchecks = con.execute(
    "SELECT count(*) - count(DISTINCT trajectory_id), count_if(end_date < start_date),"
    " count_if(NOT regexp_full_match(loopbaancentrum, 'LBC[0-9]{{3}}')) FROM v"
).fetchall()[0]
con.execute(
    "CREATE TABLE p AS "
    "WITH oc AS (SELECT * FROM d WHERE incentive = 'OC' AND status = 'goedgekeurd'), "
    "latest AS (SELECT * FROM oc QUALIFY row_number() OVER (PARTITION BY person_key ORDER BY application_date DESC, application_id DESC) = 1), "
    "agg AS (SELECT person_key, count(*) AS n, bool_or(pop_based = 1) AS pop, max(application_date) AS last FROM oc GROUP BY person_key), "
    "lbc AS (SELECT t.person_key, count(*) AS n_traj, bool_or(t.pop_attest = 1) AS attest, bool_or(t.start_date <= a.last) AS before "
    "        FROM v t JOIN agg a USING (person_key) GROUP BY t.person_key) "
    "SELECT l.person_key, a.pop, a.n, l.sex, l.educ, l.sector, l.company_size, l.province, "
    "coalesce(lbc.n_traj, 0) AS n_traj, coalesce(lbc.attest, false) AS attest, coalesce(lbc.before, false) AS before "
    "FROM latest l JOIN agg a USING (person_key) LEFT JOIN lbc USING (person_key)"
)
n = con.execute("SELECT count(*), count_if(pop) FROM p").fetchall()[0]
con.close()
db.unlink()
steps = {{}}
info = {{'population': int(n[0]), 'pop_users': int(n[1]), 'failed_checks': int(sum(checks) + sum(vchecks))}}
"""

_POPEVAL = """
from analysis.population import ingest, link, margins, profile
from pathlib import Path
db = Path(r'{work}/popeval.duckdb')
db.unlink(missing_ok=True)
steps = {{}}
def lap(name, t):
    steps[name] = {{'seconds': time.perf_counter() - t, 'peak_rss_mib_so_far': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
t = time.perf_counter()
r = ingest(r'{work}/study/admin/dwse_applications.csv', r'{work}/study/admin/vdab_trajectories.csv', db)
lap('ingest', t); t = time.perf_counter()
lr = link(db, r'{work}/study/survey/461283/20230704T080000Z')
lap('link', t); t = time.perf_counter()
m = margins(db)
lap('margins', t); t = time.perf_counter()
p = profile(db)
lap('profile', t)
info = {{
    'rows': {{s.table: s.rows for s in r.sources}},
    'dwse_persons': lr.dwse_persons, 'population': lr.population, 'pop_users': lr.pop_users,
    'vdab_persons': lr.vdab_persons, 'participants': lr.participants,
    'margins_version': m.version, 'margin_cells': len(m.table), 'suppressed_cells': p.suppressed_cells,
    'pop_share_pct': {{x.incentive: round(float(x.pct_pop), 3) for x in p.pop_share.itertuples()}},
    'database_mib': db.stat().st_size / 2**20,
}}
"""

_WRAP = (
    "import json, resource, time\n"
    "t0 = time.perf_counter()\n"
    "{body}"
    "dt = time.perf_counter() - t0\n"
    "print(json.dumps({{'seconds': dt, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
    " 'steps': steps if 'steps' in dir() else {{}}, 'info': info}}))\n"
)


def _env(pycache: Path) -> dict[str, str]:
    """The measured processes' environment: bytecode cached in ``pycache`` (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _run(body: str, persons: int, seed: int, work: Path, pycache: Path | None = None) -> dict:
    code = _WRAP.format(body=body.format(persons=persons, seed=seed, work=work))
    root = Path(__file__).resolve().parent.parent
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False, env=_env(pycache or work / "pycache"))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
    if not args.skip_generate:
        print("generate ...", flush=True)
        results["generate"] = _run(_GENERATE, args.persons, args.seed, work)
    # warm-up (not measured): a small study through generate, the floor and popeval fills the bytecode cache
    warm = work / "warmup"
    if not (warm / "study" / "admin" / "dwse_applications.csv").is_file():
        _run(_GENERATE, 2_000, args.seed, warm, work / "pycache")
    for body in (_FLOOR, _POPEVAL):
        _run(body, 2_000, args.seed, warm, work / "pycache")
    load_before = _load()
    for name, body in (("floor_before", _FLOOR), ("popeval", _POPEVAL), ("floor_after", _FLOOR)):
        print(f"{name} ...", flush=True)
        results[name] = _run(body, args.persons, args.seed, work)
        print(f"  {results[name]['seconds']:.1f} s, peak RSS {results[name]['peak_rss_mib']:.0f} MiB", flush=True)
    load_after = _load()
    import duckdb

    floor = (results["floor_before"]["seconds"] + results["floor_after"]["seconds"]) / 2
    pe = results["popeval"]
    ratio = pe["seconds"] / floor
    sizes = {
        "dwse_csv_mib": (work / "study/admin/dwse_applications.csv").stat().st_size / 2**20,
        "vdab_csv_mib": (work / "study/admin/vdab_trajectories.csv").stat().st_size / 2**20,
        "duckdb_mib": pe["info"]["database_mib"],
    }
    machine = {
        "cpus": _cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "bytecode": "cached (PYTHONPYCACHEPREFIX), after an unmeasured warm-up run on a 2,000-person study",
    }
    record = {
        "benchmark": "admin population: ingest, link, margins, profile against DuckDB's floor",
        "persons_in_universe": args.persons,
        "seed": args.seed,
        "machine": machine,
        "files": sizes,
        "floor_seconds": floor,
        "ratio_to_floor": ratio,
        "results": results,
    }
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "population.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    info = pe["info"]
    rows = info["rows"]
    lines = [
        "# Admin population benchmark",
        "",
        f"Synthetic study: {args.persons:,} persons in the admin universe (seed {args.seed}); "
        f"{rows.get('dwse_applications', 0):,} DWSE applications, {rows.get('vdab_trajectories', 0):,} VDAB trajectories; "
        f"{info['dwse_persons']:,} persons with a DWSE application, {info['population']:,} in the study population.",
        f"CSV {sizes['dwse_csv_mib'] + sizes['vdab_csv_mib']:.0f} MiB; database {sizes['duckdb_mib']:.0f} MiB.",
        "",
        f"Machine: {_cpus()} CPUs, {platform.platform()}, Python {platform.python_version()}, DuckDB {duckdb.__version__}. "
        f"The machine is shared with other jobs: load average (1, 5, 15 min) {', '.join(map(str, load_before))} before "
        f"and {', '.join(map(str, load_after))} after, so the absolute seconds are inflated; the ratio to DuckDB's floor "
        "(both measured in the same minutes) is the figure to compare. Python bytecode is cached, after an unmeasured "
        "warm-up run on a small study, as in an installed environment.",
        "",
        f"**popeval / floor: {ratio:.2f}** (popeval {pe['seconds']:.1f} s, peak RSS {pe['peak_rss_mib']:.0f} MiB; "
        f"floor {floor:.1f} s, the mean of {results['floor_before']['seconds']:.1f} s before and "
        f"{results['floor_after']['seconds']:.1f} s after, peak RSS {max(results['floor_before']['peak_rss_mib'], results['floor_after']['peak_rss_mib']):.0f} MiB).",
        "",
        "| step | seconds | peak RSS so far (MiB) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['seconds']:.1f} | {v['peak_rss_mib_so_far']:.0f} |" for k, v in pe["steps"].items()]
    lines += [f"| **ingest + link + margins + profile** | **{pe['seconds']:.1f}** | **{pe['peak_rss_mib']:.0f}** |"]
    if "generate" in results:
        g = results["generate"]
        lines += ["", f"Generating the extracts (not part of the pipeline): {g['seconds']:.0f} s, peak RSS {g['peak_rss_mib']:.0f} MiB."]
    lines += [
        "",
        "The floor is DuckDB alone on the same files: both CSVs read with its type detection, the checks a careful "
        "analyst would write (codes, id patterns, duplicate keys, a range, end before start) and a person-level link "
        "(latest approved OC application, POP status, loopbaancheque history) written to a database file. popeval does "
        "more: every value of every column is validated against the data model with the first offending row found, every "
        "column is scanned for raw INSZ, the key format is checked, the cross-field checks are counted, the linkage is "
        "accounted for person by person (exclusion reasons, conflicts per variable, VDAB and survey counts), and the "
        "margins and the suppressed profile are computed. All three parts run in their own process; peak RSS is that "
        "process's maximum resident set size.",
    ]
    (out_dir / "population.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    sys.exit(main())
