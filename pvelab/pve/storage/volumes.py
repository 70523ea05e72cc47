"""Volumes on a storage: listing, allocating, freeing, paths and usage, for the two types a fresh PVE
node has. A `dir` storage is a directory, as on PVE. An `lvmthin` storage is emulated: these
containers have no device-mapper, so each thin volume is a sparse file under LVM_BACKING and
/dev/VG/LV links to it, which is where PVE's LVs appear and what `pvesm path` prints.

A container's root filesystem is a directory: PVE formats an LV or a raw image with ext4 and
mounts it, which needs loop devices the nodes do not have. On a `dir` storage it is PVE's own
`subvol-VMID-disk-N.subvol` directory; on the emulated `lvmthin` the volume's backing is a
directory, its size kept beside it (not enforced)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve.storage import nfs, prune
from pvelab.pve.storage.backend import ANY_FORMAT, DISK_NAME, Backend, disk_usage, free_disk_name, tree_usage
from pvelab.pve.storage.config import StorageError, content_of, get
from pvelab.pve.storage.volname import filesystem_path, get_subdir
from pvelab.pve.storage.zfspool import ZfsPoolBackend

LVM_BACKING = Path("/var/lib/pvelab/lvmthin")
DEV = Path("/dev")
VOLUME_ID = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", re.IGNORECASE)
# A linked clone on a directory: BASEVMID/BASENAME/VMID/NAME, its qcow2 backed by ../BASEVMID/BASENAME
LINKED_DIR_VOLUME = re.compile(r"^(\d+)/([^/\s]+)/(\d+)/([^/\s]+)$")
# Features per storage type (pve-storage's volume_has_feature tables): for a volume that is a base
# (template) image, the current image, or a snapshot of it; the formats that have the feature.
DIR_FEATURES = {"snapshot": {"current": {"qcow2"}, "snap": {"qcow2"}},
                "clone": {"base": {"qcow2", "raw", "vmdk"}},
                "template": {"current": ANY_FORMAT},
                "copy": {"base": {"qcow2", "raw", "vmdk"}, "current": {"qcow2", "raw", "vmdk"}, "snap": {"qcow2"}},
                "sparseinit": {"base": {"qcow2", "raw", "vmdk"}, "current": {"qcow2", "raw", "vmdk"}},
                "rename": {"current": {"qcow2", "raw", "vmdk"}}}
BLOCK_FEATURES = {"snapshot": {"current": ANY_FORMAT, "snap": ANY_FORMAT},  # lvmthin's has no 'snap' entry
                  "clone": {"base": ANY_FORMAT, "snap": ANY_FORMAT},
                  "template": {"current": ANY_FORMAT},
                  "copy": {"base": ANY_FORMAT, "current": ANY_FORMAT, "snap": ANY_FORMAT},
                  "sparseinit": {"base": ANY_FORMAT, "current": ANY_FORMAT},
                  "rename": {"current": ANY_FORMAT}}


def parse_volume_id(volid: str) -> tuple[str, str]:
    found = VOLUME_ID.match(volid)
    if not found:
        raise StorageError(f"unable to parse volume ID '{volid}'", param="volume", status=400)
    return found.group(1), found.group(2)


def parse_size(text: str) -> int:
    """pvesm's size: KiB, or with an M or G suffix; returns KiB."""
    found = re.fullmatch(r"(\d+)([MG]?)", text)
    if not found:
        raise StorageError(f"unable to parse size '{text}'", param="size", status=400)
    return int(found.group(1)) * {"": 1, "M": 1024, "G": 1024 * 1024}[found.group(2)]


def qcow2_backing(path: Path) -> str | None:
    """A qcow2 image's backing file as its header names it (what `qemu-img info` reads, without a process)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return None
            offset, size = int.from_bytes(header[8:16], "big"), int.from_bytes(header[16:20], "big")
            if not offset or not 0 < size < 1024:
                return None
            fh.seek(offset)
            return fh.read(size).decode(errors="replace")
    except OSError:
        return None


def filesystem_figures(path: Path) -> dict[str, int]:
    """A directory storage's total, used and available bytes: its filesystem's, as PVE's statvfs."""
    st = os.statvfs(path)
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    return {"total": total, "used": total - st.f_bfree * st.f_frsize, "avail": free}


