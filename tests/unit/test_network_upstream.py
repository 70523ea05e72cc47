"""pve-common's own tests of /etc/network/interfaces (tests/fixtures/pve-common/SOURCES.md) run unchanged
by perl against pvelab's parser and writer: its runtest.pl runs every t.*.pl, whose r()/w() reach
pvelab.pve.network.interfaces through the stand-in PVE::Network::Interfaces, and prints PASS or FAIL
per test. Every test must pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SUITE = FIXTURES / "pve-common" / "etc_network_interfaces"


def run_suite() -> tuple[int, str]:
    """runtest.pl's exit code and output (a PASS or FAIL line per test file)."""
    if shutil.which("perl") is None:
        pytest.fail("perl is needed to run Proxmox's test files (Debian's perl package; scripts/setup.sh installs it)")
    harness = FIXTURES / "perl-harness"
    env = {**os.environ, "PYTHONPATH": str(FIXTURES.parents[1]),
           "PVELAB_CALLS": f"{sys.executable} {harness / 'pvelab_calls.py'}"}
    ran = subprocess.run(["perl", "-I", str(harness), "runtest.pl"], cwd=SUITE, capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    return ran.returncode, ran.stdout + ran.stderr


def test_every_test_of_pve_commons_network_suite_passes() -> None:
    code, out = run_suite()
    tests = sorted(p.name for p in SUITE.glob("t.*.pl"))
    assert len(tests) == 13
    assert re.findall(r"^PASS: (\S+)$", out, re.MULTILINE) == tests, out
    assert code == 0, out
