#!/usr/bin/env bash
# Runs the exporter against the built-in iSolarCloud simulator: no account needed.
# Extra arguments go to the exporter (e.g. `./scripts/demo.sh --web.listen-address=:9999`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh run
exec .venv/bin/isolarcloud-exporter --demo "$@"
