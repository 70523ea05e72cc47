"""PVE's VMA backup archive (pve-qemu's vma_spec.txt): a header holding the guest's config files and
its devices' names and sizes, then extents of up to 59 clusters of 64 KiB, each cluster's 4 KiB
blocks that are all zero left out (a bit mask says which are there). Big-endian throughout.

Written to the spec; PVE's `vma` tool is not available here to cross-check it."""

from __future__ import annotations

import hashlib
import struct
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

MAGIC, EXTENT_MAGIC = b"VMA\0", b"VMAE"
HEADER_FIXED = 12288  # the fixed part; the blob buffer follows it
CLUSTER, BLOCK = 65536, 4096
BLOCKS_PER_EXTENT = 59
EXTENT_HEADER = 512


class VmaError(Exception):
    pass


@dataclass
class Device:
    name: str
    size: int


def _blobs(strings: list[bytes]) -> tuple[bytes, list[int]]:
    buffer, offsets = bytearray(b"\0"), []  # offset 0 means "none"
    for data in strings:
        offsets.append(len(buffer))
        buffer += struct.pack(">H", len(data)) + data
    return bytes(buffer), offsets


def header(configs: dict[str, bytes], devices: list[Device], archive_uuid: bytes, ctime: int) -> bytes:
    names = [n.encode() for n in configs] + list(configs.values()) + \
        [d.name.encode() + b"\0" for d in devices]
    blob, offsets = _blobs(names)
    count = len(configs)
    size = HEADER_FIXED + len(blob)
    size += -size % 512
    out = bytearray(size)
    struct.pack_into(">4sI16sq", out, 0, MAGIC, 1, archive_uuid, ctime)
    struct.pack_into(">III", out, 48, HEADER_FIXED, len(blob), size)
    for i in range(count):
        struct.pack_into(">I", out, 2044 + 4 * i, offsets[i])
        struct.pack_into(">I", out, 3068 + 4 * i, offsets[count + i])
    for i, device in enumerate(devices, start=1):  # device 0 is reserved
        struct.pack_into(">IIQ", out, 4096 + 32 * i, offsets[2 * count + i - 1], 0, device.size)
    out[HEADER_FIXED:HEADER_FIXED + len(blob)] = blob
    out[32:48] = hashlib.md5(bytes(out)).digest()  # of the header with its md5 field zero
    return bytes(out)


def write(out: IO[bytes], configs: dict[str, bytes], disks: list[tuple[Device, IO[bytes]]]) -> dict[str, int]:
    """The archive to `out`; {"read": bytes read, "zero": bytes of zero blocks left out}."""
    archive_uuid = uuidlib.uuid4().bytes
    out.write(header(configs, [d for d, _ in disks], archive_uuid, int(time.time())))
    figures = {"read": 0, "zero": 0}
    pending: list[tuple[int, bytes]] = []  # (blockinfo, data)

    def flush() -> None:
        if not pending:
            return
        infos = [info for info, _ in pending] + [0] * (BLOCKS_PER_EXTENT - len(pending))
        head = bytearray(EXTENT_HEADER)
        struct.pack_into(">4sHH16s", head, 0, EXTENT_MAGIC, 0, sum(bin(i >> 48).count("1") for i, _ in pending),
                         archive_uuid)
        struct.pack_into(f">{BLOCKS_PER_EXTENT}Q", head, 40, *infos)
        body = b"".join(data for _, data in pending)
        head[24:40] = hashlib.md5(bytes(head) + body).digest()
        out.write(bytes(head) + body)
        pending.clear()

    for dev_id, (_device, source) in enumerate(disks, start=1):
        cluster_num = 0
        while True:
            chunk = source.read(CLUSTER)
            if not chunk:
                break
            figures["read"] += len(chunk)
            chunk = chunk.ljust(CLUSTER, b"\0")
            mask, kept = 0, []
            for b in range(CLUSTER // BLOCK):
                block = chunk[b * BLOCK:(b + 1) * BLOCK]
                if block.count(0) != BLOCK:
                    mask |= 1 << b
                    kept.append(block)
                else:
                    figures["zero"] += BLOCK
            if mask:
                pending.append(((mask << 48) | (dev_id << 32) | cluster_num, b"".join(kept)))
                if len(pending) == BLOCKS_PER_EXTENT:
                    flush()
            cluster_num += 1
    flush()
    return figures


def read_header(source: IO[bytes]) -> tuple[dict[str, bytes], list[Device], int]:
    """(configs, devices, header size)."""
    fixed = source.read(HEADER_FIXED)
    if len(fixed) < HEADER_FIXED or fixed[:4] != MAGIC:
        raise VmaError("not a VMA archive (bad magic)")
    blob_offset, blob_size, size = struct.unpack_from(">III", fixed, 48)
    rest = source.read(size - HEADER_FIXED)
    blob = (fixed + rest)[blob_offset:blob_offset + blob_size]

    def text(offset: int) -> bytes:
        (length,) = struct.unpack_from(">H", blob, offset)
        return blob[offset + 2:offset + 2 + length]

    configs = {}
    for i in range(256):
        (name_at,) = struct.unpack_from(">I", fixed, 2044 + 4 * i)
        (data_at,) = struct.unpack_from(">I", fixed, 3068 + 4 * i)
        if name_at:
            configs[text(name_at).decode()] = text(data_at)
    devices = []
    for i in range(1, 256):
        name_at, _, dev_size = struct.unpack_from(">IIQ", fixed, 4096 + 32 * i)
        if name_at:
            devices.append(Device(text(name_at).rstrip(b"\0").decode(), dev_size))
    return configs, devices, size


def extents(source: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(device id, byte offset, 64 KiB of data) for each cluster the archive holds."""
    while True:
        head = source.read(EXTENT_HEADER)
        if not head:
            return
        if head[:4] != EXTENT_MAGIC:
            raise VmaError("corrupt VMA archive (bad extent magic)")
        infos = struct.unpack_from(f">{BLOCKS_PER_EXTENT}Q", head, 40)
        for info in infos:
            mask, dev_id, cluster_num = info >> 48, (info >> 32) & 0xFF, info & 0xFFFFFFFF
            if not mask:
                continue
            cluster = bytearray(CLUSTER)
            for b in range(CLUSTER // BLOCK):
                if mask & (1 << b):
                    cluster[b * BLOCK:(b + 1) * BLOCK] = source.read(BLOCK)
            yield dev_id, cluster_num * CLUSTER, bytes(cluster)