class DirBackend(Backend):
    FEATURES = DIR_FEATURES

    @property
    def root(self) -> Path:
        return Path(self.options["path"])

    def status(self) -> dict[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)  # PVE's dir plugin creates its path (mkdir 1)
        return filesystem_figures(self.root)

    def volumes(self) -> list[dict[str, Any]]:
        found = []
        for content in content_of(self.options):
            base = Path(get_subdir(self.options, content))
            if content == "images":
                for disk in sorted(base.glob("*/*")):
                    name = DISK_NAME.match(disk.name)
                    if name and (disk.is_file() or name.group(3) == "subvol"):
                        parent = qcow2_backing(disk) if name.group(3) == "qcow2" else None
                        linked = re.match(r"^\.\./(\d+)/([^/]+\.(?:raw|qcow2|vmdk))$", parent or "")
                        volname = (f"{linked.group(1)}/{linked.group(2)}/" if linked else "") + \
                            f"{disk.parent.name}/{disk.name}"
                        entry = self._entry(volname, disk, "rootdir" if name.group(3) == "subvol" else "images",
                                            name.group(3) or "raw", int(name.group(2)))
                        found.append({**entry, "parent": parent} if parent else entry)
            elif content == "backup":
                found += [self._backup_entry(item) for item in sorted(base.glob("*"))
                          if item.is_file() and prune.BACKUP_FILE.match(item.name)]
            elif content in ("iso", "vztmpl", "snippets", "import"):
                for item in sorted(base.glob("*")):
                    if item.is_file() and not item.name.endswith((".log", ".notes", ".tmp")):
                        fmt = item.name.rsplit(".", 1)[-1] if content == "iso" else _archive_format(item.name)
                        vmid = re.match(r"vzdump-(?:qemu|lxc)-(\d+)-", item.name)
                        found.append(self._entry(f"{content}/{item.name}", item, content, fmt,
                                                 int(vmid.group(1)) if vmid else None))
        return found

    def _backup_entry(self, path: Path) -> dict[str, Any]:
        """A backup as PVE's dir plugin lists it: the time from its name, its guest type, notes, protection."""
        info, fmt = prune.archive_info(path.name), _archive_format(path.name)
        vmid = re.search(rf"-([1-9][0-9]{{2,8}})-[^/]+\.{re.escape(fmt)}$", path.name)
        entry = self._entry(f"backup/{path.name}", path, "backup", fmt, int(vmid.group(1)) if vmid else None)
        entry.update(subtype=info.get("type", "unknown"), **({"ctime": info["ctime"]} if "ctime" in info else {}))
        notes = Path(f"{path}.notes")
        if notes.is_file():
            entry["notes"] = (notes.read_text(errors="replace").splitlines() or [""])[0]
        if protection_file(path).exists():
            entry["protected"] = 1
        return entry

    def _entry(self, volname: str, path: Path, content: str, fmt: str, vmid: int | None) -> dict[str, Any]:
        st = path.stat()
        entry: dict[str, Any] = {"volid": f"{self.id}:{volname}", "content": content, "format": fmt,
                                 "size": st.st_size, "ctime": int(st.st_ctime)}
        if vmid is not None:
            entry["vmid"] = vmid
        if content == "images":
            entry["used"] = disk_usage(path)
        if content == "rootdir":
            entry.update(size=0, used=tree_usage(path))  # a subvol of size 0: no limit, as PVE lists it
        return entry

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        directory = self.root / "images" / str(vmid)
        directory.mkdir(parents=True, exist_ok=True)
        taken = {p.name.removesuffix(".subvol").replace("subvol-", "vm-", 1) for p in directory.iterdir()}
        name = free_disk_name(vmid, taken, None).replace("vm-", "subvol-", 1) + ".subvol"
        (directory / name).mkdir()
        return f"{self.id}:{vmid}/{name}"

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        fmt = fmt or (name.rsplit(".", 1)[1] if name and "." in name else self.options.get("format", "raw"))
        if fmt not in ("raw", "qcow2", "vmdk"):
            raise StorageError(f"unsupported format '{fmt}'")
        directory = self.root / "images" / str(vmid)
        directory.mkdir(parents=True, exist_ok=True)
        taken = {p.name for p in directory.iterdir()}
        name = name or free_disk_name(vmid, taken, fmt)
        if not name.startswith(f"vm-{vmid}-") and not name.startswith(f"base-{vmid}-"):
            raise StorageError(f"illegal name '{name}' - should be 'vm-{vmid}-*'")
        if not name.endswith(f".{fmt}"):
            raise StorageError(f"illegal name '{name}' - wrong extension for format ('{name.rsplit('.', 1)[-1]} "
                               f"!= '{fmt}')")
        path = directory / name
        if path.exists():
            raise StorageError(f"disk image '{path}' already exists")
        if fmt == "raw":
            with open(path, "wb") as fh:
                fh.truncate(size_kib * 1024)
        else:
            subprocess.run(["qemu-img", "create", "-f", fmt, str(path), f"{size_kib}K"], check=True,
                           capture_output=True)
        return f"{self.id}:{vmid}/{name}"

    def free(self, volname: str) -> None:
        path = self.path(volname)
        if not path.exists():
            raise StorageError(f"volume '{self.id}:{volname}' does not exist")
        self.check_base_unused(volname)
        if protection_file(path).exists():
            raise StorageError(f"cannot remove protected volume '{volname}' on '{self.id}'")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        if volname.startswith("backup/"):  # its log and notes go with it, as PVE's delete does
            stem = re.match(r"(vzdump-\w+-\d+-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})", path.name)
            if stem:
                Path(path.parent, f"{stem.group(1)}.log").unlink(missing_ok=True)
            Path(f"{path}.notes").unlink(missing_ok=True)

    def resize(self, volname: str, size: int) -> None:
        if not re.search(r"\.(raw|qcow2)$", volname):  # Plugin::volume_resize: not a subvol, not vmdk
            raise StorageError("can't resize this image format")
        super().resize(volname, size)

    def snapshot_source(self, volname: str, snap: str) -> tuple[str, list[str]]:
        return str(self.path(volname)), ["-l", f"snapshot.name={snap}"]

    def volume_format(self, volname: str) -> str:
        name = DISK_NAME.match(self.image_name(volname))
        return (name.group(3) if name else None) or "raw"

    def base_of(self, volname: str) -> str | None:
        linked = LINKED_DIR_VOLUME.match(volname)
        return linked.group(2) if linked else None

    def create_base(self, volname: str) -> str:
        if self.is_base(volname):
            raise StorageError("create_base not possible with base image")
        path = self.path(volname)
        name = self.image_name(volname)
        new_volname = volname[: -len(name)] + name.replace("vm-", "base-", 1)
        new_path = self.path(new_volname)
        if new_path.is_file():  # PVE's `-f`: a container's subvol (no vm- in its name) is based in place
            raise StorageError(f"file '{new_path}' already exists")
        path.rename(new_path)
        # PVE also tries `chattr +i`; left out here, as an immutable file would outlive the lab's teardown
        new_path.chmod(0o555 if new_path.is_dir() else 0o444)  # nobody should write anything
        return new_volname

    def rename_volume(self, volname: str, target_vmid: int) -> str:
        linked = LINKED_DIR_VOLUME.match(volname)
        directory = self.root / "images" / str(target_vmid)
        directory.mkdir(parents=True, exist_ok=True)
        fmt = self.volume_format(volname)
        name = free_disk_name(target_vmid, {p.name for p in directory.iterdir()}, fmt)
        if fmt == "subvol":
            name = name.replace("vm-", "subvol-", 1)
        new_path = directory / name
        if new_path.exists():
            raise StorageError(f"target volume '{name}' already exists")
        self.path(volname).rename(new_path)
        base = f"{linked.group(1)}/{linked.group(2)}/" if linked else ""
        return f"{base}{target_vmid}/{name}"

    def clone_image(self, volname: str, vmid: int, snap: str | None = None) -> str:
        if snap:
            raise StorageError("this storage type does not support clone_image on snapshot")
        if self.volume_format(volname) == "subvol":
            raise StorageError("this storage type does not support clone_image on subvolumes")
        if not self.is_base(volname):
            raise StorageError("clone_image only works on base images")
        base_vmid, base_name = volname.split("/")[-2:]
        directory = self.root / "images" / str(vmid)
        directory.mkdir(parents=True, exist_ok=True)
        taken = {p.name for p in directory.iterdir()}
        name = free_disk_name(vmid, taken, "qcow2")
        done = subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", self.volume_format(volname),
                               "-b", f"../{base_vmid}/{base_name}", name], cwd=directory, capture_output=True,
                              text=True, check=False)  # relative, as PVE's: the storage may be mounted elsewhere
        if done.returncode != 0:
            raise StorageError(f"qemu-img create failed: {done.stderr.strip()}")
        return f"{base_vmid}/{base_name}/{vmid}/{name}"

    def _qemu_img_snapshot(self, flag: str, volname: str, snap: str, what: str) -> None:
        if not self.can_snapshot(volname):
            super().snapshot(volname, snap)
        done = subprocess.run(["qemu-img", "snapshot", flag, snap, str(self.path(volname))], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise StorageError(f"command '/usr/bin/qemu-img snapshot {flag} {snap} {self.path(volname)}' failed: "
                               f"exit code {done.returncode}" + (f" ({what}: {done.stderr.strip()})"
                                                                  if done.stderr.strip() else ""))

    def snapshot(self, volname: str, snap: str) -> None:
        self._qemu_img_snapshot("-c", volname, snap, "create")

    def snapshot_delete(self, volname: str, snap: str) -> None:
        self._qemu_img_snapshot("-d", volname, snap, "delete")

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        self._qemu_img_snapshot("-a", volname, snap, "rollback")

    def set_attribute(self, volname: str, attribute: str, value: Any) -> None:
        if attribute == "notes" and not volname.startswith("backup/"):
            raise StorageError("only backups can have notes")
        if attribute == "protected" and not volname.startswith("backup/"):
            raise StorageError(f"only backups support attribute '{attribute}'")
        path = self.path(volname)
        if not path.exists():
            raise StorageError(f"volume '{self.id}:{volname}' does not exist")
        if attribute == "notes":
            notes = Path(f"{path}.notes")
            notes.write_text(str(value)) if value not in (None, "") else notes.unlink(missing_ok=True)
        elif attribute == "protected":
            if value in (True, 1, "1"):
                protection_file(path).touch()
            else:
                protection_file(path).unlink(missing_ok=True)
        else:
            super().set_attribute(volname, attribute, value)

    def path(self, volname: str) -> Path:
        """pve-storage's filesystem_path: the name parsed as PVE parses it (its refusals too)."""
        return Path(filesystem_path(self.options, volname)[0])


class LvmThinBackend(Backend):
    FEATURES = {**BLOCK_FEATURES, "snapshot": {"current": ANY_FORMAT}}

    @property
    def pool(self) -> Path:
        return LVM_BACKING / self.options["vgname"] / self.options["thinpool"]

    def status(self) -> dict[str, int]:
        self.pool.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self.pool)
        total = st.f_blocks * st.f_frsize  # the thin pool's size: the node disk it sits on
        used = sum(disk_usage(p) for p in self.pool.iterdir() if p.is_file())
        return {"total": total, "used": used, "avail": max(0, total - used)}

    def volumes(self) -> list[dict[str, Any]]:
        if not self.pool.is_dir():
            return []
        found = []
        for disk in sorted(self.pool.iterdir()):
            name = DISK_NAME.match(disk.name)
            if name and not name.group(3):
                rootdir = disk.is_dir()
                size = self.size(disk.name) if rootdir else disk.stat().st_size
                found.append({"volid": f"{self.id}:{disk.name}", "content": "rootdir" if rootdir else "images",
                              "format": "raw", "size": size, "vmid": int(name.group(2)),
                              "used": tree_usage(disk) if rootdir else disk_usage(disk),
                              "ctime": int(disk.stat().st_ctime)})
        return found

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        self.pool.mkdir(parents=True, exist_ok=True)
        name = free_disk_name(vmid, {p.name for p in self.pool.iterdir()}, None)
        (self.pool / name).mkdir()
        (self.pool / f".{name}.size").write_text(f"{size_kib * 1024}\n")
        self.path(name)
        return f"{self.id}:{name}"

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        if fmt not in (None, "raw"):
            raise StorageError(f"unsupported format '{fmt}'")
        if name and not name.startswith(f"vm-{vmid}-"):
            raise StorageError(f"illegal name '{name}' - should be 'vm-{vmid}-*'")
        self.pool.mkdir(parents=True, exist_ok=True)
        name = name or free_disk_name(vmid, {p.name for p in self.pool.iterdir()}, None)
        vg = self.options["vgname"]
        if (self.pool / name).exists():
            raise StorageError(f"lvcreate '{vg}/{name}' error:   Logical Volume \"{name}\" already exists in "
                               f"volume group \"{vg}\"")
        with open(self.pool / name, "wb") as fh:
            fh.truncate(size_kib * 1024)
        self.path(name)
        return f"{self.id}:{name}"

    def free(self, volname: str) -> None:
        if not (self.pool / volname).exists():
            vg = self.options["vgname"]
            raise StorageError(f"lvremove '{vg}/{volname}' error:   Failed to find logical volume \"{vg}/{volname}\"")
        backing = self.pool / volname
        shutil.rmtree(backing) if backing.is_dir() else backing.unlink()
        for snap in self.pool.glob(f"snap_{volname}_*"):  # its snapshots go with it, as thin snapshots' LVs do
            self._remove(snap)
        (self.pool / f".{volname}.size").unlink(missing_ok=True)
        (DEV / self.options["vgname"] / volname).unlink(missing_ok=True)

    # Thin snapshots are emulated (no device-mapper): a snapshot is a copy of the volume, named as
    # PVE names the LV (snap_VOLNAME_SNAP) - of a VM disk's file (sparse), of a container root's tree
    # (every file, owners, modes and links; reflinked where the filesystem shares blocks); a rollback
    # copies it back. Taken while the guest is paused or frozen (guests/snapshot.py), so it is what
    # the volume held at that instant.
    def _snap_file(self, volname: str, snap: str) -> Path:
        return self.pool / f"snap_{volname}_{snap}"

    @staticmethod
    def _size_file(path: Path) -> Path:
        """A container root's size (a directory has none of its own), beside it."""
        return path.with_name(f".{path.name}.size")

    def _copy(self, source: Path, target: Path) -> None:
        if source.is_dir():
            argv = ["cp", "-a", "--reflink=auto", str(source), str(target)]
        else:
            argv = ["cp", "--sparse=always", str(source), str(target)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self._remove(target)
            raise StorageError(f"lvcreate snapshot '{target.name}' error: {done.stderr.strip()}")
        if source.is_dir():
            shutil.copyfile(self._size_file(source), self._size_file(target))

    def _move(self, source: Path, target: Path) -> None:
        """A volume renamed (over a file of that name); a container root's recorded size goes with it."""
        source.replace(target)
        if target.is_dir():
            self._size_file(source).replace(self._size_file(target))

    def _remove(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            self._size_file(path).unlink(missing_ok=True)
        else:
            path.unlink(missing_ok=True)

    def snapshot(self, volname: str, snap: str) -> None:
        if not self.can_snapshot(volname):
            super().snapshot(volname, snap)
        target = self._snap_file(volname, snap)
        if target.exists():
            vg = self.options["vgname"]
            raise StorageError(f"lvcreate '{vg}/{target.name}' error:   Logical Volume \"{target.name}\" already "
                               f"exists in volume group \"{vg}\"")
        self._copy(self.pool / volname, target)

    def snapshot_delete(self, volname: str, snap: str) -> None:
        self._remove(self._snap_file(volname, snap))

    def size(self, volname: str) -> int:
        if (self.pool / volname).is_dir():  # a container's root: its recorded size
            return int((self.pool / f".{volname}.size").read_text())
        return super().size(volname)

    def resize(self, volname: str, size: int) -> None:
        if (self.pool / volname).is_dir():
            (self.pool / f".{volname}.size").write_text(f"{size}\n")
            return
        super().resize(volname, size)

    # A base image is the volume renamed and made read-only; a linked clone of it (or of a snapshot)
    # is, like a thin snapshot's LV, a volume of its own from then on: here a sparse copy.
    def create_base(self, volname: str) -> str:
        if self.is_base(volname):
            raise StorageError("create_base not possible with base image")
        for snap in self.pool.glob(f"snap_{volname}_*"):  # PVE's own spelling of "snapshot"
            raise StorageError(f"unable to create base volume - found snaphost '{snap.name}'")
        new_name = volname.replace("vm-", "base-", 1)
        base = self.pool / new_name
        self._move(self.pool / volname, base)
        base.chmod(0o555 if base.is_dir() else 0o444)  # lvchange -pr: read-only; a tree stays traversable
        (DEV / self.options["vgname"] / volname).unlink(missing_ok=True)
        self.path(new_name)
        return new_name

    def snapshot_source(self, volname: str, snap: str) -> tuple[str, list[str]]:
        return str(self._snap_file(volname, snap)), []

    def rename_volume(self, volname: str, target_vmid: int) -> str:
        """lvrename: a container's root takes its recorded size with it."""
        name = free_disk_name(target_vmid, {p.name for p in self.pool.iterdir()}, None)
        source, target = self.pool / volname, self.pool / name
        if target.exists():
            raise StorageError(f"target volume '{name}' already exists")
        self._move(source, target)
        (DEV / self.options["vgname"] / volname).unlink(missing_ok=True)
        self.path(name)
        return name

    def clone_image(self, volname: str, vmid: int, snap: str | None = None) -> str:
        if snap:
            source = self._snap_file(volname, snap)
        elif not self.is_base(volname):
            raise StorageError("clone_image only works on base images")
        else:
            source = self.pool / volname
        name = free_disk_name(vmid, {p.name for p in self.pool.iterdir()}, None)
        target = self.pool / name
        self._copy(source, target)
        target.chmod(0o755 if target.is_dir() else 0o644)  # -prw
        self.path(name)
        return name

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        source = self._snap_file(volname, snap)
        if not source.exists():
            vg = self.options["vgname"]
            raise StorageError(f"lvremove '{vg}/{source.name}' error:   Failed to find logical volume "
                               f"\"{vg}/{source.name}\"")
        partial = self.pool / f".{volname}.rollback"
        self._remove(partial)  # what a rollback cut short left
        self._copy(source, partial)
        current = self.pool / volname
        if current.is_dir():  # a tree cannot replace a tree in one rename: the old one set aside first
            old = self.pool / f".{volname}.old"
            self._remove(old)
            current.rename(old)
            self._move(partial, current)
            self._remove(old)
        else:
            partial.replace(current)

    def path(self, volname: str) -> Path:
        """/dev/VG/LV, linked to its backing file (activated) when the volume exists; /dev is per boot."""
        device = DEV / self.options["vgname"] / volname
        backing = self.pool / volname
        if backing.exists() and not device.is_symlink():
            device.parent.mkdir(parents=True, exist_ok=True)
            device.symlink_to(backing)
        return device


class RbdBackend(Backend):
    """A Ceph pool, through the `rbd` and `ceph` commands, as PVE's RBD plugin (krbd 0: QEMU opens the
    images itself through librbd, so `path` is QEMU's rbd: file name, which is also what `pvesm path` prints)."""

    @property
    def pool(self) -> str:
        return str(self.options.get("pool", "rbd"))

    FEATURES = BLOCK_FEATURES

    def base_of(self, volname: str) -> str | None:
        parts = volname.split("/")
        return parts[0] if len(parts) == 2 else None

    def create_base(self, volname: str) -> str:
        if self.is_base(volname):
            raise StorageError("create_base not possible with base image")
        name = self.image_name(volname)
        new_name = name.replace("vm-", "base-", 1)
        self.rbd("rename", name, new_name)
        self.rbd("snap", "create", f"{new_name}@__base__")
        self.rbd("snap", "protect", f"{new_name}@__base__")  # a clone's parent snapshot must be protected
        base = self.base_of(volname)
        return f"{base}/{new_name}" if base else new_name

    def snapshot_source(self, volname: str, snap: str) -> tuple[str, list[str]]:
        image = self.image_name(volname)
        return f"rbd:{self.pool}/{image}@{snap}:conf=/etc/pve/ceph.conf:id=admin:keyring={self.keyring}", []

    def clone_image(self, volname: str, vmid: int, snap: str | None = None) -> str:
        if not self.is_base(volname) and not snap:
            raise StorageError(f"{volname} is not a base image and snapname is not provided")
        name = self.image_name(volname)
        if snap:
            try:
                self.rbd("snap", "protect", f"{name}@{snap}")
            except StorageError as exc:
                if "already protected" not in str(exc):
                    raise
        taken = {v["volid"].split(":", 1)[1].rsplit("/", 1)[-1] for v in self.volumes()}
        new_name = free_disk_name(vmid, taken, None)
        self.rbd("clone", f"{self.pool}/{name}@{snap or '__base__'}", f"{self.pool}/{new_name}")
        return new_name if snap else f"{name}/{new_name}"

    def rename_volume(self, volname: str, target_vmid: int) -> str:
        taken = {v["volid"].split(":", 1)[1].rsplit("/", 1)[-1] for v in self.volumes()}
        name = free_disk_name(target_vmid, taken, None)
        self.rbd("rename", self.image_name(volname), name)
        base = self.base_of(volname)
        return f"{base}/{name}" if base else name

    @property
    def keyring(self) -> str:
        return f"/etc/pve/priv/ceph/{self.id}.keyring"

    def rbd(self, *args: str) -> str:
        argv = ["rbd", "--conf", "/etc/pve/ceph.conf", "-p", self.pool, "-n", "client.admin", "--keyring", self.keyring,
                *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise StorageError(f"rbd error: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
        return proc.stdout

    def status(self) -> dict[str, int]:
        proc = subprocess.run(["ceph", "--conf", "/etc/pve/ceph.conf", "--connect-timeout", "5", "df",
                               "--format", "json"], capture_output=True,
                              text=True, timeout=20, check=False)
        if proc.returncode != 0:
            raise StorageError("got timeout")
        for pool in json.loads(proc.stdout).get("pools", []):
            if pool["name"] == self.pool:
                used, avail = int(pool["stats"]["bytes_used"]), int(pool["stats"]["max_avail"])
                return {"total": used + avail, "used": used, "avail": avail}
        raise StorageError(f"pool '{self.pool}' does not exist")

    def volumes(self) -> list[dict[str, Any]]:
        found = []
        for image in json.loads(self.rbd("ls", "-l", "--format", "json") or "[]"):
            name = DISK_NAME.match(image.get("image", ""))
            if name and "snapshot" not in image:
                parent = image.get("parent") or {}
                linked = parent.get("image", "").startswith("base-") and parent.get("snapshot") == "__base__"
                volname = f"{parent['image']}/{image['image']}" if linked else image["image"]
                entry = {"volid": f"{self.id}:{volname}", "content": "images", "format": "raw",
                         "size": int(image["size"]), "vmid": int(name.group(2))}
                if parent:
                    entry["parent"] = f"{parent.get('image')}@{parent.get('snapshot')}"
                found.append(entry)
        return found

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        if fmt not in (None, "raw"):
            raise StorageError(f"unsupported format '{fmt}'")
        if name and not name.startswith(f"vm-{vmid}-"):
            raise StorageError(f"illegal name '{name}' - should be 'vm-{vmid}-*'")
        taken = {v["volid"].split(":", 1)[1] for v in self.volumes()}
        name = name or free_disk_name(vmid, taken, None)
        self.rbd("create", "--image-format", "2", "--size", f"{max(1, size_kib // 1024)}", name)
        return f"{self.id}:{name}"

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        raise StorageError("containers on rbd need krbd, which this kernel does not have")

    def free(self, volname: str) -> None:
        self.check_base_unused(volname)
        name = self.image_name(volname)
        for snap in json.loads(self.rbd("snap", "ls", "--format", "json", name) or "[]"):
            if str(snap.get("protected")) == "true":
                self.rbd("snap", "unprotect", f"{name}@{snap['name']}")
        self.rbd("snap", "purge", name)  # PVE's RBD plugin purges an image's snapshots first
        self.rbd("rm", name)

    def exists(self, volname: str) -> bool:
        try:
            self.rbd("info", self.image_name(volname))
        except StorageError:
            return False
        return True

    def snapshot(self, volname: str, snap: str) -> None:
        self.rbd("snap", "create", f"{self.image_name(volname)}@{snap}")

    def snapshot_delete(self, volname: str, snap: str) -> None:
        self.rbd("snap", "rm", f"{self.image_name(volname)}@{snap}")

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        self.rbd("snap", "rollback", f"{self.image_name(volname)}@{snap}")

    def _rbd_shell(self, *args: str) -> str:
        return shlex.join(["rbd", "--conf", "/etc/pve/ceph.conf", "-p", self.pool, "-n", "client.admin",
                           "--keyring", self.keyring, *args])

    def size(self, volname: str) -> int:
        return int(json.loads(self.rbd("info", "--format", "json", self.image_name(volname)))["size"])

    def resize(self, volname: str, size: int) -> None:
        self.rbd("resize", "--size", f"{size // 1024}K", self.image_name(volname))

    def state_writer(self, volname: str) -> str:
        self.rbd("rm", volname)  # `rbd import` makes the image afresh, the size of the state
        return self._rbd_shell("import", "-", volname)

    def state_reader(self, volname: str) -> str:
        return self._rbd_shell("export", volname, "-")

    def path(self, volname: str) -> Path:
        image = self.image_name(volname)
        return Path(f"rbd:{self.pool}/{image}:conf=/etc/pve/ceph.conf:id=admin:keyring={self.keyring}")


ISCSI_LS = "/usr/bin/iscsi-ls"  # libiscsi-bin's, as PVE runs it
ISCSI_LUN = re.compile(r"^lun(\d+)$")
ISCSI_LS_LUN = re.compile(r"Lun:(\d+)\s+([A-Za-z0-9\-_.:]*)\s+\(Size:([0-9.]*)(k|M|G|T)\)")
ISCSI_UNITS = {"k": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


class IscsiDirectBackend(Backend):
    """LUNs of an iSCSI target that QEMU opens itself through libiscsi (PVE's ISCSIDirectPlugin): the
    LUNs are listed with `iscsi-ls -s` against the portal, named `lunN`, owned by no guest; nothing is
    allocated, freed, snapshotted or resized here. Always active, as PVE reports it."""

    FEATURES = {"copy": {"current": {"raw"}}}

    def lun(self, volname: str) -> int:
        found = ISCSI_LUN.match(volname)
        if not found:
            raise StorageError(f"unable to parse iscsi volume name '{volname}'")
        return int(found.group(1))

    def luns(self) -> dict[str, int]:
        """PVE's iscsi_ls: {lunN: size in bytes} for every disk LUN behind the portal."""
        argv = [ISCSI_LS, "-s", f"iscsi://{self.options['portal']}"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StorageError(f"iscsi error: command '{' '.join(argv)}' failed: got timeout") from exc
        found = {}
        for line in done.stdout.splitlines():
            lun = ISCSI_LS_LUN.search(line.strip())
            if lun:
                found[f"lun{lun.group(1)}"] = int(float(lun.group(3)) * ISCSI_UNITS[lun.group(4)])
        if done.returncode != 0 and "TESTUNITREADY failed with SENSE KEY" not in done.stderr:
            raise StorageError(f"iscsi error: command '{' '.join(argv)}' failed: exit code {done.returncode}")
        return found

    def status(self) -> dict[str, int]:
        return {"total": 0, "used": 0, "avail": 0}

    def volumes(self) -> list[dict[str, Any]]:
        return [{"volid": f"{self.id}:{name}", "name": name, "content": "images", "format": "raw", "size": size}
                for name, size in sorted(self.luns().items())]

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        raise StorageError("can't allocate space in iscsi storage")

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        raise StorageError("can't allocate space in iscsi storage")

    def free(self, volname: str) -> None:
        raise StorageError("can't free space in iscsi storage")

    def create_base(self, volname: str) -> str:
        raise StorageError("can't create base images in iscsi storage")

    def clone_image(self, volname: str, vmid: int, snap: str | None = None) -> str:
        raise StorageError("can't clone images in iscsi storage")

    def is_base(self, volname: str) -> bool:
        return False

    # no path(): a LUN is no file on the node; what QEMU and `pvesm path` get is location()
    def location(self, volname: str) -> str:
        return f"iscsi://{self.options['portal']}/{self.options['target']}/{self.lun(volname)}"

    def exists(self, volname: str) -> bool:
        return volname in self.luns()

    def size(self, volname: str) -> int:
        self.lun(volname)
        return self.luns().get(volname, 0)

    def resize(self, volname: str, size: int) -> None:
        raise StorageError("volume resize is not possible on iscsi device")

    def snapshot(self, volname: str, snap: str) -> None:
        raise StorageError("volume snapshot is not possible on iscsi device")

    def snapshot_delete(self, volname: str, snap: str) -> None:
        raise StorageError("volume snapshot delete is not possible on iscsi device")

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        raise StorageError("volume snapshot rollback is not possible on iscsi device")


class NfsBackend(DirBackend):
    """PVE's NFSPlugin: a directory storage on a mounted export. Whatever reads or writes it activates
    it first, as PVE's activate_storage does: the server must answer (`showmount`, else "storage 'ID'
    is not online"), and the export is mounted at `path` if it is not (see nfs.py for the mount)."""

    def __init__(self, storage_id: str, options: dict[str, Any]) -> None:
        super().__init__(storage_id, options)
        self.active = False

    def activate(self) -> None:
        if self.active:
            return
        server, export, path = str(self.options["server"]), str(self.options["export"]), str(self.options["path"])
        if not nfs.check_connection(self.options):
            raise StorageError(f"storage '{self.id}' is not online")
        if not nfs.is_mounted(server, export, path):
            Path(path).mkdir(parents=True, exist_ok=True)  # only while unmounted: a dead server would hang it
            nfs.mount(self.id, server, export, path)
        self.active = True

    @property
    def root(self) -> Path:
        self.activate()
        return Path(self.options["path"])

    def status(self) -> dict[str, int]:
        return filesystem_figures(self.root)  # no mkdir: a mount point, made only while unmounted

    def volumes(self) -> list[dict[str, Any]]:
        self.activate()
        return super().volumes()

    def path(self, volname: str) -> Path:
        self.activate()
        return super().path(volname)


BACKENDS = {"dir": DirBackend, "lvmthin": LvmThinBackend, "rbd": RbdBackend, "iscsidirect": IscsiDirectBackend,
            "nfs": NfsBackend, "zfspool": ZfsPoolBackend}


def backend(storage_id: str, options: dict[str, Any]) -> Backend:
    return BACKENDS[options["type"]](storage_id, options)


def volume_backend(volid: str) -> tuple[Backend, str]:
    """The backend of the storage a volume ID names (from storage.cfg), and the volume's name on it."""
    storage_id, volname = parse_volume_id(volid)
    return backend(storage_id, get(storage_id)), volname


def volume_exists(volid: str) -> bool:
    store, volname = volume_backend(volid)
    return store.exists(volname)


def volume_path(volid: str) -> Path:
    """Where a volume is, as a path on this node."""
    store, volname = volume_backend(volid)
    return store.path(volname)


def volume_location(volid: str) -> str:
    """What `pvesm path` prints and QEMU opens: a path, or a URL (iscsi://) for QEMU's own driver."""
    store, volname = volume_backend(volid)
    return store.location(volname)


def protection_file(archive: Path) -> Path:
    """The file whose presence protects a backup (PVE's protection_file_path)."""
    return Path(f"{archive}.protected")


def prune_backups(storage_id: str, keep: dict[str, int] | None, vmid: int | None, kind: str | None,
                  dry_run: bool, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """PVE::Storage::prune_backups: mark the storage's backups by `keep` (the storage's own
    `prune-backups` when None) and, unless a dry run, remove those marked `remove`."""
    options = get(storage_id)
    if "backup" not in content_of(options):
        raise StorageError(f"storage '{storage_id}' does not support backups")
    if keep is None:
        if "prune-backups" not in options:
            raise StorageError(f"no prune-backups options configured for storage '{storage_id}'")
        keep = prune.parse_options(str(options["prune-backups"]))
    store = backend(storage_id, options)
    backups = [b for b in store.volumes() if b["content"] == "backup" and (vmid is None or b.get("vmid") == vmid)]
    marked = prune.marks(backups, keep, vmid, kind)
    failed = False
    for entry in marked if not dry_run else []:
        if entry["mark"] != "remove":
            continue
        log(f"removing backup '{entry['volid']}'")
        try:
            store.free(entry["volid"].split(":", 1)[1])
        except (StorageError, OSError) as exc:
            log(f"error when removing backup '{entry['volid']}' - {exc}")
            failed = True
    if failed:
        raise StorageError("error pruning backups - check log")
    return marked


def _archive_format(name: str) -> str:
    for ext in ("tar.zst", "tar.gz", "tar.xz", "tar.lzo", "vma.zst", "vma.gz", "vma.lzo", "vma", "tar", "tgz"):
        if name.endswith("." + ext):
            return ext
    return name.rsplit(".", 1)[-1]

