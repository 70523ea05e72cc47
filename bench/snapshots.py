"""Benchmark of VM snapshots, templates, clones and disk moves: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.snapshots [--lab bench-snapshots]

On a one-node lab of its own (PVE 9 node), a running tiny guest (256 MiB, a 64 MiB disk) per storage
type - `qcow2` on a `dir` storage and the emulated `local-lvm` - and for each: `qm snapshot` without
and with `--vmstate`, `qm rollback` to the snapshot with RAM until the guest answers again, `qm
delsnapshot`; then the VM stopped and made a template, a linked and a full clone of it, and the full
clone started and its disk moved online to the other storage (QEMU's mirror); beside a plain copy of
the same volume (`qemu-img convert`). Then a running container (busybox, its root on `local-lvm`):
`pct snapshot` (frozen while its tree is copied), `pct rollback --start 1` until it answers again,
`pct delsnapshot`, a snapshot-mode `vzdump`, `pct template`, a linked and a full clone, beside a
plain `cp -a` of its root. Times are
wall clock over SSH, as a student sees them. RBD is measured in bench/ceph.py's lab only when Ceph is
up (not here: a one-node Ceph takes longer to build than everything measured).
Aim (issue 22): snapshot and rollback of the tiny guest within a few seconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pvelab.poll import wait_for
from pvelab.twin.drive import create_tiny_vm, guest_page, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

STORAGES = {"qcow2 on dir": "qdir", "local-lvm (emulated thin)": "local-lvm"}  # qdir: a dir storage, format qcow2


def run(lab: Lab, command: str) -> float:
    """Seconds `command` took on pve1 (over SSH); a failure stops the bench."""
    started = time.monotonic()
    done = ssh(lab, "pve1", command, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{command}: {done.stdout}{done.stderr}")
    return time.monotonic() - started


def heartbeats(address: str) -> Callable[[], bool]:
    return lambda: int(guest_page(address).get("heartbeats", 0)) >= 3


def answering(address: str) -> Callable[[], bool]:
    return lambda: bool(guest_page(address))


def measure_container(lab: Lab, address: str) -> dict[str, float]:
    ctid = 180
    template = ssh(lab, "pve1", "pvesm list local --content vztmpl | awk 'NR==2 {print $1}'").stdout.strip()
    run(lab, f"pct create {ctid} {template} --rootfs local-lvm:1 --memory 64 --hostname bench "
             f"--net0 name=eth0,bridge=vmbr0,ip={address}/24 --start 1")
    wait_for(heartbeats(address), 60, f"CT {ctid} heartbeats")
    figures = {"pct snapshot (running, frozen for the copy)": run(lab, f"pct snapshot {ctid} s1")}
    started = time.monotonic()
    run(lab, f"pct rollback {ctid} s1 --start 1")
    wait_for(answering(address), 60, f"CT {ctid} answering after the rollback")
    figures["pct rollback --start 1, to an answer"] = time.monotonic() - started
    figures["pct delsnapshot"] = run(lab, f"pct delsnapshot {ctid} s1")
    figures["vzdump --mode snapshot (zstd, to local)"] = run(
        lab, f"vzdump {ctid} --mode snapshot --storage local --compress zstd")
    figures["plain copy of the root (cp -a)"] = run(
        lab, f"cp -a /dev/pve/vm-{ctid}-disk-0/ /var/tmp/ct-copy && rm -rf /var/tmp/ct-copy")
    run(lab, f"pct stop {ctid}")
    figures["pct template"] = run(lab, f"pct template {ctid}")
    figures["linked clone"] = run(lab, f"pct clone {ctid} {ctid + 1}")
    figures["full clone"] = run(lab, f"pct clone {ctid} {ctid + 2} --full 1")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default="bench-snapshots")
    args = parser.parse_args()
    lab = Lab.named(args.lab, log=lambda _msg: None)
    if lab.leftovers():
        print(f"lab '{args.lab}' is up on this machine; take it down first (pvelab twin down --lab {args.lab})")
        return 1
    figures: dict[str, dict[str, float]] = {}
    try:
        lab.up(LabSpec(node_count=1))
        run(lab, "pvesm add dir qdir --path /var/lib/qdir --content images --format qcow2")
        subnet = lab.require_record().spec.subnet(0)
        for n, (label, storage) in enumerate(STORAGES.items()):
            vmid, address = 150 + n, str(subnet.network_address + 150 + n)
            create_tiny_vm(lab, "pve1", vmid, address, disk_storage=storage)
            wait_for(heartbeats(address), 120, f"VM {vmid} heartbeats")
            volid = ssh(lab, "pve1", f"qm config {vmid} | sed -n 's/^scsi0: \\([^,]*\\),.*/\\1/p'").stdout.strip()
            path = ssh(lab, "pve1", f"pvesm path {volid}").stdout.strip()
            figures[label] = {"snapshot": run(lab, f"qm snapshot {vmid} plain"),
                              "snapshot with RAM": run(lab, f"qm snapshot {vmid} withram --vmstate 1")}
            time.sleep(3)
            started = time.monotonic()
            run(lab, f"qm rollback {vmid} withram")
            wait_for(answering(address), 60, f"VM {vmid} answering after the rollback")
            figures[label]["rollback with RAM, to an answer"] = time.monotonic() - started
            figures[label]["delete (with RAM)"] = run(lab, f"qm delsnapshot {vmid} withram")
            figures[label]["plain copy of the volume"] = run(
                lab, f"qemu-img convert -U -O raw {path} /var/tmp/copy.raw && rm /var/tmp/copy.raw")
            run(lab, f"qm delsnapshot {vmid} plain && qm stop {vmid}")  # a VM with snapshots is no template
            figures[label]["qm template"] = run(lab, f"qm template {vmid}")
            figures[label]["linked clone"] = run(lab, f"qm clone {vmid} {vmid + 10}")
            figures[label]["full clone"] = run(lab, f"qm clone {vmid} {vmid + 20} --full 1")
            run(lab, f"qm start {vmid + 20}")  # the template's address: the template never runs
            wait_for(heartbeats(address), 120, f"VM {vmid + 20} heartbeats")
            other = [s for s in STORAGES.values() if s != storage][0]
            figures[label]["online disk move (to the other)"] = run(lab, f"qm disk move {vmid + 20} scsi0 {other}")
            run(lab, f"qm stop {vmid + 20}")
        ct_figures = measure_container(lab, str(subnet.network_address + 180))
    finally:
        lab.down(quiet=True)
    print("\na container (busybox, 2 MiB root on local-lvm), PVE 9 node, wall clock over SSH")
    for step, seconds in ct_figures.items():
        print(f"  {step:<46}{seconds:>8.2f} s")
    print("\nsnapshots of the tiny guest (256 MiB RAM, 64 MiB disk) under TCG, PVE 9 node, wall clock over SSH")
    steps = list(next(iter(figures.values())))
    print(f"  {'':<34}" + "".join(f"{label:>28}" for label in figures))
    for step in steps:
        print(f"  {step:<34}" + "".join(f"{figures[label][step]:>26.2f} s" for label in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
