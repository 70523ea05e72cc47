"""Taking a lab down leaves nothing behind, a half torn-down lab is refused then cleaned, and a failed
up removes what it made. Each test makes its own lab."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pvelab.errors import TwinError
from pvelab.twin import cgroups
from pvelab.twin.lab import Lab
from pvelab.twin.network import existing_links, existing_netns, nft_table_exists
from pvelab.twin.spec import LabSpec

from .conftest import pve_version, start_lab

pytestmark = pytest.mark.lab


def _lab_pids(lab: Lab) -> set[int]:
    pid = int(lab.paths.supervisor_pid.read_text())
    found, todo = {pid}, [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            children = {int(c) for c in (task / "children").read_text().split()}
            todo += children - found
            found |= children
    return found | set(cgroups.any_pids())


def test_down_leaves_nothing_behind() -> None:
    lab = start_lab(pve_version())
    try:
        pids = _lab_pids(lab)
        assert len(pids) > 9  # supervisor, 3 nodes, 3 BMCs, 3 watchdogs at least
        lab.down()
    finally:
        lab.down(quiet=True)  # whatever happened, the lab slot is free again
    from pvelab.twin.host import pid_alive

    assert [p for p in pids if pid_alive(p)] == []
    assert existing_netns() == [] and existing_links() == [] and not nft_table_exists()
    assert lab.mounts() == [] and cgroups.any_pids() == []
    assert not lab.paths.root.exists()
    assert lab.down() == []  # safe to run twice


def test_half_torn_down_lab_is_refused_then_cleaned() -> None:
    subprocess.run(["ip", "netns", "add", "pvlab-pve1"], check=True)
    lab = Lab()
    try:
        with pytest.raises(TwinError) as err:
            lab.up(LabSpec())
        assert "not fully torn down" in err.value.cause and "netns pvlab-pve1" in err.value.cause
        assert err.value.fix == "remove it with: pvelab twin down"
    finally:
        lab.down(quiet=True)
    assert existing_netns() == []


def _supervisors() -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"pvelab.twin.supervisor" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return found


def test_a_failed_up_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def nodes_never_answer(self: Lab, spec: LabSpec, timeout: float = 0) -> None:
        assert existing_netns() and cgroups.any_pids()  # the failure comes after nodes were wired and booted
        raise TwinError("pve1 did not answer SSH and the API (8006) within 0 s")

    monkeypatch.setattr(Lab, "wait_for_ssh", nodes_never_answer)
    lab = Lab()
    try:
        with pytest.raises(TwinError, match="did not answer SSH"):
            lab.up(LabSpec())
        assert lab.leftovers() == [] and _supervisors() == []
        assert not lab.paths.root.exists()
    finally:
        lab.down(quiet=True)
