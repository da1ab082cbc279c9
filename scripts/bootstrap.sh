#!/usr/bin/env bash
# Create .venv and install Quietcast with its dev extras (which also compiles its C extension); a no-op when
# neither pyproject.toml nor the C sources have changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-$(cat pyproject.toml audio_engine/dfn3/*.c | sha1sum | cut -c1-12)
if [ -f "$stamp" ]; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    echo "Creating virtualenv in .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "Installing Quietcast and its dependencies into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
rm -f .venv/.installed-*
touch "$stamp"
