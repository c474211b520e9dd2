"""The quarto branch of the renderer writes its outputs atomically.

The quarto binary is not installed here; a stand-in ``quarto`` on ``PATH`` plays the part of its
command line (it writes the file named by ``--output`` into ``--output-dir``), so the test checks
popeval's own handling: a finished file is renamed into place, a failed render leaves nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from analysis.bundle import write_bundle
from analysis.report.render import RenderError, render_report

FAKE_QUARTO = """#!/bin/sh
out=""; dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output) out="$2"; shift;;
    --output-dir) dir="$2"; shift;;
  esac
  shift
done
printf '<html>partial' > "$dir/$out"
if [ -n "$FAIL" ]; then exit 3; fi
printf '</html>' >> "$dir/$out"
"""


@pytest.fixture
def fake_quarto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "quarto"
    exe.write_text(FAKE_QUARTO, encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def _bundle(path: Path) -> Path:
    flow = pd.DataFrame({"step": ["invited", "analysed"], "n": [100, 40]})
    write_bundle(path, {"response_flow": flow}, {}, {"config": {}})
    return path


def test_quarto_output_is_renamed_into_place(tmp_path: Path, fake_quarto: Path) -> None:
    out = tmp_path / "out"
    res = render_report(_bundle(tmp_path / "b"), out=out, formats=("html",), engine="quarto")
    assert res.engine == "quarto"
    assert (out / "evaluation-nl.html").read_text(encoding="utf-8") == "<html>partial</html>"
    assert [p.name for p in out.iterdir()] == ["evaluation-nl.html"]  # no temporary folder left


def test_a_failed_quarto_render_leaves_no_output(tmp_path: Path, fake_quarto: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", "1")
    out = tmp_path / "out"
    with pytest.raises(RenderError, match="quarto render failed"):
        render_report(_bundle(tmp_path / "b"), out=out, formats=("html",), engine="quarto")
    assert list(out.iterdir()) == []
