"""Prometheus rules: promtool validation, promtool unit tests, and the conventions of the rule files.

promtool comes from the Debian package `prometheus` (/usr/bin/promtool). Without it these tests skip on a
developer machine but fail under CI=true (the `promtool` fixture of conftest.py), so CI can never pass by
silently testing nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
ALERTS = PROM / "alerts.yml"
RULES = PROM / "rules.yml"
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))
CONTRACT = ROOT / "docs" / "metrics.md"
JOB_SELECTOR = 'job="isolarcloud"'
SEVERITIES = {"critical", "warning", "info"}
# The cloud refreshes every 5 minutes: a shorter `for:` could fire on a single poll.
MIN_FOR_SECONDS = 5 * 60


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_of(path: Path) -> list[dict]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Prometheus duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def contract_metrics() -> set[str]:
    return set(re.findall(r"\b(isolarcloud_[a-z_]+)\b", CONTRACT.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules(promtool):
    result = run(promtool, "check", "rules", ALERTS, RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_example_config(promtool):
    # Also loads the rule files it references (relative to prometheus/prometheus.yml).
    result = run(promtool, "check", "config", PROM / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_promtool_unit_tests(promtool):
    assert UNIT_TESTS, "no promtool unit tests in prometheus/tests/"
    result = run(promtool, "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_job_selector_is_one_sed_away(tmp_path, promtool):
    """The documented rename (`sed s/job="isolarcloud"/job="solar"/g`) leaves valid rules and no old job."""
    for source in (ALERTS, RULES):
        renamed = source.read_text(encoding="utf-8").replace(JOB_SELECTOR, 'job="solar"')
        assert JOB_SELECTOR not in renamed
        (tmp_path / source.name).write_text(renamed, encoding="utf-8")
    result = run(promtool, "check", "rules", tmp_path / "alerts.yml", tmp_path / "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    expressions = [r["expr"] for r in rules_of(tmp_path / "alerts.yml") + rules_of(tmp_path / "rules.yml")]
    assert all("isolarcloud" not in re.sub(r"isolarcloud_[a-z_:]+", "", e) for e in expressions)


# --------------------------------------------------------------------------- coverage by unit tests


def unit_test_targets() -> tuple[set[str], set[str]]:
    """Alert names with a firing expectation, and expressions evaluated by promql_expr_test."""
    firing: set[str] = set()
    expressions: set[str] = set()
    for path in UNIT_TESTS:
        for test in load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    firing.add(case["alertname"])
            for case in test.get("promql_expr_test", []):
                if case.get("exp_samples"):
                    expressions.add(case["expr"].strip())
    return firing, expressions


def test_every_alert_has_a_firing_unit_test():
    firing, _ = unit_test_targets()
    alerts = {r["alert"] for r in rules_of(ALERTS)}
    assert alerts - firing == set()


def test_every_alert_has_a_quiet_unit_test():
    quiet = {
        case["alertname"]
        for path in UNIT_TESTS
        for test in load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert {r["alert"] for r in rules_of(ALERTS)} - quiet == set()


def test_every_recording_rule_has_a_unit_test():
    _, expressions = unit_test_targets()
    records = {r["record"] for r in rules_of(RULES)}
    assert records - expressions == set()


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("rule", rules_of(ALERTS), ids=lambda r: r["alert"])
def test_alert_conventions(rule):
    assert re.fullmatch(r"Isolarcloud(?:[A-Z][a-z0-9]+)+", rule["alert"]), "CamelCase, Isolarcloud prefix"
    assert rule["labels"]["severity"] in SEVERITIES
    assert duration_seconds(rule["for"]) >= MIN_FOR_SECONDS
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description"}
    description = annotations["description"]
    assert "\n" not in description and "  " not in description
    expr = rule["expr"]
    if "isolarcloud_plant_" in expr:
        for label in ("ps_name", "ps_id", "account"):
            assert f"$labels.{label}" in description, f"description must name the plant's {label}"
    elif "isolarcloud_config_" in expr:  # the exporter's own state, not an account's
        assert "$labels.instance" in description, "description must name the exporter"
    elif "isolarcloud_" in expr:
        assert "$labels.account" in description, "description must name the account"


@pytest.mark.parametrize("rule", rules_of(RULES), ids=lambda r: r["record"] + str(r.get("labels", "")))
def test_recording_rule_naming(rule):
    level, metric, operation = rule["record"].split(":")
    assert level == "account"
    assert re.fullmatch(r"isolarcloud_[a-z_]+", metric)
    assert operation in {"count", "sum", "ratio"}


@pytest.mark.parametrize("path", [ALERTS, RULES], ids=lambda p: p.name)
def test_every_selector_has_the_job(path):
    """Each metric is selected with `job="isolarcloud"`, so a renamed job needs only the documented sed."""
    for rule in rules_of(path):
        expr = rule["expr"]
        for match in re.finditer(r"\b(isolarcloud_[a-z_]+|up)\b(\{[^}]*\})?", expr):
            name, selector = match.group(1), match.group(2) or ""
            assert JOB_SELECTOR in selector, f"{name} without {JOB_SELECTOR} in: {expr}"


@pytest.mark.parametrize("path", [ALERTS, RULES], ids=lambda p: p.name)
def test_rules_use_only_contract_metrics(path):
    known = contract_metrics()
    assert known, "no metric names found in docs/metrics.md"
    for rule in rules_of(path):
        used = set(re.findall(r"\b(isolarcloud_[a-z_]+)\b", rule["expr"]))
        assert used <= known, f"not in the metrics contract: {used - known}"
