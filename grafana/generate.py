#!/usr/bin/env python3
"""Generate the Grafana dashboards of isolarcloud-exporter (standard library only).

    python grafana/generate.py                 # writes grafana/dashboards/*.json
    python grafana/generate.py --out /tmp/x    # writes elsewhere (the tests compare the two)

The JSON files are committed so that users can import them without running Python; edit this script,
not the JSON, and regenerate. Dashboards use a `datasource` template variable rather than `__inputs`,
so they work both when imported in the UI and when provisioned from files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "dashboards"

FLEET_UID = "isolarcloud-fleet"
PLANT_UID = "isolarcloud-plant"
TAGS = ["isolarcloud", "solar"]
DS = {"type": "prometheus", "uid": "${datasource}"}

# Label selectors shared by every query. `$account` may be the "All" value `.*`, hence `=~`.
ACC = 'job="$job", account=~"$account"'
PLANT = 'job="$job", account=~"$account", ps_id="$ps_id"'

# ----------------------------------------------------------------------------- value mappings


def value_mapping(codes: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    options = {code: {"text": text, "color": color, "index": i} for i, (code, (text, color)) in
               enumerate(codes.items())}
    return [{"type": "value", "options": options}]


FAULT_STATUS = value_mapping({"1": ("Fault", "red"), "2": ("Alarm", "orange"), "3": ("Normal", "green")})
BUILD_STATUS = value_mapping({
    "0": ("Not started", "purple"),
    "1": ("Under construction", "blue"),
    "2": ("Connected", "green"),
    "3": ("Planned", "text"),
    "4": ("Not connected", "orange"),
})
ONLINE_STATUS = value_mapping({"1": ("Deployed", "green"), "0": ("Not deployed", "orange")})
GRID_STATUS = value_mapping({"1": ("Grid-connected", "green"), "0": ("Not grid-connected", "orange")})
VALID_FLAG = value_mapping({"1": ("Normal", "green"), "2": ("Disabled", "red"), "3": ("Connected", "blue")})
UP_STATUS = value_mapping({"1": ("OK", "green"), "0": ("Failing", "red")})

# Colours for the words used as label values by the recording rules (prometheus/rules.yml).
FAULT_WORD_COLORS = {"fault": "red", "alarm": "orange", "normal": "green", "unknown": "text"}
BUILD_WORD_COLORS = {"not_started": "purple", "under_construction": "blue", "connected": "green",
                     "planned": "text", "not_connected": "orange"}


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
BLUE = thresholds((None, "blue"))
# Fault status codes as thresholds, for places that colour by number (geomap markers).
FAULT_THRESHOLDS = thresholds((None, "red"), (2, "orange"), (3, "green"))


def color_by_name(colors: dict[str, str]) -> list[dict[str, Any]]:
    return [{"matcher": {"id": "byName", "options": name},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
            for name, color in colors.items()]


def color_by_regex(colors: dict[str, str]) -> list[dict[str, Any]]:
    return [{"matcher": {"id": "byRegexp", "options": pattern},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
            for pattern, color in colors.items()]


def column(name: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in properties]}


def colored_cells() -> list[tuple[str, Any]]:
    # cellOptions is Grafana 10+, displayMode its predecessor; each version ignores the other.
    return [("custom.cellOptions", {"type": "color-background"}), ("custom.displayMode", "color-background")]


# ----------------------------------------------------------------------------- panels


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False,
           interval: str = "") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend,
                         "range": not instant, "instant": instant,
                         "format": "table" if table else "time_series"}
    if interval:
        t["interval"] = interval
    return t


def field_config(unit: str = "none", mappings: list | None = None, thr: dict | None = None,
                 color: dict | None = None, custom: dict | None = None, overrides: list | None = None,
                 **extra: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "mappings": mappings or [], "thresholds": thr or GREEN,
                                "color": color or {"mode": "thresholds"}}
    if custom:
        defaults["custom"] = custom
    defaults.update(extra)
    return {"defaults": defaults, "overrides": overrides or []}


def panel(kind: str, title: str, description: str, targets: list[dict], fc: dict, options: dict,
          w: int, h: int, **extra: Any) -> dict[str, Any]:
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "targets": targets, "fieldConfig": fc, "options": options, "gridPos": {"w": w, "h": h}}
    p.update(extra)
    return p


def reduce_last() -> dict[str, Any]:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(title: str, description: str, expr: str, unit: str = "none", w: int = 4, h: int = 4,
         mappings: list | None = None, thr: dict | None = None, legend: str = "", graph: bool = False,
         color_mode: str = "value", no_value: str | None = None, decimals: int | None = None,
         text_mode: str = "auto") -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if no_value is not None:
        extra["noValue"] = no_value
    if decimals is not None:
        extra["decimals"] = decimals
    return panel(
        "stat", title, description, [target(expr, legend, instant=not graph)],
        field_config(unit, mappings, thr, **extra),
        {"reduceOptions": reduce_last(), "colorMode": color_mode, "graphMode": "area" if graph else "none",
         "justifyMode": "auto", "orientation": "auto", "textMode": text_mode, "wideLayout": True},
        w, h)


def timeseries(title: str, description: str, targets: list[dict], unit: str = "none", w: int = 12,
               h: int = 8, stack: bool = False, bars: bool = False, overrides: list | None = None,
               thr: dict | None = None, color: dict | None = None, soft_min: float | None = 0,
               **extra: Any) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 80 if bars else 10,
        "showPoints": "never", "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    if soft_min is not None:
        # Most series here are non-negative; starting the axis at 0 keeps small changes from looking huge.
        custom["axisSoftMin"] = soft_min
    return panel(
        "timeseries", title, description, targets,
        field_config(unit, thr=thr, color=color or {"mode": "palette-classic"}, custom=custom,
                     overrides=overrides, **extra),
        {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
         "tooltip": {"mode": "multi", "sort": "desc"}},
        w, h)


def state_timeline(title: str, description: str, expr: str, legend: str, mappings: list, thr: dict,
                   w: int = 24, h: int = 6) -> dict[str, Any]:
    return panel(
        "state-timeline", title, description, [target(expr, legend)],
        field_config("none", mappings, thr, custom={"fillOpacity": 80, "lineWidth": 0}),
        {"mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.9,
         "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
         "tooltip": {"mode": "single", "sort": "none"}},
        w, h)


def bargauge(title: str, description: str, targets: list[dict], unit: str = "none", w: int = 8,
             h: int = 8, thr: dict | None = None, overrides: list | None = None,
             **extra: Any) -> dict[str, Any]:
    return panel(
        "bargauge", title, description, targets,
        field_config(unit, thr=thr or BLUE, overrides=overrides, min=0, **extra),
        {"orientation": "horizontal", "displayMode": "gradient", "reduceOptions": reduce_last(),
         "showUnfilled": True, "valueMode": "color", "namePlacement": "auto", "sizing": "auto"},
        w, h)


def piechart(title: str, description: str, expr: str, legend: str, colors: dict[str, str], w: int = 8,
             h: int = 8) -> dict[str, Any]:
    return panel(
        "piechart", title, description, [target(expr, legend, instant=True)],
        field_config("none", color={"mode": "palette-classic"}, overrides=color_by_name(colors)),
        {"pieType": "donut", "reduceOptions": reduce_last(), "tooltip": {"mode": "single", "sort": "none"},
         "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value"]}},
        w, h)


def table(title: str, description: str, targets: list[dict], rename: dict[str, str], order: list[str],
          overrides: list | None = None, w: int = 24, h: int = 8, sort_by: str | None = None,
          desc: bool = False, links: list | None = None) -> dict[str, Any]:
    """Instant queries whose label sets are identical, merged into one row per series."""
    hidden = {"Time": True, "__name__": True, "job": True, "instance": True}
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": hidden, "renameByName": rename,
                                       "indexByName": {name: i for i, name in enumerate(order)}}},
    ]
    # Paged: a fleet's table has thousands of rows. `footer.enablePagination` up to Grafana 12.1, the top-level
    # `enablePagination` from 12.2 on (which migrates the former); each version ignores the other.
    options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm", "enablePagination": True,
                               "footer": {"show": False, "reducer": ["sum"], "fields": "", "enablePagination": True}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    defaults_custom = {"align": "auto", "filterable": True, "inspect": False}
    fc = field_config("none", custom=defaults_custom, overrides=overrides)
    if links:
        fc["defaults"]["links"] = links
    return panel("table", title, description, targets, fc, options, w, h, transformations=transformations)


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assign ids and grid positions: panels flow left to right, rows start a new line."""
    x = y = line_h = 0
    for pid, p in enumerate(panels, start=1):
        p["id"] = pid
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_h = max(line_h, h)
        if p["type"] == "row":
            x, y, line_h = 0, y + h, 0
    return panels


