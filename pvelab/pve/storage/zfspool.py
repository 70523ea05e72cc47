"""The `zfspool` storage type on btrfs: this kernel has no ZFS, and btrfs is the copy-on-write
filesystem it has with what replication needs - read-only snapshots in O(1), and a send stream of
only what changed between two of them, received on another node into the same snapshot.

The pool `rpool/data` is the directory /rpool/data (a btrfs filesystem the twin gives each node,
where a ZFS pool would be mounted). A VM disk `vm-100-disk-0` is a subvolume of that name holding
one raw file, `/dev/zvol/rpool/data/vm-100-disk-0` links to that file as ZFS's zvol device would
be; a container's `subvol-100-disk-0` is the subvolume itself (a ZFS filesystem dataset is a
directory too). A snapshot `vol@snap` is a read-only snapshot subvolume of that name beside the
volume, as ZFS names it. `pvesm export`/`import` in the `zfs` format carry a btrfs send stream:
full, or incremental from a base snapshot both sides hold (`btrfs send -p`). What differs from ZFS:
docs/pve/storage.md."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import IO, Any

from pvelab.pve.storage.backend import ANY_FORMAT, DISK_NAME, Backend, disk_usage, free_disk_name, tree_usage
from pvelab.pve.storage.config import StorageError

ZVOL_DIR = Path("/dev/zvol")
IMAGE_FILE = "disk.raw"  # the one file in a VM disk's subvolume
# ZFSPoolPlugin's volume_has_feature table (pve-storage), `replicate` included: only zfspool has it
FEATURES = {"snapshot": {"current": ANY_FORMAT, "snap": ANY_FORMAT},
            "clone": {"base": ANY_FORMAT},
            "template": {"current": ANY_FORMAT},
            "copy": {"base": ANY_FORMAT, "current": ANY_FORMAT},
            "sparseinit": {"base": ANY_FORMAT, "current": ANY_FORMAT},
            "replicate": {"base": ANY_FORMAT, "current": ANY_FORMAT},
            "rename": {"current": ANY_FORMAT}}


def btrfs(*args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | int | None = None) -> str:
    """A btrfs command; a failure is PVE's "zfs error: ..." with what the command said."""
    quiet = [] if args[:2] == ("subvolume", "show") else ["-q"]  # -q silences `show` whole
    done = subprocess.run(["btrfs", *quiet, *args], stdin=stdin, stderr=subprocess.PIPE, check=False,
                          stdout=stdout if stdout is not None else subprocess.PIPE)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise StorageError(f"zfs error: {said or 'btrfs ' + args[0] + ' failed'}")
    return done.stdout.decode(errors="replace") if isinstance(done.stdout, bytes) else ""


def is_btrfs(path: Path) -> bool:
    """Whether `path` is on btrfs: the type of the mount holding it (the longest mount point above it)."""
    best, kind = "", ""
    real = str(path.resolve())
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            mountpoint, fstype = fields[4], fields[fields.index("-") + 1]
            if (real == mountpoint or real.startswith(mountpoint.rstrip("/") + "/")) and len(mountpoint) >= len(best):
                best, kind = mountpoint, fstype
    return kind == "btrfs"


