"""Benchmark of the twin's HA stack: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.ha [--idle 60]

On a fresh 3-node cluster (PVE 9 nodes) with two HA guests on shared storage preferring pve1:
  1. the idle cost of the HA daemons (watchdog-mux, pve-ha-crm, pve-ha-lrm) per node: memory (PSS, and
     RSS) and CPU over --idle seconds;
  2. pve1 (holding both guests) powered off through its BMC: seconds to `fence`, to the guests `started`
     on pve2, to their first HTTP answer from pve2 — and whether pve1 was the CRM master (PVE: ~2 min for
     a non-master, ~3 min when the master dies);
  3. pve2 (now holding them) cut off the network: seconds until its watchdog resets it (PVE: 60-70 s
     after the LRM's last watchdog update, ~60-80 s after the cut), and until the guests answer again.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.twin_up import MIB, pss_bytes
from pvelab.poll import wait_for
from pvelab.twin import cgroups
from pvelab.twin.bmc import BmcClient
from pvelab.twin.drive import SHARED_STORAGE, add_shared_storage, create_tiny_vm, form_cluster, guest_page, ssh
from pvelab.twin.ha_watch import HaWatch, manager_status
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

NODES = ("pve1", "pve2", "pve3")
GUESTS = {110: "198.18.0.110", 111: "198.18.0.111"}
DAEMONS = (b"pvelab.pve.ha.watchdog_mux", b"pvelab.pve.ha.crm", b"pvelab.pve.ha.lrm")


def ha_daemon_pids(node: str) -> list[int]:
    found = []
    for pid in cgroups.pids(node):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(d in argv for d in DAEMONS) or any(a.endswith((b"watchdog-mux", b"pve-ha-crm", b"pve-ha-lrm"))
                                                  for a in argv[1:2]):
            found.append(pid)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def idle_cost(seconds: float) -> list[tuple[str, int, float, float, float]]:
    """Per node: (node, daemons, PSS MiB, RSS MiB, CPU % of one core)."""
    pids = {node: ha_daemon_pids(node) for node in NODES}
    before = {node: cpu_seconds(p) for node, p in pids.items()}
    time.sleep(seconds)
    return [(node, len(p), pss_bytes(p) / MIB, rss_bytes(p) / MIB, (cpu_seconds(p) - before[node]) / seconds * 100)
            for node, p in pids.items()]


def print_cost(cost: list[tuple[str, int, float, float, float]], seconds: float) -> None:
    print("\nHA stack on the twin (PVE 9 nodes)")
    print(f"  idle HA daemons, per node (watchdog-mux, pve-ha-crm, pve-ha-lrm; {seconds:.0f} s):")
    for node, count, pss, rss, cpu in cost:
        print(f"    {node}: {count} processes, {pss:5.1f} MiB PSS ({rss:5.1f} MiB RSS), {cpu:5.2f} % of one core")


def setup(lab: Lab) -> None:
    form_cluster(lab, "bench")
    add_shared_storage(lab)
    for vmid, address in GUESTS.items():
        create_tiny_vm(lab, "pve1", vmid, address, disk_storage=SHARED_STORAGE, iso_storage=SHARED_STORAGE,
                       cloudinit_storage=SHARED_STORAGE)
        ssh(lab, "pve1", f"ha-manager add vm:{vmid}")
    ssh(lab, "pve1", "ha-manager rules add node-affinity prefer-pve1 --nodes pve1:2,pve2:1 "
                     "--resources vm:110,vm:111 --strict 0")
    wait_for(lambda: all(guest_page(a) for a in GUESTS.values()), 180, "both guests answering")


def all_started_on(lab: Lab, node: str, observer: str) -> bool:
    ss = manager_status(lab, observer).get("service_status") or {}
    return all((ss.get(f"vm:{v}") or {}).get("state") == "started" and ss[f"vm:{v}"]["node"] == node for v in GUESTS)


def power_off_drill(lab: Lab) -> dict[str, float | str | None]:
    master = manager_status(lab, "pve2").get("master_node")
    record = lab.require_record()
    watched = {f"vm:{v}": f"web{v}" for v in GUESTS}
    with HaWatch(lab, list(NODES), watched, ["pve2", "pve3"]) as watch:
        BmcClient(record.spec.node("pve1").bmc_addr, record.bmc_password).connect().chassis_control_power_down()
        wait_for(lambda: all_started_on(lab, "pve2", "pve3"), 400, "the guests started on pve2")
        started = time.monotonic() - watch.started
        wait_for(lambda: all(guest_page(a).get("node") == "pve2" for a in GUESTS.values()), 180, "HTTP from pve2")
        answered = time.monotonic() - watch.started
    return {"master": master, "fence": watch.first("pve1 fence"), "started": started, "answered": answered,
            "double": len(watch.double_runs)}


def partition_drill(lab: Lab) -> dict[str, float | int | str | None]:
    master = manager_status(lab, "pve1").get("master_node")
    seen = len(lab.events("pve2"))
    watched = {f"vm:{v}": f"web{v}" for v in GUESTS}
    with HaWatch(lab, list(NODES), watched, ["pve1", "pve3"]) as watch:
        lab.partition(["pve2"], None, "all")
        wait_for(lambda: any("watchdog expired" in e for e in lab.events("pve2")[seen:]), 200,
                 "pve2 reset by its watchdog")
        reset = time.monotonic() - watch.started
        wait_for(lambda: all(guest_page(a).get("node") in ("pve1", "pve3") for a in GUESTS.values()), 400,
                 "the guests answering from a quorate node")
        answered = time.monotonic() - watch.started
        lab.heal()
    return {"master": master, "reset": reset, "answered": answered, "double": len(watch.double_runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--idle-only", action="store_true", help="measure the idle daemons only, no drills")
    args = parser.parse_args()
    lab = Lab(log=lambda _msg: None)
    if lab.leftovers():
        print("a lab is up on this machine; take it down first (pvelab twin down)")
        return 1
    try:
        lab.up(LabSpec(node_count=3))
        setup(lab)
        time.sleep(30)  # past the guests' boot and the first HA rounds
        cost = idle_cost(args.idle)
        if args.idle_only:
            print_cost(cost, args.idle)
            return 0
        off = power_off_drill(lab)
        lab.power("pve1", "on", cause="bench")
        wait_for(lambda: all_started_on(lab, "pve1", "pve3"), 400, "failback to pve1")
        ssh(lab, "pve3", "ha-manager rules set node-affinity prefer-pve1 --nodes pve2:2,pve1:1")
        wait_for(lambda: all_started_on(lab, "pve2", "pve3"), 200, "the guests on pve2")
        cut = partition_drill(lab)
    finally:
        lab.down(quiet=True)
    print_cost(cost, args.idle)
    print(f"  power-off of pve1 (holding both guests; CRM master was {off['master']}):")
    print(f"    {'time to pve1 fence':<40} {off['fence'] or float('nan'):7.1f} s")
    print(f"    {'time to both guests started on pve2':<40} {off['started']:7.1f} s")
    print(f"    {'time to their first HTTP answer':<40} {off['answered']:7.1f} s")
    print(f"    {'moments with two copies running':<40} {off['double']:7d}")
    print(f"  partition of pve2 (holding both guests; CRM master was {cut['master']}):")
    print(f"    {'time to its watchdog reset':<40} {cut['reset']:7.1f} s")
    print(f"    {'time to the guests answering elsewhere':<40} {cut['answered']:7.1f} s")
    print(f"    {'moments with two copies running':<40} {cut['double']:7d}")
    print("  PVE's own figures (HA.md): ~120 s to recovery for a non-master node, ~180 s when the master "
          "dies; self-reset 60-80 s after losing quorum")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
