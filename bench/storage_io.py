"""Benchmark of a guest disk's I/O on each storage type, side by side: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.storage_io [--pve-version 9] [--size-mib 512]

On a fresh 3-node lab with its storage server (a formed cluster, Ceph with a size 3 pool) it makes a
volume on `local-lvm` (the emulated thin pool: a sparse file), `nas` (NFS, nfs-ganesha), `san`
(iscsidirect, a tgt LUN) and `vmpool` (RBD), and on pve1 runs `qemu-img bench` on each through the
same QEMU block driver a VM's disk uses there (file, nfs, iscsi, rbd; cache=none): sequential writes
and reads of 1 MiB, then strided 4 KiB writes and reads (1 MiB + 4 KiB apart, wrapping: no two in a
row near each other), each read after its write (what was written), 16 in flight. qemu-img runs
natively on the host, not under TCG, so the figures are the storage path's, not a TCG guest's. Also
the storage server's memory (PSS of its processes) and CPU idle and during the NFS and iSCSI runs.
The lab is torn down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import re
import time

from bench.ceph import make_ceph, run
from bench.ha import cpu_seconds
from bench.twin_up import pss_bytes
from pvelab.twin import cgroups
from pvelab.twin.drive import form_cluster
from pvelab.twin.lab import Lab
from pvelab.twin.spec import ISCSI_TARGET, NFS_EXPORT, LabSpec

MIB = 1024 ** 2
VMID = 900
STRIDE = f"-S {MIB + 4096}"
# writes first: a read of a volume never written reads holes (a sparse file, absent RBD objects)
RUNS = (("sequential write", 1 * MIB, "", True), ("sequential read", 1 * MIB, "", False),
        ("strided 4 KiB write", 4096, STRIDE, True), ("strided 4 KiB read", 4096, STRIDE, False))


def bench(lab: Lab, opts: str, size: int, step: str, write: bool, total: int) -> float:
    """Seconds qemu-img bench takes for `total` bytes in requests of `size`."""
    count = max(1, total // size)
    out = run(lab, "pve1", f"qemu-img bench -t none -d 16 -c {count} -s {size} {step} {'-w' if write else ''} "
                           f"--image-opts '{opts}' 2>&1", timeout=600)
    found = re.search(r"Run completed in ([0-9.]+) seconds", out)
    if not found:
        raise RuntimeError(f"qemu-img bench printed no time: {out}")
    return float(found.group(1))


def server_usage(lab: Lab) -> tuple[float, float]:
    """The storage server's memory (PSS of its processes, MiB) and the CPU seconds they used so far."""
    group = lab.require_record().spec.nas
    assert group is not None
    pids = cgroups.pids(group.cgroup)
    return pss_bytes(pids) / MIB, cpu_seconds(pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pve-version", default="9", choices=["8", "9"])
    parser.add_argument("--size-mib", type=int, default=512, help="bytes moved by each sequential run (MiB)")
    args = parser.parse_args()
    lab = Lab(log=lambda _msg: None)
    lab.up(LabSpec(node_count=3, pve_version=args.pve_version, storage_server=True))
    try:
        nas = lab.require_record().spec.nas
        assert nas is not None
        server = nas.link_addr(0)
        form_cluster(lab, "benchio")
        make_ceph(lab)
        run(lab, "pve1", f"pvesm add nfs nas --server {server} --export {NFS_EXPORT} --content images")
        run(lab, "pve1", f"pvesm add iscsidirect san --portal {server} --target {ISCSI_TARGET}")
        size = f"{args.size_mib}M"
        local = run(lab, "pve1", f"pvesm alloc local-lvm {VMID} vm-{VMID}-disk-0 {size}").split("'")[1]
        nfs = run(lab, "pve1", f"pvesm alloc nas {VMID} vm-{VMID}-disk-1.raw {size}").split("'")[1]
        rbd = run(lab, "pve1", f"pvesm alloc vmpool {VMID} vm-{VMID}-disk-2 {size}").split("'")[1]
        local_path = run(lab, "pve1", f"pvesm path {local}").strip()
        nfs_path = run(lab, "pve1", f"pvesm path {nfs}").strip().replace("/mnt/pve/nas", NFS_EXPORT, 1)
        targets = {
            "local-lvm (file)": f"driver=raw,file.driver=file,file.filename={local_path}",
            "nas (NFS)": f"driver=raw,file.driver=nfs,file.server.type=inet,file.server.host={server},"
                         f"file.path={nfs_path}",
            "san (iSCSI LUN 3)": f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={server},"
                                 f"file.target={ISCSI_TARGET},file.lun=3",
            "vmpool (RBD, 3 copies)": f"driver=raw,file.driver=rbd,file.pool=vmpool,file.image={rbd.split(':')[1]},"
                                      "file.conf=/etc/pve/ceph.conf,file.user=admin",
        }
        idle_memory, cpu0 = server_usage(lab)
        started = time.monotonic()
        time.sleep(10)
        _, cpu1 = server_usage(lab)
        print(f"Guest disk I/O by storage type on the twin, PVE {args.pve_version} (qemu-img bench on pve1, "
              f"cache=none, 16 in flight; {args.size_mib} MiB sequential, {args.size_mib // 64} MiB strided 4 KiB)")
        idle_cpu = 100 * (cpu1 - cpu0) / (time.monotonic() - started)
        print(f"  storage server idle: {idle_memory:.0f} MiB, CPU {idle_cpu:.1f} % of one core")
        for name, opts in targets.items():
            figures = []
            busy_memory, before = server_usage(lab)
            clock = time.monotonic()
            for label, request, step, write in RUNS:
                total = args.size_mib * MIB if request >= MIB else args.size_mib * MIB // 64
                seconds = bench(lab, opts, request, step, write, total)
                rate = total / seconds
                figures.append(f"{label} {rate / MIB:.0f} MiB/s" if request >= MIB else
                               f"{label} {rate / request:.0f} IOPS")
            used_memory, after = server_usage(lab)
            served = ""
            if "nas" in name or "san" in name:
                served = (f"; storage server {max(busy_memory, used_memory):.0f} MiB, CPU "
                          f"{100 * (after - before) / (time.monotonic() - clock):.0f} % of one core")
            print(f"  {name}: {', '.join(figures)}{served}")
    finally:
        lab.down(quiet=True)


if __name__ == "__main__":
    main()
