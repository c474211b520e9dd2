"""Benchmark: raking 1M respondents to 5 margins with popeval, R's survey::rake and Meta's balance.

All three tools rake *identical* data (written once to ``bench/_work/rake/``) to the same
population margins, in one run.  Reported per tool: wall time of the raking call alone (data
loading excluded), IPF iterations, and the largest relative margin error of the weights it
returned (computed here, the same way for every tool).  Ratios are tool time / popeval time.

Convergence settings are matched as closely as the tools allow:

* popeval: ``rake(tol=1e-6)`` - every margin cell within 1e-6 relative;
* survey::rake: ``control = list(epsilon = 1e-6, maxit = 100)`` - R stops when no cell of the
  joint weighted table moves by more than ``1e-6 * sum(weights)`` in an iteration;
* balance: ``convergence_rate = 1e-6`` on margin proportions (its ``rake`` runs IPF on the
  joint cell table and maps the cell ratios back to rows).

R is optional (skipped with a note when ``Rscript`` or its ``survey`` package is missing);
balance runs in its own environment (see ``bench/peers.py``) and is skipped if that fails.

Run from the repository root::

    uv run --frozen python bench/bench_rake.py [--rows 1000000] [--repeat 3]

Writes ``bench/results/rake.md`` and ``bench/results/rake.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

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

R_SCRIPT = r"""
suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
work <- args[1]; tol <- as.numeric(args[2]); maxit <- as.integer(args[3])
df <- read.csv(file.path(work, "sample.csv"), colClasses = c(rep("factor", 5), "numeric"))
pops <- lapply(c("region", "age_band", "sex", "education", "employment"), function(v) {
  m <- read.csv(file.path(work, paste0("margin_", v, ".csv")), colClasses = c("character", "numeric"))
  names(m) <- c(v, "Freq"); m
})
d <- svydesign(ids = ~1, weights = ~w, data = df)
t0 <- proc.time()[["elapsed"]]
r <- withCallingHandlers(
  rake(d, list(~region, ~age_band, ~sex, ~education, ~employment), pops,
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
work, tol, maxit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
meta = json.load(open(f"{work}/meta.json"))
codes = np.load(f"{work}/codes.npy")
sample = pd.DataFrame({v: pd.Categorical.from_codes(codes[:, j], meta["levels"][v]).astype(str)
                       for j, v in enumerate(meta["variables"])})
w = pd.Series(np.load(f"{work}/w0.npy"))
cells = pd.read_csv(f"{work}/target_cells.csv", dtype={v: str for v in meta["variables"]})
target_w = cells.pop("total")
t0 = time.perf_counter()
out = rake(sample, w, cells, target_w, variables=meta["variables"], transformations=None,
           max_iteration=maxit, convergence_rate=tol)
elapsed = time.perf_counter() - t0
np.save(f"{work}/weights_balance.npy", out["weight"].to_numpy(dtype=float))
its = out["model"].get("iterations")
print(json.dumps({"seconds": elapsed, "balance": balance.__version__,
                  "iterations": int(len(its)) if its is not None else None}))
"""


def make_data(
    n: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, dict[str, dict[str, float]]]:
    """Respondents with dependent characteristics, base weights and feasible population margins."""
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
            v: pd.Categorical.from_codes(codes[:, j], levels)
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
        codes = df[v].cat.codes.to_numpy()
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


def write_inputs(df: pd.DataFrame, margins: dict, true_w: np.ndarray) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    df.to_csv(WORK / "sample.csv", index=False)
    for v, spec in margins.items():
        pd.DataFrame({v: list(spec), "Freq": list(spec.values())}).to_csv(
            WORK / f"margin_{v}.csv", index=False
        )
    codes = np.column_stack([df[v].cat.codes.to_numpy() for v in VARIABLES]).astype(np.int16)
    np.save(WORK / "codes.npy", codes)
    np.save(WORK / "w0.npy", df["w"].to_numpy())
    # balance takes a unit-level target: the population aggregated to its joint cells (exact margins)
    cells = (
        df[list(VARIABLES)]
        .astype(str)
        .assign(total=true_w)
        .groupby(list(VARIABLES), observed=True)["total"]
        .sum()
    )
    cells.reset_index().to_csv(WORK / "target_cells.csv", index=False)
    meta = {"variables": list(VARIABLES), "levels": VARIABLES}
    (WORK / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def run_r() -> dict | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"skipped": "Rscript not found"}
    script = WORK / "rake.R"
    script.write_text(R_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [rscript, str(script), str(WORK), str(TOL), str(MAXIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"skipped": f"R failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_balance() -> dict | None:
    from bench.peers import peer_python

    py = peer_python("balance")
    if py is None:
        return {"skipped": "could not create balance's environment"}
    script = WORK / "balance_rake.py"
    script.write_text(BALANCE_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [str(py), str(script), str(WORK), str(TOL), str(MAXIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"skipped": f"balance failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="popeval repetitions (median reported)"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    df, true_w, margins = make_data(args.rows, rng)
    write_inputs(df, margins, true_w)

    times, w_pop, it_pop = run_popeval(df, margins, args.repeat)
    t_pop = float(np.median(times))
    rows = [
        {
            "tool": "popeval analysis.weighting.rake",
            "seconds": t_pop,
            "iterations": it_pop,
            "max_rel_margin_error": max_margin_error(df, w_pop, margins),
            "ratio_to_popeval": 1.0,
        }
    ]
    versions: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}

    r = run_r()
    if r is not None and "skipped" not in r:
        w_r = np.fromfile(WORK / "weights_r.bin", dtype=np.float64)
        rows.append(
            {
                "tool": "R survey::rake",
                "seconds": r["seconds"],
                "iterations": None,
                "max_rel_margin_error": max_margin_error(df, w_r, margins),
                "ratio_to_popeval": r["seconds"] / t_pop,
                "max_rel_weight_diff_vs_popeval": float(np.max(np.abs(w_r / w_pop - 1))),
            }
        )
        versions.update({"R": r["R"].removeprefix("R version "), "survey": r["survey"]})
    else:
        rows.append({"tool": "R survey::rake", "skipped": (r or {}).get("skipped", "unavailable")})

    b = run_balance()
    if b is not None and "skipped" not in b:
        w_b = np.load(WORK / "weights_balance.npy")
        rows.append(
            {
                "tool": "balance rake",
                "seconds": b["seconds"],
                "iterations": b["iterations"],
                "max_rel_margin_error": max_margin_error(df, w_b, margins),
                "ratio_to_popeval": b["seconds"] / t_pop,
                "max_rel_weight_diff_vs_popeval": float(np.max(np.abs(w_b / w_pop - 1))),
            }
        )
        versions["balance"] = b["balance"]
    else:
        rows.append({"tool": "balance rake", "skipped": (b or {}).get("skipped", "unavailable")})

    result = {
        "benchmark": "rake",
        "rows": args.rows,
        "margins": {v: len(c) for v, c in VARIABLES.items()},
        "tolerance": TOL,
        "max_iterations": MAXIT,
        "popeval_runs_seconds": times,
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "versions": versions,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rake.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Raking {args.rows:,} rows to 5 margins ({', '.join(f'{v}: {k}' for v, k in result['margins'].items())} categories)",
        "",
        "Same data and margins for every tool, one run; time of the raking call only (median of "
        f"{args.repeat} runs for popeval). Ratio = tool time / popeval time. Margin error is the largest "
        "relative difference between weighted sample and population over all margin cells.",
        "",
        "| tool | seconds | ratio to popeval | iterations | max rel. margin error |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['tool']} | skipped: {row['skipped']} | | | |")
            continue
        it = "" if row.get("iterations") is None else str(row["iterations"])
        lines.append(
            f"| {row['tool']} | {row['seconds']:.3f} | {row['ratio_to_popeval']:.1f} | {it} | "
            f"{row['max_rel_margin_error']:.2e} |"
        )
    for row in rows:
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
