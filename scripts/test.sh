#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, lint, types, module docs, then pytest (unit tests and
# the tests on real twin labs, including the molecule scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== ansible-doc (every module's DOCUMENTATION/EXAMPLES/RETURN)"
for module in library/*.py; do
  name=$(basename "$module" .py)
  ansible-doc -M library "$name" > /dev/null || { echo "ansible-doc failed for $name"; exit 1; }
  echo "  $name ok"
done
echo "== ansible-lint (production profile)"; ansible-lint --offline --profile production roles playbooks molecule
# The lab tests build their own labs in the one lab slot, so a lab left up (by the README's first
# command, say) is taken down here, through the twin's own teardown.
echo "== pvelab twin down (the lab tests need the lab slot)"; pvelab twin down
echo "== pytest"; pytest -v -rA "$@"
