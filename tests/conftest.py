"""Shared fixtures: small synthetic studies generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5,000-person synthetic study (seed 11)."""
    from analysis.synth import generate

    out = tmp_path_factory.mktemp("small_study")
    generate(persons=5_000, seed=11, out=out)
    return out
