#!/usr/bin/env bash
# Create the two peer venvs used by benchmarks/peers/run.py (idempotent; re-installs when a
# requirements file changes). Separate from pdbg's .venv: SmartNoise SQL pins OpenDP 0.14.x and
# OpenDP's Polars layer pins polars 1.36.1, neither of which pdbg may depend on.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench="$(dirname "$here")"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
make_venv() {  # venv-dir requirements-file
  local venv="$1" req="$2" stamp="$1/.installed"
  if [ ! -x "$venv/bin/python" ]; then "$py" -m venv "$venv"; fi
  if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r "$req"
    touch "$stamp"
  fi
}
make_venv "$bench/.peers-venv" "$here/requirements-smartnoise.txt"
make_venv "$bench/.opendp-polars-venv" "$here/requirements-opendp-polars.txt"
echo "peer venvs ready: $bench/.peers-venv (SmartNoise SQL), $bench/.opendp-polars-venv (OpenDP Polars)"
