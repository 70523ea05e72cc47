"""What every storage type's volumes have in common: PVE's volume names, the next free disk name,
usage as a thin pool counts it, and the Backend each storage type's class builds on (volumes.py
holds the types a fresh node has and the ones beside them; zfspool.py the ZFS one)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from pvelab.pve.storage.config import TYPES, StorageError

# PVE's volume names: disks, cloud-init drives, and the RAM of snapshots taken with vmstate
DISK_NAME = re.compile(r"^(vm|base|subvol)-(\d+)-(?:disk-\d+|cloudinit|state-[A-Za-z][A-Za-z0-9_\-]*)"
                       r"(?:\.(raw|qcow2|vmdk|subvol))?$")
ANY_FORMAT = {"raw", "qcow2", "vmdk", "subvol"}


def free_disk_name(vmid: int, taken: set[str], fmt: str | None) -> str:
    """PVE's get_next_vm_diskname: the lowest disk number no volume of the VM has, whatever its format
    or prefix (vm-100-disk-0.raw takes number 0 from a qcow2 too)."""
    used = {int(found.group(1)) for name in taken
            if (found := re.search(rf"(?:vm|base|subvol|basevol)-{vmid}-disk-(\d+)", name))}
    for number in range(1000):
        if number not in used:
            return f"vm-{vmid}-disk-{number}" + (f".{fmt}" if fmt else "")
    raise StorageError(f"unable to allocate an image name for VM {vmid}")


def tree_usage(path: Path) -> int:
    """Bytes the files below a directory take (a container's root filesystem)."""
    return sum(disk_usage(Path(d, f)) for d, _, files in os.walk(path) for f in files
               if not os.path.islink(os.path.join(d, f)))


def disk_usage(path: Path) -> int:
    """Bytes a (sparse) file really takes, as a thin pool counts it."""
    return path.stat().st_blocks * 512


class Backend:
    """One storage of storage.cfg: its id, its options and what its type can do."""

    def __init__(self, storage_id: str, options: dict[str, Any]) -> None:
        self.id, self.options = storage_id, options
        self.kind = TYPES[options["type"]]

    def activate(self) -> None:
        """PVE's activate_storage: what must be there before the storage is used (a mount)."""

    def status(self) -> dict[str, int]:
        raise NotImplementedError

    def volumes(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        raise NotImplementedError

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        """A container's root filesystem volume, a directory (see the module's note)."""
        raise NotImplementedError

    def free(self, volname: str) -> None:
        raise NotImplementedError

    def path(self, volname: str) -> Path:
        raise NotImplementedError

    def exists(self, volname: str) -> bool:
        return self.path(volname).exists()

    def location(self, volname: str) -> str:
        """What `pvesm path` prints and QEMU opens (a file, a device, or a URL QEMU's driver reads)."""
        return str(self.path(volname))

    # -- what a volume is, and can do -------------------------------------------------------------
    FEATURES: dict[str, dict[str, set[str]]] = {}

    def image_name(self, volname: str) -> str:
        """The volume's own name, without the base image a linked clone names before it."""
        return volname.rsplit("/", 1)[-1]

    def base_of(self, volname: str) -> str | None:
        """The base image's name a linked clone's volume name carries (PVE's parse_volname basename)."""
        return None

    def volume_format(self, volname: str) -> str:
        return "raw"

    def is_base(self, volname: str) -> bool:
        return self.image_name(volname).startswith("base-")

    def has_feature(self, feature: str, volname: str, snap: str | None = None) -> bool:
        """PVE's volume_has_feature: snapshot, clone, template, copy, sparseinit, rename."""
        key = "snap" if snap else "base" if self.is_base(volname) else "current"
        return self.volume_format(volname) in self.FEATURES.get(feature, {}).get(key, set())

    def base_in_use(self, volname: str) -> bool:
        """PVE's volume_is_base_and_used: a linked clone on this storage names this base image."""
        if not self.is_base(volname):
            return False
        name = self.image_name(volname)
        return any(self.base_of(v["volid"].split(":", 1)[1]) == name for v in self.volumes())

    def check_base_unused(self, volname: str) -> None:
        if self.base_in_use(volname):
            raise StorageError(f"base volume '{volname}' is still in use by linked clones")

    def snapshot_source(self, volname: str, snap: str) -> tuple[str, list[str]]:
        """Where qemu-img reads a snapshot of the volume, and the options it needs for that."""
        raise StorageError("can't read a snapshot of this image format")

    def create_base(self, volname: str) -> str:
        """PVE's create_base: the volume becomes a read-only base image (vm- renamed base-)."""
        raise StorageError("this storage type does not support create_base")

    def clone_image(self, volname: str, vmid: int, snap: str | None = None) -> str:
        """PVE's clone_image: a linked clone of a base image (or of a snapshot) for `vmid`."""
        raise StorageError("this storage type does not support clone_image")

    def rename_volume(self, volname: str, target_vmid: int) -> str:
        """PVE's rename_volume: the volume handed to another guest under the next free name of that
        guest (same format); the new volume name."""
        raise StorageError(f"not implemented in storage plugin '{type(self).__name__}'")

    # -- snapshots of a volume (pve-storage's volume_snapshot*; the guest's QEMU is not involved) ----------
    def can_snapshot(self, volname: str) -> bool:
        """PVE's volume_has_feature('snapshot'), from the storage's feature table."""
        return self.has_feature("snapshot", volname)

    def snapshot(self, volname: str, snap: str) -> None:
        raise StorageError("can't snapshot this image format")

    def snapshot_delete(self, volname: str, snap: str) -> None:
        raise StorageError("can't delete snapshot for this image format")

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        raise StorageError("can't rollback snapshot for this image format")

    # -- size ------------------------------------------------------------------------------------
    def size(self, volname: str) -> int:
        """The volume's size in bytes (PVE's volume_size_info): what a guest sees, not what it takes."""
        path = self.path(volname)
        if str(path).endswith(".qcow2"):
            info = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True,
                                  text=True, check=False)
            if info.returncode != 0:
                raise StorageError(f"Could not determine current size of volume '{self.id}:{volname}'")
            return int(json.loads(info.stdout)["virtual-size"])
        return Path(path).resolve().stat().st_size

    def resize(self, volname: str, size: int) -> None:
        """Grow a volume no QEMU holds (a running VM's QEMU resizes its own through block_resize)."""
        path = self.path(volname)
        if str(path).endswith(".qcow2"):
            done = subprocess.run(["qemu-img", "resize", "-f", "qcow2", str(path), str(size)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise StorageError(f"qemu-img resize failed: {done.stderr.strip()}")
            return
        os.truncate(Path(path).resolve(), size)

    def state_writer(self, volname: str) -> str:
        """A shell command that writes a VM's saved state (QEMU's migration stream on stdin) into the volume."""
        return f"dd of={shlex.quote(str(self.path(volname)))} bs=1M conv=notrunc status=none"  # keeps its size

    def state_reader(self, volname: str) -> str:
        """A shell command that prints the saved state back, for QEMU's -incoming."""
        return f"cat {shlex.quote(str(self.path(volname)))}"

    def set_attribute(self, volname: str, attribute: str, value: Any) -> None:
        """PVE's update_volume_attribute; only a directory's backups have notes and protection."""
        if attribute == "notes":
            plugin = {"lvmthin": "LvmThinPlugin", "rbd": "RBDPlugin"}.get(self.options["type"], "Plugin")
            raise StorageError(f"volume notes are not supported for PVE::Storage::{plugin}")
        raise StorageError(f"attribute '{attribute}' is not supported for storage type '{self.options['type']}'")
