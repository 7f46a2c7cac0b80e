"""A real headless browser for the tests: Debian's `chromium`, started the same way everywhere.

Missing chromium skips on a developer machine and fails under CI=true (`./scripts/test.sh` installs it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

# No sandbox (tests run as root in containers), nothing fetched from the network on its own account.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-dev-shm-usage")


def chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run chromium once with a fresh profile directory; the caller reads what it printed or wrote."""
    command = [require_tool("chromium"), *FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result
