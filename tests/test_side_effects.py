"""Process-wide state is changed only for the duration of the call that needs it.

Each test records the global state (pickle reducers, loggers, BLAS thread limits, matplotlib's
backend and rcParams, the environment), calls the code, and checks that the state is unchanged.
"""

from __future__ import annotations

import copyreg
import logging
import os
import pickle
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_cache_pickles_read_only_mappings_without_a_global_reducer(tmp_path: Path) -> None:
    from analysis.pipeline import _Cache

    before = dict(copyreg.dispatch_table)
    cache = _Cache(tmp_path)
    value = {"totals": types.MappingProxyType({"a": types.MappingProxyType({"x": 1.5})})}
    cache.put("margins", "k" * 32, value)
    assert dict(copyreg.dispatch_table) == before
    with pytest.raises(TypeError):  # the rest of the process still cannot pickle them
        pickle.dumps(types.MappingProxyType({}))
    got = cache.get("margins", "k" * 32)
    assert isinstance(got["totals"], types.MappingProxyType)
    assert isinstance(got["totals"]["a"], types.MappingProxyType)
    assert got["totals"]["a"]["x"] == 1.5


def _logger_state() -> list[tuple[str, int, tuple[logging.Handler, ...]]]:
    names = ["", "popeval", "popeval.run", "analysis", "analysis.weighting", "survey", "citric"]
    return [(n, logging.getLogger(n).level, tuple(logging.getLogger(n).handlers)) for n in names]


def test_run_scope_logs_to_its_file_and_restores_loggers_and_blas(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from analysis.pipeline import run_scope

    log_file = tmp_path / "run.log"
    with threadpool_limits(limits=2):  # not one (the tests' own limit), so that a limit left behind shows
        loggers, blas = _logger_state(), threadpool_info()
        assert all(p["num_threads"] == 2 for p in blas)
        with run_scope(log_file):
            logging.getLogger("analysis.pipeline").info("step one reused")
            logging.getLogger("analysis.weighting").warning("a cell was collapsed")
            logging.getLogger("citric").info("not ours")
            inside = threadpool_info()
        after = threadpool_info()
    text = log_file.read_text(encoding="utf-8")
    assert "step one reused" in text
    assert "a cell was collapsed" in text
    assert "not ours" not in text
    assert all(p["num_threads"] == 1 for p in inside)
    assert _logger_state() == loggers
    assert after == blas


def test_run_scope_restores_state_when_the_run_fails(tmp_path: Path) -> None:
    from analysis.pipeline import run_scope

    loggers = _logger_state()
    with pytest.raises(RuntimeError, match="boom"), run_scope(tmp_path / "run.log"):
        raise RuntimeError("boom")
    assert _logger_state() == loggers


def test_report_figures_leave_matplotlib_global_state(tmp_path: Path) -> None:
    import matplotlib
    import pandas as pd

    from analysis.bundle import write_bundle
    from analysis.report.builder import Report

    flow = pd.DataFrame({"step": ["invited", "started", "completed", "linked", "analysed"], "n": [900, 500, 420, 410, 400]})
    bundle = write_bundle(tmp_path / "b", {"response_flow": flow}, {}, {"config": {}})
    report = Report(bundle, lang="en")
    import matplotlib.pyplot as plt  # importing pyplot resolves the backend once; not under test

    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    figures = plt.get_fignums()  # (whatever other code left open is not this call's doing)
    seen: list[float] = []
    draw = report._f_flow

    def spy() -> object:
        seen.append(matplotlib.rcParams["font.size"])
        return draw()

    report._f_flow = spy  # type: ignore[method-assign]
    report.figure("flow")
    assert seen == [8.0]  # the report style applies while the figure is made
    assert matplotlib.get_backend() == backend
    after = dict(matplotlib.rcParams)
    assert {k: (rc.get(k), after.get(k)) for k in rc.keys() | after.keys() if rc.get(k) != after.get(k)} == {}
    assert plt.get_fignums() == figures  # no figure left in pyplot's registry


def test_render_passes_the_path_to_the_kernel_without_changing_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analysis.bundle import write_bundle
    from analysis.report.render import render_report

    outside = str(tmp_path / "elsewhere")
    monkeypatch.setenv("PYTHONPATH", outside)
    env = dict(os.environ)
    qmd = tmp_path / "mini.qmd"
    qmd.write_text(
        '---\ntitle: "Mini"\n---\n\n```{python}\n#| echo: false\n#| output: asis\nimport os\nimport analysis\n'
        'parts = os.environ["PYTHONPATH"].split(os.pathsep)\nprint("first=" + os.path.basename(parts[0]) + " last=" + os.path.basename(parts[-1]))\n```\n',
        encoding="utf-8",
    )
    write_bundle(tmp_path / "b", {}, {}, {"config": {}})
    res = render_report(tmp_path / "b", lang="en", out=tmp_path / "out", qmd=qmd, formats=("html",), engine="python")
    html = res.outputs["html"].read_text(encoding="utf-8")
    assert f"first={REPO.name} last=elsewhere" in html
    assert dict(os.environ) == env
