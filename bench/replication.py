"""Benchmark of storage replication (pvesr): the first and the incremental runs' times and sizes for a
disk on local-zfs (each node's rpool: btrfs underneath). Prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.replication [--pve-version 9] [--disk-mib 1024] [--written-mib 64]
                                             [--changed-mib 1] [--runs 3]

On a fresh 2-node cluster it makes the tiny guest's VM on pve1 with a disk on local-zfs, writes
--written-mib into it (random data, from the node: what a guest would have written), and times
`pvesr run` for the first (full) sync; then, --runs times, changes --changed-mib in place and times an
incremental one. Each run's size is what its log says it sent. The lab is torn down at the end,
also on failure.
"""

from __future__ import annotations

import argparse
import re
import time

from bench.ceph import run
from pvelab.twin.drive import form_cluster
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

VMID = 950
JOB = f"{VMID}-0"


def timed_run(lab: Lab) -> tuple[float, str]:
    started = time.monotonic()
    log = run(lab, "pve1", f"pvesr run --id {JOB} --verbose", timeout=900)
    seconds = time.monotonic() - started
    found = re.search(r"total estimated size is (\S+)", log)
    return seconds, found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pve-version", default="9", choices=["8", "9"])
    parser.add_argument("--disk-mib", type=int, default=1024)
    parser.add_argument("--written-mib", type=int, default=64, help="data on the disk before the first sync")
    parser.add_argument("--changed-mib", type=int, default=1, help="data changed before each incremental sync")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab = Lab(log=lambda _msg: None)
    lab.up(LabSpec(node_count=2, pve_version=args.pve_version, storage_server=False))
    try:
        form_cluster(lab, "benchrepl")
        run(lab, "pve1", "pvesm add zfspool local-zfs --pool rpool/data --content images,rootdir --sparse 1")
        run(lab, "pve1", f"qm create {VMID} --name repl --memory 128 --scsi0 local-zfs:{args.disk_mib // 1024 or 1}")
        image = run(lab, "pve1", f"pvesm path local-zfs:vm-{VMID}-disk-0").strip()
        run(lab, "pve1", f"dd if=/dev/urandom of={image} bs=1M count={args.written_mib} conv=notrunc,fsync "
                         "status=none", timeout=600)
        # the job's schedule is far away: only these runs sync (a never-run job is due at once, so it runs now)
        run(lab, "pve1", f"pvesr create-local-job {JOB} pve2 --schedule '3:00'")
        first, first_size = timed_run(lab)
        print(f"Storage replication on the twin, PVE {args.pve_version} (zfspool on btrfs, pve1 -> pve2 over SSH; "
              f"a {args.disk_mib} MiB disk holding {args.written_mib} MiB)")
        print(f"  first sync (full): {first:.2f} s, {first_size} sent")
        for number in range(1, args.runs + 1):
            offset = (number * 7919) % max(1, args.written_mib - args.changed_mib)
            run(lab, "pve1", f"dd if=/dev/urandom of={image} bs=1M count={args.changed_mib} seek={offset} "
                             "conv=notrunc,fsync status=none")
            seconds, size = timed_run(lab)
            print(f"  incremental sync {number} ({args.changed_mib} MiB changed): {seconds:.2f} s, {size} sent")
    finally:
        lab.down(quiet=True)


if __name__ == "__main__":
    main()
