"""Benchmark: propensity score + 1:1 nearest-neighbour matching, popeval vs R MatchIt vs pymatchit.

Usage::

    uv run --frozen --group bench python bench/bench_matching.py [--sizes 20000 100000 1000000]
        [--r-sizes 20000 100000 200000] [--pymatchit-sizes 20000 100000]
        [--pymatchit-timeout 120] [--seed 1]

One run, side by side on identical simulated data (8 covariates incl. a 4-level factor, about 22%
treated), with and without replacement.  R's MatchIt is timed inside R (``system.time`` around
``matchit()``, which includes its glm), so reading the CSV is not counted; it runs only when
``Rscript`` is on the PATH and only at the ``--r-sizes``.  pymatchit-causal runs in a child
process, timed around ``MatchIt(...).fit()``, and is stopped after ``--pymatchit-timeout``
seconds (recorded as a lower bound).  popeval's time is the whole ``match()`` call; the time of
its propensity-score fit alone is shown as well.

MatchIt's nearest-neighbour matching takes time roughly quadratic in the sample size, so it is
not run at 1M rows; its 1M time is extrapolated from a power law ``t = a n^b`` fitted by least
squares on log t over the sizes where it ran, and labelled as such.  Results go to
``bench/results/matching.md`` and ``bench/results/matching.json``; ratios are from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
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

PYMATCHIT_SCRIPT = r"""
import sys, time
import pandas as pd
from pymatchit import MatchIt
df = pd.read_pickle(sys.argv[1])
replace = sys.argv[2] == "TRUE"
print("ready", flush=True)
t0 = time.perf_counter()
m = MatchIt(df, method="nearest", distance="glm", replace=replace, ratio=1)
m.fit(sys.argv[3])
print(time.perf_counter() - t0, int((m.weights > 0).sum()))
"""


def simulate(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Simulated data with a logistic treatment model.

    Parameters
    ----------
    n
        Number of rows.
    rng
        Random generator.

    Returns
    -------
    pandas.DataFrame
        ``treat`` (0/1), five normal covariates ``x1..x5``, two binary ``b1, b2`` and a
        four-level string factor ``grp``.
    """
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


def time_popeval(df: pd.DataFrame, replace: bool) -> tuple[float, int, float]:
    """Seconds for ``match()``, number of matched units, seconds for the propensity fit alone."""
    from analysis.matching import match, propensity_score

    t0 = time.perf_counter()
    m = match(df, FORMULA, replace=replace)
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    propensity_score(df, FORMULA)
    return elapsed, int((m.weights > 0).sum()), time.perf_counter() - t0


def time_pymatchit(
    df: pd.DataFrame, replace: bool, tmp: Path, timeout: float, memory_gb: float
) -> tuple[float, int | None] | str | None:
    """Seconds and matched units for pymatchit-causal.

    Returns ``(seconds, None)`` when stopped at the time limit, the last line of its error
    output when it fails (e.g. out of memory under the limit), None when not installed.
    """
    try:
        import pymatchit  # noqa: F401
    except ImportError:
        return None
    data = tmp / f"bench_{len(df)}.pkl"
    if not data.exists():
        df.to_pickle(data)
    script = tmp / "bench_pymatchit.py"
    script.write_text(PYMATCHIT_SCRIPT)
    # the child reports "ready" once imported and loaded; the clock for the time limit starts
    # there, so a stopped run's time is a true lower bound on its fit time
    limit = int(memory_gb * 1024**3)

    def cap_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    err = tmp / "pymatchit.err"
    with err.open("w") as err_file, subprocess.Popen(
        [sys.executable, str(script), str(data), "TRUE" if replace else "FALSE", FORMULA],
        stdout=subprocess.PIPE, stderr=err_file, text=True, preexec_fn=cap_memory,
    ) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        t_ready = time.perf_counter()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return time.perf_counter() - t_ready, None
    if proc.returncode != 0:
        lines = err.read_text().strip().splitlines()
        return lines[-1][:200] if lines else f"exit status {proc.returncode}"
    elapsed, matched = out.split()[-2:]
    return float(elapsed), int(matched)


