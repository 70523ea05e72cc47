"""Taking a lab down leaves nothing behind, a half torn-down lab is refused then cleaned, and a failed
up removes what it made. Each test makes its own lab (the tests' named lab), and looks only at what
carries that lab's prefix: other labs on the host (a user's) are none of these tests' business."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pvelab.errors import TwinError
from pvelab.twin import cgroups
from pvelab.twin.host import pid_alive
from pvelab.twin.lab import Lab
from pvelab.twin.network import existing_links, existing_netns, nft_table_exists
from pvelab.twin.spec import LabSpec

from .conftest import TEST_LAB, own_lab, pve_version, start_lab

pytestmark = pytest.mark.lab


def _lab_pids(lab: Lab, prefix: str) -> set[int]:
    pid = int(lab.paths.supervisor_pid.read_text())
    found, todo = {pid}, [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            children = {int(c) for c in (task / "children").read_text().split()}
            todo += children - found
            found |= children
    return found | set(cgroups.any_pids(prefix))


def _nothing_left(prefix: str) -> bool:
    return (existing_netns(prefix) == [] and existing_links(prefix) == [] and not nft_table_exists(prefix)
            and cgroups.any_pids(prefix) == [])


def test_down_leaves_nothing_behind() -> None:
    lab = start_lab(pve_version())
    prefix = lab.prefix
    assert prefix is not None and prefix != "pvlab"  # a named lab's own prefix, never the default lab's
    try:
        pids = _lab_pids(lab, prefix)
        assert len(pids) > 9  # supervisor, 3 nodes, 3 BMCs, 3 watchdogs at least
        lab.down()
    finally:
        lab.down(quiet=True)  # whatever happened, the lab's slot is free again
    assert [p for p in pids if pid_alive(p)] == []
    assert _nothing_left(prefix)
    assert lab.mounts() == []
    assert not lab.paths.root.exists()
    assert lab.down() == []  # safe to run twice


def test_half_torn_down_lab_is_refused_then_cleaned() -> None:
    lab = own_lab()
    slot = lab.reserve_slot()
    prefix = lab.prefix
    subprocess.run(["ip", "netns", "add", f"{prefix}-pve1"], check=True)
    try:
        with pytest.raises(TwinError) as err:
            lab.up(LabSpec(pve_version=pve_version()))
        assert "not fully torn down" in err.value.cause and f"netns {prefix}-pve1" in err.value.cause
        assert err.value.fix == f"remove it with: pvelab twin down --lab {TEST_LAB}"
        assert lab.reserved_slot() == slot  # the refusal kept the slot; nothing else was made
    finally:
        lab.down(quiet=True)
    assert existing_netns(str(prefix)) == []


def _supervisors(lab: Lab) -> list[int]:
    """The lab's supervisor processes (their command line names the lab's state directory)."""
    found = []
    mine = str(lab.paths.root).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # the process ended while we looked
        if b"pvelab.twin.supervisor" in argv and mine in argv:
            found.append(int(cmdline.parent.name))
    return found


def test_a_failed_up_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def nodes_never_answer(self: Lab, spec: LabSpec, timeout: float = 0) -> None:
        # the failure comes after nodes were wired and booted
        assert existing_netns(spec.prefix) and cgroups.any_pids(spec.prefix) and _supervisors(self)
        raise TwinError("pve1 did not answer SSH and the API (8006) within 0 s")

    monkeypatch.setattr(Lab, "wait_for_ssh", nodes_never_answer)
    lab = own_lab()
    try:
        with pytest.raises(TwinError, match="did not answer SSH"):
            lab.up(LabSpec(pve_version=pve_version()))
        assert lab.leftovers() == [] and _supervisors(lab) == []
        assert not lab.paths.root.exists()
    finally:
        lab.down(quiet=True)
