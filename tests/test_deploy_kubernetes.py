"""Kubernetes manifests in deploy/kubernetes/: schema validation of the core kinds (offline, with the
schemas bundled in kubernetes-validate), structural checks of the Prometheus Operator kinds, the
generated PrometheusRule and dashboard ConfigMaps being current, and the example configuration
loading with the Secret's files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from exporter.config import SECRET_KEYS, parse_config
from tests._deploy_support import REPO
from tests.conftest import require_tool

K8S = REPO / "deploy/kubernetes"
GENERATOR = K8S / "generate.py"
CORE_KINDS = {"Deployment", "Service", "ServiceAccount", "PersistentVolumeClaim", "ConfigMap", "Secret"}
# The oldest Kubernetes release still commonly run, and the newest the schemas know.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
STATE_DIR = "/var/lib/isolarcloud-exporter"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _resources() -> list[dict]:
    return [doc for name in _kustomization()["resources"] for doc in _docs(K8S / name)]


def _one(kind: str, docs: list[dict] | None = None) -> dict:
    matches = [d for d in (docs if docs is not None else _resources()) if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def _validate(doc: dict) -> None:
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_kustomization_lists_existing_files():
    kustomization = _kustomization()
    files = list(kustomization["resources"]) + [
        f for generator in kustomization.get("configMapGenerator", []) for f in generator["files"]]
    for name in files:
        assert (K8S / name).is_file(), f"kustomization.yaml lists missing {name}"
    assert "secret.example.yaml" not in kustomization["resources"], (
        "apply -k must never overwrite the real Secret with placeholders")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "config.yaml"}
    assert manifests - set(kustomization["resources"]) == {"secret.example.yaml"}


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")
                                        if p.name not in ("kustomization.yaml", "config.yaml")))
def test_core_kinds_validate_against_the_kubernetes_schemas(name):
    docs = _docs(K8S / name)
    assert docs, f"{name} is empty"
    for doc in docs:
        if doc["kind"] in CORE_KINDS:
            _validate(doc)
        else:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["kind"]


def test_kustomize_build_validates():
    result = subprocess.run([require_tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("ConfigMap") >= 2, "the config and at least one dashboard"
    for doc in docs:
        assert doc["metadata"]["namespace"] == _kustomization()["namespace"]
        if doc["kind"] in CORE_KINDS:
            _validate(doc)
    deployment = _one("Deployment", docs)
    config_map = next(v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]
                      if "configMap" in v)
    # The generated name carries a content hash, so a config change rolls the pod.
    assert config_map.startswith("isolarcloud-exporter-config-") and any(
        d["metadata"]["name"] == config_map and "config.yaml" in d["data"] for d in docs)


def test_deployment_has_one_owner_and_a_locked_down_pod():
    deployment = _one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "old and new pod must not overlap"
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's uid"
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 10027}
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
    assert "--web.listen-address=:10027" in container["args"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_arg = next(a for a in container["args"] if a.startswith("--config.file="))
    config_dir = str(Path(config_arg.split("=", 1)[1]).parent)
    assert mounts[config_dir]["readOnly"] is True
    assert STATE_DIR in mounts and "/tmp" in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts[STATE_DIR]["name"]]["persistentVolumeClaim"]["claimName"] == _one(
        "PersistentVolumeClaim")["metadata"]["name"]
    generators = {g["name"] for g in _kustomization()["configMapGenerator"]}
    assert volumes[mounts[config_dir]["name"]]["configMap"]["name"] in generators
    secret = _one("Secret", _docs(K8S / "secret.example.yaml"))
    secret_volume = next(v for v in volumes.values() if "secret" in v)
    assert secret_volume["secret"]["secretName"] == secret["metadata"]["name"]
    images = {i["name"] for i in _kustomization()["images"]}
    assert container["image"].split(":")[0] in images, "kustomize can retag the image"


def test_service_and_servicemonitor_select_the_pod():
    deployment, service = _one("Deployment"), _one("Service")
    monitor = _one("ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The rules and dashboards select job="isolarcloud", not the Service name.
    assert {"targetLabel": "job", "replacement": "isolarcloud"} in endpoint["relabelings"]
    assert set(monitor["spec"]) <= {"selector", "endpoints", "jobLabel", "namespaceSelector", "targetLabels"}
    for key in endpoint:
        assert key in {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings",
                       "scheme", "tlsConfig", "basicAuth", "honorLabels"}, key


def _rule_file_groups(name: str) -> list[dict]:
    return yaml.safe_load((REPO / "prometheus" / name).read_text())["groups"]


def test_prometheusrule_carries_every_alert_and_recording_rule():
    rule = _one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    source = _rule_file_groups("alerts.yml") + _rule_file_groups("rules.yml")
    assert [g["name"] for g in groups] == [g["name"] for g in source]
    for generated, original in zip(groups, source, strict=True):
        assert len(generated["rules"]) == len(original["rules"])
        for new, old in zip(generated["rules"], original["rules"], strict=True):
            assert ("alert" in new) != ("record" in new), "a rule is an alert or a recording rule"
            assert new.get("alert") == old.get("alert") and new.get("record") == old.get("record")
            assert new["expr"].split() == str(old["expr"]).split()
            assert set(new) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def test_dashboard_configmaps_are_labelled_for_the_sidecar():
    maps = _docs(K8S / "grafana-dashboards.yaml")
    sources = sorted((REPO / "grafana/dashboards").glob("*.json"))
    assert len(maps) == len(sources)
    for config_map, source in zip(maps, sources, strict=True):
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert list(config_map["data"]) == [source.name]
        assert json.loads(config_map["data"][source.name]) == json.loads(source.read_text())
        # kubectl's client-side apply keeps a copy in an annotation limited to 256 KiB.
        assert len(yaml.safe_dump(config_map).encode()) < 256 * 1024


def test_generated_files_are_current(tmp_path):
    result = subprocess.run([sys.executable, str(GENERATOR), "--output-dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for generated in sorted(tmp_path.iterdir()):
        committed = K8S / generated.name
        assert committed.is_file(), f"{generated.name} missing: run python deploy/kubernetes/generate.py"
        assert committed.read_text() == generated.read_text(), (
            f"{generated.name} is out of date: run python deploy/kubernetes/generate.py")
    check = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _fake_repo(root: Path, alerts: str, rules: str, dashboards: dict[str, object]) -> Path:
    (root / "prometheus").mkdir(parents=True)
    (root / "grafana/dashboards").mkdir(parents=True)
    (root / "prometheus/alerts.yml").write_text(alerts)
    (root / "prometheus/rules.yml").write_text(rules)
    for name, content in dashboards.items():
        (root / "grafana/dashboards" / name).write_text(json.dumps(content))
    return root


def _generate(repo: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), "--repo", str(repo), "--output-dir", str(out)],
                          capture_output=True, text=True)


def test_generator_output_is_readable_and_faithful(tmp_path):
    alerts = ("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: |\n"
              "          sum by (account) (x)   \n            > 1\n        for: 5m\n")
    rules = "groups:\n  - name: r\n    rules:\n      - record: account:x:sum\n        expr: sum(x)\n"
    repo = _fake_repo(tmp_path / "repo", alerts, rules, {"Plant Overview.json": {"title": "Ä", "panels": []}})
    out = tmp_path / "out"
    assert _generate(repo, out).returncode == 0
    rule_text = (out / "prometheusrule.yaml").read_text()
    assert rule_text.startswith("# GENERATED")
    assert "expr: |" in rule_text, "multi-line PromQL stays a readable block"
    (rule,) = _docs(out / "prometheusrule.yaml")
    assert rule["spec"]["groups"][0]["rules"][0]["expr"] == "sum by (account) (x)\n  > 1\n"
    assert rule["spec"]["groups"][1]["rules"][0]["record"] == "account:x:sum"
    (config_map,) = _docs(out / "grafana-dashboards.yaml")
    assert config_map["metadata"]["name"] == "isolarcloud-exporter-dashboard-plant-overview"
    assert json.loads(config_map["data"]["Plant Overview.json"]) == {"title": "Ä", "panels": []}
    # A second run changes nothing: the output is deterministic.
    before = {p.name: p.read_text() for p in out.iterdir()}
    assert _generate(repo, out).returncode == 0
    assert before == {p.name: p.read_text() for p in out.iterdir()}


@pytest.mark.parametrize(("alerts", "message"), [
    ("groups:\n  - name: same\n    rules: []\n", "used twice"),
    ("rules: []\n", "groups"),
    ("groups: [\n", "invalid YAML"),
])
def test_generator_rejects_bad_rule_files(tmp_path, alerts, message):
    rules = "groups:\n  - name: same\n    rules: []\n"
    repo = _fake_repo(tmp_path / "repo", alerts, rules, {"d.json": {}})
    result = _generate(repo, tmp_path / "out")
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists(), "nothing half-written"


def test_config_loads_with_the_secret_files(tmp_path):
    deployment = _one("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    secret_volume = next(v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    secret_dir = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == secret_volume)
    secret_keys = set(_one("Secret", _docs(K8S / "secret.example.yaml"))["stringData"])
    raw = yaml.safe_load((K8S / "config.yaml").read_text())
    for account in raw["accounts"]:
        auth = account["auth"]
        assert not [k for k in SECRET_KEYS if k in auth], "no inline secrets in the ConfigMap"
        for key, value in list(auth.items()):
            if key.endswith("_file"):
                path = Path(value)
                assert str(path.parent) == secret_dir, f"{key}: {value} is not in the Secret's mount"
                assert path.name in secret_keys, f"{key}: the Secret has no key {path.name}"
                local = tmp_path / path.name
                local.write_text(f"value-{path.name}")
                auth[key] = str(local)
    config = parse_config(raw, env={}, base_dir=tmp_path)
    assert config.accounts[0].auth.user_password == "value-user_password"


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i?|k)?", quantity).groups()  # type: ignore[union-attr]
    return int(number) * _UNITS.get(unit or "", 1)


def documented_peaks() -> dict[int, int]:
    """Peak RSS by fleet size, from the performance table of docs/operations.md (plants → bytes)."""
    text = (REPO / "docs/operations.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| |") and "plants" in line)
    sizes = [int(c.replace(",", "").split()[0]) for c in header.strip("|").split("|")[1:]]
    row = next(line for line in text.splitlines() if line.startswith("| peak RSS"))
    peaks = [int(float(c.strip().split()[0]) * 10**6) for c in row.strip("|").split("|")[1:]]
    return dict(zip(sizes, peaks, strict=True))


def test_memory_is_sized_for_the_documented_fleet():
    """The limit covers the largest documented fleet's peak with headroom (a reload briefly holds a restarted
    account's old and new data), and the manifest's sizing table agrees with the documentation."""
    peaks = documented_peaks()
    assert peaks[50_000] == 312 * 10**6, peaks
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    limit = _bytes(container["resources"]["limits"]["memory"])
    request = _bytes(container["resources"]["requests"]["memory"])
    assert limit >= 1.5 * max(peaks.values()), f"limit {limit} below 1.5 x the documented peak"
    assert request >= peaks[10_000], "the request covers a 10,000-plant fleet"
    manifest = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    for plants, peak in peaks.items():
        assert re.search(rf"#\s+{plants:,}\s+{peak // 10**6} MB\s+\d+Mi\s+\d+Mi", manifest), plants
    sizing = (REPO / "docs/operations.md").read_text(encoding="utf-8").split("### Memory by fleet size", 1)[1]
    for row in re.findall(r"#\s+([\d,]+)\s+(\d+) MB\s+(\d+Mi)\s+(\d+Mi)", manifest):
        assert f"| {row[0]} | {row[1]} MB | {row[2]} | {row[3]} |" in sizing, row
