#!/usr/bin/env bash
# The test suite, in two tiers (docs/testing.md says which to run when):
#   ./scripts/test.sh           the whole suite, as CI runs it (about 41 min here)
#   ./scripts/test.sh --quick   lint, types, the collection's ansible-test, unit tests, one small lab smoke test (≤ 5 min)
# Extra arguments go to every pytest call of the lab parts (e.g. -x, -k NAME).
# The lab tests build named labs of their own (pvelab-ci, pvelab-ci-*): a default lab, or a class of
# named labs, that is up before this runs is still up and unchanged after it (the full tier proves it).
set -euo pipefail
cd "$(dirname "$0")/.."
tier=full
if [ "${1:-}" = "--quick" ]; then
  tier=quick
  shift
fi

# Each part's time, printed at the end (also when a part fails), so a regression in time is seen.
declare -a PARTS=()
run_started=$SECONDS
summary() {
  local code=$?
  # the labs made to prove users' labs are left alone go, whatever happened (never a user's own)
  [ "$tier" = quick ] || [ ! -x .venv/bin/python ] || .venv/bin/python -m tests.user_labs cleanup || true
  echo "== time per part (${tier} tier)"
  for line in "${PARTS[@]}"; do echo "  $line"; done
  printf '  %-58s %5d s\n' "total" $((SECONDS - run_started))
  return $code
}
trap summary EXIT
part() {  # part NAME COMMAND...: run a part, record its time
  local name=$1 started=$SECONDS
  shift
  echo "== $name"
  local code=0
  "$@" || code=$?
  PARTS+=("$(printf '%-58s %5d s%s' "$name" $((SECONDS - started)) "$([ $code -eq 0 ] || echo "  FAILED ($code)")")")
  return $code
}

./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

# The collection as a user gets it: built (the module_utils that link into pvelab/ go in as files),
# installed into an empty collections path, and checked there by ansible-test: sanity (documentation
# against argument specs, imports with only ansible-core, pylint, pep8, yamllint, ...) and units.
collection_tests() {
  local out code=0
  out=$(mktemp -d)
  tests/ansible_test/prepare.sh
  (cd ansible_collections/pvelab/pve && ansible-galaxy collection build --force --output-path "$out" > /dev/null) \
    && (cd "$out" && ansible-galaxy collection install -p "$out/collections" "$out"/pvelab-pve-*.tar.gz > /dev/null) \
    && (cd "$out/collections/ansible_collections/pvelab/pve" \
        && ansible-test sanity --local --python 3.11 --color no \
        && ansible-test units --local --python 3.11 --color no) || code=$?
  rm -rf "$out"
  return $code
}

# The project stands alone: nothing reads files beside the repository. Proof: the unit tests run (once
# per run) in a bare clone in an empty directory, where nothing sits beside it. The clone is of the
# work tree as committed, so uncommitted changes are tested from a copy of the tree.
unit_tests_alone() {
  local alone
  alone=$(mktemp -d)
  git ls-files -z --cached --others --exclude-standard | (tar --null -T - -cf - 2>/dev/null) \
    | (mkdir -p "$alone/pvelab" && tar -xf - -C "$alone/pvelab") || true
  local code=0
  (cd "$alone/pvelab" && "$OLDPWD/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit) || code=$?
  rm -rf "$alone"
  return $code
}

# Real PVE 9 sits on Debian 13 and PVE 8 on Debian 12, and so do the twin's nodes. The whole lab suite
# runs on 9; on 8 the tests marked pve8 run (the version's own paths: versions, the API schema, cluster
# forming, Ceph Pacific); what else differs by version is unit-tested against PVE 8 fixtures.
lab_tests() {  # lab_tests VERSION MARKER PATH [pytest args]
  local version=$1 marker=$2 path=$3
  shift 3
  PVELAB_PVE_VERSION=$version pytest -p no:cacheprovider -v -rA --durations=40 -m "$marker" "$path" "$@"
}

# The full tier's labs run as two streams at once, each with its own labs: most of the time of
# molecule's scenario and of its drills is waiting on PVE's and Ceph's clocks (HA's 120 s lock
# expiry, the OSD down-out interval), with the CPU mostly idle, so the rest of the PVE 9 suite runs
# beside it. Stream B: the nested labs on a twin L0 cluster (test_nested.py), the storage server's SAN
# (test_storage_server.py) and molecule `ha` on PVE 9,
# then the pve8-marked tests; its output is printed after stream A's, with each part's time. The labs
# are named apart (pvelab-ci, pvelab-cib).
STREAM_B_LAB=pvelab-cib
stream_b() {  # runs in a subshell of its own (&): the lab name stays there
  export PVELAB_TEST_LAB=$STREAM_B_LAB
  local started=$SECONDS code=0
  # the nested labs first: their six parallel TCG installs are the heaviest minutes of stream B, and here
  # they meet stream A's module and API tests, not the class grading test's timing bound (run W: 10.4 s
  # against 4.0 s alone + 5 when the installs ran beside it)
  # then the storage server's SAN (a two-node lab with `nas`: iSCSI sessions, a live migration, a power cut)
  # and the class grading test after molecule: with replication stream B grew, stream A waited longer
  # on the CPU and became the longer one by minutes (run AD: A 2417 s, B 1720 + 333 s); its ~230 s here
  # even them out
  lab_tests 9 "lab" tests/integration/test_nested.py tests/integration/test_storage_server.py \
    tests/integration/test_molecule.py tests/integration/test_grade_class.py "$@" || code=1
  echo "== stream B: the nested labs, the SAN, molecule ha and the class grading (PVE 9) took $((SECONDS - started)) s (exit $code)"
  local pve8_started=$SECONDS pve8_code=0
  lab_tests 8 "lab and pve8" tests/integration "$@" || pve8_code=1
  echo "== stream B: the pve8-marked tests (PVE 8 nodes) took $((SECONDS - pve8_started)) s (exit $pve8_code)"
  return $((code | pve8_code))
}
lab_streams() {
  local log code_a=0 code_b=0
  log=$(mktemp)
  stream_b "$@" > "$log" 2>&1 &
  local b=$!
  lab_tests 9 "lab" tests/integration --ignore=tests/integration/test_molecule.py \
    --ignore=tests/integration/test_nested.py --ignore=tests/integration/test_storage_server.py \
    --ignore=tests/integration/test_grade_class.py "$@" || code_a=$?
  echo "== stream A (the PVE 9 suite but stream B's files) ended; waiting for stream B"
  wait $b || code_b=$?
  echo "== stream B's output (the nested labs, the SAN, molecule ha, the class grading, then the pve8-marked tests)"
  cat "$log"
  rm -f "$log"
  [ $code_a -eq 0 ] && [ $code_b -eq 0 ]
}

part "ruff" ruff check .
part "mypy" mypy
part "ansible-lint (production profile)" ansible-lint --offline --profile production ansible_collections/pvelab/pve molecule
part "the collection: built, installed, ansible-test sanity and units" collection_tests
part "unit tests, in a clone with nothing beside it" unit_tests_alone
if [ "$tier" = quick ]; then
  part "lab smoke test (PVE 9 nodes)" lab_tests 9 "lab and smoke" tests/integration "$@"
  exit 0
fi
part "users' labs: record what is up before the lab tests" python -m tests.user_labs record
part "lab tests: PVE 9 suite | molecule ha, nested, then pve8-marked on PVE 8, at once" lab_streams "$@"
part "users' labs: still up, quorate and unchanged" python -m tests.user_labs check
