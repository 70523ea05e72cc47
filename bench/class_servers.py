"""Benchmark of class.yml: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.class_servers [--labs 4] [--nodes 3]

Times one `playbooks/class.yml` run bringing up --labs twin labs over two lab servers (this host
directly, and this host over a real SSH hop: tests/ssh_hop.py) and the same labs on one server (this
host, capacity for all), each from nothing to every lab up with its roster and inventory written,
then a second run (nothing to change) and the run that takes the class down. Both "servers" share
this host's two cores, so the figure shows class.yml's own cost and its parallel starts, not the
gain of a second machine's CPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

from bench.playbook import BIN, timed_playbook
from tests.ssh_hop import ssh_hop


def play(inventory: Path, class_dir: Path, state: str, students: list[str], nodes: int) -> float:
    return timed_playbook(inventory, "playbooks/class.yml", {
        "class_state": state, "class_students": students, "class_dir": str(class_dir), "class_lab_prefix": "bench-",
        "class_nodes": nodes}, f"class.yml {state}")


def measure(servers: dict[str, dict[str, object]], label: str, students: list[str], nodes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pvelab-bench-class-") as tmp:
        inventory, class_dir = Path(tmp) / "servers.yml", Path(tmp) / "class"
        inventory.write_text(yaml.safe_dump({"lab_servers": {"hosts": servers, "vars": {
            "pvelab_cli": str(BIN / "pvelab"), "ansible_python_interpreter": "/usr/bin/python3"}}}))
        try:
            up = play(inventory, class_dir, "present", students, nodes)
            again = play(inventory, class_dir, "present", students, nodes)
        finally:
            down = play(inventory, class_dir, "absent", students, nodes)
        print(f"{label}: {len(students)} labs of {nodes} nodes up in {up:.1f} s; again (no change) {again:.1f} s; "
              f"down {down:.1f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, bridges): sudo .venv/bin/python -m bench.class_servers")
    students = [f"s{k:02d}" for k in range(1, args.labs + 1)]
    half = (args.labs + 1) // 2
    with ssh_hop() as there:
        measure({"here": {"ansible_connection": "local", "lab_capacity": half},
                 "there": {**there.inventory_vars(), "lab_capacity": half}}, "two servers", students, args.nodes)
        measure({"here": {"ansible_connection": "local", "lab_capacity": args.labs}}, "one server", students,
                args.nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
