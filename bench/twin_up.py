"""Benchmark of the lab twin's hardware layer: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.twin_up [--nodes 3] [--pve-version 8 9] [--cold] [--idle 20]

Measures, for each PVE major (its own node image: Debian 12 for 8, Debian 13 for 9): cold `up`
(image build included, with --cold), warm `up` until every node answers SSH, `down`, and the idle
memory (PSS) of each node and of its BMC + watchdog.
Aims (issue 2): warm up of 3 nodes < 20 s, down < 5 s, idle node < 150 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pvelab.twin import cgroups
from pvelab.twin.image import DEBIAN_SUITE, image_dir
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

MIB = 1024 * 1024


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def service_pids(lab: Lab, node: str) -> list[int]:
    """The node's BMC and watchdog: children of the supervisor whose command line names the node."""
    supervisor = int(lab.paths.supervisor_pid.read_text())
    pids = []
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if node.encode() in cmdline or any(f"/nodes/{node}/".encode() in arg for arg in cmdline):
                pids.append(int(child))
    return pids


def timed(label: str, action: Callable[[], object], results: dict[str, float]) -> None:
    started = time.monotonic()
    action()
    results[label] = time.monotonic() - started


def measure(spec: LabSpec, cold: bool, idle: float) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    quiet = Lab(log=lambda _msg: None)
    results: dict[str, float] = {}
    memory: dict[str, tuple[float, float]] = {}
    try:
        if cold:
            shutil.rmtree(image_dir(spec.pve_version), ignore_errors=True)
            timed("cold up (image build + boot + SSH)", lambda: quiet.up(spec), results)
            quiet.down()
        timed("warm up (boot + every node answers SSH)", lambda: quiet.up(spec), results)
        time.sleep(idle)
        for node in spec.nodes:
            memory[node.name] = (pss_bytes(cgroups.pids(node.cgroup)) / MIB,
                                 pss_bytes(service_pids(quiet, node.name)) / MIB)
        timed("down", quiet.down, results)
    finally:
        quiet.down(quiet=True)
    return results, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pve-version", nargs="+", default=["8", "9"], choices=["8", "9"])
    parser.add_argument("--cold", action="store_true", help="delete the cached image first and time a cold up")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds to let nodes settle before measuring")
    args = parser.parse_args()
    if Lab().leftovers():
        print("a lab is up on this machine; take it down first (pvelab twin down)")
        return 1
    for version in args.pve_version:
        spec = LabSpec(node_count=args.nodes, pve_version=version)
        results, memory = measure(spec, args.cold, args.idle)
        print(f"\nlab twin, {args.nodes} nodes, PVE {version} on Debian {DEBIAN_SUITE[version]}")
        for label, seconds in results.items():
            print(f"  {label:<42} {seconds:7.2f} s")
        print(f"  idle memory after {args.idle:.0f} s (PSS)          node      BMC+watchdog")
        for name, (node_mib, services_mib) in memory.items():
            print(f"  {name:<42} {node_mib:7.1f} MiB {services_mib:7.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
