"""End to end against a real Prometheus: simulator -> exporter (subprocess) -> /usr/bin/prometheus with our rules.

Proves that every dashboard query, every template variable query and every recording rule returns data on a
fresh stack, and that a plant fault set in the simulator makes IsolarcloudPlantFault go pending, then firing.

The stack, all on loopback with temporary files:
  * simulator "main" (30 plants), polled by two accounts: `e2e-login` (legacy login app: plant list with
    capacity) and `e2e-oauth2` (OAuth2 app: real-time points such as battery SOC, plus two extra points);
  * simulator "quota" (3 plants), polled by `e2e-quota`, whose first plant-list call answers E999 (hourly
    quota): the quota panels and IsolarcloudApiQuotaErrors get real data, and the account stays failing;
  * the exporter as `python -m exporter` with refresh_interval 2s;
  * Prometheus scraping every 1s and evaluating every 1s, with copies of prometheus/alerts.yml and rules.yml
    whose `for:` durations are shortened (5s for the fault alert, so its pending state is observable; 3s
    otherwise).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator import Simulator
from tests._grafana_support import (
    BUILTIN_VARIABLES,
    dashboards,
    label_values,
    substitute,
    targets,
    variables,
)
from tests.conftest import alertmanager_binary, free_port, serving, wait_ready

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = "/usr/bin/prometheus"
JOB = "isolarcloud"
LOGIN, OAUTH, QUOTA = "e2e-login", "e2e-oauth2", "e2e-quota"
HEALTHY = (LOGIN, OAUTH)
FAULT_ALERT = "IsolarcloudPlantFault"
FAULT_FOR, OTHER_FOR = "5s", "3s"
# Alerts that must stay quiet for the healthy accounts (and the exporter) on a working stack.
QUIET_WHEN_HEALTHY = ("IsolarcloudExporterDown", "IsolarcloudExporterAbsent", "IsolarcloudAccountRefreshFailing",
                      "IsolarcloudDataStale", "IsolarcloudAccountNoPlants", "IsolarcloudApiQuotaErrors",
                      "IsolarcloudApiBudgetNearlyExhausted", "IsolarcloudRefreshTokenExpiringSoon",
                      "IsolarcloudApiMonthlyQuotaExhausted", "IsolarcloudCloudOutage", "IsolarcloudPlantDisappeared")
AWKWARD_NAME = 'Dach "Süd" \\ 7'  # breaks a `ps_name="$plant"` query; a backtick string takes it as it is
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")

# Both healthy accounts read device lists (with firmware) and inverter points, plus one more point (4, the
# inverter's internal temperature) for the plant dashboard's "Device points".
DEVICES = {"firmware": True, "realtime": {"enabled": True, "points": [1, 2, 24, 4]}}

# (dashboard file, panel title) -> why the panel cannot have data on a fresh stack. Every other panel target
# must return data. Empty: every panel is provable here (quota errors are provoked through the simulator).
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {}


# --------------------------------------------------------------------------- the stack


def shortened_rules(source: Path, target: Path) -> None:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for group in data["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = FAULT_FOR if rule["alert"] == FAULT_ALERT else OTHER_FOR
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def login_auth(sim: Simulator) -> dict[str, str]:
    return {"mode": "login", "appkey": sim.appkey, "secret_key": sim.secret_key,
            "user_account": "demo@example.com", "user_password": "demo-password"}


@dataclass
class Stack:
    prometheus_url: str
    main: Simulator
    procs: list[subprocess.Popen] = field(default_factory=list)

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def label_values(self, selector: str | None, label: str) -> list[str]:
        params = {"match[]": selector} if selector else {}
        response = requests.get(f"{self.prometheus_url}/api/v1/label/{label}/values", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=30).json()["data"]["alerts"]

    def wait_for(self, what: str, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}: {expr}")


class QueryError(Exception):
    pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(PROMETHEUS).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PROMETHEUS} is required in CI (Debian package 'prometheus')")
        pytest.skip(f"{PROMETHEUS} not installed (Debian package 'prometheus')")
    tmp = tmp_path_factory.mktemp("e2e")
    main = Simulator(plants=30, seed=1).start()
    quota = Simulator(plants=3, seed=2).start()
    quota.inject("code:E999", path="getPowerStationList", times=1)
    procs: list[subprocess.Popen] = []
    try:
        exporter_port, prometheus_port = free_port(), free_port()
        config = {
            "refresh_interval": "2s",
            "max_age": "30s",
            "http_timeout": "10s",
            "accounts": [
                {"name": LOGIN, "base_url": main.url, "api_budget_per_hour": 100000, "auth": login_auth(main),
                 "devices": DEVICES},
                {"name": OAUTH, "base_url": main.url, "api_budget_per_hour": 100000,
                 "auth": {"mode": "oauth2", "appkey": main.appkey, "secret_key": main.secret_key,
                          "refresh_token": main.issue_tokens()["refresh_token"]},
                 "realtime": {"enabled": True, "extra_points": ["83012", "83016"]}, "devices": DEVICES},
                {"name": QUOTA, "base_url": quota.url, "api_budget_per_hour": 100000, "auth": login_auth(quota)},
            ],
        }
        (tmp / "exporter.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        exporter_log = tmp / "exporter.log"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(tmp / "exporter.yml"),
             "--web.listen-address", f"127.0.0.1:{exporter_port}"],
            cwd=ROOT, stdout=exporter_log.open("w"), stderr=subprocess.STDOUT))
        wait_ready(f"http://127.0.0.1:{exporter_port}/-/healthy", procs[-1], exporter_log)

        shortened_rules(ROOT / "prometheus" / "alerts.yml", tmp / "alerts.yml")
        shutil.copy(ROOT / "prometheus" / "rules.yml", tmp / "rules.yml")
        prometheus_config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml", "rules.yml"],
            "scrape_configs": [{"job_name": JOB,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config), encoding="utf-8")
        prometheus_log = tmp / "prometheus.log"
        procs.append(subprocess.Popen(
            [PROMETHEUS, "--config.file", str(tmp / "prometheus.yml"), "--storage.tsdb.path", str(tmp / "data"),
             "--web.listen-address", f"127.0.0.1:{prometheus_port}"],
            cwd=tmp, stdout=prometheus_log.open("w"), stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{prometheus_port}"
        wait_ready(f"{url}/-/ready", procs[-1], prometheus_log)
        yield Stack(url, main, procs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        main.stop()
        quota.stop()


# --------------------------------------------------------------------------- helpers


def busiest_zone(stack: Stack) -> str:
    """The time zone with the most plants: the fleet dashboard's rankings compare the plants of one zone."""
    found = stack.query(f'count by (time_zone) (isolarcloud_plant_info{{job="{JOB}", account="{LOGIN}"}})')
    return max(found, key=lambda r: (float(r["value"][1]), r["metric"]["time_zone"]))["metric"]["time_zone"]


