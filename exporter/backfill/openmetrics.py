"""The backfill's OpenMetrics file, written in flat memory however long the range and however large the fleet.

OpenMetrics wants each metric family's lines together, while the cloud answers time window by time window with
every family at once. So each family gets a spool file in the work directory, appended to as answers arrive;
at the end the spools are joined under their `# HELP`/`# TYPE` lines into the output, followed by `# EOF`,
written to a temporary file and renamed into place. Names, types and HELP are the live exporter's
(`serve.metrics.QUANTITY_FAMILIES`), so the past and the present are one series. Timestamps are Unix seconds.

The spools only ever grow by whole lines, and their sizes are recorded in the checkpoint after each call: a run
resumed after a crash truncates each spool to its recorded size and carries on, without duplicates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from prometheus_client.utils import floatToGoString

from ..data import Quantity
from ..serve.metrics import QUANTITY_FAMILIES

EOF = b"# EOF\n"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(labels: Mapping[str, str]) -> str:
    """`name="value",…` sorted by name: the order Prometheus keeps them in."""
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in sorted(labels.items()))


class Spools:
    """One append-only spool per family, in `directory`."""

    def __init__(self, directory: Path, quantities: Sequence[Quantity]) -> None:
        self.directory = directory
        self.quantities = tuple(quantities)
        self.samples: dict[str, str] = {}  # quantity key → sample name (counters end in _total)
        self._files: dict[str, BinaryIO] = {}
        self._pending: dict[str, list[str]] = {}
        directory.mkdir(parents=True, exist_ok=True)
        for q in self.quantities:
            family = QUANTITY_FAMILIES[q.key]
            self.samples[q.key] = family.name + ("_total" if family.kind == "counter" else "")

    def _file(self, key: str) -> BinaryIO:
        handle = self._files.get(key)
        if handle is None:
            handle = self._files[key] = open(self.directory / f"{key}.part", "ab")  # noqa: SIM115 (kept open)
        return handle

    def resume(self, sizes: Mapping[str, int]) -> None:
        """Cut every spool back to the size the checkpoint recorded: lines written after it are dropped (their
        call is made again), and spools the checkpoint does not know start empty."""
        for q in self.quantities:
            path = self.directory / f"{q.key}.part"
            size = int(sizes.get(q.key, 0))
            have = path.stat().st_size if path.exists() else 0
            if have < size:  # lost after the checkpoint noted it (a disk restored from an older copy?)
                raise FileNotFoundError(f"{path}: the checkpoint expects {size} bytes of it, there are {have}")
            if path.exists():
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    def write(self, labels: str, ts: float, values: Mapping[str, float]) -> int:
        """One stamp of one plant: a line per quantity that has a value (gaps stay gaps). Returns the lines.
        Lines wait in memory until `flush` (after each call): one write per family and call, not per value."""
        stamp = str(int(ts)) if float(ts).is_integer() else repr(ts)
        count = 0
        pending = self._pending
        for key, value in values.items():
            name = self.samples.get(key)
            if name is None:
                continue
            pending.setdefault(key, []).append(f"{name}{{{labels}}} {floatToGoString(value)} {stamp}\n")
            count += 1
        return count

    def flush(self) -> None:
        """Append the lines of the last call to their spools (whole lines only)."""
        for key, lines in self._pending.items():
            self._file(key).write("".join(lines).encode())
        self._pending.clear()

    def sync(self) -> dict[str, int]:
        """Flush every spool to disk; their sizes, for the checkpoint."""
        self.flush()
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
        return {q.key: self._size(q.key) for q in self.quantities}

    def _size(self, key: str) -> int:
        handle = self._files.get(key)
        if handle is not None:
            return handle.tell()
        path = self.directory / f"{key}.part"
        return path.stat().st_size if path.exists() else 0

    def close(self) -> None:
        self.flush()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def remove(self) -> None:
        self.close()
        for q in self.quantities:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{q.key}.part").unlink()


def assemble(output: Path, quantities: Sequence[Quantity], directories: Sequence[Path]) -> int:
    """Join the spools of `directories` (one per account) family by family into `output`, atomically; returns
    its size. Families without samples are left out."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for q in quantities:
                parts = [d / f"{q.key}.part" for d in directories]
                parts = [p for p in parts if p.exists() and p.stat().st_size > 0]
                if not parts:
                    continue
                family = QUANTITY_FAMILIES[q.key]
                out.write(f"# HELP {family.name} {escape_help(family.help)}\n"
                          f"# TYPE {family.name} {family.kind}\n".encode())
                for part in parts:
                    with open(part, "rb") as spool:
                        shutil.copyfileobj(spool, out, 1 << 20)
            out.write(EOF)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size
