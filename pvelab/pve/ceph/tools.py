"""Where PVE keeps Ceph's files, and the checks every pveceph command and Ceph API call starts with
(PVE::Ceph::Tools), with PVE's messages. Paths are relative to `root` ("/" in a node; tests use a
directory)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BINARIES = {"ceph_bin": "/usr/bin/ceph", "ceph_mon": "/usr/bin/ceph-mon", "ceph_mgr": "/usr/bin/ceph-mgr",
            "ceph_osd": "/usr/bin/ceph-osd", "ceph_mds": "/usr/bin/ceph-mds", "ceph_volume": "/usr/sbin/ceph-volume"}
PVE_CONF = "/etc/pve/ceph.conf"
PVE_CONF_DIR = "/etc/pve/ceph"
CEPH_CONF = "/etc/ceph/ceph.conf"
ADMIN_KEYRING = "/etc/pve/priv/ceph.client.admin.keyring"
LOCAL_ADMIN_KEYRING = "/etc/ceph/ceph.client.admin.keyring"
MON_KEYRING = "/etc/pve/priv/ceph.mon.keyring"
CRASH_KEYRING = "/etc/pve/ceph/ceph.client.crash.keyring"
BOOTSTRAP_OSD_KEYRING = "/var/lib/ceph/bootstrap-osd/ceph.keyring"
INSTALL_FLAG = "/run/pve-ceph-install-flag"  # while `pveceph install` runs, Ceph counts as not installed


class CephError(Exception):
    """A refusal, in PVE's words."""


@dataclass(frozen=True)
class CephPaths:
    root: Path = Path("/")

    def __call__(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def check_installed(self, service: str = "ceph_bin") -> None:
        binary = self(BINARIES[service])
        if not (binary.is_file() and binary.stat().st_mode & 0o111) or self(INSTALL_FLAG).is_file():
            raise CephError(f"binary not installed: {BINARIES[service]}")

    def check_inited(self) -> None:
        """`pveceph init` has run: ceph.conf and the config directory exist in /etc/pve."""
        self.check_installed("ceph_mon")
        missing = [f"missing '{PVE_CONF}'"] if not self(PVE_CONF).is_file() else []
        missing += [f"missing '{PVE_CONF_DIR}'"] if not self(PVE_CONF_DIR).is_dir() else []
        if missing:
            raise CephError("pveceph configuration not initialized - " + ", ".join(missing))

    def check_configured(self) -> None:
        """Initialised, with the admin keyring (pool create, flags, fs need it)."""
        self.check_inited()
        if not self(ADMIN_KEYRING).is_file():
            raise CephError(f"ceph not fully configured - missing '{ADMIN_KEYRING}'")

    def check_symlink(self) -> None:
        """/etc/ceph/ceph.conf may only be PVE's link to /etc/pve/ceph.conf."""
        link = self(CEPH_CONF)
        if (str(link.readlink()) != PVE_CONF) if link.is_symlink() else link.exists():
            raise CephError(f"file '{CEPH_CONF}' already exists and is not a symlink to {PVE_CONF}")


def parse_version(text: str) -> tuple[str, str, list[int]] | None:
    """(version, build commit, [major, minor, ...]) from `ceph --version`, or None."""
    match = re.match(r"^ceph.*\sv?(\d+(?:\.\d+)+)\s+\(([a-zA-Z0-9]+)\)", text)
    if match is None:
        return None
    return match.group(1), match.group(2), [int(p) for p in re.split(r"[.-]", match.group(1))]
