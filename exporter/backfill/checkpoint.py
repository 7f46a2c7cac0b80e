"""The resumable state of a backfill run: a small JSON file, replaced atomically after every call.

It names the run (account, range, resolution, labels, output), how many calls of the plan are done, and the size
of every spool at that moment; the plant list the plan was made from lives beside it in the work directory, so
that a resumed run splits the plants into the same batches. A crash between two writes loses at most the last
call, which the resumed run makes again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import Plant

VERSION = 1
PHASES = ("fetch", "written", "converted")


class CheckpointError(Exception):
    """A checkpoint that cannot be read or belongs to another run: phrased for the user."""


def write_json(path: Path, document: Any) -> None:
    """Write atomically: a temporary file in the same directory, fsynced, renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class AccountProgress:
    """One account of the run."""

    last: str | None = None  # the last day fetched (--to, or the last complete day when the run started)
    done: int = 0  # calls of the account's plan completed and written
    total: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # quantity key → spool bytes at `done`
    samples: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # endpoint → calls made (every attempt)
    illegal: list[str] = field(default_factory=list)
    converted: str | None = None  # --tsdb-dir: the last segment turned into blocks


@dataclass
class Checkpoint:
    run: dict[str, Any]  # what identifies the run: accounts, from, to, resolution, labels, output
    phase: str = "fetch"
    accounts: dict[str, AccountProgress] = field(default_factory=dict)

    def account(self, name: str) -> AccountProgress:
        return self.accounts.setdefault(name, AccountProgress())

    def save(self, path: Path) -> None:
        write_json(path, {"version": VERSION, **asdict(self)})

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.pop("version", None) != VERSION:
                raise ValueError
            accounts = {str(k): AccountProgress(**v) for k, v in dict(data.pop("accounts", {})).items()}
            checkpoint = cls(accounts=accounts, **data)
            if checkpoint.phase not in PHASES or not isinstance(checkpoint.run, dict):
                raise ValueError
        except (ValueError, TypeError):
            raise CheckpointError(f"checkpoint {path}: not a checkpoint of this version of the backfill") from None
        return checkpoint


PLANT_FIELDS = ("ps_id", "ps_name", "ps_type_code", "time_zone")


def save_plants(path: Path, plants: list[Plant]) -> None:
    write_json(path, [{name: getattr(p, name) for name in PLANT_FIELDS} for p in plants])


def load_plants(path: Path) -> list[Plant]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [Plant(ps_id=str(r["ps_id"]), ps_name=str(r["ps_name"]), ps_type_code=r["ps_type_code"],
                      fault_status=None, online_status=None, build_status=None, grid_connection_status=None,
                      valid_flag=None, connect_type=None, location="", time_zone=str(r["time_zone"]),
                      install_ts=None, update_ts=None, grid_connection_ts=None, latitude=None, longitude=None)
                for r in rows]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: the plant list of the interrupted run is unreadable ({exc}); remove the "
                              "checkpoint to start again") from None
