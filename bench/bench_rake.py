"""Benchmark: raking 1M respondents with popeval, a bare numpy IPF, Meta's balance and R's survey::rake.

Two cases, each in one run on *identical* data (written once to ``bench/_work/rake/``):

* ``3 string margins`` - region, sex, education as text columns (``object`` dtype);
* ``5 string margins`` - the five variables below, all text columns.

Every tool gets the text columns (what a user holds after reading a file) and must encode them
itself.  Reported per tool: wall time of the raking call alone (data loading excluded), IPF
iterations, and the largest relative margin error of the weights it returned (computed here, the
same way for every tool).  Ratios are tool time / popeval time.

The floor is a bare numpy IPF written for these data alone: ``pd.factorize`` of each column,
one ``np.bincount`` to the joint cells, IPF on the cell table, the cell factors mapped back to
the rows - no checks, no diagnostics, no collapse rule.

Convergence settings are matched as closely as the tools allow:

* popeval: ``rake(tol=1e-6)`` - every margin cell within 1e-6 relative;
* survey::rake: ``control = list(epsilon = 1e-6, maxit = 100)`` - R stops when no cell of the
  joint weighted table moves by more than ``1e-6 * sum(weights)`` in an iteration;
* balance: ``convergence_rate = 1e-6`` on margin proportions (its ``rake`` runs IPF on the
  joint cell table and maps the cell ratios back to rows).

R is optional (skipped with a note when ``Rscript`` or its ``survey`` package is missing, and
run on the five-margin case only: it takes minutes); balance runs in its own environment (see
``bench/peers.py``) and is skipped if that fails.

Run from the repository root::

    uv run --frozen python bench/bench_rake.py [--rows 1000000] [--repeat 5] [--no-r]

Writes ``bench/results/rake.md`` and ``bench/results/rake.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORK = ROOT / "bench" / "_work" / "rake"
RESULTS = ROOT / "bench" / "results"
TOL = 1e-6
MAXIT = 100

VARIABLES = {
    "region": [f"r{i:02d}" for i in range(10)],
    "age_band": ["18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75-84", "85+"],
    "sex": ["F", "M"],
    "education": ["none", "primary", "secondary", "tertiary", "doctorate"],
    "employment": ["employed", "unemployed", "inactive", "retired"],
}

CASES = {
    "3 string margins": ("region", "sex", "education"),
    "5 string margins": tuple(VARIABLES),
}

R_SCRIPT = r"""
suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
work <- args[1]; tol <- as.numeric(args[2]); maxit <- as.integer(args[3])
vars <- strsplit(args[4], ",")[[1]]
df <- read.csv(file.path(work, "sample.csv"), colClasses = c(rep("factor", 5), "numeric"))
pops <- lapply(vars, function(v) {
  m <- read.csv(file.path(work, paste0("margin_", v, ".csv")), colClasses = c("character", "numeric"))
  names(m) <- c(v, "Freq"); m
})
d <- svydesign(ids = ~1, weights = ~w, data = df)
t0 <- proc.time()[["elapsed"]]
r <- withCallingHandlers(
  rake(d, lapply(vars, function(v) as.formula(paste0("~", v))), pops,
       control = list(epsilon = tol, maxit = maxit)),
  warning = function(w) invokeRestart("muffleWarning"))
elapsed <- proc.time()[["elapsed"]] - t0
writeBin(as.numeric(weights(r)), file.path(work, "weights_r.bin"))
cat(sprintf('{"seconds": %.6f, "survey": "%s", "R": "%s"}\n', elapsed,
            as.character(packageVersion("survey")), R.version.string))
"""

BALANCE_SCRIPT = r"""
import json, sys, time, warnings, logging
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)
import balance
from balance.weighting_methods.rake import rake
work, tol, maxit, repeat = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variables = sys.argv[5].split(",")
meta = json.load(open(f"{work}/meta.json"))
codes = np.load(f"{work}/codes.npy")
sample = pd.DataFrame({v: np.asarray(meta["levels"][v], dtype=object)[codes[:, j]]
                       for j, v in enumerate(meta["variables"]) if v in variables})
