"""When things go wrong: bad settings, damaged bundles and caches, signals, concurrent runs, exports.

The kill tests send real signals to a real ``popeval run`` subprocess (a small synthetic study) and
inspect what it leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from shared_studies import generated_study
from study_toml import study_settings, write_study_toml

from analysis.bundle import read_bundle, write_bundle
from analysis.config import config_from_dict, load_config
from analysis.pipeline import COMPLETE_MARKER, _Cache
from analysis.synth import DEMO_SURVEY_ID
from survey.errors import ConfigError, DataValidationError
from survey.files import TEMP_PREFIX, atomic_dir, atomic_write

POPEVAL = str(Path(sys.executable).parent / "popeval")
LINUX = sys.platform.startswith("linux")
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ atomic writes


def _write_then_fail(target: Path) -> None:
    with atomic_write(target) as fh:
        fh.write("half of the new conte")
        raise RuntimeError("killed")


def _fill_then_interrupt(target: Path) -> None:
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new", encoding="utf-8")
        raise KeyboardInterrupt


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        _write_then_fail(target)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left
    with atomic_write(target, None) as tmp:
        assert tmp.suffix == ".csv"
        assert tmp.name.startswith(TEMP_PREFIX)
        tmp.write_bytes(b"new\n")
    assert target.read_bytes() == b"new\n"


def test_atomic_dir_replaces_a_folder_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "a.txt").write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        _fill_then_interrupt(target)
    assert (target / "a.txt").read_text(encoding="utf-8") == "old"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("data", "param", "expected"),
    [
        ({"effects": {"outcomes": []}}, "effects.outcomes", "at least one outcome"),
        ({"effects": {"methods": []}}, "effects.methods", "includes 'matching'"),
        ({"effects": {"methods": ["regression", "ipw"]}}, "effects.methods", "includes 'matching'"),
        ({"weighting": {"trim_upper": -1}}, "weighting.trim_upper", "positive upper bound"),
        ({"effects": {"replicates": 2}}, "effects.replicates", "at least 4"),
        ({"effects": {"replicates": 3}}, "effects.replicates", "at least 4"),
        ({"effects": {"alpha": 0.1}}, "effects.alpha", "intervals are 95 %"),
        ({}, "survey.survey_id", "LimeSurvey survey id"),
        ({"study": {"disclosure_threshold": 1}}, "study.disclosure_threshold", "disable_disclosure_control = true"),
        ({"study": {"disclosure_threshold": 0, "disable_disclosure_control": True}}, "study.disclosure_threshold", ">= 2"),
    ],
)
def test_settings_that_cannot_work_are_refused(data: dict, param: str, expected: str) -> None:
    data = (
        {"survey": {"survey_id": DEMO_SURVEY_ID}, **data} if param != "survey.survey_id" else data
    )
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, source=Path("study.toml"))
    assert e.value.param == param
    assert expected in str(e.value)


def test_disabling_disclosure_control_in_a_study_is_explicit() -> None:
    cfg = config_from_dict({"survey": {"survey_id": DEMO_SURVEY_ID}, "study": {"disclosure_threshold": 1, "disable_disclosure_control": True}})
    assert cfg.study.disclosure_threshold == 1


def test_an_empty_configuration_file_names_the_missing_setting(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    r = subprocess.run(
        [POPEVAL, "run", "--config", str(tmp_path / "empty.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "survey.survey_id" in r.stderr
    assert "Traceback" not in r.stderr
    assert "survey/0" not in r.stderr


# ------------------------------------------------------------------ report parameters


def test_report_parameters_are_checked_before_rendering(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    write_bundle(bundle, {}, {}, {"config": {}})
    cases = [
        (["-P", "treshold=10"], "Unknown report parameter", "threshold"),
        (["-P", "threshold=0"], "Invalid disclosure threshold", ">= 2"),
        (["-P", "threshold=ten"], "Invalid disclosure threshold", "'ten'"),
        (["-P", "threshold=1"], "suppresses no count", "--disable-disclosure-control"),
    ]
    for extra, title, detail in cases:
        r = subprocess.run(
            [POPEVAL, "report", "--bundle", str(bundle), "--out", str(tmp_path / "o"), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, r.stderr
        assert title in r.stderr and detail in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "o").exists()


def test_disabling_disclosure_control_needs_the_explicit_override() -> None:
    from analysis.commands.report import check_params
    from analysis.report.render import default_qmd

    with pytest.raises(ConfigError):
        check_params({"threshold": 1}, default_qmd())
    assert check_params({"threshold": 1}, default_qmd(), allow_no_disclosure_control=True) == {
        "threshold": 1
    }
    assert check_params({"threshold": 10, "main_method": "regression"}, default_qmd()) == {
        "threshold": 10,
        "main_method": "regression",
    }


# ------------------------------------------------------------------ bundle completeness


def _bundle(path: Path) -> Path:
    tables = {
        "response_flow": pd.DataFrame({"step": ["invited", "analysed"], "n": [100, 40]}),
        "not_estimable": pd.DataFrame(columns=["outcome", "method", "reason"]),
    }
    write_bundle(path, tables, {"population": {"persons": 100}}, {"config": {}, "seed": 1})
    return path


def test_a_bundle_lists_its_files_and_reads_back(tmp_path: Path) -> None:
    b = read_bundle(_bundle(tmp_path / "b"))
    assert sorted(b.manifest["files"]) == [
        "estimates.json",
        "tables/not_estimable.csv",
        "tables/response_flow.csv",
    ]
    assert b.table("response_flow")["n"].tolist() == [100, 40]
    assert b.estimates["population"]["persons"] == 100


def test_a_bundle_of_an_older_format_is_refused_not_misread(tmp_path: Path) -> None:
    import json

    from analysis.bundle import BUNDLE_FORMAT

    b = _bundle(tmp_path / "b")
    man = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    assert man["bundle_format"] == BUNDLE_FORMAT
    # format 1 had no bundle_format and named the standard errors std_error
    del man["bundle_format"]
    (b / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    with pytest.raises(DataValidationError, match="another format") as exc:
        read_bundle(b)
    assert "format 1" in str(exc.value) and "std_error" in str(exc.value) and "rerun `popeval run" in str(exc.value)
    (b / "manifest.json").write_text(json.dumps({**man, "bundle_format": BUNDLE_FORMAT + 1}), encoding="utf-8")
    with pytest.raises(DataValidationError, match=f"format {BUNDLE_FORMAT + 1}"):
        read_bundle(b)


def test_a_plans_bundle_is_verified_like_a_run_bundle(tmp_path: Path) -> None:
    from analysis.plans.tables import write_plans_tables

    b = _bundle(tmp_path / "b")
    share = pd.DataFrame(
        {"measure": ["attest_matches_plan"], "stratum": ["alle"], "estimator": ["design"], "estimate": [0.8], "bse": [0.02], "ci_lower": [0.76], "ci_upper": [0.84], "n_sample": [300], "N_population": [5000]}
    )
    plans = write_plans_tables(tmp_path / "plans", {"plans_estimates": share}, {"note": "test"})
    # the plans bundle is its own folder, verified against its own manifest; the run bundle is untouched
    assert read_bundle(b).table("response_flow")["n"].tolist() == [100, 40]
    assert read_bundle(plans).table("plans_estimates")["estimate"].tolist() == [0.8]
    (plans / "tables" / "plans_estimates.csv").write_text("measure\nchanged\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="changed after it was written"):
        read_bundle(plans)


def test_optional_report_parameters_of_the_includes_are_known() -> None:
    from analysis.commands.report import check_params, report_parameters
    from analysis.report.render import default_qmd

    assert {"threshold", "main_method", "plans_bundle"} <= set(report_parameters(default_qmd()))
    assert check_params({"plans_bundle": "data_derived/plans/bundle"}, default_qmd()) == {"plans_bundle": "data_derived/plans/bundle"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "tables" / "response_flow.csv").unlink(), "incomplete"),
        (
            lambda b: (b / "estimates.json").write_text(
                '{"population": {"persons": 1', encoding="utf-8"
            ),
            "changed after it was written",
        ),
        (
            lambda b: (b / "tables" / "response_flow.csv").write_text(
                "step,n\ninvited,7\n", encoding="utf-8"
            ),
            "changed after it was written",
        ),
        (
            lambda b: (b / "tables" / "effects.csv").write_text("outcome\nstronger\n", encoding="utf-8"),
            "does not list",
        ),
        (
            lambda b: (b / "manifest.json").write_text('{"files": ', encoding="utf-8"),
            "not valid JSON",
        ),
        (
            lambda b: (b / "manifest.json").write_text('{"config": {}}', encoding="utf-8"),
            "does not list the bundle's files",
        ),
    ],
)
def test_a_damaged_bundle_is_refused(tmp_path: Path, damage: object, message: str) -> None:
    b = _bundle(tmp_path / "b")
    damage(b)  # type: ignore[operator]
    with pytest.raises(DataValidationError, match=message):
        read_bundle(b)


def test_rendering_a_bundle_without_its_effects_table_fails_clearly(tmp_path: Path) -> None:
    b = _bundle(tmp_path / "b")
    (b / "tables" / "response_flow.csv").unlink()
    r = subprocess.run(
        [POPEVAL, "report", "--bundle", str(b), "--out", str(tmp_path / "o"), "--format", "html"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "The results bundle is incomplete" in r.stderr and "tables/response_flow.csv" in r.stderr
    assert not list((tmp_path / "o").glob("*.html")) if (tmp_path / "o").exists() else True


# ------------------------------------------------------------------ the cache


def test_cache_entries_carry_their_key_and_damaged_ones_are_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _Cache(tmp_path)
    key_a, key_b = "a" * 64, "a" * 24 + "b" * 40  # same file name, different keys
    cache.put("design", key_a, {"n": 60})
    assert cache.get("design", key_a) == {"n": 60}
    # a file under the right name but for another key (another configuration) is not trusted
    assert cache.get("design", key_b) is None
    assert not cache.path("design", key_a).exists()
    # a bare pickle of the value (no key) is not trusted either
    with cache.path("outcomes", key_a).open("wb") as fh:
        pickle.dump({"n": 60}, fh)
    assert cache.get("outcomes", key_a) is None
    # a truncated entry is logged, deleted and recomputed
    cache.put("survey", key_a, list(range(1000)))
    p = cache.path("survey", key_a)
    p.write_bytes(p.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="analysis.pipeline"):
        assert cache.get("survey", key_a) is None
    assert "unreadable" in caplog.text
    assert not p.exists()


# ------------------------------------------------------------------ a small study, run for real


def _write_config(
    path: Path,
    study: Path,
    derived: Path,
    *,
    replicates: int,
    workers: int = 2,
    render: bool = False,
    language: str = "nl",
    snapshots: Path | None = None,
) -> Path:
    settings = study_settings(
        "robust", derived, generated=study, seed=3, replicates=replicates,
        methods=("matching", "regression", "naive", "ologit"),
        study={"language": language},
        # few margins: the small study must weight in every replicate
        weighting={"margins": [["pop", "sex"], ["pop", "age_band"], "educ"]},
        effects={"workers": workers},
        report={"render": render, "formats": ["html"]},
    )
    if snapshots is not None:
        settings["survey"] = {**settings["survey"], "snapshots_dir": snapshots.as_posix()}
    return write_study_toml(path, settings)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_study(20_000, 5)


@pytest.fixture(scope="module")
def derived(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A derived folder whose cache holds the ingest, survey and design steps of ``study``.

    Written in this process (the tests that need a ``popeval run`` process start their own): the
    cache is the same whichever process computed it.
    """
    from analysis.pipeline import run

    base = tmp_path_factory.mktemp("robust_derived")
    cfg = base / "warm.toml"
    _write_config(cfg, study, base / "derived", replicates=4, workers=1)
    assert (run(load_config(cfg), progress=False).run_dir / COMPLETE_MARKER).exists()
    return base / "derived"


