"""Benchmark of the twin's guest runtime: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.guests [--guests 6] [--idle 20]

On a fresh 3-node cluster (PVE 9 nodes) with a shared storage, makes VMs with `qm create` that boot
the tiny guest OS under TCG and measures: `qm start` to the first HTTP answer, a live migration of a
256 MiB guest (`qm migrate --online`) under a client polling every 100 ms (time, longest gap), then
with N guests spread over the nodes, their idle CPU (share of one core, all guests together) and
their memory (PSS), hence guests per GiB of host memory.
Aims (issue 7): start <= 6 s, migration <= 5 s with a gap <= 1 s, 6 idle guests <= 5 % of one core.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.twin_up import MIB, pss_bytes
from pvelab.poll import wait_for
from pvelab.twin import cgroups
from pvelab.twin.drive import (
    SHARED_STORAGE,
    add_shared_storage,
    create_tiny_vm,
    form_cluster,
    guest_page,
    ssh,
    watch_live_migration,
)
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

NODES = ("pve1", "pve2", "pve3")


def qemu_pids(node: str) -> list[int]:
    found = []
    for pid in cgroups.pids(node):
        try:
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                found.append(pid)
        except OSError:
            continue
    return found


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guests", type=int, default=6)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    lab = Lab(log=lambda _msg: None)
    if lab.leftovers():
        print("a lab is up on this machine; take it down first (pvelab twin down)")
        return 1
    placed = [(NODES[i % 3], 200 + i, f"198.18.0.{200 + i}") for i in range(args.guests)]
    try:
        lab.up(LabSpec(node_count=3))
        form_cluster(lab, "bench")
        add_shared_storage(lab)
        node, vmid, address = placed[0]
        create_tiny_vm(lab, node, vmid, address, disk_storage=SHARED_STORAGE, iso_storage=SHARED_STORAGE,
                       start=False)
        started = time.monotonic()
        ssh(lab, node, f"qm start {vmid}")
        wait_for(lambda: bool(guest_page(address)), 120, "the first guest answering")
        first = time.monotonic() - started  # from `qm start` over SSH to the page
        time.sleep(3)
        moved = watch_live_migration(lab, node, vmid, "pve2", address)
        for guest in placed[1:]:
            create_tiny_vm(lab, *guest)
        wait_for(lambda: all(guest_page(addr) for _, _, addr in placed), 300, "every guest answering")
        time.sleep(5)  # past the boot
        pids = [pid for node in NODES for pid in qemu_pids(node)]
        before = cpu_ticks(pids)
        time.sleep(args.idle)
        cpu = (cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK") / args.idle * 100
        memory = pss_bytes(pids) / MIB
    finally:
        lab.down(quiet=True)
    print(f"\ntiny guests under TCG (PVE 9 nodes), {args.guests} guests")
    print(f"  {'qm start to first HTTP answer':<44} {first:7.2f} s")
    print(f"  {'live migration of a 256 MiB guest':<44} {moved['seconds']:7.2f} s")
    print(f"  {'longest gap in answers (100 ms poller)':<44} {moved['longest_gap']:7.2f} s")
    print(f"  {f'idle CPU of {args.guests} guests (one core = 100 %)':<44} {cpu:7.2f} %")
    print(f"  {'memory per guest (PSS)':<44} {memory / args.guests:7.1f} MiB")
    print(f"  {'guests per GiB of host memory':<44} {1024 / (memory / args.guests):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
