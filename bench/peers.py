"""Isolated environments for peer tools that cannot share popeval's locked environment.

Meta's ``balance`` pins ``numpy<2`` on Python 3.11, so benchmarks run it in its own virtualenv,
created on first use under ``bench/_work/`` from the pinned requirements in ``bench/peers/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["peer_python"]

HERE = Path(__file__).resolve().parent


def peer_python(name: str) -> Path | None:
    """The Python interpreter of peer ``name``'s environment (created if needed); None if it fails."""
    req = HERE / "peers" / f"{name}.txt"
    venv = HERE / "_work" / f"venv-{name}"
    py = venv / "bin" / "python"
    if py.exists():
        return py
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(py), "-r", str(req)], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"peer {name}: could not create its environment ({exc}); skipped", file=sys.stderr)
        return None
    return py
