"""Shared fixtures: synthetic studies generated once per run (see :mod:`shared_studies`).

``make test`` runs the suite on all cores (``pytest -n auto --dist loadfile``, pytest-xdist): each
test file runs whole in one worker process, so module fixtures are computed once and the signal and
kill tests of ``test_robustness.py`` run one after another.  The files that take longest are handed
out first (:data:`SLOW_FILES`), so that the workers finish at about the same time.  The shared
studies' folder is made by the controlling process and handed to every worker, so each study is
written once per run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# One BLAS (and OpenMP) thread per process, set before numpy loads OpenBLAS (and inherited by the
# runs, kernels and workers the tests start): the test workers already use every core, and BLAS
# threads on busy cores wait for each other (small dense algebra several times slower).  ``popeval
# run`` itself runs on one thread (``analysis.pipeline.run_scope``); the tests of that set a limit of
# their own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import shared_studies as studies

_ROOT = pytest.StashKey[Path]()
_WORKER_KEY = "popeval_shared_studies"

#: The test files that take longest, longest first (from a ``--durations`` profile; a stale order
#: costs only balance, never a result).  Every other file follows in its usual order.  mypy comes
#: first: on a clean clone (CI) it has no cache and is one of the longest files, a single process
#: that the other worker's files then run beside.
SLOW_FILES = (
    "test_types.py",
    "test_report.py",
    "test_robustness.py",
    "test_known_truth.py",
    "test_byo_study.py",
    "test_pipeline.py",
    "test_plans.py",
    "test_plans_known_truth.py",
    "test_estimation.py",
    "test_byo_errors.py",
    "test_plans_run.py",
    "test_population.py",
    "test_replicates_stacked.py",
    "test_population_profile.py",
    "test_limesurvey_server_cases.py",
    "test_pipeline_fetch.py",
    "test_limesurvey_fetch.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """The shared studies' folder: made here by the controller (or a run without workers), received by a worker.

    A short path (not under pytest's temporary folder): the studies' paths are printed in the
    reports' settings annex, as a study's own would be.
    """
    workerinput = getattr(config, "workerinput", None)
    root = Path(workerinput[_WORKER_KEY]) if workerinput is not None else Path(tempfile.mkdtemp(prefix="popeval-"))
    config.stash[_ROOT] = root
    studies.set_root(root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first (:data:`SLOW_FILES`); within a file, the tests keep their order."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """pytest-xdist: every worker gets the controller's folder of shared studies."""
    node.workerinput[_WORKER_KEY] = str(node.config.stash[_ROOT])  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is None and _ROOT in config.stash:  # the folder's maker removes it
        shutil.rmtree(config.stash[_ROOT], ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """One thread also in the libraries loaded before this file set the variables (by a plugin)."""
    from threadpoolctl import threadpool_limits

    if any(os.environ[v] != "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):  # set by the caller: theirs
        yield
        return
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session", autouse=True)
def _shared_studies() -> Iterator[None]:
    """At the end of each process's session, a check that no test changed a shared study."""
    yield
    changed = studies.check_unchanged()
    if changed:
        pytest.fail("a test wrote into a shared study (it must copy it first): " + ", ".join(changed), pytrace=False)


@pytest.fixture(scope="session")
def small_study() -> Path:
    """A 5,000-person synthetic study (seed 11); shared, read-only."""
    return studies.generated_study(5_000, 11)
