"""Auto-scaled, localized `{unit, value}` objects of the legacy plant list (value always a string)."""

from __future__ import annotations

from collections.abc import Callable

POWER = (("W", 1.0), ("kW", 1e3), ("MW", 1e6), ("GW", 1e9))
ENERGY = (("Wh", 1.0), ("kWh", 1e3), ("MWh", 1e6), ("GWh", 1e9))
CAPACITY = (("kWp", 1e3), ("MWp", 1e6), ("GWp", 1e9))
MASS = (("kg", 1.0), ("t", 1e3))


def _num(v: float) -> str:
    # 6 decimals keep 1 W / 1 Wh resolution even after scaling to M*; repr drops float noise.
    return repr(round(v, 6))


def scaled(value: float, ladder: tuple[tuple[str, float], ...], lang: str | None = None) -> dict[str, str]:
    unit, factor = ladder[0]
    for u, f in ladder:
        if abs(value) >= f:
            unit, factor = u, f
    if unit == "kWh" and lang in (None, "", "_zh_CN"):
        unit = "度"  # the portal's default language is Chinese, where kWh is shown as 度
    return {"unit": unit, "value": _num(value / factor)}


def plain(value: float, unit: str) -> dict[str, str]:
    return {"unit": unit, "value": _num(value)}


def _kwh(unit: str, per: float = 1e3) -> Callable[[float], dict[str, str]]:
    return lambda wh: {"unit": unit, "value": _num(wh / per)}


# `legacy_units="varied"`: energy units beyond the portal examples' set, as Chinese-language and older accounts
# write them. Every fifth plant keeps the portal ladder; "" is a unit nobody can read (the value is in kWh).
ENERGY_VARIANTS: tuple[Callable[[float], dict[str, str]] | None, ...] = (
    None, _kwh("kW·h"), _kwh("千瓦时"), _kwh("万千瓦时", 1e7), _kwh(""),
)


def energy_variant(key: int) -> Callable[[float], dict[str, str]] | None:
    return ENERGY_VARIANTS[key % len(ENERGY_VARIANTS)]
