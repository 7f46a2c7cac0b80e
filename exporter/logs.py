"""Structured logging (logfmt or JSON) with a last line of defence against secrets.

The code never logs secrets on purpose; the formatter also scrubs every registered secret (configured ones at
start-up, rotated tokens as they arrive) from each formatted line, tracebacks included, whatever logged it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}
FORMATS = ("logfmt", "json")
REDACTED = "<redacted>"

_secrets: list[str] = []
_secrets_lock = threading.Lock()


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Remember values that must never be printed. Short values are skipped: they would mangle normal text."""
    global _secrets
    with _secrets_lock:
        merged = set(_secrets) | {s for s in secrets if s and len(s) >= 6}
        _secrets = sorted(merged, key=len, reverse=True)  # longest first: a secret containing another goes whole


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class Formatter(logging.Formatter):
    def __init__(self, fmt: str = "logfmt") -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        account = getattr(record, "account", None)
        if account:
            fields["account"] = str(account)
        fields["msg"] = scrub(record.getMessage())
        if record.exc_info:
            fields["exc"] = scrub(self.formatException(record.exc_info))
        if self.json:
            return json.dumps(fields, ensure_ascii=False)
        return " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items())


def _logfmt(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