class ZfsPoolBackend(Backend):
    FEATURES = FEATURES

    @property
    def dataset(self) -> str:
        return str(self.options["pool"])

    @property
    def root(self) -> Path:
        """Where the pool's dataset is mounted: `mountpoint`, else /POOL as ZFS mounts it by default."""
        return Path(self.options.get("mountpoint") or f"/{self.dataset}")

    def activate(self) -> None:
        if not self.root.is_dir() or not is_btrfs(self.root):
            raise StorageError(f"zfs error: cannot open '{self.dataset}': dataset does not exist")

    def status(self) -> dict[str, int]:
        self.activate()
        st = os.statvfs(self.root)
        avail = st.f_bavail * st.f_frsize
        used = sum(self._used(p) for p in self.root.iterdir() if DISK_NAME.match(p.name))
        return {"total": used + avail, "used": used, "avail": avail}  # ZFS: size is used + available

    def _used(self, volume: Path) -> int:
        return tree_usage(volume) if volume.is_dir() else disk_usage(volume)

    def volumes(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        found = []
        for volume in sorted(self.root.iterdir()):
            name = DISK_NAME.match(volume.name)
            if not name or name.group(3) or not volume.is_dir():
                continue
            rootdir = volume.name.startswith("subvol-")
            found.append({"volid": f"{self.id}:{volume.name}", "content": "rootdir" if rootdir else "images",
                          "format": "subvol" if rootdir else "raw", "size": self.size(volume.name),
                          "vmid": int(name.group(2)), "used": tree_usage(volume),
                          "ctime": int(volume.stat().st_ctime)})
        return found

    def _taken(self) -> set[str]:
        return {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()

    def _create(self, name: str) -> Path:
        self.activate()
        volume = self.root / name
        if volume.exists():
            raise StorageError(f"zfs error: cannot create '{self.dataset}/{name}': dataset already exists")
        btrfs("subvolume", "create", str(volume))
        return volume

    def alloc(self, vmid: int, name: str | None, size_kib: int, fmt: str | None) -> str:
        if fmt not in (None, "raw"):
            raise StorageError(f"unsupported format '{fmt}'")
        if name and not name.startswith(f"vm-{vmid}-"):
            raise StorageError(f"illegal name '{name}' - should be 'vm-{vmid}-*'")
        name = name or free_disk_name(vmid, self._taken(), None)
        volume = self._create(name)
        with open(volume / IMAGE_FILE, "wb") as fh:
            fh.truncate(size_kib * 1024)  # sparse, as a zvol with `sparse 1`
        self.path(name)
        return f"{self.id}:{name}"

    def alloc_rootdir(self, vmid: int, size_kib: int) -> str:
        name = free_disk_name(vmid, self._taken(), None).replace("vm-", "subvol-", 1)
        self._create(name)
        self._size_file(name).write_text(f"{size_kib * 1024}\n")  # ZFS's refquota, kept (not enforced)
        return f"{self.id}:{name}"

    def _size_file(self, volname: str) -> Path:
        return self.root / f".{volname}.size"

    def free(self, volname: str) -> None:
        volume = self.root / volname
        if not volume.is_dir():
            raise StorageError(f"zfs error: cannot open '{self.dataset}/{volname}': dataset does not exist")
        for snap in self.snapshots(volname):  # zfs destroy -r: its snapshots go with it
            btrfs("subvolume", "delete", str(self._snapshot_dir(volname, snap)))
        btrfs("subvolume", "delete", str(volume))
        self._size_file(volname).unlink(missing_ok=True)
        (ZVOL_DIR / self.dataset / volname).unlink(missing_ok=True)

    def exists(self, volname: str) -> bool:
        return (self.root / volname).is_dir()

    def path(self, volname: str) -> Path:
        """/dev/zvol/POOL/NAME for a VM disk (linked to its file while it exists; /dev is per boot);
        a container's subvolume is its directory."""
        if volname.startswith("subvol-"):
            return self.root / volname
        device = ZVOL_DIR / self.dataset / volname
        image = self.root / volname / IMAGE_FILE
        if image.exists() and not device.is_symlink():
            device.parent.mkdir(parents=True, exist_ok=True)
            device.symlink_to(image)
        return device

    def volume_format(self, volname: str) -> str:
        return "subvol" if self.image_name(volname).startswith("subvol-") else "raw"

    def size(self, volname: str) -> int:
        if volname.startswith("subvol-"):
            return int(self._size_file(volname).read_text())
        return (self.root / volname / IMAGE_FILE).stat().st_size

    def resize(self, volname: str, size: int) -> None:
        if volname.startswith("subvol-"):
            self._size_file(volname).write_text(f"{size}\n")
            return
        os.truncate(self.root / volname / IMAGE_FILE, size)

    # -- snapshots: read-only snapshot subvolumes named VOLUME@SNAP ---------------------------------
    def _snapshot_dir(self, volname: str, snap: str) -> Path:
        return self.root / f"{volname}@{snap}"

    def snapshots(self, volname: str) -> dict[str, dict[str, Any]]:
        """PVE's volume_snapshot_info: {snap: {id, timestamp}}, oldest first. The id is the snapshot's
        identity across nodes (ZFS's guid): a received copy carries the UUID of what was sent."""
        found = []
        for path in self.root.glob(f"{glob_escape(volname)}@*"):
            shown = btrfs("subvolume", "show", str(path))
            uuid = _field(shown, "UUID")
            received = _field(shown, "Received UUID")
            generation = int(_field(shown, "Gen at creation") or 0)
            found.append((generation, path.name.split("@", 1)[1],
                          {"id": received if received not in ("", "-") else uuid,
                           "timestamp": int(path.stat().st_ctime)}))
        # creation order (`zfs list -s creation`): btrfs's generation counts transactions, finer than ctime
        return {name: info for _, name, info in sorted(found, key=lambda item: (item[2]["timestamp"], item[0]))}

    def snapshot(self, volname: str, snap: str) -> None:
        target = self._snapshot_dir(volname, snap)
        if target.exists():
            raise StorageError(f"zfs error: cannot create snapshot '{self.dataset}/{volname}@{snap}': "
                               "dataset already exists")
        btrfs("subvolume", "snapshot", "-r", str(self.root / volname), str(target))

    def snapshot_delete(self, volname: str, snap: str) -> None:
        target = self._snapshot_dir(volname, snap)
        if not target.exists():
            raise StorageError("zfs error: could not find any snapshots to destroy; check snapshot names.")
        btrfs("subvolume", "delete", str(target))

    def snapshot_rollback(self, volname: str, snap: str) -> None:
        """zfs rollback: only to the most recent snapshot (PVE checks it first, with this text)."""
        snaps = list(self.snapshots(volname))
        if snap not in snaps:
            raise StorageError(f"zfs error: cannot open '{self.dataset}/{volname}@{snap}': dataset does not exist")
        if snaps[-1] != snap:
            raise StorageError(f"can't rollback, '{snap}' is not most recent snapshot on '{self.dataset}/{volname}'")
        self._replace_with(volname, snap)

    def _replace_with(self, volname: str, snap: str) -> None:
        """The volume made what the snapshot holds: a writable snapshot of it in the volume's place."""
        volume = self.root / volname
        if volume.exists():
            btrfs("subvolume", "delete", str(volume))
        btrfs("subvolume", "snapshot", str(self._snapshot_dir(volname, snap)), str(volume))

    def snapshot_source(self, volname: str, snap: str) -> tuple[str, list[str]]:
        return str(self._snapshot_dir(volname, snap) / IMAGE_FILE), []

    # -- export and import in the `zfs` format: a btrfs send stream -----------------------------------
    def export(self, volname: str, snap: str, base: str | None, out: IO[bytes]) -> None:
        """pvesm export VOLID zfs - -snapshot SNAP [-base BASE]: the snapshot, whole or what changed since BASE."""
        if not self._snapshot_dir(volname, snap).exists():
            raise StorageError(f"zfs error: cannot open '{self.dataset}/{volname}@{snap}': dataset does not exist")
        parent = ["-p", str(self._snapshot_dir(volname, base))] if base else []
        btrfs("send", *parent, str(self._snapshot_dir(volname, snap)), stdout=out)

    def import_stream(self, volname: str, snap: str, base: str | None, stream: IO[bytes]) -> None:
        """pvesm import VOLID zfs - -snapshot SNAP [-base BASE]: as `zfs recv -F`, the volume is left at
        the received snapshot; a failed receive leaves the volume as it was."""
        self.activate()
        volume = self.root / volname
        if base is None and volume.exists():
            raise StorageError(f"volume '{self.dataset}/{volname}' already exists")
        if base is not None and not self._snapshot_dir(volname, base).exists():
            raise StorageError(f"base snapshot '{self.dataset}/{volname}@{base}' doesn't exist")
        if self._snapshot_dir(volname, snap).exists():
            raise StorageError(f"zfs error: destination '{self.dataset}/{volname}@{snap}' exists")
        try:
            btrfs("receive", "-e", str(self.root), stdin=stream)
        except StorageError:
            if self._snapshot_dir(volname, snap).exists():  # a stream cut short leaves a partial subvolume
                subprocess.run(["btrfs", "-q", "subvolume", "delete", str(self._snapshot_dir(volname, snap))],
                               capture_output=True, check=False)
            raise
        self._replace_with(volname, snap)
        self.path(volname)


def _field(shown: str, name: str) -> str:
    found = re.search(rf"^\s*{re.escape(name)}:\s*(\S*)", shown, re.M)
    return found.group(1) if found else ""


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
