"""Where a lab keeps its files, and the record (lab.json) that says what is up."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.twin.spec import LabSpec

LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def state_dir() -> Path:
    """The default lab's files."""
    return Path(os.environ.get("PVELAB_STATE_DIR", "/var/lib/pvelab/lab"))


def labs_dir() -> Path:
    """Named labs' files, one directory each (`pvelab twin up --lab NAME`)."""
    return Path(os.environ.get("PVELAB_LABS_DIR", "/var/lib/pvelab/labs"))


def check_lab_name(name: str) -> str:
    if not LAB_NAME.fullmatch(name):
        raise TwinError(f"'{name}' is not a lab name",
                        "use a lower-case letter, then up to 30 lower-case letters, digits or dashes (e.g. s01)")
    return name


def cache_dir() -> Path:
    """Built node images; kept across labs so a second `up` does not rebuild."""
    return Path(os.environ.get("PVELAB_CACHE_DIR", "/var/cache/pvelab"))


@dataclass(frozen=True)
class LabPaths:
    root: Path = field(default_factory=state_dir)

    @classmethod
    def of(cls, name: str) -> LabPaths:
        """The default lab's paths for "", a named lab's otherwise."""
        return cls() if name == "" else cls(labs_dir() / check_lab_name(name))

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "ssh" / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def grader_token(self) -> Path:
        """The grader's read-only API token (`USER@REALM!TOKEN=SECRET`), kept by the course lab's playbook."""
        return self.root / "grader-token"

    @property
    def events(self) -> Path:
        """Hardware events a user can read: watchdog resets, power actions, faults injected."""
        return self.root / "events.log"

    @property
    def supervisor_socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def shared_dir(self) -> Path:
        """One directory every node mounts at NODE_SHARED_DIR: storage that really is shared."""
        return self.root / "shared"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def data_disks(self, name: str) -> Path:
        """The node's data disks (sparse files, shown to it as /dev/sdb, ...)."""
        return self.node_dir(name) / "data-disks"

    def thin_pool(self, name: str) -> Path:
        """The node's emulated LVM thin pool (`local-lvm`): a directory of its own, not its overlay root,
        as PVE's pool is a volume beside the root filesystem."""
        return self.node_dir(name) / "thin-pool"

    def zfs_pool(self, name: str) -> Path:
        """Where the node's `rpool` (a btrfs filesystem in zfs-pool.img) is mounted on the host."""
        return self.node_dir(name) / "rpool"

    def zfs_pool_image(self, name: str) -> Path:
        return self.node_dir(name) / "zfs-pool.img"

    def disk_upper(self, name: str) -> Path:
        return self.node_dir(name) / "disk" / "upper"

    def disk_work(self, name: str) -> Path:
        return self.node_dir(name) / "disk" / "work"

    def rootfs(self, name: str) -> Path:
        return self.node_dir(name) / "rootfs"

    def console_log(self, name: str) -> Path:
        return self.node_dir(name) / "console.log"

    def watchdog_fifo(self, name: str) -> Path:
        return self.node_dir(name) / "watchdog"

    def watchdog_state(self, name: str) -> Path:
        return self.node_dir(name) / "watchdog.json"

    def bmc_dir(self, name: str) -> Path:
        return self.node_dir(name) / "bmc"


@dataclass(frozen=True)
class LabRecord:
    """What `up` decided once and every later command reads: the spec, secrets and image."""

    spec: LabSpec
    root_password: str
    bmc_password: str
    image: str
    student_password: str = ""  # the course lab's student account (labs made before it have none)

    @classmethod
    def new(cls, spec: LabSpec, image: str) -> LabRecord:
        return cls(spec, secrets.token_urlsafe(12), secrets.token_urlsafe(12), image, secrets.token_urlsafe(12))

    def save(self, paths: LabPaths) -> None:
        data = {
            "spec": self.spec.to_dict(),
            "root_password": self.root_password,
            "bmc_password": self.bmc_password,
            "image": self.image,
            "student_password": self.student_password,
        }
        paths.root.mkdir(parents=True, exist_ok=True)
        tmp = paths.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(paths.record)

    @classmethod
    def load(cls, paths: LabPaths) -> LabRecord | None:
        try:
            data = json.loads(paths.record.read_text())
        except FileNotFoundError:
            return None
        return cls(
            LabSpec.from_dict(data["spec"]), data["root_password"], data["bmc_password"], data["image"],
            data.get("student_password", ""),
        )
