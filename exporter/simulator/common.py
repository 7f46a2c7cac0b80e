"""Leaf helpers shared by the fleet, the real-time model and the endpoints.

This module imports nothing from the simulator, so every other module can depend on it without creating an
import cycle.
"""

from __future__ import annotations

# Points the portal says often come back empty for many plants.
OFTEN_EMPTY_POINTS = frozenset({83007, 83010})
STORAGE_TYPES = frozenset({5, 7, 10, 12})
WIND_TYPE = 9

ETA = 0.92  # battery round-trip efficiency
MORNING_H = 2.0  # load bump before sunrise
EVENING_H = 4.0  # load bump (and battery discharge) after sunset

_MASK = (1 << 64) - 1


def mix(*parts: int) -> int:
    """splitmix64-style hash: deterministic per-(seed, plant, day) randomness without a Random per call."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & _MASK)) * 0xBF58476D1CE4E5B9) & _MASK
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK
        h ^= h >> 29
    return h


def unit_float(*parts: int) -> float:
    return mix(*parts) / 18446744073709551616.0


def lenient_int(value: object, default: int | None = None) -> int | None:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default