def _start(cfg: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [POPEVAL, "run", "--config", str(cfg), "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(pred: object, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_workers(proc: subprocess.Popen[str], n: int = 2, timeout: float = 300) -> set[int]:
    found: set[int] = set()

    def ready() -> bool:
        nonlocal found
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        found = {
            c
            for c in _children(proc.pid)
            if "multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
            or _is_python(c)
        }
        return len(found) >= n

    _wait_for(ready, timeout, "the replicate workers")
    return found


def _is_python(pid: int) -> bool:
    try:
        return "python" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


def _run_dirs(derived: Path) -> list[Path]:
    return sorted(p for p in (derived / "runs").iterdir() if p.is_dir())


def _fresh_config(tmp_path: Path, study: Path, derived: Path, **kw: object) -> Path:
    return _write_config(tmp_path / "study.toml", study, derived, **kw)  # type: ignore[arg-type]


def _run_dir_of(derived: Path, before: list[Path]) -> Path:
    new = [p for p in _run_dirs(derived) if p not in before]
    assert len(new) == 1, new
    return new[0]


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_sigkill_during_the_replicates_takes_the_workers_down(
    study: Path, derived: Path, tmp_path: Path
) -> None:
    before = _run_dirs(derived)
    proc = _start(_fresh_config(tmp_path, study, derived, replicates=400))
    workers = _wait_for_workers(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    _wait_for(
        lambda: not any(_alive(w) for w in workers), 20, "the workers to die with their parent"
    )
    run_dir = _run_dir_of(derived, before)
    assert not (run_dir / COMPLETE_MARKER).exists()
    assert not (run_dir / "bundle").exists()


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize(("sig", "status", "replicates"), [(signal.SIGINT, 130, 401), (signal.SIGTERM, 143, 403)])
def test_ctrl_c_during_the_replicates_prints_one_line_and_exits_130(study: Path, derived: Path, tmp_path: Path, sig: signal.Signals, status: int, replicates: int) -> None:
    before = _run_dirs(derived)
    proc = _start(_fresh_config(tmp_path, study, derived, replicates=replicates))
    workers = _wait_for_workers(proc)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # as a terminal does: the whole process group
    else:
        os.kill(proc.pid, sig)  # as a scheduler does: the main process only
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert [ln for ln in err.splitlines() if "interrupted" in ln] == [
        ln for ln in err.splitlines() if ln.startswith("popeval run: ")
    ]
    assert sum("interrupted" in ln for ln in err.splitlines()) == 1
    _wait_for(lambda: not any(_alive(w) for w in workers), 20, "the workers to stop")
    run_dir = _run_dir_of(derived, before)
    assert not (run_dir / COMPLETE_MARKER).exists()
    assert not (run_dir / "bundle").exists()
    assert "run interrupted" in (run_dir / "run.log").read_text(encoding="utf-8")


def _wait_for_rendering(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if "[report] rendering" in line:
            return lines
    raise AssertionError("the run ended before rendering: " + "".join(lines)[-3000:])


def _kernel_of(proc: subprocess.Popen[str], timeout: float = 300) -> int:
    """The pid of the report's Jupyter kernel, a child of the ``popeval run`` process."""
    found: list[int] = []

    def started() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        found[:] = [c for c in _children(proc.pid) if b"ipykernel" in _cmdline(c)]
        return bool(found)

    _wait_for(started, timeout, "the report kernel")
    return found[0]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize(("sig", "lang"), [(signal.SIGINT, "nl"), (signal.SIGKILL, "en")])
def test_a_kill_during_rendering_leaves_no_report_that_looks_complete(study: Path, derived: Path, tmp_path: Path, sig: signal.Signals, lang: str) -> None:
    import tempfile

    from analysis.report.render import KERNEL_DIR_PREFIX

    before = _run_dirs(derived)
    # the same estimation as the warm run (reused), so that the run gets to rendering quickly
    proc = _start(_fresh_config(tmp_path, study, derived, replicates=4, workers=1, render=True, language=lang))
    _wait_for_rendering(proc)
    kernel = _kernel_of(proc)
    kernel_dirs = list(Path(tempfile.gettempdir()).glob(f"{KERNEL_DIR_PREFIX}{proc.pid}-*"))
    assert len(kernel_dirs) == 1  # the kernel's IPC sockets and connection file
    time.sleep(2.0)  # the kernel is executing the report's cells
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # as a terminal does
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    # the kernel does not outlive the run, however the run ended (it is in a session of its own)
    _wait_for(lambda: not _alive(kernel), 20, "the report kernel to die with its parent")
    run_dir = _run_dir_of(derived, before)
    assert not (run_dir / COMPLETE_MARKER).exists()
    assert not (run_dir / "report").exists()
    assert not list(run_dir.rglob("evaluation-*.html"))
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        assert err.strip().splitlines() == ["popeval run: interrupted (SIGINT)"], err[-2000:]
        assert "run interrupted by SIGINT" in log and "the run folder is incomplete" in log
        assert not kernel_dirs[0].exists()
    else:
        assert proc.returncode == -signal.SIGKILL
    # the bundle was complete before rendering began, and says so
    assert read_bundle(run_dir / "bundle").table("effects").shape[0] > 0
    if sig == signal.SIGINT:
        return  # the interrupted run cleaned up itself; what a rerun must clean up is left by a kill
    # a rerun completes the folder, and removes what the killed run could not (its kernel's folder)
    r = subprocess.run(
        [POPEVAL, "run", "--config", str(tmp_path / "study.toml"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run_dir / COMPLETE_MARKER).exists()
    html = (run_dir / "report" / f"evaluation-{lang}.html").read_text(encoding="utf-8")
    assert html.rstrip().endswith("</html>")
    assert not kernel_dirs[0].exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert "the previous run in this folder did not finish" in (run_dir / "run.log").read_text(encoding="utf-8")


def test_a_second_run_of_the_same_study_stops_with_a_clear_message(
    study: Path, derived: Path, tmp_path: Path
) -> None:
    first = _start(_fresh_config(tmp_path, study, derived, replicates=402))
    try:
        _wait_for(
            lambda: (
                (derived / "locks" / "robust.run.lock").exists()
                and f"pid {first.pid}" in (derived / "locks" / "robust.run.lock").read_text()
            ),
            120,
            "the first run to take the lock",
        )
        second = subprocess.run(
            [POPEVAL, "run", "--config", str(tmp_path / "study.toml"), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2
        assert "Another popeval run of study 'robust' is running" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "--wait" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130


def test_a_truncated_cache_entry_is_recomputed(study: Path, derived: Path, tmp_path: Path) -> None:
    entries = sorted((derived / "cache").glob("design-*.pkl"))
    assert entries
    for p in entries:
        p.write_bytes(p.read_bytes()[:50])
    cfg = _fresh_config(tmp_path, study, derived, replicates=4, workers=1)
    r = subprocess.run(
        [POPEVAL, "run", "--config", str(cfg), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[design] computing" in r.stderr and "[ingest+link] reused" in r.stderr
    run_dir = next(
        p
        for p in _run_dirs(derived)
        if (p / COMPLETE_MARKER).exists()
        and "unreadable" in (p / "run.log").read_text(encoding="utf-8")
    )
    assert "discarded and recomputed" in (run_dir / "run.log").read_text(encoding="utf-8")


def test_package_versions_are_part_of_the_cache_keys(
    study: Path, derived: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.pipeline as pl

    cfg = _fresh_config(tmp_path, study, derived, replicates=4, workers=1)
    same = pl.run(load_config(cfg), progress=False)
    assert "design" in same.reused
    real = pl._packages

    def other_numpy() -> dict[str, str]:
        return {**real(), "numpy": "0.0.1"}

    monkeypatch.setattr(pl, "_packages", other_numpy)
    other = pl.run(load_config(cfg), progress=False)
    assert other.reused == ()
    assert other.run_dir != same.run_dir
    assert read_bundle(other.bundle).manifest["packages"]["numpy"] == "0.0.1"  # type: ignore[arg-type]


def test_an_unwritable_derived_folder_is_a_clear_error(study: Path, tmp_path: Path) -> None:
    target = Path("/proc/popeval-derived")  # not writable, not even for root
    cfg = tmp_path / "ro.toml"
    _write_config(cfg, study, target, replicates=4, workers=1)
    r = subprocess.run(
        [POPEVAL, "run", "--config", str(cfg), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert (
        "The folder for derived data cannot be written" in r.stderr
        and "study.derived_dir" in r.stderr
    )
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_a_read_only_derived_folder_with_everything_cached_is_a_clear_error(
    study: Path, derived: Path, tmp_path: Path
) -> None:
    cfg = _fresh_config(tmp_path, study, derived, replicates=4, workers=1)
    modes = {p: p.stat().st_mode for p in [derived, *derived.rglob("*")] if p.is_dir()}
    try:
        for p in modes:
            p.chmod(0o555)
        r = subprocess.run(
            [POPEVAL, "run", "--config", str(cfg), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        for p, m in modes.items():
            p.chmod(m)
    assert r.returncode == 2
    assert "cannot be written" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------ secondary methods


def _wave_with_two_answer_categories(study: Path, out: Path) -> Path:
    """A copy of the study's snapshot in which every promotion answer is 4 or 5 (a later snapshot)."""
    import csv
    import hashlib
    import io
    import shutil

    src = next((study / "survey" / str(DEMO_SURVEY_ID)).glob("*/manifest.json")).parent
    dst = out / "survey" / str(DEMO_SURVEY_ID) / "20991231T000000Z"
    shutil.copytree(src, dst)
    text = (dst / "responses.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    col = rows[0].index("EFFECT[SQ003]")
    for r in rows[1:]:
        if len(r) > col and r[col] in ("1", "2", "3"):
            r[col] = "4" if r[col] == "3" else "5"
    with (dst / "responses.csv").open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, delimiter=";", quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    man = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    man["files"]["responses.csv"] = hashlib.sha256((dst / "responses.csv").read_bytes()).hexdigest()
    (dst / "manifest.json").write_text(json.dumps(man, indent=2), encoding="utf-8")
    return out / "survey"


def test_a_secondary_method_that_fails_is_not_estimable_and_the_main_results_stand(
    study: Path, tmp_path: Path
) -> None:
    from analysis.pipeline import run

    snaps = _wave_with_two_answer_categories(study, tmp_path)
    _write_config(tmp_path / "s.toml", study, tmp_path / "derived", replicates=0, workers=1, snapshots=snaps)
    res = run(load_config(tmp_path / "s.toml"), progress=False)
    ne = res.not_estimable
    assert ("promotion", "ologit") in set(zip(ne["outcome"], ne["method"], strict=True))
    assert ne["reason"].str.len().min() > 10
    # the main estimator and the other methods stand, for every outcome
    b = read_bundle(res.bundle)  # type: ignore[arg-type]
    eff = b.table("effects")
    main = eff[(eff["method"] == "matching") & (eff["scale"] == "likert")]
    assert sorted(main["outcome"]) == ["job_better", "promotion", "satisfaction", "stronger"]
    assert main["bse"].gt(0).all()
    assert not ((eff["outcome"] == "promotion") & (eff["method"] == "ologit")).any()
    assert ((eff["outcome"] == "promotion") & (eff["method"] == "regression")).sum() == 2
    # ... and the bundle and the summary say what was not estimable and why
    tab = b.table("not_estimable")
    assert ("promotion", "ologit") in set(zip(tab["outcome"], tab["method"], strict=True))
    assert any(
        d["outcome"] == "promotion" and d["method"] == "ologit" and d["reason"]
        for d in b.estimates["not_estimable"]
    )
    assert "not estimable" in res.summary() and "ologit on promotion" in res.summary()


# ------------------------------------------------------------------ exports


def test_exports_keep_labels_missing_codes_measure_levels_and_match_sets(derived: Path) -> None:
    import pyreadstat

    run_dir = next(p for p in _run_dirs(derived) if (p / COMPLETE_MARKER).exists())
    ex = run_dir / "exports"
    sav, meta = pyreadstat.read_sav(ex / "analysis_file.sav", user_missing=True)
    assert "person_key" not in sav.columns and "subclass" not in sav.columns
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert all(labels[c] and labels[c] != c for c in sav.columns), [
        c for c in sav.columns if not labels[c] or labels[c] == c
    ]
    # 'weet niet' keeps its code, declared user-missing and labelled, and is flagged
    for o in ("stronger", "job_better", "promotion", "satisfaction"):
        assert meta.missing_ranges[o] == [{"lo": 99.0, "hi": 99.0}]
        assert meta.variable_value_labels[o][99] == "Weet niet"
        assert meta.variable_measure[o] == "ordinal"
        assert ((sav[o] == 99) == (sav[f"{o}_dont_know"] == 1)).all()
    assert (
        sav[
            [f"{o}_dont_know" for o in ("stronger", "job_better", "promotion", "satisfaction")]
        ].to_numpy()
        == 1
    ).any()
    # the training domain has value labels for every code present
    dom = meta.variable_value_labels["train_domain"]
    assert set(sav["train_domain"].dropna().astype(int)) <= set(dom)
    assert "Zorg en welzijn" in dom.values()
    assert meta.variable_measure["train_domain"] == "nominal"
    assert (
        meta.variable_measure["w_analysis"] == "scale"
        and meta.variable_measure["educ"] == "ordinal"
    )
    # Stata: the same labels, 'weet niet' as the extended missing value .a
    dta, dmeta = pyreadstat.read_dta(ex / "analysis_file.dta", user_missing=True)
    assert (dta["stronger"].astype(str) == "a").sum() == (sav["stronger"] == 99).sum()
    assert dmeta.variable_value_labels["stronger"]["a"] == "Weet niet"
    assert (
        dict(zip(dmeta.column_names, dmeta.column_labels, strict=True))["w_analysis"]
        == labels["w_analysis"]
    )
    # match sets: every matched POP respondent has one; a control appears once per set it is in
    sets, smeta = pyreadstat.read_sav(ex / "match_sets.sav")
    assert smeta.variable_value_labels["role"] == {1.0: "POP-respondent", 2.0: "Gematchte controle"}
    treated = sav[sav["pop"] == 1]
    matched = treated[treated["w_matching"] > 0]
    assert set(matched["match_set"].astype(int)) == set(
        sets.loc[sets["role"] == 1, "match_set"].astype(int)
    )
    assert treated.loc[treated["w_matching"] == 0, "match_set"].isna().all()
    per_control = sets[sets["role"] == 2].groupby("response_id").size()
    controls = sav[(sav["pop"] == 0) & (sav["w_matching"] > 0)].set_index("response_id")[
        "n_match_sets"
    ]
    assert (controls.reindex(per_control.index).to_numpy() == per_control.to_numpy()).all()
    assert (
        controls > 0
    ).all() and controls.max() > 1  # with replacement, some controls serve several POP users


def test_too_few_replicates_are_flagged_in_the_log_and_the_bundle(derived: Path) -> None:
    run_dir = next(p for p in _run_dirs(derived) if (p / COMPLETE_MARKER).exists() and read_bundle(p / "bundle").manifest["config"]["effects"]["replicates"] == 4)
    assert "only 4 end-to-end replicates" in (run_dir / "run.log").read_text(encoding="utf-8")
    rep = read_bundle(run_dir / "bundle").estimates["replicates"]
    assert rep["below_advised_minimum"] is True
    assert rep["advised_minimum"] == 30


def test_run_and_ingest_say_that_they_are_separate() -> None:
    for cmd in ("run", "ingest"):
        r = subprocess.run([POPEVAL, cmd, "--help"], capture_output=True, text=True, timeout=60)
        assert "does not read" in " ".join(r.stdout.split()), r.stdout


def test_a_failed_run_is_recorded_and_its_folder_not_marked_complete(study: Path, derived: Path, tmp_path: Path) -> None:
    """Last in this file: it damages the design lock of the shared derived folder (and restores it)."""
    cfg = _fresh_config(tmp_path, study, derived, replicates=4, workers=1)
    lock = next((derived / "locks").glob("robust-*.design.lock.json"))
    saved = lock.read_bytes()
    try:
        lock.write_text('{"design_hash": ', encoding="utf-8")
        r = subprocess.run([POPEVAL, "run", "--config", str(cfg), "--no-progress"], capture_output=True, text=True, timeout=600)
    finally:
        lock.write_bytes(saved)
    assert r.returncode == 2
    assert "The design lock cannot be read" in r.stderr and "Traceback" not in r.stderr
    run_dir = next(p for p in _run_dirs(derived) if "design lock cannot be read" in (p / "run.log").read_text(encoding="utf-8"))
    assert "run failed" in (run_dir / "run.log").read_text(encoding="utf-8")
    assert not (run_dir / COMPLETE_MARKER).exists()


def test_the_study_lock_refuses_or_waits(tmp_path: Path) -> None:
    import threading

    from analysis.pipeline import StudyLockedError, _StudyLock

    first = _StudyLock(tmp_path, "demo", wait=False).__enter__()
    with pytest.raises(StudyLockedError, match="Another popeval run of study 'demo' is running") as e:
        _StudyLock(tmp_path, "demo", wait=False).__enter__()
    assert f"pid {os.getpid()}" in str(e.value)
    # another study is not blocked
    with _StudyLock(tmp_path, "other", wait=False):
        pass
    # a waiting run gets the lock once the first one lets go
    timer = threading.Timer(0.5, first.__exit__, args=(None, None, None))
    timer.start()
    t0 = time.monotonic()
    with _StudyLock(tmp_path, "demo", wait=True):
        assert time.monotonic() - t0 >= 0.4
    timer.join()


def test_a_kill_while_the_admin_data_are_loaded_leaves_no_database(study: Path, tmp_path: Path) -> None:
    cold = tmp_path / "derived"
    cfg = _fresh_config(tmp_path, study, cold, replicates=4, workers=1)
    proc = _start(cfg)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "[ingest+link] computing" in line:
            break
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # the database is built under a hidden temporary name: nothing that looks like a finished one
    assert not [p for p in cold.glob("*.duckdb") if not p.name.startswith(TEMP_PREFIX)]
    assert not list((cold / "cache").glob("ingest+link-*.pkl"))


def test_a_run_leaves_the_process_state_as_it_found_it(study: Path, derived: Path, tmp_path: Path) -> None:
    """Loggers, pickle reducers and BLAS limits are restored; worker processes get plain data."""
    import copyreg
    import logging
    import types

    from threadpoolctl import threadpool_info, threadpool_limits

    import analysis.pipeline as pl

    names = ["", "popeval", "popeval.run", "analysis", "analysis.weighting", "survey"]
    before = [(n, logging.getLogger(n).level, tuple(logging.getLogger(n).handlers)) for n in names]
    cfg = _fresh_config(tmp_path, study, derived, replicates=6, workers=2)
    with threadpool_limits(limits=2):  # not one (the tests' own limit), so that a limit left behind shows
        blas = threadpool_info()
        assert all(lib["num_threads"] == 2 for lib in blas)
        res = pl.run(load_config(cfg), progress=False)
        after = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}  # libraries loaded since are new
    assert "outcomes" in res.computed  # the replicates ran in two worker processes
    assert (res.run_dir / COMPLETE_MARKER).exists()
    assert [(n, logging.getLogger(n).level, tuple(logging.getLogger(n).handlers)) for n in names] == before
    assert types.MappingProxyType not in copyreg.dispatch_table  # (imported libraries add their own)
    assert {lib["filepath"]: lib["num_threads"] for lib in blas} == {lib["filepath"]: after[lib["filepath"]] for lib in blas}


_POOL_INTERRUPTION = r"""
import logging, os, signal, sys, threading, time
from concurrent.futures import InvalidStateError
from analysis.processes import Interrupted, handle_interruptions

logging.getLogger("analysis").addHandler(logging.NullHandler())  # the run log's place


def fail_in_thread():
    raise InvalidStateError("CANCELLED: <Future at 0x0 state=cancelled>")

try:
    with handle_interruptions("popeval run: interrupted"):
        if sys.argv[1] == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        t = threading.Thread(target=fail_in_thread)
        t.start(); t.join()
except Interrupted:
    # what a process pool's manager thread does while the interruption unwinds (CPython 3.11)
    t = threading.Thread(target=fail_in_thread)
    t.start(); t.join()
    print("popeval run: interrupted", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.parametrize("mode", ["interrupt", "no_interrupt"])
def test_a_thread_failing_while_an_interruption_unwinds_prints_no_traceback(mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _POOL_INTERRUPTION, mode], capture_output=True, text=True, timeout=60, cwd=ROOT)
    if mode == "interrupt":
        assert proc.returncode == 130, proc.stderr
        assert proc.stderr.splitlines() == ["popeval run: interrupted"]
    else:  # without an interruption a failing thread is a fault and shows as one
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" in proc.stderr and "InvalidStateError" in proc.stderr


_FORK_UNDER_SIGNAL = r"""
import os, signal, sys, time
from analysis.processes import Interrupted, handle_interruptions

sig = getattr(signal, sys.argv[1])
with handle_interruptions("popeval run: interrupted"):
    pid = os.fork()
    if pid == 0:
        # a pool's new worker, hit by the signal before its initializer ran
        os.kill(os.getpid(), sig)
        for _ in range(100):  # Python code runs: the inherited handler is called here
            time.sleep(0.001)
        print("worker carried on", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
print("worker", "signal" if os.WIFSIGNALED(status) else "exit",
      os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize(("sig", "worker_end"), [("SIGINT", "worker exit 0"), ("SIGTERM", f"worker signal {int(signal.SIGTERM)}")])
def test_a_worker_forked_while_the_signal_arrives_prints_nothing(sig: str, worker_end: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _FORK_UNDER_SIGNAL, sig], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no second 'interrupted' line from the worker
    expected = ["worker carried on", worker_end] if sig == "SIGINT" else [worker_end]
    assert proc.stdout.splitlines() == expected