# ----------------------------------------------------------------------------- dashboard scaffolding


def datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
            "regex": "", "skipUrlSync": False}


def query_variable(name: str, label: str, query: str, *, multi: bool = False, include_all: bool = False,
                   default: str | None = None, description: str = "") -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name, "label": label, "description": description, "type": "query", "datasource": DS,
        "query": query, "definition": query, "refresh": 2, "sort": 1, "regex": "", "hide": 0,
        "multi": multi, "includeAll": include_all, "options": [], "skipUrlSync": False,
        "current": {"selected": False, "text": default, "value": default} if default else {},
    }
    if include_all:
        # `.*` instead of a long alternation of every account: shorter queries, same result.
        v["allValue"] = ".*"
    return v


def job_variable() -> dict[str, Any]:
    return query_variable("job", "Job", "label_values(isolarcloud_up, job)", default="isolarcloud",
                          description="Prometheus job that scrapes isolarcloud-exporter")


def account_variable(multi: bool) -> dict[str, Any]:
    return query_variable("account", "Account", 'label_values(isolarcloud_up{job="$job"}, account)',
                          multi=multi, include_all=True, description="iSolarCloud account (exporter config)")


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "schemaVersion": 39,
        "version": 1,
        "id": None,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "links": [{"title": "iSolarCloud dashboards", "type": "dashboards", "tags": ["isolarcloud"],
                   "asDropdown": True, "includeVars": True, "keepTime": True, "icon": "external link",
                   "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": {"list": variables},
        "panels": layout(panels),
    }


def geomap(title: str, description: str, selector: str, w: int, h: int, zoom: int) -> dict[str, Any]:
    """Plants as markers at their coordinates, coloured by fault status."""
    return panel(
        "geomap", title, description,
        [target(f"max without () (isolarcloud_plant_latitude_degrees{{{selector}}})", ref="A", instant=True,
                table=True),
         target(f"max without () (isolarcloud_plant_longitude_degrees{{{selector}}})", ref="B", instant=True,
                table=True),
         target(f"max without () (isolarcloud_plant_fault_status{{{selector}}})", ref="C", instant=True,
                table=True)],
        field_config("none", FAULT_STATUS, FAULT_THRESHOLDS),
        {"view": {"id": "fit", "lat": 0, "lon": 0, "zoom": zoom, "allLayers": True},
         "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True,
                      "showScale": False, "showMeasure": False, "showDebug": False},
         "basemap": {"type": "default", "name": "Basemap", "config": {}},
         "tooltip": {"mode": "details"},
         "layers": [{
             "type": "markers", "name": "Plants", "tooltip": True,
             "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
             "config": {"showLegend": True, "style": {
                 "color": {"field": "status", "fixed": "green"},
                 "size": {"fixed": 6, "min": 4, "max": 12},
                 "opacity": 0.8,
                 "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                 "rotation": {"fixed": 0, "mode": "mod", "min": -360, "max": 360},
                 "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": 0, "textAlign": "center",
                                "textBaseline": "middle"},
             }},
         }]},
        w, h,
        transformations=[
            # The three queries return identical label sets, so merge yields one row per plant.
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "instance": True},
                "renameByName": {"Value #A": "latitude", "Value #B": "longitude", "Value #C": "status"},
                "indexByName": {}}},
        ])


# ----------------------------------------------------------------------------- open faults and plant details

# fault_type words of isolarcloud_fault_active / isolarcloud_plant_open_faults (unknown_<n> keeps the default).
FAULT_TYPE_COLORS = {"fault": "red", "alarm": "orange", "notice": "blue", "suggestion": "text"}
FAULT_TYPE_MAPPING = value_mapping({word: (word, color) for word, color in FAULT_TYPE_COLORS.items()})
FAULT_COLUMNS = {"ps_name": "Plant", "ps_id": "Plant id", "account": "Account", "device_name": "Device",
                 "device_type": "Device type", "fault_name": "Fault", "fault_type": "Type", "fault_level": "Level",
                 "fault_code": "Code", "Value": "Since"}


def open_faults_table(title: str, description: str, selector: str, w: int, h: int,
                      links: list | None = None) -> dict[str, Any]:
    """One row per open record of isolarcloud_fault_active (its value: when the record opened)."""
    order = ["ps_name", "device_name", "fault_name", "fault_type", "fault_level", "Value", "device_type",
             "fault_code", "ps_id", "account"]
    return table(title, description,
                 [target(f"isolarcloud_fault_active{{{selector}}} * 1000", instant=True, table=True)],
                 rename=FAULT_COLUMNS, order=order,
                 overrides=[column("Since", ("unit", "dateTimeAsIso")),
                            column("Type", ("mappings", FAULT_TYPE_MAPPING), *colored_cells()),
                            column("ps_key", ("custom.hidden", True))],
                 sort_by="Since", desc=True, w=w, h=h, links=links)


