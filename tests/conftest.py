"""Shared fixtures: synthetic studies generated once per session (see :mod:`shared_studies`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import shared_studies as studies


@pytest.fixture(scope="session", autouse=True)
def _shared_studies() -> Iterator[None]:
    """The folder of the shared studies; at the end, a check that no test changed one.

    A short path (not under pytest's temporary folder): the studies' paths are printed in the
    reports' settings annex, as a study's own would be.
    """
    root = Path(tempfile.mkdtemp(prefix="popeval-"))
    studies.set_root(root)
    yield
    changed = studies.check_unchanged()
    shutil.rmtree(root, ignore_errors=True)
    if changed:
        pytest.fail("a test wrote into a shared study (it must copy it first): " + ", ".join(changed), pytrace=False)


@pytest.fixture(scope="session")
def small_study() -> Path:
    """A 5,000-person synthetic study (seed 11); shared, read-only."""
    return studies.generated_study(5_000, 11)
