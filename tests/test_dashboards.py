"""Grafana dashboards and provisioning: generated files current, structure Grafana needs, queries valid.

Whether the queries return data against a real Prometheus fed by the exporter is tests/test_e2e_prometheus.py.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._grafana_support import (
    BUILTIN_VARIABLES,
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    dashboards,
    label_values,
    panels,
    substitute,
    targets,
    used_variables,
    variables,
)

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "grafana" / "generate.py"
PROVISIONING = ROOT / "grafana" / "provisioning"
CONTRACT = ROOT / "docs" / "metrics.md"
RULES = ROOT / "prometheus" / "rules.yml"
UIDS = {"isolarcloud-fleet.json": "isolarcloud-fleet", "isolarcloud-plant.json": "isolarcloud-plant"}
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
# Metrics that are not the exporter's own but are fine to query.
PROMETHEUS_METRICS = {"up", "ALERTS", "scrape_duration_seconds", "process_resident_memory_bytes",
                      "process_cpu_seconds_total"}
# Sample values for the syntax check only.
SAMPLE_VALUES = {**BUILTIN_VARIABLES, "job": "isolarcloud", "account": ".*", "plant": "Roof", "ps_id": "1001",
                 "time_zone": "GMT+8",
                 "datasource": "prometheus"}

DASHBOARDS = dashboards()


def all_targets():
    return [(name, p, t) for name, d in DASHBOARDS.items() for p, t in targets(d)]


def recorded_metrics(deprecated: bool = True) -> set[str]:
    """The recording rules of prometheus/rules.yml (those the dashboards read), with or without the deprecated
    copies of 0.1.0's names."""
    return {r["record"] for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]
            if deprecated or not g["name"].endswith("-deprecated")}


def contract_metrics() -> set[str]:
    return set(re.findall(r"\b(isolarcloud_[a-z_]+)\b", CONTRACT.read_text(encoding="utf-8")))


def metric_names(expr: str) -> set[str]:
    """Identifiers in metric position: followed by `{`, or `isolarcloud_*`/recording-rule style names."""
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
    names |= set(re.findall(r"\b([a-z_]+:isolarcloud_[a-z_]+:[a-z_]+|isolarcloud_[a-z_]+)\b", expr))
    return names


# --------------------------------------------------------------------------- generated files


def test_generated_files_are_current(tmp_path):
    result = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(DASHBOARD_FILES)
    for name in DASHBOARD_FILES:
        assert (tmp_path / name).read_text(encoding="utf-8") == (DASHBOARD_DIR / name).read_text(
            encoding="utf-8"), f"{name} is stale: run python grafana/generate.py and commit the result"


