"""The import rules of ARCHITECTURE.md, checked statically on the source (no module is imported).

* ``survey`` never imports ``analysis``.
* A private module (``_name.py``) is imported only from inside its own package.
* A private name (``_name``) is never imported from another module.
* A room imports only rooms of a lower layer (``LAYERS``, as in ARCHITECTURE.md) or itself.
* There is no import cycle between modules. Imports inside functions and under ``TYPE_CHECKING``
  count too; the few function-level cycles that are accepted are listed in ``JUSTIFIED_CYCLES``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("survey", "analysis")

#: Function-level import edges that close a cycle, with the reason they are accepted.
JUSTIFIED_CYCLES: dict[tuple[str, str], str] = {}


#: The rooms and their layers (ARCHITECTURE.md): a room may import its own modules and rooms of a
#: lower layer only.  A room is a subpackage of ``analysis`` or a top-level module of it.
LAYERS: dict[str, int] = {
    "survey": 0,
    "analysis": 1,
    "analysis.bundle": 1,
    "analysis.disclosure": 1,
    "analysis.processes": 1,
    "analysis.fitwarnings": 1,
    "analysis.synth": 1,
    "analysis.population": 2,
    "analysis.weighting": 2,
    "analysis.matching": 2,
    "analysis.effects": 3,
    "analysis.config": 3,
    "analysis.estimation": 4,
    "analysis.report": 4,
    "analysis.plans": 5,
    "analysis.pipeline": 6,
    "analysis.commands": 7,
    "survey.commands": 7,
    "analysis.cli": 8,
}


def room(module: str) -> str:
    """The room of a module: ``survey.commands``, ``survey``, or ``analysis[.<subpackage or module>]``."""
    parts = module.split(".")
    if parts[0] == "survey":
        return "survey.commands" if parts[1:2] == ["commands"] else "survey"
    return ".".join(parts[:2])


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the importing file
    target: str  # dotted module (or package) imported from
    name: str | None  # the imported name for ``from x import name``; None for ``import x``
    line: int
    top_level: bool  # at module level (incl. ``if TYPE_CHECKING``), not inside a function

    def where(self) -> str:
        return f"{self.importer.replace('.', '/')}.py:{self.line}"


def _modules() -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join(parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits outside any function body."""
    stack: list[tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, top = stack.pop()
        yield node, top
        inner = top and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _imports() -> list[Import]:
    out: list[Import] = []
    for module, (path, is_pkg) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, top in _walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_pkg, node)
                out.extend(Import(module, target, a.name, node.lineno, top) for a in node.names)
            elif isinstance(node, ast.Import):
                out.extend(Import(module, a.name, None, node.lineno, top) for a in node.names)
    return out


IMPORTS = _imports()


def _edge_target(imp: Import) -> str | None:
    """The module of ours that an import loads (a submodule for ``from pkg import submodule``)."""
    if imp.name is not None and f"{imp.target}.{imp.name}" in MODULES:
        return f"{imp.target}.{imp.name}"
    return imp.target if imp.target in MODULES else None


def test_the_scan_sees_the_code() -> None:
    # guards the other tests against passing because nothing was found
    assert {"survey.fetch", "analysis.pipeline", "analysis.matching.nearest"} <= set(MODULES)
    assert any(i.importer == "analysis.pipeline" and i.target.startswith("survey") for i in IMPORTS)
    assert any(not i.top_level for i in IMPORTS)


def test_survey_never_imports_analysis() -> None:
    bad = [
        f"{i.where()} imports {i.target}"
        for i in IMPORTS
        if i.importer.split(".")[0] == "survey" and i.target.split(".")[0] == "analysis"
    ]
    assert not bad, "\n".join(bad)


def test_every_module_has_a_room() -> None:
    assert not [m for m in MODULES if room(m) not in LAYERS]


def test_rooms_import_only_lower_layers() -> None:
    bad = []
    for imp in IMPORTS:
        target = _edge_target(imp)
        if target is None:
            continue
        a, b = room(imp.importer), room(target)
        if a != b and LAYERS[b] >= LAYERS[a]:
            bad.append(f"{imp.where()}: {a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_private_modules_stay_inside_their_package() -> None:
    bad = []
    for imp in IMPORTS:
        target = _edge_target(imp)
        if target is None or not target.rpartition(".")[2].startswith("_"):
            continue
        owner = target.rpartition(".")[0]
        if not (imp.importer == owner or imp.importer.startswith(owner + ".")):
            bad.append(f"{imp.where()} imports the private module {target}")
    assert not bad, "\n".join(bad)


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = [
        f"{i.where()} imports {i.name} from {i.target}"
        for i in IMPORTS
        if i.name is not None
        and i.name.startswith("_")
        and not i.name.startswith("__")
        and i.target.split(".")[0] in PACKAGES
    ]
    assert not bad, "\n".join(bad)


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if top_level_only and not imp.top_level:
            continue
        target = _edge_target(imp)
        if target is None or target == imp.importer:
            continue
        if not top_level_only and not imp.top_level and (imp.importer, target) in JUSTIFIED_CYCLES:
            continue
        graph[imp.importer].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "all"])
def test_no_import_cycles(top_level_only: bool) -> None:
    graph = _graph(top_level_only=top_level_only)
    cycles = _cycles(graph)
    detail = [
        " <-> ".join(c) + "\n    " + "\n    ".join(f"{a} -> {b}" for a in c for b in sorted(graph[a]) if b in c)
        for c in cycles
    ]
    assert not cycles, "\n".join(detail)


def test_justified_cycles_are_still_real() -> None:
    # an entry that no longer matches an import is stale and must go
    edges = {(i.importer, _edge_target(i)) for i in IMPORTS if not i.top_level}
    assert set(JUSTIFIED_CYCLES) <= edges


#: Private attributes read on other objects that are accepted (the standard library's
#: ``os._exit``; the CLI's own argparse namespace).
ACCEPTED_PRIVATE_ATTRIBUTES = {("os", "_exit"), ("args", "_module")}


def test_no_private_attribute_of_another_object_is_read() -> None:
    bad = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                    continue
                owner = node.value.id if isinstance(node.value, ast.Name) else type(node.value).__name__
                if owner in ("self", "cls", "new") or (owner, node.attr) in ACCEPTED_PRIVATE_ATTRIBUTES:
                    continue
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {owner}.{node.attr}")
    assert not bad, "\n".join(bad)
