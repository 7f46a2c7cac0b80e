"""Plant details: `getPowerStationDetail` for OAuth2 apps, at most 20 plants per call (`ps_ids` as a comma
string) [doc: field table]. Only what is exported is read from an answer: installed power, tariffs and their
currency, and the data loggers' serials. The owner's phone number and e-mail address (`owner_mobile`,
`user_moble_tel`, `owner_email`, `email`) are in every answer and never read: personal data goes no further
than the parsed JSON of the response, which is dropped after the call.

The legacy endpoint (`/openapi/getPowerStationDetail`) takes one device serial, not plant ids, and answers one
flat object; it is not called (a login account would first need each plant's device list), but `parse_rows`
reads that shape too, so a gateway answering it here does not break anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import PlantDetail
from .envelope import ResponseError
from .parse import label_text, parse_float, parse_int, ps_id
from .session import ApiSession

OAUTH_PATH = "/openapi/platform/getPowerStationDetail"
ENDPOINT = "getPowerStationDetail"
MAX_PLANTS_PER_CALL = 20  # [doc: field table]; more gives result_data.code 5
# install_power has no unit in the field table; the legacy detail's design_capacity says Wp.
INSTALL_POWER_UNITS = {"W": 1.0, "kW": 1000.0}
# result_data.code [doc: field table]: 6 nothing found for the ps_ids, 7 none of them authorised.
_NOTHING_FOUND = {6, 7}


@dataclass
class DetailResult:
    plants: dict[str, PlantDetail] = field(default_factory=dict)
    unauthorized: set[str] = field(default_factory=set)  # not_authorization_ps_list
    missing: set[str] = field(default_factory=set)  # asked for, neither answered nor listed as unauthorised
    install_powers: list[float] = field(default_factory=list)  # as given, for a plausibility check of the unit


class DetailApi:
    def __init__(self, session: ApiSession, *, install_power_unit: str = "W") -> None:
        self.session = session
        self.install_power_factor = INSTALL_POWER_UNITS[install_power_unit]

    @staticmethod
    def calls(plants: int) -> int:
        """Calls for the details of `plants` plants."""
        return math.ceil(max(0, plants) / MAX_PLANTS_PER_CALL)

    def read(self, ps_ids: Sequence[str]) -> DetailResult:
        result = DetailResult()
        for start in range(0, len(ps_ids), MAX_PLANTS_PER_CALL):
            batch = list(ps_ids[start:start + MAX_PLANTS_PER_CALL])
            data = self.session.call(OAUTH_PATH, {"ps_ids": ",".join(batch)})
            rows, unauthorized = parse_rows(data)
            answered: set[str] = set()
            for row in rows:
                key = ps_id(row.get("ps_id"))
                if key is None:
                    continue
                raw = parse_float(row.get("install_power"))
                if raw is not None and raw > 0:
                    result.install_powers.append(raw)
                result.plants[key] = parse_detail(row, self.install_power_factor)
                answered.add(key)
            result.unauthorized.update(unauthorized & set(batch))
            result.missing.update(set(batch) - answered - unauthorized)
        return result


def parse_rows(data: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], set[str]]:
    """The plant rows of an answer, and the ids it says the app may not see."""
    code = parse_int(data.get("code"))
    if code == 5:
        raise ResponseError(ENDPOINT, "detail_code_5", "more plants in one call than the gateway accepts")
    if code == 0:
        raise ResponseError(ENDPOINT, "detail_code_0", "the gateway failed the query (code 0)")
    unauthorized = {key for key in map(ps_id, _id_items(data.get("not_authorization_ps_list"))) if key}
    rows = data.get("data_list")
    if isinstance(rows, list):
        return [row for row in rows if isinstance(row, Mapping)], unauthorized
    if rows is None and ps_id(data.get("ps_id")) is not None:  # the legacy endpoint's one flat object
        return [data], unauthorized
    if rows is None and code in _NOTHING_FOUND:
        return [], unauthorized
    raise ResponseError(ENDPOINT, "invalid_response", "result_data has no data_list list")


def _id_items(value: Any) -> list[Any]:
    """`not_authorization_ps_list`: typed "string" in the table, a list in practice: accept both."""
    if isinstance(value, list):
        return value
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [part for part in str(value).replace(";", ",").split(",") if part.strip()]
    return []


def parse_detail(row: Mapping[str, Any], install_power_factor: float = 1.0) -> PlantDetail:
    """The exported fields of one plant row (platform `data_list[]` or the legacy flat object)."""
    installed = parse_float(row.get("install_power"))
    if installed is not None:
        installed *= install_power_factor
    else:
        installed = parse_float(row.get("design_capacity"))  # legacy: Wp [doc: legacy field table]
    if installed is not None and (installed <= 0 or not math.isfinite(installed)):
        installed = None  # 0 is how an unset capacity reads; a negative one is nonsense
    return PlantDetail(
        installed_power_watts=installed,
        feed_in_tariff=_tariff(row, "ps_feedin_power_price"),
        consumption_tariff=_tariff(row, "ps_consumption_power_price"),
        currency=_currency(row),
        loggers=_loggers(row.get("communication_dev_detail_list")),
    )


def _tariff(row: Mapping[str, Any], prefix: str) -> float | None:
    """Price per kWh. The table types `<prefix>_kwh` as an integer and `<prefix>_wh` as a number: where the kWh
    price is a whole number and the Wh price says more (0.08/kWh sent as 0 beside 0.00008/Wh), the Wh price ×
    1000 is used."""
    per_kwh = parse_float(row.get(prefix + "_kwh"))
    per_wh = parse_float(row.get(prefix + "_wh"))
    if per_wh is not None and (per_kwh is None or (per_kwh.is_integer() and round(per_wh * 1000, 9) != per_kwh)):
        per_kwh = round(per_wh * 1000, 9)
    return per_kwh if per_kwh is not None and per_kwh >= 0 else None


def _currency(row: Mapping[str, Any]) -> str:
    """`param_income_unit_name` (the currency), else `power_price_unit` without its `/kWh`."""
    for key in ("param_income_unit_name", "power_price_unit"):
        text = label_text(row.get(key)).strip()
        for suffix in ("/kWh", "/kwh", "/度"):
            text = text.removesuffix(suffix).strip()
        if text:
            return text[:16]
    return ""


def _loggers(value: Any) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        sn = label_text(item.get("sn")).strip()
        enabled = parse_int(item.get("is_enable"))
        if sn and enabled is not None and sn not in seen:
            seen.add(sn)
            out.append((sn, enabled))
    return tuple(out)
