"""A node's data disks (for Ceph OSDs): sparse files on the host, each attached to a loop device and
bound into the node as /dev/sdb, /dev/sdc, ... — block devices, as a nested PVE node sees its virtual disks.

Sparse, so only what Ceph writes costs host disk. The loop devices use direct I/O (no second copy in
the host's page cache) and stay attached while the lab is up, so a node keeps its disks across power
cycles; `down` detaches them."""

from __future__ import annotations

import re
import string
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.twin.host import run

GIB = 1024 ** 3
MAX_DISKS = 4
MIN_SIZE = GIB  # the twin makes what is asked; `pveceph osd create` refuses what is too small, as PVE does
MAX_SIZE = 1024 * GIB


def disk_names(count: int) -> list[str]:
    """sda is the node's system disk on a real node, so data disks start at sdb."""
    return [f"sd{letter}" for letter in string.ascii_lowercase[1:count + 1]]


def parse_size(text: str) -> int:
    """`16G`, `16GiB`, `512M`, `1T` or plain bytes, as a size in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise TwinError(f"cannot read the disk size '{text}'", "give it like 16G, 512M or 1T")
    return int(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " ")


def check_layout(count: int, size: int) -> None:
    if not 0 <= count <= MAX_DISKS:
        raise TwinError(f"cannot give each node {count} data disks", f"choose --osd-disks between 0 and {MAX_DISKS}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise TwinError(f"a data disk of {size} bytes is out of range",
                        "choose --osd-size between 1G and 1T (Ceph OSDs want 8G or more: 16G is the default)")


def create(directory: Path, count: int, size: int) -> None:
    """The node's disk files (sparse); existing ones are kept, with what is on them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in disk_names(count):
        image = directory / f"{name}.img"
        if not image.exists():
            with open(image, "wb") as fh:
                fh.truncate(size)


def images(directory: Path) -> list[Path]:
    return sorted(directory.glob("sd?.img"))


def attached(image: Path) -> str | None:
    """The loop device backed by `image`, if one is."""
    names = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], check=False).split()
    return names[0] if names else None


def attach(image: Path) -> str:
    """The loop device backed by `image`, attaching one if none is."""
    device = attached(image)
    if device is not None:
        return device
    try:
        return run(["losetup", "--find", "--show", "--direct-io=on", str(image)]).strip()
    except TwinError as exc:
        raise TwinError(f"cannot attach a loop device to {image}: {exc}",
                        "free loop devices (losetup -l lists them) and power the node on again") from exc


def binds(directory: Path) -> list[str]:
    """nspawn --bind options that show the node its disks as /dev/sdX."""
    return [f"--bind={attach(image)}:/dev/{image.stem}" for image in images(directory)]


def loops_under(root: Path, deleted_only: bool = False) -> list[tuple[str, str]]:
    """(loop device, backing file) for every loop device backed by a file under `root` (deleted or not,
    or only those whose file was deleted: a lab directory removed by hand)."""
    out = run(["losetup", "--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"], check=False)
    found = []
    for line in out.splitlines():
        name, _, back = line.partition(" ")
        deleted = back.endswith(" (deleted)")
        back = back.removesuffix(" (deleted)")
        if back.startswith(str(root).rstrip("/") + "/") and (deleted or not deleted_only):
            found.append((name, back))
    return found


def detach_under(root: Path, deleted_only: bool = False) -> list[str]:
    removed = []
    for device, back in loops_under(root, deleted_only):
        run(["losetup", "--detach", device], check=False)
        if attached(Path(back)) is None:
            removed.append(f"loop {device} ({Path(back).name})")
    return removed


# The node's ZFS pool `rpool` (the zfspool storage's datasets live in rpool/data, as on a PVE node
# installed on ZFS): a btrfs filesystem, the copy-on-write filesystem this kernel has (no ZFS), in a
# sparse file, loop-mounted on the host and bound into the node at /rpool (docs/twin.md).
ZFS_POOL_SIZE = 16 * GIB
ZFS_POOL_LABEL = "rpool"


def mount_zfs_pool(image: Path, mountpoint: Path) -> None:
    """Make the pool's filesystem on first use; mount it (kept across the node's power cycles)."""
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        with open(image, "wb") as fh:
            fh.truncate(ZFS_POOL_SIZE)
        run(["mkfs.btrfs", "-q", "-L", ZFS_POOL_LABEL, str(image)])
    mountpoint.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "btrfs", attach(image), str(mountpoint)])
    (mountpoint / "data").mkdir(exist_ok=True)  # the dataset rpool/data
