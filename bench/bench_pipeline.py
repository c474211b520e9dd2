"""Benchmark of the README's first command: the whole pipeline on the default demo study.

Times, in one run on this machine: generating the demo study (``popeval demo``), a cold
``popeval run --config studies/demo.toml`` (every step computed, report rendered), and a warm rerun
(everything reused). Writes ``bench/results/pipeline.{md,json}``, with the machine's load average
before and after and the cold run's steps as its run log records them. Aim: demo + cold run under
20 seconds at the default demo size on a quiet 2-core machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, r.stdout


def _steps(derived: Path) -> dict[str, float]:
    """``{step: seconds}`` from the cold run's log (``<step> computed in <s> s``)."""
    import re

    logs = sorted(derived.glob("runs/*/run.log"), key=lambda q: q.stat().st_mtime)
    if not logs:
        return {}
    out: dict[str, float] = {}
    for line in logs[0].read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.search(r"\b([\w+-]+) computed in ([\d.]+) s", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def main() -> int:
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="popeval-bench-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cfg_text = (REPO / "studies" / "demo.toml").read_text(encoding="utf-8")
    cfg_text = cfg_text.replace('"../data_derived"', f'"{(work / "derived").as_posix()}"').replace("../data_raw/demo", (work / "demo").as_posix())
    cfg = work / "demo.toml"
    cfg.write_text(cfg_text, encoding="utf-8")
    popeval = [sys.executable, "-m", "analysis.cli"]
    t_gen, _ = _timed([*popeval, "demo", "--out", str(work / "demo")], env)
    t_cold, out_cold = _timed([*popeval, "run", "--config", str(cfg), "--no-progress"], env)
    steps = _steps(work / "derived")
    t_warm, out_warm = _timed([*popeval, "run", "--config", str(cfg), "--no-progress"], env)
    load_after = [round(x, 2) for x in os.getloadavg()]
    import duckdb
    import numpy
    import pandas

    versions = {"python": platform.python_version(), "duckdb": duckdb.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__}
    result = {
        "generate_s": round(t_gen, 1),
        "run_cold_s": round(t_cold, 1),
        "run_warm_s": round(t_warm, 1),
        "readme_first_command_s": round(t_gen + t_cold, 1),
        "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": load_after, "bytecode_cache_disabled": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))},
        "versions": versions,
        "cold_steps_s": steps,
        "cold_computed": next((ln.split(":", 1)[1].strip() for ln in out_cold.splitlines() if "computed" in ln), ""),
        "warm_reused": next((ln.split(":", 1)[1].strip() for ln in out_warm.splitlines() if "reused" in ln), ""),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = [
        "# Pipeline benchmark: the README's first command on the default demo study",
        "",
        f"One run on this machine ({os.cpu_count()} cores, {platform.platform()}); times in seconds. The set-up of the "
        "environment is not included. " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"The machine is shared with other jobs: load average (1, 5, 15 min) {', '.join(map(str, load_before))} before and "
        f"{', '.join(map(str, load_after))} after, so these seconds are inflated against a quiet machine."
        + (" PYTHONDONTWRITEBYTECODE was set: no bytecode was written, so modules without a compiled copy were compiled by every process."
           if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""),
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| `popeval demo` (200,000 persons) | {t_gen:.1f} |",
        f"| `popeval run` cold (every step, 100 end-to-end replicates, HTML+PDF+DOCX) | {t_cold:.1f} |",
        f"| `popeval run` warm (everything reused) | {t_warm:.1f} |",
        f"| **demo + cold run** (aim: under 20 on a quiet machine) | **{t_gen + t_cold:.1f}** |",
        "",
    ]
    if steps:
        md += ["Steps of the cold run (its run log):", "", "| step | seconds |", "|---|---:|"]
        md += [f"| {k} | {v:.1f} |" for k, v in steps.items()] + [""]
    (HERE / "results" / "pipeline.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
