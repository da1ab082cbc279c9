#!/usr/bin/env bash
# Run Quietcast on its embedded defaults: SQLite in var/, the in-memory channel layer, one Daphne process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python manage.py migrate --no-input
# Streams left live by a crashed run are ended, and their partial recordings saved, before anyone connects.
.venv/bin/python manage.py recover_streams
exec .venv/bin/python -m quietcast.serve