def wait_until_scraped(stack: Stack) -> None:
    """Until both healthy accounts are up, real-time data is in, the quota error happened, the recording
    rules have run, and there are enough samples for rate()/increase() windows."""
    for account in HEALTHY:
        stack.wait_for(f"{account} up", f'isolarcloud_up{{job="{JOB}", account="{account}"}} == 1')
    stack.wait_for("real-time data", f'isolarcloud_plant_battery_soc_ratio{{job="{JOB}", account="{OAUTH}"}}')
    stack.wait_for("the provoked E999", f'isolarcloud_api_requests_total{{job="{JOB}", result="E999"}}')
    stack.wait_for("recording rules", f'account:isolarcloud_plants_by_fault_status:count{{job="{JOB}"}}')
    stack.wait_for("a few samples", f'count_over_time(isolarcloud_up{{job="{JOB}", account="{LOGIN}"}}[1m]) >= 5')


@dataclass
class Outcome:
    where: str
    expr: str
    series: int = 0
    error: str = ""


def run_targets(stack: Stack, name: str, dashboard: dict, values: dict[str, str]) -> dict[tuple, Outcome]:
    """Every panel target of one dashboard, as Grafana would send it (instant query), keyed by
    (dashboard, panel title, refId)."""
    outcomes = {}
    for panel, target in targets(dashboard):
        local = {**BUILTIN_VARIABLES, **values}
        if target.get("interval"):
            local["__interval"] = target["interval"]
        expr = substitute(target["expr"], local)
        outcome = Outcome(f"{name} / {panel['title']} / {target['refId']}", expr)
        try:
            outcome.series = len(stack.query(expr))
        except QueryError as exc:
            outcome.error = str(exc)
        outcomes[(name, panel["title"], target["refId"])] = outcome
    return outcomes


