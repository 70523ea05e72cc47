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
# The project stands alone: nothing reads files beside the repository. Proof: the unit tests pass
# in a bare clone in an empty directory, where nothing sits beside it.
echo "== standalone (unit tests in a clone with nothing beside it)"
alone=$(mktemp -d)
trap 'rm -rf "$alone"' EXIT
git clone -q . "$alone/pvelab"
(cd "$alone/pvelab" && "$OLDPWD/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit | tail -1)
# The lab tests build their own labs in the one lab slot, so a lab left up (by the README's first
# command, say) is taken down here, through the twin's own teardown.
echo "== pvelab twin down (the lab tests need the lab slot)"; pvelab twin down
# Real PVE 9 sits on Debian 13 and PVE 8 on Debian 12, and so do the twin's nodes: the lab tests run
# once on each (what is version-blind only on 9, see below).
echo "== pytest: unit tests, and the lab tests on PVE 9 nodes (Debian 13)"
PVELAB_PVE_VERSION=9 pytest -v -rA --durations=25 "$@"
# Tests of what does not depend on the PVE version (the twin's host-side hardware and teardown, the
# verify checklist's format, the molecule scenario, the grader) run once, on 9, to keep CI near 45 min.
echo "== pytest: the lab tests on PVE 8 nodes (Debian 12)"
PVELAB_PVE_VERSION=8 pytest -v -rA --durations=25 -m lab --deselect tests/integration/test_molecule.py \
  --deselect tests/integration/test_twin_lab.py --deselect tests/integration/test_twin_teardown.py \
  --deselect tests/integration/test_verify_checklist.py --deselect tests/integration/test_grade_class.py \
  tests/integration "$@"
