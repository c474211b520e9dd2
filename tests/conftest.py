"""Shared fixtures: synthetic studies generated once per session (see :mod:`shared_studies`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import shared_studies as studies


@pytest.fixture(scope="session", autouse=True)
def _shared_studies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The folder of the shared studies; at the end, a check that no test changed one."""
    studies.set_root(tmp_path_factory.mktemp("shared_studies"))
    yield
    changed = studies.check_unchanged()
    if changed:
        pytest.fail("a test wrote into a shared study (it must copy it first): " + ", ".join(changed), pytrace=False)


@pytest.fixture(scope="session")
def small_study() -> Path:
    """A 5,000-person synthetic study (seed 11); shared, read-only."""
    return studies.generated_study(5_000, 11)
