"""Benchmark of the README's first command: the whole pipeline on the default demo study.

Times, in one run on this machine: generating the demo study (``popeval demo``), a cold
``popeval run --config studies/demo.toml`` (every step computed, report rendered), and a warm rerun
(everything reused). Writes ``bench/results/pipeline.{md,json}``. Aim: the cold run under two
minutes at the default demo size.
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


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="popeval-bench-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cfg_text = (REPO / "studies" / "demo.toml").read_text(encoding="utf-8")
    cfg_text = cfg_text.replace('"../data_derived"', f'"{(work / "derived").as_posix()}"').replace("../data_raw/demo", (work / "demo").as_posix())
    cfg = work / "demo.toml"
    cfg.write_text(cfg_text, encoding="utf-8")
    popeval = [sys.executable, "-m", "analysis.cli"]
    t_gen, _ = _timed([*popeval, "demo", "--out", str(work / "demo")], env)
    t_cold, out_cold = _timed([*popeval, "run", "--config", str(cfg), "--no-progress"], env)
    t_warm, out_warm = _timed([*popeval, "run", "--config", str(cfg), "--no-progress"], env)
    result = {
        "generate_s": round(t_gen, 1),
        "run_cold_s": round(t_cold, 1),
        "run_warm_s": round(t_warm, 1),
        "readme_first_command_s": round(t_gen + t_cold, 1),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "cold_computed": next((ln.split(":", 1)[1].strip() for ln in out_cold.splitlines() if "computed" in ln), ""),
        "warm_reused": next((ln.split(":", 1)[1].strip() for ln in out_warm.splitlines() if "reused" in ln), ""),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = [
        "# Pipeline benchmark: the README's first command on the default demo study",
        "",
        "One run on this machine (2 cores); times in seconds. The set-up of the environment is not included.",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| `popeval demo` (200,000 persons) | {t_gen:.1f} |",
        f"| `popeval run` cold (every step, 100 end-to-end replicates, HTML+PDF+DOCX) | {t_cold:.1f} |",
        f"| `popeval run` warm (everything reused) | {t_warm:.1f} |",
        f"| **demo + cold run** (aim: under 120) | **{t_gen + t_cold:.1f}** |",
        "",
    ]
    (HERE / "results" / "pipeline.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
