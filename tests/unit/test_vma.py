"""The VMA archive vzdump writes: what goes in comes out, zero blocks are left out, and a file that
is not an archive is refused."""

from __future__ import annotations

import io
import os

import pytest

from pvelab.pve.guests import vma


def test_configs_and_disks_come_back_as_written() -> None:
    disk_a = bytearray(3 * vma.CLUSTER + 1000)  # not a whole number of clusters
    disk_a[5:9] = b"PVEL"
    disk_a[2 * vma.CLUSTER + 4096:2 * vma.CLUSTER + 8192] = os.urandom(4096)
    disk_b = os.urandom(70 * vma.CLUSTER)  # more clusters than one extent holds
    out = io.BytesIO()
    figures = vma.write(out, {"qemu-server.conf": b"memory: 256\n"},
                        [(vma.Device("drive-scsi0", len(disk_a)), io.BytesIO(bytes(disk_a))),
                         (vma.Device("drive-scsi1", len(disk_b)), io.BytesIO(disk_b))])
    assert figures["read"] == len(disk_a) + len(disk_b)
    assert figures["zero"] >= len(disk_a) - 3 * 4096  # only the written blocks of disk A are kept
    out.seek(0)
    configs, devices, _ = vma.read_header(out)
    assert configs == {"qemu-server.conf": b"memory: 256\n"}
    assert devices == [vma.Device("drive-scsi0", len(disk_a)), vma.Device("drive-scsi1", len(disk_b))]
    restored = {1: bytearray(len(disk_a) + vma.CLUSTER), 2: bytearray(len(disk_b))}
    for dev_id, offset, data in vma.extents(out):
        restored[dev_id][offset:offset + len(data)] = data
    assert bytes(restored[1][:len(disk_a)]) == bytes(disk_a) and bytes(restored[2]) == disk_b


def test_something_else_is_refused() -> None:
    with pytest.raises(vma.VmaError, match="not a VMA archive"):
        vma.read_header(io.BytesIO(b"PK\x03\x04" + b"\0" * 20000))
