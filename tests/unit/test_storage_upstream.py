"""Proxmox's own regression test of backup pruning (pve-storage's `src/test/prune_backups_test.pm`,
22 cases, tests/fixtures/pve-storage/SOURCES.md) run unchanged by perl against pvelab's pruning:
a stand-in PVE::Storage (tests/fixtures/perl-harness) hands each case to pvelab.pve.storage.prune."""

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


@pytest.fixture(scope="module")
def tap() -> str:
    if shutil.which("perl") is None:
        pytest.fail("perl is needed to run Proxmox's test files (Debian's perl package; scripts/setup.sh installs it)")
    harness = FIXTURES / "perl-harness"
    env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(REPO),  # the test's times are UTC wall clock
           "PVELAB_PRUNE_MARKS": f"{sys.executable} {harness / 'prune_marks.py'}"}
    ran = subprocess.run(["perl", "-I", str(harness), str(FIXTURES / "pve-storage" / "prune_backups_test.pm")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    return ran.stdout + ran.stderr


def test_every_case_of_pve_storages_prune_test_passes(tap: str) -> None:
    planned = re.search(r"^1\.\.(\d+)$", tap, re.MULTILINE)
    assert planned, tap
    passed = re.findall(r"^ok \d+ - (.*)$", tap, re.MULTILINE)
    failed = re.findall(r"^not ok \d+ - (.*)$", tap, re.MULTILINE)
    assert not failed, tap
    assert len(passed) == int(planned.group(1)) == 22, tap  # the file holds 22 cases (the issue counted 23)
