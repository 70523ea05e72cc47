"""Benchmark of Ceph on the twin: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.ceph [--pve-version 9] [--idle 30]

On a fresh 3-node lab (a formed cluster, one 16 GiB data disk per node) it times, as a student types
it, `pveceph init` through 3 monitors, 3 managers, 3 OSDs and a size 3 / min_size 2 pool to
HEALTH_OK with every PG active+clean; measures Ceph's memory per node (PSS of its daemons) idle and
after writing 1 GiB with `rados bench`, and the host's CPU while Ceph idles; then powers a node off
through the twin (as its BMC would), waits for its OSD to be down, powers it on and times the return
to HEALTH_OK. The lab is torn down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.twin_up import MIB, pss_bytes
from pvelab.twin.drive import form_cluster, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

NODES = ("pve1", "pve2", "pve3")
CEPH_DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd")


def run(lab: Lab, node: str, command: str, timeout: float = 300) -> str:
    done = ssh(lab, node, command, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{node}: {command} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def status(lab: Lab, node: str = "pve1") -> dict[str, Any]:
    done = ssh(lab, node, "ceph status --format json --connect-timeout 5", timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def healthy(lab: Lab, node: str = "pve1") -> bool:
    now = status(lab, node)
    states = {s["state_name"] for s in now.get("pgmap", {}).get("pgs_by_state", [])}
    return now.get("health", {}).get("status") == "HEALTH_OK" and bool(states) and states <= {"active+clean"}


def wait(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def ceph_pids(lab: Lab, node: str) -> dict[str, list[int]]:
    """The node's Ceph daemons' host PIDs by daemon kind (the node's PID namespace is the host's child)."""
    found: dict[str, list[int]] = {d: [] for d in CEPH_DAEMONS}
    cgroup = lab.require_record().spec.node(node).cgroup
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            groups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if comm in found and f"/{cgroup}" in groups:
            found[comm].append(int(pid))
    return found


def memory(lab: Lab) -> str:
    parts = []
    for node in NODES:
        pids = ceph_pids(lab, node)
        detail = ", ".join(f"{kind.removeprefix('ceph-')} {pss_bytes(p) / MIB:.0f}" for kind, p in pids.items() if p)
        total = sum(pss_bytes(p) for p in pids.values())
        parts.append(f"{node} {total / MIB:.0f} MiB ({detail})")
    return "; ".join(parts)


def cpu_busy(seconds: float) -> float:
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def make_ceph(lab: Lab) -> dict[str, float]:
    """Ceph on a formed 3-node cluster as a student types it: init, a monitor and a manager and an OSD
    per node, pool `vmpool` (size 3) with its RBD storage, HEALTH_OK; seconds since init at each step."""
    started = time.monotonic()
    run(lab, "pve1", f"pveceph init --network {lab.require_record().spec.subnet(0)}")
    marks = {}
    for node in NODES:
        run(lab, node, "pveceph mon create")
        if node != "pve1":  # the first monitor brings its manager
            run(lab, node, "pveceph mgr create")
    marks["3 monitors + 3 managers"] = time.monotonic() - started
    for node in NODES:
        run(lab, node, "pveceph osd create /dev/sdb")
    marks["3 OSDs created"] = time.monotonic() - started
    run(lab, "pve1", "pveceph pool create vmpool --pg_num 32 --add_storages 1")
    wait(lambda: healthy(lab), 300, "HEALTH_OK")
    marks["pool + HEALTH_OK, all PGs active+clean"] = time.monotonic() - started
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pve-version", default="9", choices=["8", "9"])
    parser.add_argument("--idle", type=float, default=30, help="seconds of idle CPU measurement")
    args = parser.parse_args()
    lab = Lab(log=lambda _msg: None)
    lab.up(LabSpec(node_count=3, pve_version=args.pve_version))
    try:
        form_cluster(lab, "benchceph")
        print(f"Ceph on the twin, PVE {args.pve_version}: {run(lab, 'pve1', 'ceph --version').strip()}")
        for what, seconds in make_ceph(lab).items():
            print(f"  pveceph init -> {what}: {seconds:.1f} s")
        time.sleep(10)
        print(f"  Ceph memory idle (PSS, MiB): {memory(lab)}")
        busy = cpu_busy(args.idle)
        print(f"  host CPU busy with the lab and Ceph idle: {busy:.1f} % of 2 cores over {args.idle:.0f} s")
        bench_started = time.monotonic()
        run(lab, "pve1", "rados bench -p vmpool 10 write --max-objects 256 --no-cleanup > /dev/null", timeout=120)
        print(f"  rados bench: 1 GiB written (3 copies) in {time.monotonic() - bench_started:.1f} s")
        print(f"  Ceph memory after the writes (PSS, MiB): {memory(lab)}")
        run(lab, "pve1", "rados -p vmpool cleanup > /dev/null", timeout=120)
        wait(lambda: healthy(lab), 300, "HEALTH_OK after the cleanup")
        lab.power("pve2", "off", cause="bench: power loss")
        cut = time.monotonic()
        down = wait(lambda: status(lab).get("osdmap", {}).get("num_up_osds") == 2, 300, "the OSD of pve2 down")
        print(f"  pve2 powered off: its OSD down after {down:.1f} s")
        lab.power("pve2", "on", cause="bench: power back")
        on = time.monotonic()
        back = wait(lambda: healthy(lab), 600, "HEALTH_OK after power-on")
        print(f"  pve2 powered on {on - cut:.0f} s after the cut: HEALTH_OK, all PGs active+clean {back:.1f} s later")
    finally:
        lab.down(quiet=True)


if __name__ == "__main__":
    main()
