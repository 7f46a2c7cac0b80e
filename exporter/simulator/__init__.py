"""Simulator of the Sungrow iSolarCloud OpenAPI gateway, written from the API reference (docs/simulator.md).

Deliberately independent of the exporter's client code: a misunderstanding of the API on either side must
surface as a failing test, not be shared by both.
"""

from .faults import FAULT_NAMES
from .fleet import Plant
from .realtime import POINTS
from .simulator import Call, Simulator

__all__ = ["FAULT_NAMES", "POINTS", "Call", "Plant", "Simulator"]
