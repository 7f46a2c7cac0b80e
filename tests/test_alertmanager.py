"""The Alertmanager side of the paging policy: prometheus/alertmanager.yml (routing by severity, inhibition rules)
checked by amtool, and its inhibition proven on a real Alertmanager.

amtool and the Alertmanager binary come from the Debian package `prometheus-alertmanager` (the binary is called
`prometheus-alertmanager` there, `alertmanager` in the release archives); ./scripts/test.sh installs it. Without
them these tests skip on a developer machine and fail under CI=true.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import alertmanager_binary, free_port, require_tool, serving

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "prometheus" / "alertmanager.yml"
COMPOSE = ROOT / "deploy" / "compose" / "alertmanager.yml"
ALERTS = ROOT / "prometheus" / "alerts.yml"
JOB, INSTANCE = "isolarcloud", "exporter:10027"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_severities() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for group in load(ALERTS)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                found.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    return found


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("amtool"), *map(str, args)], capture_output=True, text=True, timeout=60,
                          check=False)


# --------------------------------------------------------------------------- the files


@pytest.mark.parametrize("path", [EXAMPLE, COMPOSE], ids=["example", "compose"])
def test_amtool_check_config(path: Path) -> None:
    result = amtool("check-config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("severity", "receiver"), [("critical", "pager"), ("warning", "ticket"),
                                                    ("info", "dashboard")])
def test_the_route_tree_is_the_paging_policy(severity: str, receiver: str) -> None:
    """critical pages, warning is a ticket, info notifies nobody (docs/alerts.md#paging-policy)."""
    result = amtool("config", "routes", "test", "--config.file", EXAMPLE, f"severity={severity}",
                    "alertname=IsolarcloudPlantFault", f"job={JOB}", "account=home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_the_compose_stack_ships_the_same_inhibition_rules() -> None:
    assert load(COMPOSE)["inhibit_rules"] == load(EXAMPLE)["inhibit_rules"]


def _matchers(rule: dict[str, Any]) -> list[str]:
    return rule.get("source_matchers", []) + rule.get("target_matchers", [])


def test_inhibition_rules_name_only_alerts_that_exist() -> None:
    """Every alert name (or alternative of a regular expression) in the inhibition rules matches an alert of
    prometheus/alerts.yml, so a renamed alert cannot silently stop being inhibited."""
    names = set(alert_severities())
    for rule in load(EXAMPLE)["inhibit_rules"]:
        for matcher in _matchers(rule):
            label, op, value = re.fullmatch(r'(\w+)\s*(=~|=|!=|!~)\s*"(.*)"', matcher).groups()  # type: ignore[union-attr]
            if label != "alertname":
                continue
            for alternative in value.split("|") if op == "=~" else [value]:
                assert any(re.fullmatch(alternative, n) for n in names), f"{matcher}: no alert {alternative}"


# --------------------------------------------------------------------------- a real Alertmanager


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = alertmanager_binary()
    tmp = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving([binary, f"--config.file={EXAMPLE}", f"--storage.path={tmp / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                 tmp / "alertmanager.log", f"{url}/-/ready"):
        yield url


def alert(name: str, severity: str | None = None, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus sends it for one of our rules (its severity taken from alerts.yml). Each test uses
    its own `job`, so that the tests, which share one Alertmanager, cannot inhibit each other's alerts."""
    severities = alert_severities()[name]
    if severity is None:
        (severity,) = severities
    assert severity in severities
    now = datetime.now(timezone.utc)
    return {"labels": {"alertname": name, "severity": severity, "job": JOB, **labels},
            "annotations": {"summary": name},
            "startsAt": (now - timedelta(minutes=30)).isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "generatorURL": "http://prometheus.test/graph"}


def plant(account: str, ps_id: str, instance: str = INSTANCE) -> dict[str, str]:
    return {"instance": instance, "account": account, "ps_id": ps_id, "ps_name": f"Plant {ps_id}",
            "ps_type": "residential_pv"}


def device(ps_key: str) -> dict[str, str]:
    """The labels a device fault alert adds to its plant's (from an open fault record)."""
    return {"ps_key": ps_key, "device_name": "Inverter 1", "device_type": "inverter", "fault_code": "42",
            "fault_name": "Grid Overvoltage", "fault_type": "fault", "fault_level": "1", "source": "fault_record"}


def post(url: str, alerts: list[dict[str, Any]]) -> None:
    response = requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=10)
    assert response.status_code == 200, response.text


def states(url: str, **match: str) -> dict[tuple[str, ...], tuple[str, list[str]]]:
    """(alertname, severity, account, ps_id) -> (state, names of the inhibiting alerts), for the alerts whose
    labels include `match`. Alertmanager names the first inhibiting alert it finds, not all of them. Its
    inhibitor learns of a posted alert in a goroutine of its own, so the answer counts once two reads agree."""
    last, deadline = _states(url, **match), time.monotonic() + 5
    while True:
        time.sleep(0.1)
        now = _states(url, **match)
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def _states(url: str, **match: str) -> dict[tuple[str, ...], tuple[str, list[str]]]:
    alerts = requests.get(f"{url}/api/v2/alerts", timeout=10).json()
    by_fingerprint = {a["fingerprint"]: a["labels"]["alertname"] for a in alerts}
    out = {}
    for a in alerts:
        labels = a["labels"]
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        key = (labels["alertname"], labels["severity"], labels.get("account", ""), labels.get("ps_id", ""))
        out[key] = (a["status"]["state"], sorted(by_fingerprint.get(f, "?") for f in a["status"]["inhibitedBy"]))
    return out


def test_a_plant_alert_is_inhibited_while_its_account_is_down(alertmanager: str) -> None:
    """A simulated outage of one account, as the rules fire it: IsolarcloudAccountRefreshFailing, then
    IsolarcloudDataStale for the account, while its plants' alerts are held firing. The plant alerts of that
    account and then the refresh-failing warning are inhibited (still visible, not notified); the other account's
    plant alert stays active throughout."""
    job = "am-account-down"
    post(alertmanager, [
        alert("IsolarcloudPlantFault", job=job, **plant("home", "1001")),
        alert("IsolarcloudPlantNotUpdating", job=job, **plant("home", "1002")),
        alert("IsolarcloudPlantFault", job=job, **plant("office", "2001")),
    ])
    before = states(alertmanager, job=job)
    assert before[("IsolarcloudPlantFault", "warning", "home", "1001")] == ("active", [])
    assert before[("IsolarcloudPlantNotUpdating", "warning", "home", "1002")] == ("active", [])

    post(alertmanager, [alert("IsolarcloudAccountRefreshFailing", job=job, instance=INSTANCE, account="home")])
    failing = states(alertmanager, job=job)
    assert failing[("IsolarcloudPlantFault", "warning", "home", "1001")] == (
        "suppressed", ["IsolarcloudAccountRefreshFailing"])
    assert failing[("IsolarcloudAccountRefreshFailing", "warning", "home", "")] == ("active", [])

    post(alertmanager, [alert("IsolarcloudDataStale", job=job, instance=INSTANCE, account="home")])
    stale = states(alertmanager, job=job)
    for key in (("IsolarcloudPlantFault", "warning", "home", "1001"),
                ("IsolarcloudPlantNotUpdating", "warning", "home", "1002")):
        state, by = stale[key]
        assert state == "suppressed" and by and set(by) <= {"IsolarcloudAccountRefreshFailing", "IsolarcloudDataStale"}
    assert stale[("IsolarcloudAccountRefreshFailing", "warning", "home", "")] == (
        "suppressed", ["IsolarcloudDataStale"])
    assert stale[("IsolarcloudDataStale", "critical", "home", "")] == ("active", [])
    assert stale[("IsolarcloudPlantFault", "warning", "office", "2001")] == ("active", [])


def test_a_cloud_outage_is_one_notification(alertmanager: str) -> None:
    """Every account failing: IsolarcloudCloudOutage inhibits each account's stale-data page and refresh
    warning, and whatever the plants show."""
    job, accounts = "am-cloud", ("cloud-a", "cloud-b", "cloud-c")
    post(alertmanager, [alert("IsolarcloudCloudOutage", job=job)]
         + [alert("IsolarcloudDataStale", job=job, instance=INSTANCE, account=a) for a in accounts]
         + [alert("IsolarcloudAccountRefreshFailing", job=job, instance=INSTANCE, account=a) for a in accounts]
         + [alert("IsolarcloudPlantFaultLosingProduction", job=job, **plant("cloud-a", "3001"))]
         + [alert("IsolarcloudDeviceFault", job=job, **plant("cloud-b", "3002"), **device("3002_1_1_1"))])
    found = states(alertmanager, job=job)
    assert found[("IsolarcloudCloudOutage", "warning", "", "")] == ("active", [])
    for account in accounts:
        for name in ("IsolarcloudDataStale", "IsolarcloudAccountRefreshFailing"):
            severity = "critical" if name == "IsolarcloudDataStale" else "warning"
            state, by = found[(name, severity, account, "")]
            assert state == "suppressed" and "IsolarcloudCloudOutage" in by, (name, account)
    assert found[("IsolarcloudPlantFaultLosingProduction", "critical", "cloud-a", "3001")][0] == "suppressed"
    assert found[("IsolarcloudDeviceFault", "warning", "cloud-b", "3002")][0] == "suppressed"


def test_fleet_and_plant_alerts_inhibit_what_they_explain(alertmanager: str) -> None:
    """A fault across an account silences its plant faults; no data silences no power; the critical version of
    an alert silences its warning; an exporter that is down silences its accounts' alerts; a device's fault
    silences its plant's fault warning, not the page for lost production."""
    job = "am-fleet"
    post(alertmanager, [
        alert("IsolarcloudAccountPlantsFaulted", "warning", job=job, account="fleet"),
        alert("IsolarcloudAccountPlantsFaulted", "critical", job=job, account="fleet"),
        alert("IsolarcloudPlantFault", job=job, **plant("fleet", "4001")),
        alert("IsolarcloudPlantNotUpdating", job=job, **plant("solo", "5001")),
        alert("IsolarcloudPlantNoProduction", job=job, **plant("solo", "5001"), time_zone="GMT+1"),
        alert("IsolarcloudPlantNoProduction", job=job, **plant("solo", "5002"), time_zone="GMT+1"),
        alert("IsolarcloudExporterDown", job=job, instance="exporter-b:10027"),
        alert("IsolarcloudPlantAlarm", job=job, **plant("far", "6001", instance="exporter-b:10027")),
        alert("IsolarcloudApiQuotaErrors", job=job, instance="exporter-b:10027", account="far", result="E999"),
        # A device's open fault says more than its plant's fault status; the page for lost production stays.
        alert("IsolarcloudDeviceFault", job=job, **plant("dev", "7001"), **device("7001_1_1_1")),
        alert("IsolarcloudPlantFault", job=job, **plant("dev", "7001")),
        alert("IsolarcloudPlantFaultLosingProduction", job=job, **plant("dev", "7001")),
        alert("IsolarcloudPlantFault", job=job, **plant("dev", "7002")),
    ])
    found = states(alertmanager, job=job)
    assert found[("IsolarcloudAccountPlantsFaulted", "critical", "fleet", "")] == ("active", [])
    assert found[("IsolarcloudAccountPlantsFaulted", "warning", "fleet", "")] == (
        "suppressed", ["IsolarcloudAccountPlantsFaulted"])
    assert found[("IsolarcloudPlantFault", "warning", "fleet", "4001")] == (
        "suppressed", ["IsolarcloudAccountPlantsFaulted"])
    assert found[("IsolarcloudPlantNoProduction", "critical", "solo", "5001")] == (
        "suppressed", ["IsolarcloudPlantNotUpdating"])
    assert found[("IsolarcloudPlantNoProduction", "critical", "solo", "5002")] == ("active", [])
    assert found[("IsolarcloudPlantAlarm", "warning", "far", "6001")] == ("suppressed", ["IsolarcloudExporterDown"])
    assert found[("IsolarcloudApiQuotaErrors", "warning", "far", "")] == ("suppressed", ["IsolarcloudExporterDown"])
    assert found[("IsolarcloudDeviceFault", "warning", "dev", "7001")] == ("active", [])
    assert found[("IsolarcloudPlantFault", "warning", "dev", "7001")][0] == "suppressed"
    assert found[("IsolarcloudPlantFaultLosingProduction", "critical", "dev", "7001")] == ("active", [])
    assert found[("IsolarcloudPlantFault", "warning", "dev", "7002")] == ("active", [])
