# Sourced by test.sh and demo.sh: a virtual environment in .venv with the project installed (system Pythons
# that refuse global installs are fine). Argument: "test" to add the test dependencies.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "FATAL: '$PY -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
if [ "${1:-}" = "test" ]; then extras=".[test]"; else extras="."; fi
# Reinstall only when the project's metadata changed since the last install.
stamp=".venv/.installed-$(cksum pyproject.toml | cut -d' ' -f1)-${1:-run}"
if [ ! -f "$stamp" ]; then
  echo "== installing $extras into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$extras"
  touch "$stamp"
fi