def time_r(df: pd.DataFrame, replace: bool, tmp: Path) -> tuple[float, int] | None:
    """Seconds (inside R) and matched units for ``MatchIt::matchit``, or None without R."""
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
    """R and MatchIt versions, or None without R."""
    if shutil.which("Rscript") is None:
        return None
    out = subprocess.run(
        ["Rscript", "-e", 'cat(R.version.string, "MatchIt", '
         'as.character(packageVersion("MatchIt")))'],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def power_law(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """Least-squares fit of ``log t = log a + b log n``; returns ``(a, b)``."""
    b, log_a = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(np.exp(log_a)), float(b)


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for pkg in ("numpy", "pandas", "pymatchit-causal"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write bench/results/matching.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000],
                        help="sizes for popeval (also run at every R/pymatchit size)")
    parser.add_argument("--r-sizes", type=int, nargs="*", default=[20_000, 100_000, 200_000])
    parser.add_argument("--pymatchit-sizes", type=int, nargs="*", default=[20_000])
    parser.add_argument("--pymatchit-replace-sizes", type=int, nargs="*", default=[100_000],
                        help="extra sizes for pymatchit with replacement only (its matching "
                             "without replacement holds a treated x control distance matrix)")
    parser.add_argument("--pymatchit-memory-gb", type=float, default=6.0,
                        help="address-space limit for the pymatchit child process")
    parser.add_argument("--pymatchit-timeout", type=float, default=120.0)
    parser.add_argument("--extrapolate-to", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    time_popeval(simulate(2000, np.random.default_rng(0)), False)  # warm-up: imports
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows: list[dict[str, object]] = []
    sizes = sorted(
        set(args.sizes) | set(args.r_sizes) | set(args.pymatchit_sizes)
        | set(args.pymatchit_replace_sizes)
    )
    with tempfile.TemporaryDirectory() as tmpdir:
        for n in sizes:
            df = simulate(n, rng)
            for replace in (False, True):
                row: dict[str, object] = {"n": n, "treated": int(df.treat.sum()),
                                          "replace": replace}
                row["popeval_s"], row["popeval_matched"], row["popeval_pscore_s"] = (
                    time_popeval(df, replace)
                )
                if n in args.r_sizes:
                    r = time_r(df, replace, Path(tmpdir))
                    if r is not None:
                        row["matchit_s"], row["matchit_matched"] = r
                if n in args.pymatchit_sizes or (replace and n in args.pymatchit_replace_sizes):
                    p = time_pymatchit(df, replace, Path(tmpdir), args.pymatchit_timeout,
                                       args.pymatchit_memory_gb)
                    if isinstance(p, str):
                        row["pymatchit_error"] = p
                    elif p is not None:
                        row["pymatchit_s"], row["pymatchit_matched"] = p
                        row["pymatchit_stopped"] = p[1] is None
                for other in ("matchit", "pymatchit"):
                    if f"{other}_s" in row:
                        ratio = float(row[f"{other}_s"]) / float(row["popeval_s"])  # type: ignore[arg-type]
                        row[f"{other}_over_popeval"] = ratio
                print(row, flush=True)
                rows.append(row)
    extrapolations = []
    for replace in (False, True):
        measured = [r for r in rows if r["replace"] is replace and "matchit_s" in r]
        if len(measured) < 2:
            continue
        ns = [int(r["n"]) for r in measured]  # type: ignore[call-overload]
        ts = [float(r["matchit_s"]) for r in measured]  # type: ignore[arg-type]
        a, b = power_law(ns, ts)
        target = args.extrapolate_to
        t_hat = a * target**b
        pop = [r for r in rows if r["replace"] is replace and r["n"] == target]
        entry: dict[str, object] = {
            "replace": replace, "fitted_on_n": ns, "exponent": b, "coefficient": a,
            "n": target, "matchit_extrapolated_s": t_hat,
        }
        if pop:
            entry["popeval_measured_s"] = pop[0]["popeval_s"]
            entry["extrapolated_ratio"] = t_hat / float(pop[0]["popeval_s"])  # type: ignore[arg-type]
        extrapolations.append(entry)
    meta = {
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "r": r_version(), "seed": args.seed, "formula": FORMULA,
        "versions": _versions(), "load_average_at_start": load_before,
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "pymatchit_timeout_s": args.pymatchit_timeout,
        "pymatchit_memory_gb": args.pymatchit_memory_gb,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "matching.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "matchit_extrapolation": extrapolations},
                   indent=2)
    )
    (RESULTS / "matching.md").write_text(render_markdown(meta, rows, extrapolations))


def _fmt(v: object, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_markdown(
    meta: dict[str, object], rows: list[dict[str, object]], extrapolations: list[dict[str, object]]
) -> str:
    """The results as a Markdown report."""
    head = ["n", "treated", "replace", "popeval s", "p-score fit alone s", "MatchIt s",
            "MatchIt / popeval", "pymatchit s", "pymatchit / popeval", "matched: popeval",
            "MatchIt", "pymatchit"]
    lines = [
        "# Matching benchmark: propensity score (logit) + 1:1 nearest neighbour, ATT",
        "",
        f"Environment: Python {meta['python']}, {meta['cpus']} CPUs (shared with other work; "
        f"load average {_fmt(meta['load_average_at_start'])} at the start), one BLAS thread; "
        f"R: {meta['r']}; pymatchit-causal {meta['versions']['pymatchit-causal']}.",  # type: ignore[index]
        f"Formula: `{meta['formula']}` (simulated data, seed {meta['seed']}).",
        "",
        "Times in seconds, wall clock, one run each, all in this one run.  popeval: the whole",
        "`match()` call (propensity score included; the fit alone, timed separately, next).  MatchIt:",
        "timed inside R around `matchit()` (its glm included, reading the CSV not).  pymatchit:",
        "around `MatchIt(...).fit()` in a child process (after its imports), stopped after "
        f"{_fmt(meta['pymatchit_timeout_s'], 0)} s (shown as `>`), with "
        f"{_fmt(meta['pymatchit_memory_gb'], 0)} GB of address space.",
        "Ratios are the other tool's time over popeval's at the same size and specification.",
        "Empty cells: not run at that size.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" for _ in head) + "|",
    ]
    for r in rows:
        stopped = bool(r.get("pymatchit_stopped"))
        pym = _fmt(r.get("pymatchit_s"), 3)
        pym_ratio = _fmt(r.get("pymatchit_over_popeval"), 1)
        if stopped:
            pym, pym_ratio = f"> {pym}", f"> {pym_ratio}"
        if r.get("pymatchit_error"):
            pym = "failed (see JSON)"
        cells = [
            f"{r['n']:,}", f"{r['treated']:,}", _fmt(r["replace"]), _fmt(r["popeval_s"], 3),
            _fmt(r["popeval_pscore_s"], 3), _fmt(r.get("matchit_s"), 3),
            _fmt(r.get("matchit_over_popeval"), 1), pym, pym_ratio,
            _fmt(r["popeval_matched"]), _fmt(r.get("matchit_matched")),
            _fmt(r.get("pymatchit_matched")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if extrapolations:
        lines += [
            "",
            f"## MatchIt at {extrapolations[0]['n']:,} rows: extrapolated, not measured",
            "",
            "MatchIt was not run at that size (its nearest-neighbour step is roughly quadratic).  Its",
            "time there is **extrapolated** from a power law `t = a n^b` fitted (least squares on",
            "log t) to its measured times above; popeval's time at that size is measured.",
            "",
            "| n | replace | MatchIt sizes fitted | exponent b | MatchIt s (extrapolated) "
            "| popeval s (measured) | ratio (extrapolated) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for e in extrapolations:
            fitted = ", ".join(f"{n:,}" for n in e["fitted_on_n"])  # type: ignore[attr-defined]
            lines.append(
                f"| {e['n']:,} | {_fmt(e['replace'])} | {fitted} | {_fmt(e['exponent'])} | "
                f"{_fmt(e['matchit_extrapolated_s'], 0)} | {_fmt(e.get('popeval_measured_s'), 3)} | "
                f"{_fmt(e.get('extrapolated_ratio'), 0)} |"
            )
    lines += [
        "",
        "Matched counts with replacement differ from MatchIt 4.5.1's because that release takes",
        "the integer `abs()` of score differences in its nearest-neighbour routine (see",
        "`match(compat=\"MatchIt-4.5.1\")`); without replacement every tool that ran matches",
        "every treated unit (matched = 2 x treated).",
        "",
        "pymatchit runs without replacement only at the smallest size: its nearest-neighbour",
        "matching without replacement asks scikit-learn for *all* controls as neighbours of",
        "every treated unit, a dense treated x control array of distances and indices (16 bytes",
        "per pair, about 27 GB at 100,000 rows here).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
