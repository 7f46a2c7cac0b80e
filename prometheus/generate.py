#!/usr/bin/env python3
"""Render the Prometheus rules of isolarcloud-exporter from their templates and one configuration block.

    python prometheus/generate.py                          # rewrites prometheus/alerts.yml and rules.yml
    python prometheus/generate.py --check                  # exit 1 when they are not what the templates give
    python prometheus/generate.py --config my.yml --out /etc/prometheus/isolarcloud

The templates are prometheus/src/alerts.yml and prometheus/src/rules.yml: ordinary rule files, comments and all,
written with the default selector `job="isolarcloud"` and `${name}` placeholders for the shared thresholds. The
configuration (CONFIG below, the `_config` of a mixin) is the one place for your job selector, your Grafana and
runbook addresses and those thresholds; a `--config` YAML file overrides any of its keys. Rendering

* replaces `job="isolarcloud"` with `selector` and each `${name}` with its value (`${down}` and
  `${down:<collection>}` with the condition "the account's data is down", see `down()`);
* adds to every alert a `runbook_url` (runbook_url + "#" + the alert name in lower case: the heading of its
  runbook entry in docs/alerts.md) and a `dashboard_url` (the plant dashboard for an alert whose description
  names a ps_id, else the fleet dashboard, with the alert's labels as variables), unless the template sets one;
* checks the conventions (alert names, severities, summaries, descriptions, `for:`, recording rule names,
  unique group names) and fails with one line naming the rule.

The output keeps the templates' text (comments included); only the generated annotation lines are added. The
committed alerts.yml and rules.yml are the rendering of the defaults, and a test checks that they are current.
Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "src"
OUTPUTS = ("alerts.yml", "rules.yml")
TEMPLATE_SELECTOR = 'job="isolarcloud"'
FLEET_UID = "isolarcloud-fleet"  # the uids of grafana/generate.py's dashboards
PLANT_UID = "isolarcloud-plant"

CONFIG: Mapping[str, Any] = {
    # Label matchers every selector of the rules carries: your scrape job, and anything else that singles out
    # the exporter's series (e.g. 'job="solar", env="prod"').
    "selector": TEMPLATE_SELECTOR,
    # Grafana's address as notification readers open it; dashboard_url links go to its two dashboards.
    "grafana_url": "http://localhost:3000",
    # The runbook (docs/alerts.md) as your readers open it; each alert links to its own heading.
    "runbook_url": "https://github.com/isolarcloud-exporter/isolarcloud-exporter/blob/main/docs/alerts.md",
    # The sun above this many degrees at a plant is daylight: a healthy plant produces, a logger is awake.
    "daylight_degrees": 10,
    # Fleet alerts: this share of an account's plants (and at least fleet_min_plants of them).
    "fleet_share": 0.2,
    "fleet_min_plants": 3,
    # Production alerts compare a plant with the daylit plants of its time zone, when there are this many...
    "peers_min": 4,
    # ... and more than this share of them produce (else it is night, snow or a cloud-wide glitch).
    "peers_producing_share": 0.5,
    # Underperforming: specific yield today below this share of the zone's median.
    "underperforming_share": 0.5,
    # How far back rules carry their own last value (held states across outages, "not normal since"): longer
    # than a Prometheus restart or a missed evaluation.
    "hold": "15m",
}
NUMBERS = {"daylight_degrees", "fleet_share", "fleet_min_plants", "peers_min", "peers_producing_share",
           "underperforming_share"}
SEVERITIES = ("critical", "warning", "info")
GENERATED = ("runbook_url", "dashboard_url")
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class GenerateError(Exception):
    pass


# ----------------------------------------------------------------------------------------------- configuration


def load_config(path: Path | None) -> dict[str, Any]:
    config = dict(CONFIG)
    if path is None:
        return config
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GenerateError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise GenerateError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return config
    if not isinstance(data, dict):
        raise GenerateError(f"{path}: expected a mapping of configuration keys")
    for key, value in data.items():
        if key not in CONFIG:
            raise GenerateError(f"{path}: unknown key {key!r} (known: {', '.join(CONFIG)})")
        if key in NUMBERS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise GenerateError(f"{path}: {key} must be a non-negative number, got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise GenerateError(f"{path}: {key} must be a non-empty string, got {value!r}")
        config[key] = value
    if not re.fullmatch(r"\d+[smhd]", str(config["hold"])):
        raise GenerateError(f"{path}: hold must be a duration such as 15m, got {config['hold']!r}")
    for key in ("grafana_url", "runbook_url"):
        config[key] = str(config[key]).rstrip("/")
    return config


# ----------------------------------------------------------------------------------------------- rendering


DOWN = re.compile(r"\$\{down(?::(\w+))?\}")


def down(collection: str | None) -> str:
    """`${down}` / `${down:<collection>}`: 1 per (account, collection) whose data is down, for an alert's hold
    outside the group that records account_collection:isolarcloud_collection_up:down. Groups are evaluated
    independently, so in the minute an outage begins such an alert may run before the record does: the record is
    OR'd with the two conditions it is computed from (a collection down; the exporter not scraped, within the hold
    window), which are a few series per account. Past the hold window the record alone carries an exporter that
    stays down. One line, so that it fits any place in a template's expression."""
    matcher = f'job="isolarcloud", collection="{collection}"' if collection else 'job="isolarcloud"'
    keys = "job, instance, account, collection"
    return (f"(account_collection:isolarcloud_collection_up:down{{{matcher}}}"
            f" or on ({keys}) ((isolarcloud_collection_up{{{matcher}}} == 0) + 1)"
            f" or on ({keys}) (last_over_time(isolarcloud_collection_up{{{matcher}}}[${{hold}}]) * 0 + 1"
            f' and on (job, instance) (up{{job="isolarcloud"}} == 0)))')


