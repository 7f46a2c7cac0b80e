"""The rules of docs/architecture.md, checked on every module's imports (parsed with `ast`, so imports inside
functions and under `if TYPE_CHECKING:` count too):

- the data module imports nothing of the exporter and no HTTP or Prometheus library;
- the fetch side never imports the serve side, the engine, the configuration or Prometheus; only its transport
  speaks HTTP;
- the serve side never imports the fetch side or the engine; the HTTP server imports nothing of the exporter;
- the engine never imports the serve side;
- the simulator imports nothing from the rest of the exporter (so the two can't share one misunderstanding);
- no import cycles anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "exporter"
HTTP_LIBRARIES = {"requests", "urllib3", "http", "urllib", "socket", "ssl", "httpx", "aiohttp"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports, absolute, relative ones resolved (the package of a module is its parent)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if node.module:
                yield prefix
            for alias in node.names:  # `from . import x` imports submodule x, or a name of the package itself
                yield f"{prefix}.{alias.name}"


def graph() -> dict[str, set[str]]:
    known = modules()
    out: dict[str, set[str]] = {}
    for name, path in known.items():
        found: set[str] = set()
        for target in imports(name, path):
            if target.startswith("exporter"):
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]  # `from .x import Name` → module x
                if target in known and target != name:
                    found.add(target)
            else:
                found.add(target)
        out[name] = found
    return out


GRAPH = graph()


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{source} imports {target}" for source, targets in GRAPH.items() if within(source, *sources)
                  for target in targets if within(target, *forbidden))


def test_the_modules_are_where_the_picture_says() -> None:
    for name in ("exporter.data", "exporter.fetch.transport", "exporter.fetch.auth", "exporter.fetch.session",
                 "exporter.fetch.plants", "exporter.fetch.realtime", "exporter.collect.engine",
                 "exporter.collect.budget", "exporter.serve.metrics", "exporter.serve.exposition",
                 "exporter.serve.web", "exporter.app", "exporter.cli", "exporter.simulator.simulator"):
        assert name in GRAPH, name


def test_the_data_module_imports_nothing_of_the_exporter_nor_http_nor_prometheus() -> None:
    targets = GRAPH["exporter.data"]
    assert not {t for t in targets if t.startswith("exporter")}
    assert not {t.split(".")[0] for t in targets} & (HTTP_LIBRARIES | {"prometheus_client"})


@pytest.mark.parametrize(("sources", "forbidden"), [
    (("exporter.fetch",), ("exporter.serve", "exporter.collect", "exporter.app", "exporter.cli", "exporter.config",
                           "prometheus_client")),
    (("exporter.serve",), ("exporter.fetch", "exporter.collect", "exporter.app", "exporter.cli", "exporter.config")),
    (("exporter.collect",), ("exporter.serve", "exporter.app", "exporter.cli", "prometheus_client")),
    (("exporter.data", "exporter.fetch", "exporter.collect", "exporter.serve", "exporter.config", "exporter.logs"),
     ("exporter.simulator",)),
], ids=["fetch", "serve", "collect", "nobody-but-the-wiring-uses-the-simulator"])
def test_side_rules(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert violations(sources, forbidden) == []


def test_only_the_transport_speaks_http() -> None:
    speakers = sorted(name for name, targets in GRAPH.items() if not within(name, "exporter.simulator")
                      and {t.split(".")[0] for t in targets} & {"requests", "urllib3"})
    assert speakers == ["exporter.fetch.transport"]


def test_the_http_server_knows_nothing_of_isolarcloud() -> None:
    assert not {t for t in GRAPH["exporter.serve.web"] if t.startswith("exporter")}


def test_the_simulator_imports_nothing_from_the_rest_of_the_exporter() -> None:
    outside = sorted(f"{source} imports {target}" for source, targets in GRAPH.items()
                     if within(source, "exporter.simulator") for target in targets
                     if target.startswith("exporter") and not within(target, "exporter.simulator"))
    assert outside == []


def test_no_import_cycles() -> None:
    internal = {name: {t for t in targets if t in GRAPH} for name, targets in GRAPH.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(internal[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(internal):
        if node not in state:
            visit(node)
    # A package's __init__ importing its own submodules is not a cycle unless a submodule imports the package.
    assert cycles == [], "\n".join(" → ".join(c) for c in cycles)


def test_the_rules_are_written_down() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for phrase in ("exporter/data.py", "exporter/fetch/", "exporter/collect/", "exporter/serve/",
                   "exporter/simulator/", "TYPE_CHECKING", "tests/test_architecture.py"):
        assert phrase in text, phrase


def test_the_backfill_is_wiring_that_needs_no_engine_and_serves_nothing() -> None:
    forbidden = ("exporter.collect", "exporter.serve.exposition", "exporter.serve.web", "exporter.serve.status_page",
                 "exporter.simulator", "prometheus_client.registry")
    assert violations(("exporter.backfill",), forbidden) == []
    users = sorted(name for name, targets in GRAPH.items() if not within(name, "exporter.backfill")
                   and any(within(t, "exporter.backfill") for t in targets))
    assert users == ["exporter.cli"]
