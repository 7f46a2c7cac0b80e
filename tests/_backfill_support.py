"""A real Prometheus started on a data directory that holds backfilled blocks, for the backfill's end-to-end
tests: the blocks are loaded at start, exactly as a user moves them in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port, serving

PROMETHEUS = "/usr/bin/prometheus"


def require_prometheus() -> str:
    if Path(PROMETHEUS).exists():
        return PROMETHEUS
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{PROMETHEUS} is required in CI (Debian package 'prometheus')")
    pytest.skip(f"{PROMETHEUS} not installed (Debian package 'prometheus')")


def move_blocks(blocks: Path, data: Path) -> list[str]:
    """What docs/backfill.md tells users: every block directory (a ULID with a meta.json) into the data dir."""
    data.mkdir(parents=True, exist_ok=True)
    moved = []
    for block in sorted(blocks.iterdir()):
        if (block / "meta.json").exists():
            shutil.move(str(block), str(data / block.name))
            moved.append(block.name)
    return moved


@dataclass
class Prom:
    url: str

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr, "time": at}, timeout=30).json()
        assert body.get("status") == "success", body
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query_range",
                            params={"query": expr, "start": start, "end": end, "step": step}, timeout=60).json()
        assert body.get("status") == "success", body
        return body["data"]["result"]


@contextmanager
def prometheus_on(data: Path, tmp: Path) -> Iterator[Prom]:
    binary = require_prometheus()
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    url = f"http://127.0.0.1:{port}"
    with serving([binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                  f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=20y", "--log.level=warn"],
                 tmp / "prometheus.log", f"{url}/-/ready", stop_timeout=20):
        yield Prom(url)