def run_variables(stack: Stack, dashboard: dict, values: dict[str, str]) -> dict[str, list[str]]:
    """Every query variable of a dashboard, in order, with the variables before it filled in."""
    found = {}
    for v in variables(dashboard):
        if v["type"] != "query":
            continue
        selector, label = label_values(v["query"])
        found[v["name"]] = stack.label_values(substitute(selector, values) if selector else None, label)
    return found


def plant_outcomes(stack: Stack, board: dict, ps_id: str, ps_name: str) -> dict[tuple, Outcome]:
    """The plant dashboard for one plant as seen by each healthy account. Login apps get capacity from the
    plant list, OAuth2 apps real-time points (battery, load, ...): a target needs data in one of the two.
    Also checks the plant variables resolve to this plant."""
    per_account = []
    for account in HEALTHY:
        found = run_variables(stack, board, {"job": JOB, "account": account, "plant": ps_name})
        assert account in found["account"]
        assert ps_name in found["plant"], f"plant variable of {account}: {found['plant']}"
        # Names repeat (the simulator, like real fleets, has several "Plant-1"): the ps_id variable then
        # offers each of their ids.
        assert ps_id in found["ps_id"], f"ps_id variable for {ps_name!r} in {account}: {found['ps_id']}"
        per_account.append(run_targets(stack, "isolarcloud-plant.json", board,
                                       {"job": JOB, "account": account, "plant": ps_name, "ps_id": ps_id}))
    return {key: first if first.series or first.error else per_account[1][key]
            for key, first in per_account[0].items()}


def pick_plant(stack: Stack, board: dict) -> tuple[str, str]:
    """A normal plant with every value the plant dashboard shows (the simulator, like the cloud, leaves some
    points out for some plants), whose name needs no escaping in a PromQL string. The alerts panel is left
    out: it has data only once the plant is faulted."""
    found = stack.query(
        f'isolarcloud_plant_battery_soc_ratio{{job="{JOB}", account="{OAUTH}"}}\n'
        f'  and on (ps_id) (isolarcloud_plant_fault_status{{job="{JOB}", account="{LOGIN}"}} == 3)')
    candidates = sorted((r["metric"]["ps_id"], r["metric"]["ps_name"]) for r in found
                        if SAFE_NAME.match(r["metric"]["ps_name"]))
    gaps = {}
    for ps_id, ps_name in candidates:
        outcomes = plant_outcomes(stack, board, ps_id, ps_name)
        # Alerts and open faults: a normal plant has none until the test faults it.
        gaps[ps_name] = [o.where for o in outcomes.values() if not o.series and "ALERTS" not in o.expr
                         and "isolarcloud_fault_active" not in o.expr]
        if not gaps[ps_name]:
            return ps_id, ps_name
    raise AssertionError(f"no simulated plant has every plant-dashboard value: {gaps}")


# --------------------------------------------------------------------------- the test


