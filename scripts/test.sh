#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, lint, types, unit tests, then tests on a real twin lab.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -v -rA "$@"
