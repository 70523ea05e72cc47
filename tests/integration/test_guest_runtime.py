"""The guest runtime the twin's `qm` will drive: the tiny guest OS on every node's `local` storage,
booted by a real QEMU inside a node under TCG, with its NIC a TAP device on vmbr0 and its identity on a
NoCloud cloud-init drive made in the node, as PVE makes them. Reached from the host over the lab
network, it shows who it is and keeps heartbeats on its own disk."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pvelab.twin.drive import guest_page, ssh, start_tiny_guest, stop_tiny_guest
from pvelab.twin.guest_os import ISO_NAME
from pvelab.twin.lab import Lab

from .conftest import wait_until

pytestmark = pytest.mark.lab
GUEST_ADDR = "198.18.0.150"


@pytest.fixture(scope="module")
def guest(lab: Lab) -> Iterator[float]:
    """Guest 150 on pve1; the seconds from QEMU's start to its first HTTP answer."""
    started = time.monotonic()
    start_tiny_guest(lab, "pve1", 150, GUEST_ADDR)
    try:
        wait_until(lambda: bool(guest_page(GUEST_ADDR)), 90, "the tiny guest answering HTTP")
        yield time.monotonic() - started
    finally:
        stop_tiny_guest(lab, "pve1", 150)


def test_every_node_has_the_tiny_guest_os_on_its_local_storage(lab: Lab) -> None:
    for node in ("pve1", "pve3"):
        listed = ssh(lab, node, "pvesm list local").stdout
        assert f"local:iso/{ISO_NAME} iso" in listed


def test_a_guest_boots_under_tcg_and_answers_from_the_host(lab: Lab, guest: float) -> None:
    seen = guest_page(GUEST_ADDR)
    assert (seen["vmid"], seen["name"], seen["node"]) == ("150", "web150", "pve1")
    assert "master vmbr0" in ssh(lab, "pve1", "ip -o link show tap150i0").stdout
    print(f"\ntiny guest: first HTTP answer {guest:.1f} s after QEMU started")


def test_the_guest_keeps_heartbeats_on_its_disk_and_a_counter_in_memory(lab: Lab, guest: float) -> None:
    first = guest_page(GUEST_ADDR)
    wait_until(lambda: int(guest_page(GUEST_ADDR).get("heartbeats", 0)) >= int(first["heartbeats"]) + 2, 10,
               "two more heartbeats")
    again = guest_page(GUEST_ADDR)
    assert int(again["counter"]) > int(first["counter"]) and again["boot_id"] == first["boot_id"]
    assert int(again["uptime"]) >= int(first["uptime"])
