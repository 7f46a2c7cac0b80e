#!/usr/bin/env bash
# The project's test command: sets up everything it needs on a fresh machine, then lints and runs all tests.
# Extra arguments go to pytest (e.g. `./scripts/test.sh -k config`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh test

# Tools from Debian packages: promtool and prometheus (package prometheus) prove the rules and dashboards
# against the real thing; amtool and Alertmanager (package prometheus-alertmanager, whose binary is called
# prometheus-alertmanager) check the inhibition rules, prove them on a real Alertmanager and deliver the
# device-fault notification; systemd-analyze (package systemd) verifies the unit file; chromium renders the
# status page and walks the OAuth2 consent flow in a real browser.
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 && { command -v alertmanager >/dev/null 2>&1 \
  || command -v prometheus-alertmanager >/dev/null 2>&1; } || missing+=(prometheus-alertmanager)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif [ "${CI:-}" = "true" ]; then
    echo "FATAL: Debian packages missing and cannot be installed (need root and apt-get): ${missing[*]}" >&2
    exit 1
  else
    echo "WARNING: install the Debian packages ${missing[*]}; the tests that need them will skip" >&2
  fi
fi

echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest -n 2 "$@"
