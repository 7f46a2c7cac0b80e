"""Helpers shared by the deployment and release tests: repository paths, tool lookup, Dockerfile
and compose parsing, and running the exporter as a subprocess against loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

DEMO_CREDENTIALS = {
    "appkey": "DEMOAPPKEY00000000000000000000001",
    "secret_key": "demo-secret-key",
    "user_account": "demo@example.com",
    "user_password": "demo-password",
}


def tool(name: str) -> str | None:
    """A command installed next to the running interpreter (the venv's bin/, which is not on PATH
    when pytest is started as .venv/bin/pytest), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_for(url: str, proc: subprocess.Popen, predicate=lambda status, body: status == 200,
             deadline: float = 30.0) -> str:
    """Poll `url` until `predicate(status, body)` holds; fail with the process output otherwise."""
    end = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < end:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"process exited with {proc.returncode} before {url} answered:\n{out}")
        try:
            status, body = http_get(url, timeout=2)
        except OSError as exc:
            last = repr(exc)
        else:
            if predicate(status, body):
                return body
            last = f"HTTP {status}: {body[:500]}"
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer as expected within {deadline}s; last: {last}")


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[
        subprocess.Popen]:
    """Run `cmd` for the duration of the block; stop it (and only it) afterwards."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """First sample of `name` in Prometheus text format whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def flags(self) -> dict[str, str]:
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.args))

    def words(self) -> list[str]:
        """Arguments without --flags; JSON (exec) form or shell words."""
        rest = re.sub(r"^(\s*--[a-z-]+=\S+)+\s*", "", self.args)
        if rest.lstrip().startswith("["):
            return json.loads(rest)
        return shlex.split(rest)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and ${ARG}s resolved in
    FROM lines."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
            continue
        if keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], args)
            parts = base.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
            continue
        stages[-1].instructions.append(Instruction(keyword, args, number))
    return global_args, stages


def dockerignore_patterns(path: Path) -> list[tuple[bool, str]]:
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        patterns.append((negate, line[1:] if negate else line))
    return patterns


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def docker_ignored(relpath: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent directory
    matches everything below it."""
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for negate, pattern in patterns:
        regex = _glob_regex(pattern)
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def build_context_files(repo: Path, patterns: list[tuple[bool, str]]) -> list[str]:
    """Every file Docker would send as the build context (relative paths)."""
    files = []
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.startswith(".git/") or rel == ".git" or not path.is_file():
            continue
        if not docker_ignored(rel, patterns):
            files.append(rel)
    return files


# --- compose ----------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*)|(:?\?)([^}]*))?\}|\$(\w+)")


def compose_expand(value: str, env: dict[str, str] | None = None) -> str:
    """Compose variable interpolation as an operator who sets nothing would get it."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(6)
        if name in env:
            return env[name]
        if match.group(2):
            return match.group(3)
        if match.group(4):
            return f"<required:{name}>"
        return ""

    return _INTERPOLATION.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def load_compose(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), f"{path}: no services"
    return data


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    bind: bool


def compose_mounts(service: dict, env: dict[str, str] | None = None) -> list[Mount]:
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source = compose_expand(str(entry.get("source", "")), env)
            target = entry["target"]
            read_only = bool(entry.get("read_only"))
            bind = entry.get("type") == "bind"
        else:
            parts = compose_expand(entry, env).split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            bind = source.startswith((".", "/", "~"))
        mounts.append(Mount(source, target, read_only, bind))
    return mounts
