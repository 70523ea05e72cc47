"""qemu-server's own command-line tests (src/test/cfg2cmd/: a VM config each and the QEMU command line
qemu-server makes of it, or the error it must give; tests/fixtures/qemu-server/SOURCES.md) against
pvelab's qemu_cmd, word for word, before any TCG rewrite.

Not every case matches yet: the cases that do are listed in tests/unit/cfg2cmd_matching.txt, and this
fails if one of them stops matching (or if the list names a case that is gone). How many match is in
docs/upstream-suites.md (scripts/upstream_suites.py counts them with `cases()` and `outcome()`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pvelab.pve.guests import qemu_cmd
from pvelab.pve.guests.config import parse
from pvelab.pve.storage import volname

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qemu-server" / "cfg2cmd"
MATCHING = Path(__file__).resolve().parent / "cfg2cmd_matching.txt"
VMID = 8006
# the storages run_config2command_tests.pl mocks, as far as paths go
PATH_STORAGES = {"local": "/var/lib/vz", "noimages": "/var/lib/vz", "localsnapext": "/var/lib/vzsnapext",
                 "btrfs-store": "/butter/bread", "cifs-store": "/mnt/pve/cifs-store"}
VOLUME_GROUPS = {"lvm-store": "veegee", "local-lvm": "pve"}


def cases() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.conf"))


def header(conf: Path) -> dict[str, str]:
    """The test's settings from the config's description: TEST, QEMU_VERSION, EXPECT_ERROR, ..."""
    description = parse(conf.read_text()).main.description or ""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*([A-Z_]+):\s*(.*)$", description, re.M)}


def path_of(volid: str) -> str:
    sid, name = volid.split(":", 1)
    if sid in PATH_STORAGES:
        return volname.filesystem_path({"path": PATH_STORAGES[sid]}, name)[0]
    if sid in VOLUME_GROUPS:
        return f"/dev/{VOLUME_GROUPS[sid]}/{name}"
    return f"/dev/unknown/{sid}/{name}"  # RBD, ZFS over iSCSI: no path of this kind; the case will differ


def outcome(conf: Path) -> tuple[bool, str]:
    """(matches, what differs) for one case."""
    settings = header(conf)
    try:
        ours = qemu_cmd.command(VMID, parse(conf.read_text()).main.options, path_of, "9")
    except Exception as exc:  # noqa: BLE001 - any error is the case's answer
        if "EXPECT_ERROR" in settings:
            return str(exc).strip() == settings["EXPECT_ERROR"], f"error: {exc}"
        return False, f"error: {exc}"
    if "EXPECT_ERROR" in settings:
        return False, f"no error; expected '{settings['EXPECT_ERROR']}'"
    expected_file = conf.with_name(conf.name + ".cmd")
    theirs = shlex.split(expected_file.read_text().replace("\\\n", " "))
    if ours == theirs:
        return True, ""
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    return False, f"word {first}: ours {ours[first:first + 2]}, qemu-server's {theirs[first:first + 2]}"


def matching() -> list[str]:
    return [line.strip() for line in MATCHING.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_the_fixtures_hold_every_case_of_the_folder() -> None:
    assert len(cases()) == 95  # every .conf of qemu-server's src/test/cfg2cmd at the commit in SOURCES.md
    assert all(c.with_name(c.name + ".cmd").exists() or "EXPECT_ERROR" in header(c) for c in cases())


@pytest.mark.parametrize("name", matching())
def test_a_case_that_matched_still_matches(name: str) -> None:
    matches, differs = outcome(FIXTURES / name)
    assert matches, differs
