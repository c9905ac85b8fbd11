"""The layout's rules that import-linter does not cover: no import circle, and modules a newcomer can read in one sitting.

The layer and "who may import whom" contracts live in pyproject.toml ([tool.importlinter]) and
run with ``lint-imports`` in ``make test``.
"""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "shop", "search", "mlmodels", "workers")
#: Longest module (lines) in the apps; past it, split the module by concern.
MAX_MODULE_LINES = 400


def _import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_back():
    # given the import graph of the project's packages (imports inside functions included)
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    # when looking for import circles
    circles = _import_circles(graph)
    # then there is none
    assert circles == []


def test_a_circle_is_found_when_there_is_one(tmp_path, monkeypatch):
    # given two modules that import each other
    package = tmp_path / "circular"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circular import b\n")
    (package / "b.py").write_text("def f():\n    from circular import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # when the graph is searched
    circles = _import_circles(grimp.build_graph("circular", cache_dir=None))
    # then the circle is reported
    assert circles == [["circular.a", "circular.b"]]


def test_no_app_module_is_over_400_lines():
    # given every Python module of the apps (migrations are generated)
    modules = [p for package in ("search", "shop", "mlmodels") for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    # when their lines are counted
    too_long = {str(p.relative_to(ROOT)): n for p in modules if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    # then none is past the limit
    assert too_long == {}
