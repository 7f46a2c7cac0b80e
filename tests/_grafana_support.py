"""Reading the generated Grafana dashboards as Grafana would: panels, query targets, template variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
DASHBOARD_FILES = ("isolarcloud-fleet.json", "isolarcloud-plant.json")

# Grafana's own variables; the values are what the e2e test substitutes (a short dashboard range).
BUILTIN_VARIABLES = {"__rate_interval": "30s", "__interval": "15s", "__range": "5m", "__range_s": "300",
                     "__interval_ms": "15000"}
VARIABLE_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES_RE = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)


def load(name: str, directory: Path = DASHBOARD_DIR) -> dict[str, Any]:
    return json.loads((directory / name).read_text(encoding="utf-8"))


def dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    return {name: load(name, directory) for name in DASHBOARD_FILES}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    for p in dashboard["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p, t


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard["templating"]["list"]


def used_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE_RE.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace $name, ${name}, ${name:format} and [[name]] the way Grafana does for single values."""

    def replace(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise KeyError(f"no value for ${name} in {text!r}")
        return values[name]

    return VARIABLE_RE.sub(replace, text)


def label_values(query: str) -> tuple[str | None, str]:
    """(series selector or None, label) of a `label_values(...)` variable query."""
    m = LABEL_VALUES_RE.match(query.strip())
    if m is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m["selector"], m["label"]
