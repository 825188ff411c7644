#!/usr/bin/env bash
# One idempotent set-up step: .venv with exactly the locked packages (locks/main.txt, from PyPI) and
# rviflow (editable), the isolated abagen venv (locks/abagen.txt), the offline transcriptomics resources and (as root) Debian's chromium.
# Re-running it is cheap: each part is redone only when missing or when its lock changed.
# The demo and the tests call it themselves (README). PYTHON may name another python3.11+.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
# Exact versions only: locks/main.txt and locks/abagen.txt (hashed; `rviflow lock` resolves them from
# pyproject.toml and locks/abagen.in), so a fresh machine today and one next month get the same
# packages. --require-hashes refuses anything not in the lock, or not byte-identical to it.
pip_lock() {  # pip_lock VENV LOCKFILE: install exactly the lock into VENV (idempotent via a stamp)
    local venv="$1" lock="$2" want
    want="$(sha256sum "$lock" | cut -d' ' -f1)"   # the lock alone decides what the venv holds
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    if [ ! -f "$venv/.rviflow-installed" ] || [ "$(cat "$venv/.rviflow-installed")" != "$want" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
        # packages the lock no longer holds (an older lock's) would mislead: drop them (stdlib-only
        # helper, run with the venv's own python; rviflow.pipeline.envlock parses locks the same way)
        "$venv/bin/python" src/rviflow/pipeline/lockfile.py prune "$lock"
        echo "$want" > "$venv/.rviflow-installed"
    fi
}
pip_lock .venv locks/main.txt
# rviflow itself, editable, on top of the lock (its build tools, setuptools and wheel, are in the lock)
if ! .venv/bin/python -c "import rviflow" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
fi
.venv/bin/python -c "import rviflow, snakemake, nilearn, nipype, abagen"
.venv/bin/rviflow lock --check >/dev/null   # ranges, locks and envs/*.yaml agree (offline)
# abagen 0.1.3's expression step needs numpy < 2 and pandas < 2: its own venv from its own lock,
# which the transcriptomics rule calls (envs/abagen.yaml is derived from the same lock for conda).
pip_lock .venv-abagen locks/abagen.txt
# Offline resources of the transcriptomics stage (AHBA DK expression table, GO / KEGG / theme GMTs)
# into .cache/rviflow; skips what exists.
.venv/bin/rviflow setup-resources || echo "setup.sh: transcriptomics resources incomplete (see above)" >&2
# Headless Chromium for the report's rendering test (Debian package; as root only, if missing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
        || echo "setup.sh: could not install chromium (the report rendering test needs it)" >&2
fi
echo "rviflow set up in $(pwd)/.venv"
