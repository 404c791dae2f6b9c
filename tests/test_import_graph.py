"""The package's import graph: no circles, and no arrow from a lower layer up to a higher one.

Every module under src/astra_repro is parsed with `ast` (nothing is imported), and every intra-package import is
an edge, module-level and function-level alike: a lazy import hides a circle from Python, not from the design.
Fast: no model, no import of the package's heavy dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import astra_repro

PACKAGE = "astra_repro"
ROOT = Path(astra_repro.__file__).parent

# Layers that sit below the evaluation and reporting code: data, tasks, init methods and calibration feed training
# and evaluation, so none of them may know about an evaluator or a report.
LOWER_LAYERS = ("tasks", "data", "methods", "calibration")
# Import circles allowed, each named by its sorted members: none (train <-> training.launch went with the run spec,
# spec.py). A new circle fails the test, and an entry here whose circle is gone fails it too.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules one import statement names (`from astra_repro.x import y` is x.y when y is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # relative: resolved against this module's package
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # `from pkg import submodule` depends on the submodule only (any submodule import runs its package's
        # __init__ first, which is no arrow of its own); `from module import name` depends on the module
        names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
    found = set()
    for name in names:
        if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        # the longest known module the name lies in: `astra_repro.evaluators.base.EvalResult` -> evaluators.base
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):  # ast.walk reaches imports inside functions and classes too
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported(node, module, path.name == "__init__.py", known)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), each as its sorted members."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> str:
    """The first component under the package: `astra_repro.evaluators.gsm8k` -> evaluators, `astra_repro.train` -> train."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_parser_sees_module_and_function_level_imports(graph):
    # guards the test itself: the lazy imports below are real edges of the package
    assert "astra_repro.evaluators.base" in graph["astra_repro.evaluators.gsm8k"]
    assert "astra_repro.evaluators.generation" in graph["astra_repro.evaluators.base"]  # inside Evaluator.generate
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]


def test_no_import_circle_among_the_evaluators(graph):
    evaluators = {m: {e for e in edges if layer(e) == "evaluators"} for m, edges in graph.items() if layer(m) == "evaluators"}
    assert cycles(evaluators) == []


def test_no_new_import_circle_anywhere(graph):
    found = set(cycles(graph))
    assert found <= ALLOWED_CYCLES, f"new import circles: {sorted(found - ALLOWED_CYCLES)}"
    assert ALLOWED_CYCLES <= found, f"fixed circles still allowed, drop them: {sorted(ALLOWED_CYCLES - found)}"


@pytest.mark.parametrize("lower", LOWER_LAYERS)
def test_lower_layers_never_import_evaluators_or_reports(graph, lower):
    arrows = sorted((m, e) for m, edges in graph.items() if layer(m) == lower for e in edges
                    if layer(e) in ("evaluators", "report"))
    assert arrows == []


def test_evaluators_never_import_reports_or_the_runners(graph):
    arrows = sorted((m, e) for m, edges in graph.items() if layer(m) == "evaluators" for e in edges
                    if layer(e) in ("report", "train", "evaluate", "sweep"))
    assert arrows == []