def test_dashboards_rules_and_alerts_on_a_real_prometheus(stack: Stack) -> None:
    wait_until_scraped(stack)
    boards = dashboards()
    fleet, plant = boards["isolarcloud-fleet.json"], boards["isolarcloud-plant.json"]
    ps_id, ps_name = pick_plant(stack, plant)

    # ------------------------------------------------------------------ a plant fault: pending, then firing
    def fault_alerts() -> list[dict[str, Any]]:
        return [a for a in stack.alerts()
                if a["labels"]["alertname"] == FAULT_ALERT and a["labels"].get("ps_id") == ps_id]

    assert fault_alerts() == [], "the chosen plant is normal: no fault alert yet"
    stack.main.set_plant(int(ps_id), ps_fault_status=1)
    states: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "firing" not in states:
        states += [a["state"] for a in fault_alerts() if a["labels"]["account"] == LOGIN]
        time.sleep(0.2)
    assert "pending" in states and states[-1] == "firing", f"states seen: {states}"
    assert states.index("pending") < states.index("firing")
    firing = [a for a in fault_alerts() if a["state"] == "firing"]
    # Both accounts list the plant (they poll the same simulated cloud), so both alert.
    assert {a["labels"]["account"] for a in firing} >= {LOGIN}
    for alert in firing:
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] == "warning" and labels["job"] == JOB and labels["ps_name"] == ps_name
        assert annotations["summary"] == f"iSolarCloud plant {ps_name} is in fault."
        assert annotations["description"].startswith(
            f"Plant {ps_name} (ps_id {ps_id}) of account {labels['account']} has reported fault status")
        assert annotations["runbook_url"].endswith("/docs/alerts.md#isolarcloudplantfault")
        assert annotations["dashboard_url"].endswith(
            f"/d/isolarcloud-plant/isolarcloud-plant?var-job={JOB}&var-account={labels['account']}"
            f"&var-plant={ps_name.replace(' ', '+')}&var-ps_id={ps_id}")

    # ------------------------------------------------------------------ the other alerts on this stack
    stack.wait_for("quota alert", f'ALERTS{{alertname="IsolarcloudApiQuotaErrors", alertstate="firing", '
                                  f'account="{QUOTA}", result="E999"}}')
    stack.wait_for("refresh-failing alert", f'ALERTS{{alertname="IsolarcloudAccountRefreshFailing", '
                                            f'alertstate="firing", account="{QUOTA}"}}')
    noisy = [(a["labels"]["alertname"], a["labels"].get("account")) for a in stack.alerts()
             if a["labels"]["alertname"] in QUIET_WHEN_HEALTHY and a["labels"].get("account") != QUOTA]
    assert noisy == [], "alerts about a healthy stack"

    # ------------------------------------------------------------------ recording rules
    # Each rule's expression evaluated directly, and the series Prometheus recorded from it (with the
    # rule's static labels, e.g. fault_status="unknown", which is 0 here but must exist).
    rules = [r for g in yaml.safe_load((ROOT / "prometheus" / "rules.yml").read_text())["groups"]
             for r in g["rules"]]
    empty_rules = []
    for rule in rules:
        matchers = ", ".join([f'job="{JOB}"'] + [f'{k}="{v}"' for k, v in rule.get("labels", {}).items()])
        for expr in (rule["expr"], f"{rule['record']}{{{matchers}}}"):
            if not stack.query(expr):
                empty_rules.append(expr)
    assert empty_rules == []

    # ------------------------------------------------------------------ template variables
    zone = busiest_zone(stack)
    fleet_vars = run_variables(stack, fleet, {"job": JOB, "account": ".*"})
    assert JOB in fleet_vars["job"]
    assert set(fleet_vars["account"]) >= {LOGIN, OAUTH, QUOTA}
    assert zone in fleet_vars["time_zone"]
    outcomes = run_targets(stack, "isolarcloud-fleet.json", fleet, {"job": JOB, "account": ".*", "time_zone": zone})

    outcomes.update(plant_outcomes(stack, plant, ps_id, ps_name))

    # ------------------------------------------------------------------ a plant name with a quote and a backslash
    other = next(r["metric"]["ps_id"] for r in stack.query(f'isolarcloud_plant_info{{job="{JOB}", account="{LOGIN}"}}')
                 if r["metric"]["ps_id"] != ps_id)
    stack.main.set_plant(int(other), ps_name=AWKWARD_NAME)
    stack.wait_for("the renamed plant", f'isolarcloud_plant_info{{job="{JOB}", account="{LOGIN}", ps_id="{other}", '
                                        f'ps_name=`{AWKWARD_NAME}`}}')
    found = run_variables(stack, plant, {"job": JOB, "account": LOGIN, "plant": AWKWARD_NAME})
    assert AWKWARD_NAME in found["plant"] and found["ps_id"] == [other]

    # ------------------------------------------------------------------ every panel target has data
    errors = [f"{o.where}: {o.error}\n    {o.expr}" for o in outcomes.values() if o.error]
    assert errors == [], "queries Prometheus rejected:\n" + "\n".join(errors)
    missing = [f"{o.where}\n    {o.expr}" for (board, title, _), o in outcomes.items()
               if not o.series and (board, title) not in NO_DATA_EXPECTED]
    assert missing == [], "panel queries without data:\n" + "\n".join(missing)
    stale_exceptions = [k for k in NO_DATA_EXPECTED
                        if any(o.series for (b, t, _), o in outcomes.items() if (b, t) == k)]
    assert stale_exceptions == [], "NO_DATA_EXPECTED lists panels that have data: remove them"
    assert len(outcomes) >= 60, "every target of both dashboards was run"