def _placeholders(text: str, config: Mapping[str, Any], source: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in config:
            raise GenerateError(f"{source}: unknown placeholder ${{{name}}}")
        return str(config[name])

    text = DOWN.sub(lambda m: down(m.group(1)), text)
    return PLACEHOLDER.sub(value, text)


def _link(variables: list[tuple[str, str]]) -> str:
    """Dashboard variables from alert labels, URL-encoded by Prometheus' template when the alert fires."""
    return "&".join(f"var-{var}={{{{ $labels.{label} | urlquery }}}}" for var, label in variables)


def dashboard_url(rule: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The dashboard an alert's reader opens: the plant's for an alert about one plant, else the fleet's, with
    the labels the alert has as the dashboard's variables."""
    text = " ".join(str(v) for v in (rule.get("annotations") or {}).values())
    if "$labels.ps_id" in text:
        variables = [("job", "job"), ("account", "account"), ("plant", "ps_name"), ("ps_id", "ps_id")]
        return f"{config['grafana_url']}/d/{PLANT_UID}/isolarcloud-plant?{_link(variables)}"
    variables = [("job", "job")] + ([("account", "account")] if "$labels.account" in text else [])
    return f"{config['grafana_url']}/d/{FLEET_UID}/isolarcloud-fleet?{_link(variables)}"


def runbook_url(name: str, config: Mapping[str, Any]) -> str:
    return f"{config['runbook_url']}#{name.lower()}"


_RULE_LINE = re.compile(r"^(\s*)- (alert|record):\s*(\S+)\s*$")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*):")


def _annotate(text: str, alerts: list[dict[str, Any]], config: Mapping[str, Any], source: str) -> str:
    """Insert the generated annotations at the end of each alert's `annotations:` block, keeping every other
    line as it is. `alerts` are the template's alert rules, in order."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pending = iter(alerts)
    current: dict[str, Any] | None = None
    rule_indent = -1
    block_indent = -1  # indentation of the current alert's `annotations:` key, -1 outside one
    key_indent = -1
    last_content = -1  # index in `out` of the last line of the annotations block

    def close() -> None:
        nonlocal block_indent, current
        if current is None:
            return
        if block_indent < 0:
            raise GenerateError(f"{source}: alert {current['alert']} has no annotations")
        annotations = current.get("annotations") or {}
        indent = " " * (key_indent if key_indent >= 0 else block_indent + 2)
        extra = [f"{indent}runbook_url: {json.dumps(runbook_url(current['alert'], config))}\n"]
        if "dashboard_url" not in annotations:
            extra.append(f"{indent}dashboard_url: {json.dumps(dashboard_url(current, config), ensure_ascii=False)}\n")
        out[last_content + 1:last_content + 1] = extra
        block_indent, current = -1, None

    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        rule = _RULE_LINE.match(line)
        if current is not None and stripped and not stripped.startswith("#"):
            ends_block = block_indent >= 0 and indent <= block_indent
            if rule or indent <= rule_indent or ends_block:
                close()
        if rule:
            close()
            if rule.group(2) == "alert":
                current = next(pending)
                if current["alert"] != rule.group(3):
                    raise GenerateError(f"{source}: cannot follow the layout at alert {rule.group(3)}")
                rule_indent = len(rule.group(1))
            out.append(line)
            continue
        out.append(line)
        if current is None or not stripped or stripped.startswith("#"):
            continue
        key = _KEY_LINE.match(line)
        if block_indent < 0 and key and key.group(2) == "annotations" and indent == rule_indent + 2:
            block_indent, key_indent = indent, -1
            last_content = len(out) - 1
        elif block_indent >= 0 and indent > block_indent:
            if key_indent < 0 and key:
                key_indent = indent
            last_content = len(out) - 1
    close()
    if next(pending, None) is not None:
        raise GenerateError(f"{source}: cannot follow the layout: alerts left over")
    return "".join(out)


def _rules(data: Any, source: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise GenerateError(f"{source}: expected a Prometheus rule file with a `groups:` list")
    found = []
    for group in data["groups"]:
        for rule in group.get("rules") or []:
            found.append((str(group.get("name")), rule))
    return found


def _duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(int(n) * units[u] for n, u in parts)


def check_conventions(data: Any, source: str) -> None:
    """The conventions every rule follows (docs/alerts.md#conventions); one line naming the rule if not."""
    names = [g.get("name") for g in data["groups"]]
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicates:
        raise GenerateError(f"{source}: group names used twice: {', '.join(duplicates)}")
    for group, rule in _rules(data, source):
        if "alert" in rule:
            name = str(rule["alert"])
            where = f"{source}: alert {name} (group {group})"
            if not re.fullmatch(r"Isolarcloud(?:[A-Z][a-z0-9]+)+", name):
                raise GenerateError(f"{where}: name must be CamelCase with the Isolarcloud prefix")
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                raise GenerateError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
            try:
                if _duration_seconds(str(rule.get("for", ""))) < 300:
                    raise GenerateError(f"{where}: `for:` shorter than 5m fires on one odd cloud refresh")
            except ValueError:
                raise GenerateError(f"{where}: `for:` must be a duration of at least 5m") from None
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", *GENERATED):
                if not str(annotations.get(key, "")).strip():
                    raise GenerateError(f"{where}: annotation {key} missing")
        else:
            name = str(rule.get("record"))
            if not re.fullmatch(r"[a-z_]+:isolarcloud_[a-z_]+:[a-z0-9_]+", name):
                raise GenerateError(f"{source}: recording rule {name} (group {group}): name must be "
                                    "level:isolarcloud_metric:operations")


def render(template: str, config: Mapping[str, Any], source: str) -> str:
    if re.search(r"^\s*runbook_url:", template, re.M):
        raise GenerateError(f"{source}: runbook_url is generated; remove it from the template")
    text = _placeholders(template, config, source)
    if config["selector"] != TEMPLATE_SELECTOR:
        text = text.replace(TEMPLATE_SELECTOR, str(config["selector"]))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GenerateError(f"{source}: invalid YAML: {exc}") from None
    alerts = [rule for _group, rule in _rules(data, source) if "alert" in rule]
    text = _annotate(text, alerts, config, source)
    check_conventions(yaml.safe_load(text), source)
    settings = "".join(f"#   {key}: {config[key]}\n" for key in ("selector", "grafana_url", "runbook_url"))
    header = (f"# GENERATED by prometheus/generate.py from {source}: do not edit. Change the template or the\n"
              "# configuration (python prometheus/generate.py --help) and run it again. Rendered with:\n"
              f"{settings}#\n")
    return header + text


def generate(config: Mapping[str, Any], templates: Path = TEMPLATES) -> dict[str, str]:
    """File name -> content of every generated rule file."""
    out = {}
    for name in OUTPUTS:
        path = templates / name
        try:
            template = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GenerateError(f"{path}: cannot read: {exc.strerror}") from None
        out[name] = render(template, config, f"prometheus/src/{name}")
    names = [g["name"] for text in out.values() for g in yaml.safe_load(text)["groups"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GenerateError(f"group names used in both files: {', '.join(duplicates)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML file overriding keys of the configuration block")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only report whether the files in --out are current")
    args = parser.parse_args(argv)
    try:
        outputs = generate(load_config(args.config))
    except GenerateError as exc:
        print(f"generate.py: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, content in outputs.items():
        target = args.out / name
        if target.exists() and target.read_text(encoding="utf-8") == content:
            continue
        stale.append(name)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python prometheus/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