def test_generator_uses_the_standard_library_only():
    tree = ast.parse(GENERATOR.read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert modules - set(sys.stdlib_module_names) - {"__future__"} == set()


# --------------------------------------------------------------------------- dashboard structure


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_identity_and_datasource_variable(name):
    d = DASHBOARDS[name]
    assert d["uid"] == UIDS[name]
    assert "__inputs" not in d and "__requires" not in d, "file provisioning cannot fill __inputs"
    first = variables(d)[0]
    assert (first["name"], first["type"], first["query"]) == ("datasource", "datasource", "prometheus")
    names = [v["name"] for v in variables(d)]
    assert len(names) == len(set(names))
    assert {"job", "account"} <= set(names)
    job = next(v for v in variables(d) if v["name"] == "job")
    assert job["current"]["value"] == "isolarcloud"
    if name == "isolarcloud-plant.json":
        assert {"plant", "ps_id"} <= set(names)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_query_uses_the_datasource_variable(name):
    d = DASHBOARDS[name]
    for v in variables(d)[1:]:
        assert v["datasource"] == DS_REF, v["name"]
    for p in panels(d):
        assert p["datasource"] == DS_REF, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS_REF, p["title"]
            assert t["expr"].strip(), p["title"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_layout_has_no_overlaps(name):
    d = DASHBOARDS[name]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_variable_used_is_defined(name):
    d = DASHBOARDS[name]
    defined = {v["name"] for v in variables(d)} | set(BUILTIN_VARIABLES)
    texts = [t["expr"] for _, t in targets(d)] + [v["query"] for v in variables(d)[1:]]
    for text in texts:
        assert used_variables(text) <= defined, text
    # Variables only refer to variables defined before them (Grafana resolves them in order).
    seen: set[str] = set()
    for v in variables(d):
        if v["type"] == "query":
            assert used_variables(v["query"]) <= seen, v["name"]
            label_values(v["query"])
        seen.add(v["name"])


def panel_mappings(p: dict) -> list[dict]:
    found = list(p["fieldConfig"]["defaults"].get("mappings", []))
    for override in p["fieldConfig"]["overrides"]:
        found += [m for prop in override["properties"] if prop["id"] == "mappings" for m in prop["value"]]
    return found


def test_status_panels_turn_codes_into_words():
    """Every panel showing a status code maps it to a word and a colour."""
    checked = 0
    for _, p, t in all_targets():
        if p["type"] == "timeseries" or not re.search(r"isolarcloud_(?:plant_\w+_status|plant_valid_flag|up)\{",
                                                       t["expr"]):
            continue
        options = [o for m in panel_mappings(p) for o in m["options"].values()]
        assert options and all(o["text"] and o["color"] for o in options), p["title"]
        if "isolarcloud_plant_fault_status{" in t["expr"] and "count" not in t["expr"]:
            assert {"Fault", "Alarm", "Normal"} <= {o["text"] for o in options}, p["title"]
        checked += 1
    assert checked >= 8


def test_queries_use_only_known_metrics():
    known = contract_metrics() | recorded_metrics() | PROMETHEUS_METRICS
    for name, p, t in all_targets():
        unknown = metric_names(t["expr"]) - known
        assert not unknown, f"{name} / {p['title']}: {unknown}"


def test_every_recording_rule_is_used_by_a_dashboard():
    """... directly, or through another recording rule the dashboards read (the one-pass code counts)."""
    exprs = " ".join(t["expr"] for _, _, t in all_targets())
    rules = {r["record"]: r["expr"] for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
             for r in g["rules"] if not g["name"].endswith("-deprecated")}
    read = {name for name in rules if name in exprs}
    read |= {name for name in rules if any(name in expr for other, expr in rules.items() if other in read)}
    assert set(rules) - read == set()
    # ... and none of the deprecated names: the dashboards move first.
    assert {r for r in recorded_metrics() - recorded_metrics(deprecated=False) if r in exprs} == set()


# --------------------------------------------------------------------------- what holds at 10,000 plants


def test_no_query_reads_a_range_of_every_plant():
    """Subqueries over the dashboard's range ("not normal for" read 200 M samples at 10,000 plants over 7 days,
    past Prometheus' 50 M limit): none. Per-plant range functions look back an hour at most."""
    for name, p, t in all_targets():
        assert not re.search(r"\[[^\]]*:[^\]]*\]", t["expr"]), f"{name} / {p['title']}: subquery"
        for window in re.findall(r"\[([^\]]+)\]", t["expr"]):
            if "isolarcloud_plant_" in t["expr"] and "isolarcloud_plant_" in t["expr"].split(f"[{window}]")[0]:
                assert window in ("$__rate_interval", "$__interval", "1h"), f"{name} / {p['title']}: [{window}]"


def test_tables_page():
    tables = [p for d in DASHBOARDS.values() for p in panels(d) if p["type"] == "table"]
    assert len(tables) >= 4
    for p in tables:
        assert p["options"]["footer"]["enablePagination"] is True, p["title"]
        assert p["options"]["enablePagination"] is True, p["title"]


def test_rankings_compare_plants_of_one_time_zone_named_by_name_and_id():
    fleet = DASHBOARDS["isolarcloud-fleet.json"]
    zone = next(v for v in variables(fleet) if v["name"] == "time_zone")
    assert not zone["includeAll"] and not zone["multi"], "a ranking across zones compares different hours"
    rankings = [(p, t) for p, t in targets(fleet) if re.search(r"\b(?:top|bottom)k\(", t["expr"])]
    assert len(rankings) == 4
    for p, t in rankings:
        assert "time_zone=`$time_zone`" in t["expr"] and "$time_zone" in p["title"], p["title"]
        assert t["legendFormat"] == "{{ps_name}} ({{ps_id}})", p["title"]


def test_plant_names_are_raw_strings():
    """A name with a double quote or a backslash would break `ps_name="$plant"`; backtick strings take them as
    they are (only a backtick in a name still would)."""
    texts = [t["expr"] for _, _, t in all_targets()]
    texts += [v["query"] for d in DASHBOARDS.values() for v in variables(d)[1:]]
    assert not [t for t in texts if re.search(r'ps_name=~?"\$', t)]
    plant = DASHBOARDS["isolarcloud-plant.json"]
    assert "ps_name=`$plant`" in next(v for v in variables(plant) if v["name"] == "ps_id")["query"]


def test_token_thresholds_follow_the_token_kind():
    """Healthy is 30 days for a refresh token and minutes-to-a-day for access and login tokens: a 24 h login
    token must not show red, nor a healthy access token orange."""
    fleet = DASHBOARDS["isolarcloud-fleet.json"]
    (token,) = [p for p in panels(fleet) if p["title"] == "Token expiry"]

    def color(thresholds: dict, seconds: float) -> str:
        return [s["color"] for s in thresholds["steps"] if s["value"] is None or s["value"] <= seconds][-1]

    default = token["fieldConfig"]["defaults"]["thresholds"]
    (override,) = token["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byRegexp", "options": ".* refresh$"}
    refresh = override["properties"][0]["value"]
    assert [color(default, s) for s in (-60, 600, 86400 - 60, 2 * 86400)] == ["red", "green", "green", "green"]
    assert [color(refresh, s) for s in (-60, 3600, 3 * 86400, 20 * 86400)] == ["red", "red", "orange", "green"]


def test_promql_syntax(tmp_path, promtool):
    """Every query, with variables filled in, parses: promtool checks them as recording rules."""
    rules = [{"record": f"dashboard:query_{i}:check", "expr": substitute(t["expr"], SAMPLE_VALUES)}
             for i, (_, _, t) in enumerate(all_targets())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


# --------------------------------------------------------------------------- provisioning


def test_datasource_provisioning():
    data = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert data["apiVersion"] == 1
    (ds,) = data["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True and ds["url"].startswith("http")


def test_dashboard_provisioning_points_at_a_folder():
    text = (PROVISIONING / "dashboards" / "isolarcloud.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/") and not path.endswith(".json")
    assert path in text.split("apiVersion")[0], "the mount-path assumption is documented in the header"
