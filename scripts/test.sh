#!/usr/bin/env bash
# The project's test command: sets up everything it needs on a fresh machine, then lints and runs all tests.
# Extra arguments go to pytest (e.g. `./scripts/test.sh -k config`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh test

# promtool and prometheus (Debian package `prometheus`) prove the rules and dashboards against the real thing.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing the Debian package prometheus (promtool, prometheus)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  elif [ "${CI:-}" = "true" ]; then
    echo "FATAL: promtool/prometheus missing and cannot be installed (need root and apt-get)" >&2
    exit 1
  else
    echo "WARNING: promtool/prometheus missing: install the Debian package 'prometheus'; those tests will skip" >&2
  fi
fi

echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest -n 2 "$@"
