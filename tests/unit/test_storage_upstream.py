"""Proxmox's own regression tests of pve-storage (its `src/test/*_test.pm`, tests/fixtures/pve-storage/
SOURCES.md) and pve-guest-common's abstract-config-tests.pl (pending deletions) run unchanged by perl
against pvelab: stand-ins for PVE::Storage and PVE::AbstractConfig (tests/fixtures/perl-harness)
hand each call the tests make - parse_volname, get_subdir,
filesystem_path, archive_info, path_to_volume_id, prune_backups, check_volume_access (with the file's
own storage.cfg and user.cfg), the pending-deletion methods - to pvelab's Python and returns its answer,
so each file's own is_deeply
judges our code. Every case of every file must pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = FIXTURES.parents[1]
# each file and the number of cases it holds (a file that runs fewer has lost some on the way)
FILES = {"pve-storage/prune_backups_test.pm": 22, "pve-storage/parse_volname_test.pm": 53,
         "pve-storage/archive_info_test.pm": 31, "pve-storage/filesystem_path_test.pm": 6,
         "pve-storage/get_subdir_test.pm": 16, "pve-storage/path_to_volume_id_test.pm": 30,
         "pve-storage/run_volume_access_tests.pl": 183,
         "pve-guest-common/abstract-config-tests.pl": 5}  # five methods, 17 cases in its subtests


def run_tap(name: str) -> str:
    if shutil.which("perl") is None:
        pytest.fail("perl is needed to run Proxmox's test files (Debian's perl package; scripts/setup.sh installs it)")
    harness = FIXTURES / "perl-harness"
    env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(REPO),  # the tests' times are UTC wall clock
           "PVELAB_CALLS": f"{sys.executable} {harness / 'pvelab_calls.py'}"}
    ran = subprocess.run(["perl", "-I", str(harness), str(FIXTURES / name)],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    return ran.stdout + ran.stderr


@pytest.mark.parametrize(("name", "cases"), FILES.items(), ids=list(FILES))
def test_every_case_of_proxmoxs_test_file_passes(name: str, cases: int) -> None:
    tap = run_tap(name)
    planned = re.search(r"^1\.\.(\d+)$", tap, re.MULTILINE)
    assert planned, tap
    passed = re.findall(r"^ok \d+ - (.*)$", tap, re.MULTILINE)
    failed = re.findall(r"^not ok \d+ - (.*)$", tap, re.MULTILINE)
    assert not failed, tap
    assert len(passed) == int(planned.group(1)) == cases, tap
