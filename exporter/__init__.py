"""Prometheus exporter for the Sungrow iSolarCloud cloud API."""

__version__ = "0.1.0"