w = pd.Series(np.load(f"{work}/w0.npy"))
cells = pd.read_csv(f"{work}/target_cells_{len(variables)}.csv", dtype={v: str for v in variables})
target_w = cells.pop("total")
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    out = rake(sample, w, cells, target_w, variables=variables, transformations=None,
               max_iteration=maxit, convergence_rate=tol)
    times.append(time.perf_counter() - t0)
np.save(f"{work}/weights_balance.npy", out["weight"].to_numpy(dtype=float))
its = out["model"].get("iterations")
print(json.dumps({"seconds": float(np.median(times)), "runs": times, "balance": balance.__version__,
                  "iterations": int(len(its)) if its is not None else None}))
"""


def make_data(
    n: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, dict[str, dict[str, float]]]:
    """Respondents with dependent characteristics (text columns), base weights and feasible margins."""
    k = {v: len(c) for v, c in VARIABLES.items()}
    age = rng.choice(k["age_band"], size=n, p=np.array([8, 15, 17, 17, 16, 13, 9, 5]) / 100)
    region = rng.choice(k["region"], size=n, p=rng.dirichlet(np.full(k["region"], 5.0)))
    sex = rng.integers(0, 2, size=n)
    edu_p = np.array([0.05, 0.2, 0.4, 0.3, 0.05])
    education = np.minimum(
        rng.choice(5, size=n, p=edu_p) + (age < 3) * rng.integers(0, 2, size=n), 4
    )
    employment = np.where(age >= 6, 3, rng.choice(3, size=n, p=[0.7, 0.1, 0.2]))
    employment = np.where((age >= 5) & (rng.random(n) < 0.3), 3, employment)
    codes = np.column_stack([region, age, sex, education, employment]).astype(np.int16)
    w0 = rng.lognormal(0.0, 0.3, size=n) * 5.0
    # response propensities differ by category: the population weights are w0 / propensity
    effects = [rng.normal(0.0, 0.35, size=len(c)) for c in VARIABLES.values()]
    true_w = w0 * np.exp(sum(e[codes[:, j]] for j, e in enumerate(effects)))
    true_w *= 5_000_000 / true_w.sum()
    margins = {
        v: dict(
            zip(
                levels, np.bincount(codes[:, j], weights=true_w, minlength=len(levels)), strict=True
            )
        )
        for j, (v, levels) in enumerate(VARIABLES.items())
    }
    df = pd.DataFrame(
        {
            v: np.asarray(levels, dtype=object)[codes[:, j]]
            for j, (v, levels) in enumerate(VARIABLES.items())
        }
    )
    df["w"] = w0
    return df, true_w, margins


def max_margin_error(
    df: pd.DataFrame, w: np.ndarray, margins: dict[str, dict[str, float]]
) -> float:
    """Largest relative difference between weighted sample and population over all margin cells."""
    worst = 0.0
    for v, spec in margins.items():
        codes = pd.Categorical(df[v], categories=list(spec)).codes
        got = np.bincount(codes, weights=w, minlength=len(spec))
        target = np.array(list(spec.values()))
        worst = max(worst, float(np.max(np.abs(got - target) / target)))
    return worst


def run_popeval(
    df: pd.DataFrame, margins: dict, repeat: int
) -> tuple[list[float], np.ndarray, int]:
    from analysis.weighting import SurveyDesign, rake

    times = []
    r = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = rake(SurveyDesign(df, weights="w"), margins, tol=TOL, max_iter=MAXIT)
        times.append(time.perf_counter() - t0)
    assert r is not None and r.diagnostics is not None
    return times, r.weights.to_numpy(), r.diagnostics.iterations


def bare_ipf(df: pd.DataFrame, w0: np.ndarray, margins: dict) -> tuple[np.ndarray, int]:
    """The floor: factorise, joint cells (a bincount), IPF on the cell table (same stopping rule), map back."""
    code = np.zeros(len(df), dtype=np.int64)
    per_var = []
    for v, spec in margins.items():
        c, uniq = pd.factorize(df[v])
        order = pd.Index(uniq).get_indexer(list(spec))
        per_var.append((np.array(list(spec.values()))[np.argsort(order)], len(uniq)))
        code = code * len(uniq) + c
    occupied = np.flatnonzero(np.bincount(code))
    remap = np.zeros(int(code.max()) + 1, dtype=np.intp)
    remap[occupied] = np.arange(len(occupied))
    cells, inv = occupied, remap[code]
    table = np.bincount(inv, weights=w0)
    cell_codes, rest = [], cells
    for _, k in reversed(per_var):
        cell_codes.append(rest % k)
        rest = rest // k
    cell_codes.reverse()
    fit = table.copy()
    it = 0
    for it in range(1, MAXIT + 1):  # noqa: B007
        for (target, k), cc in zip(per_var, cell_codes, strict=True):
            fit *= (target / np.bincount(cc, weights=fit, minlength=k))[cc]
        err = max(
            float(np.max(np.abs(np.bincount(cc, weights=fit, minlength=k) - t) / t))
            for (t, k), cc in zip(per_var, cell_codes, strict=True)
        )
        if err < TOL:
            break
    return w0 * (fit / table)[inv], it


def run_bare(df: pd.DataFrame, margins: dict, repeat: int) -> tuple[list[float], np.ndarray, int]:
    times = []
    w, it = np.empty(0), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        w, it = bare_ipf(df, df["w"].to_numpy(), margins)
        times.append(time.perf_counter() - t0)
    return times, w, it


def write_inputs(df: pd.DataFrame, margins: dict, true_w: np.ndarray) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    df.to_csv(WORK / "sample.csv", index=False)
    for v, spec in margins.items():
        pd.DataFrame({v: list(spec), "Freq": list(spec.values())}).to_csv(
            WORK / f"margin_{v}.csv", index=False
        )
    codes = np.column_stack(
        [pd.Categorical(df[v], categories=VARIABLES[v]).codes for v in VARIABLES]
    ).astype(np.int16)
    np.save(WORK / "codes.npy", codes)
    np.save(WORK / "w0.npy", df["w"].to_numpy())
    # balance takes a unit-level target: the population aggregated to its joint cells (exact margins)
    for variables in CASES.values():
        cells = (
            df[list(variables)].assign(total=true_w).groupby(list(variables))["total"].sum()
        )
        cells.reset_index().to_csv(WORK / f"target_cells_{len(variables)}.csv", index=False)
    meta = {"variables": list(VARIABLES), "levels": VARIABLES}
    (WORK / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def run_r(variables: tuple[str, ...]) -> dict | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"skipped": "Rscript not found"}
    script = WORK / "rake.R"
    script.write_text(R_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [rscript, str(script), str(WORK), str(TOL), str(MAXIT), ",".join(variables)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"skipped": f"R failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_balance(variables: tuple[str, ...], repeat: int) -> dict | None:
    from bench.peers import peer_python

    py = peer_python("balance")
    if py is None:
        return {"skipped": "could not create balance's environment"}
    script = WORK / "balance_rake.py"
    script.write_text(BALANCE_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [str(py), str(script), str(WORK), str(TOL), str(MAXIT), str(repeat), ",".join(variables)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"skipped": f"balance failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(tool: str, seconds: float, t_pop: float, iterations: Any, w: np.ndarray, w_pop: np.ndarray,
         df: pd.DataFrame, margins: dict) -> dict:
    return {
        "tool": tool,
        "seconds": seconds,
        "iterations": iterations,
        "max_rel_margin_error": max_margin_error(df, w, margins),
        "ratio_to_popeval": seconds / t_pop,
        "max_rel_weight_diff_vs_popeval": float(np.max(np.abs(w / w_pop - 1))),
    }


def run_case(name: str, variables: tuple[str, ...], df: pd.DataFrame, all_margins: dict,
             repeat: int, with_r: bool, versions: dict[str, str]) -> dict:
    margins = {v: all_margins[v] for v in variables}
    data = df[[*variables, "w"]]
    times, w_pop, it_pop = run_popeval(data, margins, repeat)
    t_pop = float(np.median(times))
    rows = [_row("popeval analysis.weighting.rake", t_pop, t_pop, it_pop, w_pop, w_pop, data, margins)]
    bt, w_bare, it_bare = run_bare(data, margins, repeat)
    rows.append(_row("floor: bare numpy IPF", float(np.median(bt)), t_pop, it_bare, w_bare, w_pop, data, margins))
    b = run_balance(variables, repeat)
    if b is not None and "skipped" not in b:
        w_b = np.load(WORK / "weights_balance.npy")
        rows.append(_row("balance rake", b["seconds"], t_pop, b["iterations"], w_b, w_pop, data, margins))
        versions["balance"] = b["balance"]
    else:
        rows.append({"tool": "balance rake", "skipped": (b or {}).get("skipped", "unavailable")})
    if with_r:
        r = run_r(variables)
        if r is not None and "skipped" not in r:
            w_r = np.fromfile(WORK / "weights_r.bin", dtype=np.float64)
            rows.append(_row("R survey::rake", r["seconds"], t_pop, None, w_r, w_pop, data, margins))
            versions.update({"R": r["R"].removeprefix("R version "), "survey": r["survey"]})
        else:
            rows.append({"tool": "R survey::rake", "skipped": (r or {}).get("skipped", "unavailable")})
    return {"case": name, "variables": list(variables), "popeval_runs_seconds": times,
            "floor_runs_seconds": bt, "results": rows}


def _load() -> str:
    import os

    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions per tool (median reported; R runs once)"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--no-r", action="store_true", help="skip R survey::rake (minutes at 1M rows)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    df, true_w, margins = make_data(args.rows, rng)
    write_inputs(df, margins, true_w)
    versions: dict[str, str] = {
        "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
    }
    load_before = _load()
    cases = [
        run_case(name, variables, df, margins, args.repeat,
                 with_r=not args.no_r and len(variables) == 5, versions=versions)
        for name, variables in CASES.items()
    ]
    load_after = _load()
    result = {
        "benchmark": "rake",
        "rows": args.rows,
        "margins": {v: len(c) for v, c in VARIABLES.items()},
        "tolerance": TOL,
        "max_iterations": MAXIT,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": load_after},
        "versions": versions,
        "cases": cases,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rake.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Raking {args.rows:,} rows ({', '.join(f'{v}: {k}' for v, k in result['margins'].items())} categories)",
        "",
        "Same data and margins for every tool, one run; the margins' columns are text (`object`) columns "
        "that every tool encodes itself; time of the raking call only, median of "
        f"{args.repeat} runs (R: one run). Ratio = tool time / popeval time. Margin error is the largest "
        "relative difference between weighted sample and population over all margin cells; weight "
        "difference is the largest relative difference to popeval's weights. The floor is a bare numpy "
        "IPF for these data alone (factorise, joint cells, IPF, map back; no checks, no diagnostics).",
        "",
        f"Machine: {os.cpu_count()} CPUs shared with other jobs, load average (1, 5, 15 min) "
        f"{load_before} before and {load_after} after: absolute seconds are inflated, the ratios "
        "(all tools measured in the same minutes) are the figures to compare.",
    ]
    for case in cases:
        lines += [
            "",
            f"## {case['case']} ({', '.join(case['variables'])})",
            "",
            "| tool | seconds | ratio to popeval | iterations | max rel. margin error | max rel. weight diff |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in case["results"]:
            if "skipped" in row:
                lines.append(f"| {row['tool']} | skipped: {row['skipped']} | | | | |")
                continue
            it = "" if row.get("iterations") is None else str(row["iterations"])
            lines.append(
                f"| {row['tool']} | {row['seconds']:.3f} | {row['ratio_to_popeval']:.2f} | {it} | "
                f"{row['max_rel_margin_error']:.2e} | {row['max_rel_weight_diff_vs_popeval']:.1e} |"
            )
        for row in case["results"]:
            if "skipped" not in row and row["max_rel_margin_error"] > 10 * TOL:
                lines += [
                    "",
                    f"Note: {row['tool']} stopped by its own convergence rule with margins still off by up to "
                    f"{row['max_rel_margin_error']:.1e} (relative); it did less work than popeval, so its ratio "
                    "understates the difference at equal accuracy.",
                ]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    (RESULTS / "rake.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