# --------------------------------------------------------------------------- open faults (issue 11)

DEVICE_FAULT = "IsolarcloudDeviceFault"
FAULT_NAME = 'Grid "over" voltage \\ L1 电网过压'


def _wait_firing(stack: Stack, alertname: str, **labels: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        firing = [a for a in _alerts_named(stack, alertname, **labels) if a["state"] == "firing"]
        if firing:
            return firing
        time.sleep(0.2)
    raise AssertionError(f"{alertname} {labels} did not fire")


INHIBITING = frozenset({"IsolarcloudDeviceFault", "IsolarcloudDeviceAlarm"})


def _notify_through_alertmanager(tmp: Path, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hand Prometheus' firing alerts to a real Alertmanager (the compose stack's configuration: routes and
    inhibit rules, with a webhook receiver and 1 s grouping) as Prometheus would, and return what it notified."""
    binary = alertmanager_binary()
    received: list[dict[str, Any]] = []

    class Webhook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "alertmanager.yml").read_text(encoding="utf-8"))
    # A group waits 3 s before its first notification: time for Alertmanager's inhibitor, which reads the posted
    # alerts on its own, to know the inhibiting ones even on a loaded machine.
    config["route"].update(group_wait="3s", group_interval="1s")
    config["receivers"] = [{"name": config["route"]["receiver"], "webhook_configs": [
        {"url": f"http://127.0.0.1:{hook.server_address[1]}/", "send_resolved": False}]}]
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port, log = free_port(), tmp / "alertmanager.log"
    api = f"http://127.0.0.1:{port}/api/v2/alerts"
    try:
        with serving([binary, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                     log, f"http://127.0.0.1:{port}/-/ready", timeout=20):
            posted = [{"labels": a["labels"], "annotations": a["annotations"], "startsAt": a["activeAt"]}
                      for a in alerts]
            # Inhibiting alerts first, as they are when they have fired for a while: Alertmanager's inhibitor
            # reads new alerts on its own, so one posted together with its target may not be known yet when the
            # target's group is notified (seen on a loaded machine).
            sources = [a for a in posted if a["labels"]["alertname"] in INHIBITING]
            if sources:
                assert requests.post(api, json=sources, timeout=10).status_code == 200
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and len(requests.get(api, timeout=10).json()) < len(sources):
                    time.sleep(0.1)
                time.sleep(0.5)
            assert requests.post(api, json=posted, timeout=10).status_code == 200
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not received:
                time.sleep(0.1)
            time.sleep(1.5)  # one more group interval: anything else it would notify
            assert received, "Alertmanager notified nothing:\n" + log.read_text()[-2000:]
            return received
    finally:
        hook.shutdown()


def _alerts_named(stack: Stack, alertname: str, **labels: str) -> list[dict[str, Any]]:
    return [a for a in stack.alerts() if a["labels"]["alertname"] == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def test_device_fault_alert_names_the_device_and_the_fault(stack: Stack, tmp_path: Path) -> None:
    """A fault opened in the simulator becomes one IsolarcloudDeviceFault per account whose labels and
    notification text name the plant, the device and the fault and say since when; a real Alertmanager with the
    shipped routing notifies it (webhook) and holds back the plant-level alert of the same plant; the alert
    resolves when the fault closes. The faults collection is up for the healthy accounts, so
    IsolarcloudFaultsUnavailable stays quiet."""
    wait_until_scraped(stack)
    found = stack.query(f'isolarcloud_plant_fault_status{{job="{JOB}", account="{OAUTH}"}} == 3')
    plant = next(r["metric"] for r in found if SAFE_NAME.match(r["metric"]["ps_name"]))
    ps_id, ps_name = plant["ps_id"], plant["ps_name"]
    code = stack.main.open_fault(int(ps_id), fault_type=1, name=FAULT_NAME, level=1)
    row = next(r for r in stack.main.open_faults(int(ps_id)) if r["fault_code"] == code)
    deadline = time.monotonic() + 30
    firing: list[dict[str, Any]] = []
    while time.monotonic() < deadline and {a["labels"]["account"] for a in firing} != set(HEALTHY):
        firing = [a for a in _alerts_named(stack, DEVICE_FAULT, ps_id=ps_id, fault_name=FAULT_NAME)
                  if a["state"] == "firing"]
        time.sleep(0.2)
    assert {a["labels"]["account"] for a in firing} == set(HEALTHY), "both accounts see the record"
    since = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                          time.gmtime(float(stack.query(f'isolarcloud_fault_active{{job="{JOB}", '
                                                        f'account="{OAUTH}", fault_code="{code}"}}')[0]["value"][1])))
    for alert in firing:
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] == "warning" and labels["ps_name"] == ps_name
        assert labels["device_name"] == row["device_name"] and labels["ps_key"] == row["ps_key"]
        assert labels["device_type"] == "inverter" or labels["device_type"] == "plant"
        assert annotations["summary"] == f"iSolarCloud plant {ps_name}: {FAULT_NAME} on {row['device_name']}."
        # The serial joins from the device inventory, where it knows the device.
        serial = f"serial {labels['device_sn']}, " if labels.get("device_sn") else ""
        assert labels["source"] == "fault_record"
        assert annotations["description"] == (
            f"Device {row['device_name']} ({labels['device_type']}, {serial}{row['ps_key']}) of plant {ps_name} "
            f"(ps_id {ps_id}) of account {labels['account']} reports the fault {FAULT_NAME} (code "
            f"{labels['fault_code']}, level 1) since {since}.")
    assert next(a for a in firing if a["labels"]["account"] == OAUTH)["labels"]["fault_code"] == str(code)

    # The plant dashboard's open-faults table lists it; the fault-list stat says the lists are readable.
    board = dashboards()["isolarcloud-plant.json"]
    table = next(t for p, t in targets(board) if p["title"] == "Open faults of this plant")
    rows = stack.query(substitute(table["expr"], {"job": JOB, "account": OAUTH, "ps_id": ps_id}))
    assert [r["metric"]["fault_name"] for r in rows if r["metric"]["fault_code"] == str(code)] == [FAULT_NAME]
    assert _alerts_named(stack, "IsolarcloudFaultsUnavailable", account=OAUTH) == []
    assert _alerts_named(stack, "IsolarcloudFaultsUnavailable", account=LOGIN) == []

    # Specific yield has data for the OAuth2 account too: installed power now comes from plant details.
    fleet = dashboards()["isolarcloud-fleet.json"]
    # (The ranking compares the plants of one time zone: this plant's.)
    zone = stack.query(f'isolarcloud_plant_info{{job="{JOB}", account="{OAUTH}", ps_id="{ps_id}"}}')[0]["metric"][
        "time_zone"]
    for title in ("Top 10 plants by specific yield today in $time_zone", "Specific yield today",
                  "Feed-in revenue today"):
        expr = next(t["expr"] for p, t in targets(fleet) if p["title"] == title)
        variables = {**BUILTIN_VARIABLES, "job": JOB, "account": OAUTH, "time_zone": zone}
        assert stack.query(substitute(expr, variables)), title

    notifications = _notify_through_alertmanager(
        tmp_path, firing + _wait_firing(stack, FAULT_ALERT, account=OAUTH, ps_id=ps_id))
    sent = [a for n in notifications for a in n["alerts"]]
    device = [a for a in sent if a["labels"]["alertname"] == DEVICE_FAULT and a["labels"]["ps_id"] == ps_id]
    assert {a["labels"]["account"] for a in device} == set(HEALTHY)
    for alert in device:
        assert alert["labels"]["fault_name"] == FAULT_NAME and alert["labels"]["device_name"] == row["device_name"]
        assert FAULT_NAME in alert["annotations"]["summary"] and row["device_name"] in alert["annotations"]["summary"]
        assert f"since {since}" in alert["annotations"]["description"]
    # The shipped inhibition: the plant-level fault alert of the same plant is not notified beside it.
    assert [a for a in sent if a["labels"]["alertname"] == FAULT_ALERT and a["labels"]["ps_id"] == ps_id] == []

    stack.main.close_fault(code)
    stack.wait_for("the closed fault's series to go",
                   f'absent(isolarcloud_fault_active{{job="{JOB}", ps_id="{ps_id}", fault_name=~"Grid.*"}})')
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alerts_named(stack, DEVICE_FAULT, ps_id=ps_id, fault_name=FAULT_NAME):
        time.sleep(0.2)
    assert _alerts_named(stack, DEVICE_FAULT, ps_id=ps_id, fault_name=FAULT_NAME) == [], "resolved when closed"


# --------------------------------------------------------------------------- devices


def device_targets(board: dict) -> list[tuple[dict, dict]]:
    """The device panels' targets: every query about devices or the device collections."""
    return [(p, t) for p, t in targets(board) if "isolarcloud_device_" in t["expr"] or "device_realtime" in t["expr"]]


def test_device_panels_and_alerts_on_a_real_prometheus(stack: Stack) -> None:
    """The device section of both dashboards has data, and a device fault opened in the simulated cloud reaches
    IsolarcloudDeviceFault (pending, then firing) through the device real-time pass, with the device's name and
    serial in the alert."""
    wait_until_scraped(stack)
    stack.wait_for("device inventory", f'isolarcloud_device_info{{job="{JOB}", account="{OAUTH}"}}')
    stack.wait_for("device points", f'isolarcloud_device_power_watts{{job="{JOB}", account="{OAUTH}"}}')
    boards = dashboards()
    fleet, plant = boards["isolarcloud-fleet.json"], boards["isolarcloud-plant.json"]
    assert len(device_targets(fleet)) >= 9 and len(device_targets(plant)) >= 8

    # ------------------------------------------------------------------ a device fault: pending, then firing
    found = stack.query(f'(isolarcloud_device_fault_status{{job="{JOB}", account="{OAUTH}", '
                        f'device_type="inverter"}} == 4)\n'
                        f'  and on (ps_key) isolarcloud_device_power_watts{{job="{JOB}", account="{OAUTH}"}}')
    candidates = sorted((r["metric"]["ps_key"], r["metric"]["ps_id"], r["metric"]["ps_name"],
                         r["metric"]["device_name"]) for r in found
                        if SAFE_NAME.match(r["metric"]["ps_name"]) and r["metric"].get("device_name"))
    assert candidates, "a normal inverter with real-time data"
    ps_key, ps_id, ps_name, device_name = candidates[0]
    stack.main.open_fault(int(ps_id), 1, ps_key=ps_key)

    def device_alerts() -> list[dict[str, Any]]:
        return [a for a in stack.alerts() if a["labels"]["alertname"] == "IsolarcloudDeviceFault"
                and a["labels"].get("ps_key") == ps_key and a["labels"]["account"] == OAUTH]

    states: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "firing" not in states:
        states += [a["state"] for a in device_alerts()]
        time.sleep(0.2)
    assert "pending" in states and states[-1] == "firing", f"states seen: {states}"
    # One alert for the device, from its open fault record (which also set its fault status), naming the fault
    # and, joined from the inventory, the device's serial.
    firing_now = [a for a in device_alerts() if a["state"] == "firing"]
    assert [a["labels"]["source"] for a in firing_now] == ["fault_record"]
    alert = firing_now[0]
    serial = next(d["device_sn"] for d in stack.main.devices_of(int(ps_id)) if d["ps_key"] == ps_key)
    fault_name = alert["labels"]["fault_name"]
    assert alert["labels"]["device_sn"] == serial and alert["labels"]["device_name"] == device_name
    assert alert["annotations"]["summary"] == f"iSolarCloud plant {ps_name}: {fault_name} on {device_name}."
    assert f"serial {serial}, {ps_key}" in alert["annotations"]["description"]
    failing = [a["labels"] for a in stack.alerts() if a["labels"]["alertname"] == "IsolarcloudDeviceDataFailing"
               and a["labels"].get("account") in HEALTHY]
    assert failing == [], "the device collections of the healthy accounts work"

    # ------------------------------------------------------------------ every device panel target has data
    fleet_values = {"job": JOB, "account": ".*"}
    outcomes = []
    for panel, tgt in device_targets(fleet):
        outcomes.append((f"fleet / {panel['title']} / {tgt['refId']}",
                         substitute(tgt["expr"], {**BUILTIN_VARIABLES, **fleet_values})))
    # The plant of the faulted inverter: it has inverters read in real time and a device list.
    for account in HEALTHY:
        variables_found = run_variables(stack, plant, {"job": JOB, "account": account, "plant": ps_name})
        assert ps_id in variables_found["ps_id"]
    plant_values = {"job": JOB, "account": OAUTH, "plant": ps_name, "ps_id": ps_id}
    for panel, tgt in device_targets(plant):
        outcomes.append((f"plant / {panel['title']} / {tgt['refId']}",
                         substitute(tgt["expr"], {**BUILTIN_VARIABLES, **plant_values})))
    missing = []
    for where, expr in outcomes:
        try:
            if not stack.query(expr):
                missing.append(f"{where}\n    {expr}")
        except QueryError as exc:
            missing.append(f"{where}: {exc}\n    {expr}")
    assert missing == [], "device panel queries without data:\n" + "\n".join(missing)
    # The devices table of the plant has one row per device, joined with its serial (and firmware labels).
    rows = stack.query(substitute(device_targets(plant)[0][1]["expr"], {**BUILTIN_VARIABLES, **plant_values}))
    assert {r["metric"]["ps_key"] for r in rows} == {d["ps_key"] for d in stack.main.devices_of(int(ps_id))}
    assert all(r["metric"].get("device_sn") for r in rows)
    assert all(r["metric"].get("lcd_version") for r in rows if r["metric"]["device_type"] == "inverter")
