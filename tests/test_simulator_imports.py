"""Import rules of the simulator package, checked on the source with `ast` (nothing is imported):

- no import cycles between its modules, counting imports under `if TYPE_CHECKING:` and inside functions;
- nothing imported from the rest of `exporter/` (the simulator is written from the API reference, not from the
  exporter's client, so that a misunderstanding on either side shows up as a failing test).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "exporter.simulator"
ROOT = Path(__file__).resolve().parent.parent / "exporter" / "simulator"


def _modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(ROOT.glob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """(sibling modules imported, imports that leave the package)."""
    siblings: set[str] = set()
    outside: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "exporter" or alias.name.startswith("exporter."):
                    if alias.name.startswith(PACKAGE + "."):
                        siblings.add(alias.name[len(PACKAGE) + 1:].split(".")[0])
                    elif alias.name != PACKAGE:
                        outside.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod.startswith(PACKAGE + "."):
                    siblings.add(mod[len(PACKAGE) + 1:].split(".")[0])
                elif mod == PACKAGE:
                    siblings.update(a.name for a in node.names if a.name in modules)
                elif mod == "exporter" or mod.startswith("exporter."):
                    outside.append(mod)
            elif node.level == 1:
                if node.module:
                    siblings.add(node.module.split(".")[0])
                else:
                    siblings.update(a.name if a.name in modules else "__init__" for a in node.names)
            else:
                outside.append("." * node.level + (node.module or ""))
    return siblings, outside


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    leaks: dict[str, list[str]] = {}
    for name, path in modules.items():
        siblings, outside = _imports(path, modules)
        graph[name] = {s for s in siblings if s != name}
        if outside:
            leaks[name] = outside
    return graph, leaks


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, black) == grey:
                return [*stack[stack.index(nxt):], nxt]
            if colour.get(nxt) == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for start in sorted(graph):
        if colour[start] == white:
            found = visit(start)
            if found:
                return found
    return None


def test_no_import_cycles_in_simulator() -> None:
    graph, _ = _graph()
    assert "simulator" in graph and "endpoints" in graph
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_simulator_imports_nothing_from_the_exporter() -> None:
    _, leaks = _graph()
    assert leaks == {}


def test_cycle_finder_finds_a_type_checking_cycle(tmp_path: Path) -> None:
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    (tmp_path / "a.py").write_text(src)
    (tmp_path / "b.py").write_text("from .a import A\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {name: _imports(path, modules)[0] for name, path in modules.items()}
    assert _cycle(graph) == ["a", "b", "a"]