# Feed-in revenue today: energy fed in today (kWh) × the plant's feed-in tariff, per currency. Plants without a
# tariff (or without a feed-in point) are left out, never counted as 0.
def revenue_today(selector: str) -> str:
    return (f"isolarcloud_plant_grid_export_energy_today_joules{{{selector}}} / 3.6e6\n"
            f"  * on (job, instance, account, ps_id) group_left (currency)\n"
            f"  isolarcloud_plant_feed_in_tariff{{{selector}}}")


def fleet_fault_panels() -> list[dict[str, Any]]:
    """Open faults by device (getFaultAlarmInfo) and tariffs (getPowerStationDetail) on the fleet dashboard."""
    return [
        row("Open faults and alarms"),
        stat("Open faults", "Open fault records (fault_type fault) of the selected accounts' plants.",
             f'count(isolarcloud_fault_active{{{ACC}, fault_type="fault"}}) or vector(0)',
             thr=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Open alarms", "Open alarm records (fault_type alarm).",
             f'count(isolarcloud_fault_active{{{ACC}, fault_type="alarm"}}) or vector(0)',
             thr=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        stat("Fault lists readable", "Per account: could the exporter read the open faults (1 OK)? An app "
             "refused the fault endpoint (E900) shows Failing; device alerts are silent then.",
             f'isolarcloud_collection_up{{{ACC}, collection="faults"}}', legend="{{account}}", mappings=UP_STATUS,
             thr=thresholds((None, "red"), (1, "green")), color_mode="background", w=8),
        bargauge("Open records by type", "Open records per fault_type, from isolarcloud_plant_open_faults "
                 "(every record, also those beyond faults.max_series).",
                 [target(f"sum by (fault_type) (isolarcloud_plant_open_faults{{{ACC}}})", "{{fault_type}}",
                         instant=True)],
                 overrides=color_by_name(FAULT_TYPE_COLORS), w=8, h=4),
        open_faults_table("Open faults", "Every open fault, alarm, notice and suggestion: plant, device, fault, "
                          "type, level and since when (newest first). Click a row for the plant dashboard.",
                          ACC, w=24, h=10, links=PLANT_LINK),
        timeseries("Open records over time", "Open records per fault_type.",
                   [target(f"sum by (fault_type) (isolarcloud_plant_open_faults{{{ACC}}})", "{{fault_type}}")],
                   stack=True, w=24, h=6, overrides=color_by_name(FAULT_TYPE_COLORS)),

        row("Tariffs and revenue"),
        stat("Feed-in revenue today", "Energy fed into the grid today (point 83072) × each plant's feed-in "
             "tariff, per currency; plants without a tariff are left out.",
             f"sum by (currency) ({revenue_today(ACC)})", legend="{{currency}}", decimals=2, thr=BLUE, w=8),
        timeseries("Feed-in revenue today per account", "The running feed-in revenue of the day per account and "
                   "currency; resets at each plant's local midnight.",
                   [target(f"sum by (account, currency) ({revenue_today(ACC)})", "{{account}} {{currency}}")],
                   w=16, h=8),
        table("Tariffs per plant", "Feed-in and consumption tariff per kWh as each plant's owner set them "
              "(plant details, refreshed daily). Click a row for the plant dashboard.",
              [target(f"max without () (isolarcloud_plant_feed_in_tariff{{{ACC}}})", ref="A", instant=True,
                      table=True),
               target(f"max without () (isolarcloud_plant_consumption_tariff{{{ACC}}})", ref="B", instant=True,
                      table=True)],
              rename={"Value #A": "Feed-in per kWh", "Value #B": "Consumption per kWh", "ps_name": "Plant",
                      "ps_id": "Plant id", "ps_type": "Type", "account": "Account", "currency": "Currency"},
              order=["ps_name", "ps_id", "account", "currency", "Value #A", "Value #B", "ps_type"],
              sort_by="Feed-in per kWh", desc=True, w=24, h=8, links=PLANT_LINK),
    ]


def plant_fault_panels() -> list[dict[str, Any]]:
    """This plant's open faults, tariffs, revenue and data loggers on the plant dashboard."""
    return [
        row("Open faults, tariffs and loggers"),
        stat("Open faults", "Open fault records of the plant's devices.",
             f'count(isolarcloud_fault_active{{{PLANT}, fault_type="fault"}}) or vector(0)',
             thr=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Open alarms", "Open alarm records of the plant's devices.",
             f'count(isolarcloud_fault_active{{{PLANT}, fault_type="alarm"}}) or vector(0)',
             thr=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        open_faults_table("Open faults of this plant", "Every open fault, alarm, notice and suggestion of the "
                          "plant's devices, newest first.", PLANT, w=16, h=8),
        stat("Feed-in tariff", "Per kWh, as the owner set it in iSolarCloud (plant details).",
             f"isolarcloud_plant_feed_in_tariff{{{PLANT}}}", legend="{{currency}}/kWh", decimals=3, thr=BLUE),
        stat("Consumption tariff", "Per kWh, as the owner set it in iSolarCloud (plant details).",
             f"isolarcloud_plant_consumption_tariff{{{PLANT}}}", legend="{{currency}}/kWh", decimals=3, thr=BLUE),
        stat("Feed-in revenue today", "Energy fed into the grid today (point 83072) × the feed-in tariff.",
             revenue_today(PLANT), legend="{{currency}}", decimals=2, thr=BLUE),
        table("Data loggers", "The plant's communication devices by serial (plant details): 1 normal, "
              "0 disabled.",
              [target(f"isolarcloud_plant_logger_info{{{PLANT}}}", instant=True, table=True)],
              rename={"sn": "Serial", "Value": "Enabled", "ps_name": "Plant", "ps_id": "Plant id",
                      "account": "Account", "ps_type": "Type"},
              order=["sn", "Value", "ps_name", "ps_id", "account", "ps_type"],
              overrides=[column("Enabled", ("mappings", value_mapping({"1": ("Normal", "green"),
                                                                       "0": ("Disabled", "orange")})),
                                *colored_cells())],
              w=12, h=8),
    ]


# ----------------------------------------------------------------------------- fleet dashboard

# Time in the current non-normal state, from the recording rule that remembers since when each plant has been
# not normal (prometheus/rules.yml): one sample per such plant, whatever the dashboard's range (a subquery over
# the range read every plant's every sample: 200 M samples for 10,000 plants over 7 days).
NOT_NORMAL_FOR = f"time() - plant:isolarcloud_plant_fault_status:not_normal_since{{{ACC}}}"

SPECIFIC_YIELD = (f'isolarcloud_plant_energy_today_joules{{{ACC}}} / 3600\n'
                  f'  / (isolarcloud_plant_installed_power_watts{{{ACC}}} > 0)')
ENERGY_TODAY = f"isolarcloud_plant_energy_today_joules{{{ACC}}}"
# A ranking compares plants of one time zone: their "today" began at the same hour. `{}` is the plant query.
IN_ZONE = ("({}\n  and on (job, instance, account, ps_id)\n"
           f"  isolarcloud_plant_info{{{{{ACC}, time_zone=`$time_zone`}}}})")
# Names repeat in real fleets: bars and rows name the plant and its id.
PLANT_LEGEND = "{{ps_name}} ({{ps_id}})"

PLANT_LINK = [{
    "title": "Open plant dashboard",
    "url": (f"/d/{PLANT_UID}/isolarcloud-plant?${{datasource:queryparam}}&var-job=${{job}}"
            "&var-account=${__data.fields.account}&var-plant=${__data.fields.ps_name:percentencode}"
            "&var-ps_id=${__data.fields.ps_id}&${__url_time_range}"),
}]


def token_expiry() -> dict[str, Any]:
    """Time left per token, coloured by what is healthy for its kind: an OAuth2 refresh token (30 days) needs the
    plant owner in a browser, so under 7 days is orange and under a day red; access tokens (renewed by the
    exporter before they expire) and login tokens (24 h, sliding) are only wrong once expired."""
    p = stat("Token expiry", "Time left on each token. Refresh token (OAuth2, 30 days): orange under 7 days, red "
             "under a day: the plant owner must authorise again. Access and login tokens are renewed by the exporter "
             "and only red once expired.",
             f"isolarcloud_token_expiry_timestamp_seconds{{{ACC}}} - time()",
             legend="{{account}} {{token}}", unit="s", thr=thresholds((None, "red"), (0, "green")), w=8, h=8)
    p["fieldConfig"]["overrides"] = [{
        "matcher": {"id": "byRegexp", "options": ".* refresh$"},
        "properties": [{"id": "thresholds",
                        "value": thresholds((None, "red"), (86400, "orange"), (7 * 86400, "green"))}]}]
    return p


def fleet() -> dict[str, Any]:
    panels: list[dict[str, Any]] = [
        row("Overview"),
        stat("Plants", "Plants listed by iSolarCloud for the selected accounts.",
             f"sum(isolarcloud_plants{{{ACC}}})"),
        stat("In fault", "Plants whose iSolarCloud fault status is 1 (fault).",
             f'sum(account_fault_status:isolarcloud_plant_fault_status:count{{{ACC}, fault_status="fault"}})',
             thr=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("In alarm", "Plants whose iSolarCloud fault status is 2 (alarm).",
             f'sum(account_fault_status:isolarcloud_plant_fault_status:count{{{ACC}, fault_status="alarm"}})',
             thr=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        stat("Normal", "Plants whose iSolarCloud fault status is 3 (normal).",
             f'sum(account_fault_status:isolarcloud_plant_fault_status:count{{{ACC}, fault_status="normal"}})'),
        stat("Power now", "Sum of the plants' current power (point 83033).",
             f"sum(account:isolarcloud_plant_power_watts:sum{{{ACC}}})", unit="watt", graph=True,
             thr=BLUE),
        stat("Energy today", "Sum of the plants' yield today (point 83022; each plant's day is local).",
             f"sum(account:isolarcloud_plant_energy_today_joules:sum{{{ACC}}}) / 3600", unit="watth",
             graph=True, thr=BLUE),
        stat("Accounts refreshing", "Per account: did the exporter's last refresh from iSolarCloud succeed?",
             f"isolarcloud_up{{{ACC}}}", legend="{{account}}", mappings=UP_STATUS,
             thr=thresholds((None, "red"), (1, "green")), color_mode="background", w=4),
        stat("Plants in daylight", "Plants with the sun above 10 degrees, where the production alerts are armed "
             "(isolarcloud_plant_sun_elevation_degrees, computed by the exporter).",
             f"sum(isolarcloud_plant_sun_elevation_degrees{{{ACC}}} > bool 10)", thr=BLUE, w=4),
        stat("Since last successful refresh", "Worst account: age of the last successful refresh. "
             "The cloud updates every 5 minutes; past the exporter's max_age the data is withheld.",
             f"max(time() - isolarcloud_last_refresh_success_timestamp_seconds{{{ACC}}})", unit="s",
             thr=thresholds((None, "green"), (600, "orange"), (900, "red"))),
        stat("Installed power (known)", "Sum of the installed power of the plants whose capacity "
             "iSolarCloud reports.", f"sum(account:isolarcloud_plant_installed_power_watts:sum{{{ACC}}})",
             unit="watt", thr=BLUE),
        stat("Specific yield today", "Energy today per installed power (kWh/kWp) over the plants whose "
             "capacity is known.",
             f'sum(isolarcloud_plant_energy_today_joules{{{ACC}}}\n'
             f'    and on (account, ps_id) (isolarcloud_plant_installed_power_watts{{{ACC}}} > 0)) / 3600\n'
             f'/ sum(isolarcloud_plant_installed_power_watts{{{ACC}}} > 0\n'
             f'    and on (account, ps_id) isolarcloud_plant_energy_today_joules{{{ACC}}})',
             unit="suffix: kWh/kWp", decimals=2, thr=BLUE),
        stat("API budget used (worst account)", "Share of the hourly API call budget used so far this "
             "(UTC) hour by the busiest account.",
             f"max(account:isolarcloud_api_calls_current_hour_per_budget_calls_per_hour:ratio{{{ACC}}})",
             unit="percentunit",
             thr=thresholds((None, "green"), (0.75, "orange"), (0.9, "red"))),

        row("Plant states"),
        piechart("Plants by fault status", "From the recording rule "
                 "account_fault_status:isolarcloud_plant_fault_status:count; unknown = no status from the API.",
                 f"sum by (fault_status) (account_fault_status:isolarcloud_plant_fault_status:count{{{ACC}}})",
                 "{{fault_status}}", FAULT_WORD_COLORS),
        bargauge("Plants by type", "Plant type (ps_type) as reported by iSolarCloud.",
                 [target(f"sum by (ps_type) (account_ps_type:isolarcloud_plant_info:count{{{ACC}}})",
                         "{{ps_type}}", instant=True)]),
        bargauge("Plants by build status", "Construction state (build_status) as reported by iSolarCloud.",
                 [target(f"sum by (build_status) (account_build_status:isolarcloud_plant_build_status:count{{{ACC}}})",
                         "{{build_status}}", instant=True)],
                 overrides=color_by_name(BUILD_WORD_COLORS)),
        timeseries("Fault status over time", "Plants per fault status.",
                   [target("sum by (fault_status) "
                           f"(account_fault_status:isolarcloud_plant_fault_status:count{{{ACC}}})",
                           "{{fault_status}}")],
                   stack=True, w=24, h=7, overrides=color_by_name(FAULT_WORD_COLORS)),
        table("Plants in fault or alarm",
              "Plants not normal right now, and for how long (fault or alarm without a break; an outage of the "
              "account does not restart the clock, a rename does). Click a row for the plant dashboard.",
              [target(f"max without () (isolarcloud_plant_fault_status{{{ACC}}} < 3)", ref="A",
                      instant=True, table=True),
               target(NOT_NORMAL_FOR, ref="B", instant=True, table=True)],
              rename={"Value #A": "Status", "Value #B": "Not normal for", "ps_name": "Plant",
                      "ps_id": "Plant id", "ps_type": "Type", "account": "Account"},
              order=["ps_name", "ps_id", "account", "ps_type", "Value #A", "Value #B"],
              overrides=[column("Status", ("mappings", FAULT_STATUS), ("thresholds", FAULT_THRESHOLDS),
                                *colored_cells()),
                         column("Not normal for", ("unit", "s"))],
              sort_by="Not normal for", desc=True, w=12, h=10, links=PLANT_LINK),
        geomap("Plant map", "Plants at their iSolarCloud coordinates (plants without coordinates are left "
               "out), coloured by fault status.", ACC, 12, 10, zoom=10),
        *fleet_fault_panels(),

        row("Production"),
        timeseries("Power per account", "Sum of the plants' current power per account.",
                   [target(f"account:isolarcloud_plant_power_watts:sum{{{ACC}}}", "{{account}}")], "watt"),
        timeseries("Energy today per account", "Sum of the plants' yield today per account (resets at each "
                   "plant's local midnight).",
                   [target(f"account:isolarcloud_plant_energy_today_joules:sum{{{ACC}}} / 3600", "{{account}}")],
                   "watth"),
        bargauge("Top 10 plants by energy today in $time_zone", "Largest yield today among the plants of the "
                 "selected time zone: their day started at the same hour, so their yields today compare.",
                 [target(f"topk(10, {IN_ZONE.format(ENERGY_TODAY)}) / 3600", PLANT_LEGEND, instant=True)],
                 "watth", w=6, h=9),
        bargauge("Bottom 10 plants by energy today in $time_zone", "Smallest yield today among the plants of the "
                 "selected time zone (small plants rank low here: compare specific yield).",
                 [target(f"bottomk(10, {IN_ZONE.format(ENERGY_TODAY)}) / 3600", PLANT_LEGEND, instant=True)],
                 "watth", w=6, h=9),
        bargauge("Top 10 plants by specific yield today in $time_zone", "Energy today per installed power "
                 "(kWh/kWp) among the plants of the selected time zone whose capacity is known.",
                 [target(f"topk(10, {IN_ZONE.format(SPECIFIC_YIELD)})", PLANT_LEGEND, instant=True)],
                 "suffix: kWh/kWp", w=6, h=9, decimals=2),
        bargauge("Bottom 10 plants by specific yield today in $time_zone", "The underperformers: lowest energy "
                 "per installed power today among the plants of the selected time zone whose capacity is known.",
                 [target(f"bottomk(10, {IN_ZONE.format(SPECIFIC_YIELD)})", PLANT_LEGEND, instant=True)],
                 "suffix: kWh/kWp", w=6, h=9, decimals=2, thr=thresholds((None, "orange"))),
        table("Production per plant", "Current values per plant; empty cells: iSolarCloud gave no value. "
              "Click a row for the plant dashboard.",
              [target(f"max without () (isolarcloud_plant_power_watts{{{ACC}}})", ref="A", instant=True,
                      table=True),
               target(f"max without () (isolarcloud_plant_energy_today_joules{{{ACC}}}) / 3600", ref="B",
                      instant=True, table=True),
               target(f"max without () (isolarcloud_plant_installed_power_watts{{{ACC}}})", ref="C",
                      instant=True, table=True),
               target(SPECIFIC_YIELD, ref="D", instant=True, table=True)],
              rename={"Value #A": "Power", "Value #B": "Energy today", "Value #C": "Installed power",
                      "Value #D": "Specific yield today", "ps_name": "Plant", "ps_id": "Plant id",
                      "ps_type": "Type", "account": "Account"},
              order=["ps_name", "ps_id", "account", "ps_type", "Value #A", "Value #B", "Value #C", "Value #D"],
              overrides=[column("Power", ("unit", "watt")), column("Energy today", ("unit", "watth")),
                         column("Installed power", ("unit", "watt")),
                         column("Specific yield today", ("unit", "suffix: kWh/kWp"), ("decimals", 2))],
              sort_by="Energy today", desc=True, h=10, links=PLANT_LINK),

        row("Exporter and API health"),
        state_timeline("Account refresh status", "isolarcloud_up per account: did the last refresh succeed?",
                       f"isolarcloud_up{{{ACC}}}", "{{account}}", UP_STATUS,
                       thresholds((None, "red"), (1, "green")), w=12, h=6),
        state_timeline("Exporter scrape status", "Prometheus's `up` for the exporter targets.",
                       'up{job="$job"}', "{{instance}}", UP_STATUS, thresholds((None, "red"), (1, "green")),
                       w=12, h=6),
        timeseries("Refreshes", "Refreshes per result (success / error) and account.",
                   [target(f"sum by (account, result) (increase(isolarcloud_refreshes_total{{{ACC}}}"
                           f"[$__rate_interval]))", "{{account}} {{result}}")],
                   w=8, overrides=color_by_regex({".* success": "green", ".* error": "red"})),
        timeseries("Refresh duration", "How long the last refresh of each account took.",
                   [target(f"isolarcloud_refresh_duration_seconds{{{ACC}}}", "{{account}}")], "s", w=8),
        timeseries("Age of the data", "Time since the last successful refresh, and the max_age past which "
                   "the exporter withholds the account's plant metrics.",
                   [target(f"time() - isolarcloud_last_refresh_success_timestamp_seconds{{{ACC}}}",
                           "{{account}} age"),
                    target(f"isolarcloud_max_age_seconds{{{ACC}}}", "{{account}} max_age", ref="B"),
                    target(f"isolarcloud_refresh_interval_seconds{{{ACC}}}", "{{account}} refresh interval",
                           ref="C")],
                   "s", w=8),
        timeseries("API requests", "Calls to the iSolarCloud API per endpoint and result code "
                   "(1 = success).",
                   [target(f"sum by (endpoint, result) (increase(isolarcloud_api_requests_total{{{ACC}}}"
                           f"[$__rate_interval]))", "{{endpoint}} {{result}}")], w=8),
        timeseries("API errors", "Calls that did not return result code 1: API codes (E00003 token, E999 "
                   "quota, ...), http_<status>, timeout, connection_error, ...",
                   [target(f'sum by (account, endpoint, result) (increase(isolarcloud_api_requests_total'
                           f'{{{ACC}, result!="1"}}[$__rate_interval]))', "{{account}} {{endpoint}} {{result}}")],
                   w=8),
        timeseries("Authentication", "Logins, token refreshes and code exchanges per result.",
                   [target(f"sum by (account, kind, result) (increase(isolarcloud_auth_total{{{ACC}}}"
                           f"[$__rate_interval]))", "{{account}} {{kind}} {{result}}")], w=8),
        timeseries("API calls this hour", "Calls made in the current UTC hour against the configured hourly "
                   "budget; the exporter stretches its refresh interval to stay within the budget.",
                   [target(f"isolarcloud_api_calls_current_hour{{{ACC}}}", "{{account}} calls"),
                    target(f"isolarcloud_api_budget_calls_per_hour{{{ACC}}}", "{{account}} budget", ref="B")],
                   w=8),
        stat("Quota errors since exporter start", "E999 (hourly quota), E998 (monthly quota) and E901 (too "
             "frequent) answers per account; the exporter backs off after each.",
             f'sum by (account, result) (isolarcloud_api_requests_total{{{ACC}, result=~"E999|E998|E901"}})',
             legend="{{account}} {{result}}", thr=thresholds((None, "green"), (1, "red")), no_value="0", w=8, h=8),
        token_expiry(),
        stat("Back-off remaining", "Time until the exporter calls the API again after a quota error "
             "(0 = not backing off).",
             f"clamp_min(isolarcloud_backoff_until_timestamp_seconds{{{ACC}}} - time(), 0)",
             legend="{{account}}", unit="s", thr=thresholds((None, "green"), (1, "orange")), w=6),
        stat("Real-time data failures (1h)", "Plants for which iSolarCloud returned no real-time data "
             "(fail_ps_id_list) in the last hour.",
             f"sum by (account) (increase(isolarcloud_realtime_failed_plants_total{{{ACC}}}[1h]))",
             legend="{{account}}", thr=thresholds((None, "green"), (1, "orange")), decimals=0, w=6),
        stat("Exporter version", "isolarcloud_exporter_build_info of each target.",
             'isolarcloud_exporter_build_info{job="$job"}', legend="{{instance}}: {{version}}",
             text_mode="name", thr=BLUE, w=12),
        timeseries("Exporter process", "Memory and CPU of the exporter processes.",
                   [target('process_resident_memory_bytes{job="$job"}', "{{instance}} memory"),
                    target('rate(process_cpu_seconds_total{job="$job"}[$__rate_interval])', "{{instance}} CPU",
                           ref="B")],
                   "bytes", w=12,
                   overrides=[{"matcher": {"id": "byRegexp", "options": ".*CPU"},
                               "properties": [{"id": "unit", "value": "percentunit"},
                                              {"id": "custom.axisPlacement", "value": "right"}]}]),
        timeseries("Scrape duration", "How long Prometheus's scrapes of the exporter take (served from the "
                   "exporter's cache; should stay far below the scrape timeout).",
                   [target('scrape_duration_seconds{job="$job"}', "{{instance}}")], "s", w=12),
    ]
    panels += device_fleet_panels()
    return dashboard(
        FLEET_UID, "iSolarCloud / Fleet",
        "Fleet overview of the plants exported by isolarcloud-exporter: states, map, production, exporter "
        "and API health.",
        [datasource_variable(), job_variable(), account_variable(multi=True),
         query_variable("time_zone", "Time zone",
                        'label_values(isolarcloud_plant_info{job="$job", account=~"$account"}, time_zone)',
                        description="Time zone (as iSolarCloud writes it) whose plants the rankings compare")],
        panels)


# ----------------------------------------------------------------------------- plant dashboard


def plant_map() -> dict[str, Any]:
    return geomap("Location", "The plant at its iSolarCloud coordinates (empty when the API has none).",
                  PLANT, 8, 8, zoom=12)


def plant() -> dict[str, Any]:
    energy_targets = [
        target(f"isolarcloud_plant_energy_today_joules{{{PLANT}}} / 3600", "Yield"),
        target(f"isolarcloud_plant_consumption_today_joules{{{PLANT}}} / 3600", "Consumption", ref="B"),
        target(f"isolarcloud_plant_grid_export_energy_today_joules{{{PLANT}}} / 3600", "Grid export", ref="C"),
        target(f"isolarcloud_plant_grid_import_energy_today_joules{{{PLANT}}} / 3600", "Grid import", ref="D"),
    ]
    # Daily bars from the lifetime counters: Grafana steps by 1d from UTC midnight, so each bar is a UTC
    # day, not the plant's local day.
    daily_targets = [
        target(f"increase(isolarcloud_plant_energy_joules_total{{{PLANT}}}[$__interval]) / 3600", "Yield",
               interval="1d"),
        target(f"increase(isolarcloud_plant_consumption_joules_total{{{PLANT}}}[$__interval]) / 3600",
               "Consumption", ref="B", interval="1d"),
        target(f"increase(isolarcloud_plant_grid_export_energy_joules_total{{{PLANT}}}[$__interval]) / 3600",
               "Grid export", ref="C", interval="1d"),
        target(f"increase(isolarcloud_plant_grid_import_energy_joules_total{{{PLANT}}}[$__interval]) / 3600",
               "Grid import", ref="D", interval="1d"),
    ]
    panels: list[dict[str, Any]] = [
        row("Status"),
        stat("Fault status", "1 fault, 2 alarm, 3 normal (iSolarCloud ps_fault_status).",
             f"isolarcloud_plant_fault_status{{{PLANT}}}", mappings=FAULT_STATUS, thr=FAULT_THRESHOLDS,
             color_mode="background"),
        stat("Build status", "Construction state (build_status).",
             f"isolarcloud_plant_build_status{{{PLANT}}}", mappings=BUILD_STATUS, thr=BLUE),
        stat("Grid connection", "grid_connection_status.",
             f"isolarcloud_plant_grid_connection_status{{{PLANT}}}", mappings=GRID_STATUS, thr=BLUE),
        stat("Deployment", "online_status: whether the plant is deployed (not whether it is online).",
             f"isolarcloud_plant_online_status{{{PLANT}}}", mappings=ONLINE_STATUS, thr=BLUE),
        stat("Plant record", "valid_flag: 1 normal, 2 disabled, 3 connected.",
             f"isolarcloud_plant_valid_flag{{{PLANT}}}", mappings=VALID_FLAG, thr=BLUE),
        stat("Last cloud update", "How long ago iSolarCloud last received data from the plant (it updates "
             "about every 5 minutes while the plant's logger is online).",
             f"time() - isolarcloud_plant_update_timestamp_seconds{{{PLANT}}}", unit="s",
             thr=thresholds((None, "green"), (900, "orange"), (7200, "red"))),
        state_timeline("Fault status over time", "ps_fault_status as polled by the exporter.",
                       f"isolarcloud_plant_fault_status{{{PLANT}}}", "{{ps_name}}", FAULT_STATUS,
                       FAULT_THRESHOLDS, w=12, h=4),
        stat("Installed power", "Capacity, where iSolarCloud reports it.",
             f"isolarcloud_plant_installed_power_watts{{{PLANT}}}", unit="watt", thr=BLUE),
        stat("Installed on", "install_date of the plant record.",
             f"isolarcloud_plant_install_timestamp_seconds{{{PLANT}}} * 1000", unit="dateTimeAsIso",
             thr=BLUE),
        stat("Grid-connected since", "grid_connection_time of the plant record.",
             f"isolarcloud_plant_grid_connection_timestamp_seconds{{{PLANT}}} * 1000", unit="dateTimeAsIso",
             thr=BLUE),
        table("Plant details", "Static attributes of the plant: the labels of isolarcloud_plant_info.",
              [target(f"isolarcloud_plant_info{{{PLANT}}}", instant=True, table=True)],
              rename={"ps_name": "Plant", "ps_id": "Plant id", "account": "Account", "ps_type": "Type",
                      "ps_type_code": "Type code", "connect_type": "Connect type", "location": "Location",
                      "time_zone": "Time zone"},
              order=["ps_name", "ps_id", "account", "ps_type", "ps_type_code", "connect_type", "location",
                     "time_zone"],
              overrides=[column("Value", ("custom.hidden", True))], w=16, h=8),
        plant_map(),
        *plant_fault_panels(),

        row("Production"),
        stat("Power now", "Plant power (point 83033).", f"isolarcloud_plant_power_watts{{{PLANT}}}",
             unit="watt", graph=True, thr=BLUE),
        stat("Energy today", "Daily yield (point 83022), local day of the plant.",
             f"isolarcloud_plant_energy_today_joules{{{PLANT}}} / 3600", unit="watth", graph=True, thr=BLUE),
        stat("Specific yield today", "Energy today per installed power (kWh/kWp).",
             f"isolarcloud_plant_energy_today_joules{{{PLANT}}} / 3600\n"
             f"  / (isolarcloud_plant_installed_power_watts{{{PLANT}}} > 0)",
             unit="suffix: kWh/kWp", decimals=2, thr=BLUE),
        stat("Lifetime yield", "Plant total yield (point 83024).",
             f"isolarcloud_plant_energy_joules_total{{{PLANT}}} / 3600", unit="watth", thr=BLUE),
        stat("Load now", "Load power (point 83106).", f"isolarcloud_plant_load_power_watts{{{PLANT}}}",
             unit="watt", graph=True, thr=BLUE),
        stat("Grid power now", "Grid active power (point 83549).",
             f"isolarcloud_plant_grid_power_watts{{{PLANT}}}", unit="watt", graph=True, thr=BLUE),
        timeseries("Power", "Plant, load, grid and battery power (points 83033, 83106, 83549, 83326). The cloud "
                   "updates them every 5 minutes, hence the steps.",
                   [target(f"isolarcloud_plant_power_watts{{{PLANT}}}", "Plant"),
                    target(f"isolarcloud_plant_load_power_watts{{{PLANT}}}", "Load", ref="B"),
                    target(f"isolarcloud_plant_grid_power_watts{{{PLANT}}}", "Grid", ref="C"),
                    target(f"isolarcloud_plant_battery_power_watts{{{PLANT}}}", "Battery", ref="D")],
                   "watt", w=24, h=9, soft_min=None),
        timeseries("Sun elevation", "The sun's height above the horizon at the plant, computed by the exporter "
                   "from the plant's coordinates (or its time zone: see the legend). The daylight alerts are armed "
                   "above 10 degrees.",
                   [target(f"isolarcloud_plant_sun_elevation_degrees{{{PLANT}}}", "Sun ({{source}})")],
                   "degree", w=24, h=6, soft_min=None),
        timeseries("Energy today (running)", "Today's totals as they accumulate; they reset at the plant's "
                   "local midnight.", energy_targets, "watth"),
        timeseries("Daily energy", "Per UTC day, from the lifetime counters (83024, 83124, 83075, 83105).",
                   daily_targets, "watth", bars=True),

        row("Battery"),
        timeseries("Battery state of charge", "Battery level (point 83252, a 0-1 fraction).",
                   [target(f"isolarcloud_plant_battery_soc_ratio{{{PLANT}}}", "SOC")], "percentunit", w=12,
                   min=0, max=1),
        panel("gauge", "Battery now", "Current battery level.",
              [target(f"isolarcloud_plant_battery_soc_ratio{{{PLANT}}}", "SOC", instant=True)],
              field_config("percentunit", thr=thresholds((None, "red"), (0.2, "orange"), (0.5, "green")),
                           min=0, max=1),
              {"reduceOptions": reduce_last(), "showThresholdLabels": False, "showThresholdMarkers": True},
              4, 8),
        timeseries("Battery power", "Energy storage active power (point 83326).",
                   [target(f"isolarcloud_plant_battery_power_watts{{{PLANT}}}", "Battery")], "watt", w=8,
                   soft_min=None),

        row("Extra points and alerts"),
        timeseries("Extra points", "Measuring points added with realtime.extra_points in the exporter "
                   "configuration (values in the API's units).",
                   [target(f"isolarcloud_plant_point_value{{{PLANT}}}", "{{point_name}} ({{unit}})")], w=12),
        table("Alerts of this plant", "Prometheus alerts (pending or firing) about this plant.",
              [target('max without () (ALERTS{job="$job", ps_id="$ps_id"})', instant=True, table=True)],
              rename={"alertname": "Alert", "alertstate": "State", "severity": "Severity", "ps_name": "Plant",
                      "ps_id": "Plant id", "account": "Account", "ps_type": "Type"},
              order=["alertname", "alertstate", "severity", "ps_name"],
              overrides=[column("Value", ("custom.hidden", True)),
                         column("State", ("mappings", value_mapping({"firing": ("firing", "red"),
                                                                     "pending": ("pending", "orange")})),
                                *colored_cells())],
              w=12, h=8),
    ]
    panels += device_plant_panels()
    return dashboard(
        PLANT_UID, "iSolarCloud / Plant",
        "One plant of isolarcloud-exporter: state, power, energy, battery.",
        [datasource_variable(), job_variable(), account_variable(multi=False),
         query_variable("plant", "Plant", 'label_values(isolarcloud_plant_info{job="$job", account=~"$account"}, '
                        'ps_name)', description="Plant name"),
         query_variable("ps_id", "Plant id",
                        'label_values(isolarcloud_plant_info{job="$job", account=~"$account", ps_name=`$plant`}, '
                        "ps_id)", description="Plant id (differs when names repeat)")],
        panels)


# ----------------------------------------------------------------------------- devices (both dashboards)

DEVICE_FAULT_STATUS = value_mapping({"1": ("Fault", "red"), "2": ("Alarm", "orange"), "4": ("Normal", "green")})
DEVICE_FAULT_THRESHOLDS = thresholds((None, "red"), (2, "orange"), (4, "green"))
DEPLOYMENT = value_mapping({"1": ("Deployed", "green"), "0": ("Not deployed", "orange")})
# Labels of isolarcloud_device_info carried into device tables (the firmware ones exist with devices.firmware).
DEVICE_INFO_LABELS = "device_sn, device_model, communication_dev_sn, lcd_version, m_version"


def with_info(expr: str, selector: str) -> str:
    """A per-device expression with the device's serial, model, logger and firmware labels joined in, so that
    the rows of a device table have one label set."""
    return (f"({expr})\n  * on (job, instance, account, ps_key) group_left ({DEVICE_INFO_LABELS})\n"
            f"  isolarcloud_device_info{{{selector}}}")


def device_table(title: str, description: str, targets: list[dict], values: dict[str, tuple[str, list]],
                 selector_columns: list[str], **extra: Any) -> dict[str, Any]:
    rename = {"device_name": "Device", "device_type": "Type", "device_model": "Model", "device_sn": "Serial",
              "communication_dev_sn": "Logger", "lcd_version": "Firmware (ARM)", "m_version": "Firmware (comm.)",
              "ps_name": "Plant", "ps_id": "Plant id", "account": "Account", "ps_key": "ps_key",
              **{ref: name for ref, (name, _props) in values.items()}}
    order = [*selector_columns, *values, "device_model", "device_sn", "lcd_version", "m_version",
             "communication_dev_sn", "ps_key"]
    overrides = [column(name, *props) for name, props in values.values()]
    return table(title, description, targets, rename=rename, order=order, overrides=overrides, **extra)


def device_plant_panels() -> list[dict[str, Any]]:
    """The plant dashboard's device section: which device, in which state, producing what."""
    state = [("mappings", DEVICE_FAULT_STATUS), ("thresholds", DEVICE_FAULT_THRESHOLDS), *colored_cells()]
    return [
        row("Devices"),
        device_table(
            "Devices", "The plant's devices from its device list (devices.inventory_interval): state (1 fault, 2 "
            "alarm, 4 normal; kept current by device real-time data and open fault records where they exist), "
            "deployment, and, for device types read in real time, power and energy today. Firmware columns need "
            "devices.firmware.",
            [target(with_info(f"isolarcloud_device_fault_status{{{PLANT}}}", PLANT), ref="A", instant=True,
                    table=True),
             target(with_info(f"isolarcloud_device_deployment_status{{{PLANT}}}", PLANT), ref="B", instant=True,
                    table=True),
             target(with_info(f"isolarcloud_device_power_watts{{{PLANT}}}", PLANT), ref="C", instant=True,
                    table=True),
             target(with_info(f"isolarcloud_device_energy_today_joules{{{PLANT}}} / 3600", PLANT), ref="D",
                    instant=True, table=True)],
            {"Value #A": ("State", state), "Value #B": ("Deployment", [("mappings", DEPLOYMENT)]),
             "Value #C": ("Power", [("unit", "watt")]), "Value #D": ("Energy today", [("unit", "watth")])},
            ["device_name", "device_type"], sort_by="Type", h=9),
        timeseries("Power per inverter", "Each inverter's total active power (inverter point 24; needs "
                   "devices.realtime for inverters).",
                   [target(f"isolarcloud_device_power_watts{{{PLANT}}}", "{{device_name}}")], "watt", w=12),
        state_timeline("Device states over time", "Each device's fault status (1 fault, 2 alarm, 4 normal) as "
                       "the exporter saw it.", f"isolarcloud_device_fault_status{{{PLANT}}}", "{{device_name}}",
                       DEVICE_FAULT_STATUS, DEVICE_FAULT_THRESHOLDS, w=12, h=8),
        bargauge("Energy today per inverter", "Each inverter's daily yield (inverter point 1).",
                 [target(f"isolarcloud_device_energy_today_joules{{{PLANT}}} / 3600", "{{device_name}}",
                         instant=True)], "watth", w=8),
        timeseries("Device points", "The other points of devices.realtime.points, in the API's units (see each "
                   "series' unit).",
                   [target(f"isolarcloud_device_point_value{{{PLANT}}}", "{{device_name}} {{point_name}} ({{unit}})")],
                   w=16, soft_min=None),
    ]


def device_fleet_panels() -> list[dict[str, Any]]:
    """The fleet dashboard's device section: how many devices, which are not normal, how current the inventory is."""
    not_normal = [("mappings", DEVICE_FAULT_STATUS), ("thresholds", DEVICE_FAULT_THRESHOLDS), *colored_cells()]
    return [
        row("Devices"),
        stat("Devices", "Devices in the device lists of the selected accounts' plants.",
             f"count(isolarcloud_device_info{{{ACC}}}) or vector(0)", thr=BLUE),
        stat("Devices in fault", "Devices whose fault status is 1 (fault).",
             f"count(isolarcloud_device_fault_status{{{ACC}}} == 1) or vector(0)",
             thr=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Devices in alarm", "Devices whose fault status is 2 (alarm).",
             f"count(isolarcloud_device_fault_status{{{ACC}}} == 2) or vector(0)",
             thr=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        stat("Device inventory coverage", "Plants whose device list has been read, of all plants. Below 100 % "
             "while a large fleet's first inventory pass is under way (it is spread over "
             "devices.inventory_interval, stretched by the budget).",
             f"count(isolarcloud_device_inventory_timestamp_seconds{{{ACC}}}) / sum(isolarcloud_plants{{{ACC}}})",
             unit="percentunit", thr=thresholds((None, "orange"), (1, "green"))),
        stat("Oldest device list", "Age of the oldest plant device list: about devices.inventory_interval, or "
             "the stretched interval when the budget is short.",
             f"max(time() - isolarcloud_device_inventory_timestamp_seconds{{{ACC}}})", unit="s", thr=BLUE),
        stat("Device lists failing", "Plants whose last device-list read failed (their previous devices are kept).",
             f"sum(isolarcloud_device_inventory_failed_plants{{{ACC}}})",
             thr=thresholds((None, "green"), (1, "orange"))),
        device_table(
            "Devices not normal", "Devices in fault or alarm right now, with their plant. Click a row for the plant "
            "dashboard.",
            [target(with_info(f"isolarcloud_device_fault_status{{{ACC}}} != 4", ACC), ref="A", instant=True,
                    table=True)],
            {"Value #A": ("State", not_normal)},
            ["ps_name", "ps_id", "account", "device_name", "device_type"], sort_by="State", w=16, h=10,
            links=PLANT_LINK),
        bargauge("Devices by type", "Device type (Appendix 1) as the device lists report it.",
                 [target(f"count by (device_type) (isolarcloud_device_info{{{ACC}}})", "{{device_type}}",
                         instant=True)], w=8, h=10),
        timeseries("Device collection intervals", "Effective interval of the device inventory and device "
                   "real-time data: the configured one, stretched when their share of the API budget is short.",
                   [target(f'isolarcloud_collection_interval_seconds{{{ACC}, collection=~"devices|device_realtime"}}',
                           "{{account}} {{collection}}")], "s", w=24, h=6),
    ]


DASHBOARDS = {"isolarcloud-fleet.json": fleet, "isolarcloud-plant.json": plant}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (args.out / name).write_text(render(build), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
