"""The imported ``survey`` and ``analysis`` are this repository's, not PyPI's namesakes."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["survey", "analysis"])
def test_package_is_this_repository(name: str) -> None:
    mod = importlib.import_module(name)
    path = Path(mod.__file__).resolve()
    assert path == REPO / name / "__init__.py"


def test_survey_never_imports_analysis() -> None:
    offenders = []
    for py in (REPO / "survey").rglob("*.py"):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(n == "analysis" or n.startswith("analysis.") for n in names):
                offenders.append(f"{py.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
