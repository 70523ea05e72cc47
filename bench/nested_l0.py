"""Benchmark of playbooks/nested.yml against a twin node as the L0 host: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.nested_l0 [--students 2]

Times, on a fresh one-node twin lab as the L0 host: the playbook from an empty host to --students
students' nested labs powered on from disk (bridges, discs, VMs, the stand-in installs, CDs off,
baseline, boot, SSH), then one student more (what a student added costs), a second run (nothing to
change), a reset of one student, and the class taken away. The stand-in installer is the tiny guest
OS under TCG: these figures are the L0 side's own cost, not a real PVE install's (minutes per node).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.playbook import BIN, timed_playbook
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

SETTINGS: dict[str, Any] = {"root_password_hashed": "$6$pvelab$x", "installer_iso": "local:iso/pvelab-tiny.iso",
                            "network": "198.19.240.0/21", "memory_mib": 256, "cores": 1, "os_disk_gib": 1,
                            "osd_disk_gib": 1, "require_kvm": False}


def play(inventory: Path, workdir: Path, students: list[str], **extra: Any) -> float:
    return timed_playbook(inventory, "playbooks/nested.yml", {
        "nested_class": {**SETTINGS, "students": students}, "nested_dir": str(workdir / "nested"),
        "pvelab_cli": str(BIN / "pvelab"), **extra}, "nested.yml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2)
    args = parser.parse_args()
    students = [f"s{k:03d}" for k in range(1, args.students + 2)]
    lab = Lab.named("bench-l0", log=lambda _line: None)
    lab.down(quiet=True)
    with tempfile.TemporaryDirectory(prefix="pvelab-bench-nested-") as tmp:
        workdir = Path(tmp)
        try:
            started = time.monotonic()
            lab.up(LabSpec(node_count=1))
            print(f"L0 host (a one-node twin lab) up in {time.monotonic() - started:.1f} s")
            inventory = yaml.safe_load((lab.paths.root / "inventory.yml").read_text())["all"]
            host = inventory["children"]["pve_nodes"]["hosts"]["pve1"]
            l0_vars = {**inventory["vars"], "pve_api_password": inventory["vars"]["pve_root_password"]}
            (workdir / "l0.yml").write_text(yaml.safe_dump({"l0_hosts": {"hosts": {"pve1": host}, "vars": l0_vars}}))
            inv = workdir / "l0.yml"
            class_now = students[:args.students]
            print(f"{len(class_now)} students (x3 nodes) from an empty host to booted from disk: "
                  f"{play(inv, workdir, class_now):.1f} s")
            print(f"one student more: {play(inv, workdir, students):.1f} s")
            print(f"again, nothing to change: {play(inv, workdir, students):.1f} s")
            reset = play(inv, workdir, students, nested_state="reset", nested_reset=[students[0]])
            print(f"reset of one student: {reset:.1f} s")
            print(f"taken away: {play(inv, workdir, students, nested_state='absent'):.1f} s")
        finally:
            lab.down(quiet=True)


if __name__ == "__main__":
    main()
