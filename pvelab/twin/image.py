"""The node root filesystem: built once per PVE major with mmdebstrap, cached by a hash of its recipe.

Real PVE releases sit on a Debian release, and so do the twin's nodes: PVE 8 on Debian 12
(bookworm: corosync 3.1.7, Python 3.11), PVE 9 on Debian 13 (trixie: corosync 3.1.9, Python 3.13)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.nested import first_boot_hook
from pvelab.twin import guest_os
from pvelab.twin.host import require_tools
from pvelab.twin.state import cache_dir, labs_dir, state_dir

DEBIAN_SUITE = {"8": "bookworm", "9": "trixie"}  # PVE major -> the Debian release it is built on
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "corosync",
    "corosync-qdevice", "corosync-qnetd", "python3", "iproute2", "iputils-ping", "procps", "less", "fuse3", "rsync",
    "ca-certificates", "ipmitool", "python3-fuse", "python3-yaml", "openssl",
    # guests: QEMU (TCG here) and what the tiny guest OS is made of (guest_os builds it into local:iso)
    "qemu-system-x86", "qemu-utils", "busybox-static", "linux-image-cloud-amd64", "xorriso", "zstd", "lzop",
    "lxc",  # containers (pct): Debian's LXC runs privileged containers inside the node
    # Ceph from Debian (16.2 on bookworm, 18.2 on trixie): `pveceph install` finds it already there. OSDs are
    # made by the PVE layer as raw bluestore (no LVM here), so ceph-volume is not needed; qemu-block-extra
    # gives QEMU its librbd driver for disks on rbd storages.
    "ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common", "qemu-block-extra",
    "libiscsi-bin",  # iscsi-ls: iscsidirect storages list their LUNs with it, as on PVE
    "btrfs-progs", "cstream",  # zfspool storages are btrfs subvolumes here (no ZFS): snapshots, send/receive for pvesr
    "nfs-common",  # showmount and rpcinfo: PVE's NFS checks and `pvesm scan nfs` (a PVE node has it too)
)
# Units that make no sense in a lab node container, or slow its boot.
MASKED_UNITS = (
    "systemd-firstboot.service", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
    "fstrim.timer", "man-db.timer", "systemd-networkd-wait-online.service", "getty@tty1.service",
    "console-getty.service",
    # LXC's own bridge (lxcbr0, 10.0.3.0/24, dnsmasq) and autostart: PVE uses neither; CTs join vmbr0.
    "lxc-net.service", "lxc.service", "lxc-monitord.service",
    # nfs-common's kernel-client side: rpc_pipefs is the kernel's sunrpc filesystem, which this kernel
    # does not have (no NFS client), so its mount and the pNFS block daemon that needs it would fail
    # at every boot; the NFS storage's client is pvelab's FUSE one (docs/pve/storage.md).
    "run-rpc_pipefs.mount", "nfs-blkmap.service",
)
CUSTOMIZE = (
    # Host keys and machine-id are made per node by the twin, never shared through the image.
    'rm -f "$1"/etc/ssh/ssh_host_* "$1"/etc/machine-id && touch "$1"/etc/machine-id',
    # As on a fresh PVE node, corosync has no config (its unit's condition keeps it stopped) until a cluster exists.
    'rm -f "$1"/etc/corosync/corosync.conf',
    "printf 'PermitRootLogin yes\\nUseDNS no\\n' > \"$1\"/etc/ssh/sshd_config.d/pvelab.conf",
    "mkdir -p \"$1\"/etc/systemd/journald.conf.d && "
    "printf '[Journal]\\nRuntimeMaxUse=16M\\nSystemMaxUse=32M\\n' > \"$1\"/etc/systemd/journald.conf.d/pvelab.conf",
    'chroot "$1" systemctl mask ' + " ".join(MASKED_UNITS),
    # Installed but off, as on a PVE node: qdevice starts when `pvecm qdevice setup` asks; qnetd only
    # runs on the lab host chosen to be the QDevice server (`systemctl enable --now corosync-qnetd`).
    'chroot "$1" systemctl disable corosync-qdevice corosync-qnetd',
    # ceph-osd pulls in nvme-cli, whose boot unit loads nvme-fabrics and connects nothing on a PVE node;
    # this kernel has no such module, so the unit would fail on every boot: it runs only where NVMe-oF is.
    "mkdir -p \"$1\"/etc/systemd/system/nvmf-autoconnect.service.d && "
    "printf '[Unit]\\nConditionPathExists=/sys/module/nvme_fabrics\\n' "
    "> \"$1\"/etc/systemd/system/nvmf-autoconnect.service.d/pvelab.conf",
    # Debian 12's Ceph 16.2.15 warns POOL_TOO_MANY_PGS for every pool in pg_autoscale_mode warn (PVE's
    # default) whose pg_num is already right ("has 32, should have 32"); the Ceph that PVE 8 ships (17.2,
    # 18.2) warns only when they differ. The same one-word fix as later Ceph, where the file has the bug.
    'f="$1"/usr/share/ceph/mgr/pg_autoscaler/module.py; [ ! -f "$f" ] || sed -i -z '
    '"s/                else:\\n                    too_many.append(msg)/'
    "                elif p['pg_num_final'] < p['pg_num_target']:\\n                    too_many.append(msg)/\" "
    '"$f"',
    'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
)


def recipe(pve_version: str) -> dict[str, object]:
    return {"suite": DEBIAN_SUITE[pve_version], "variant": "apt", "packages": list(PACKAGES),
            "customize": list(CUSTOMIZE), "guest_os": guest_os_digest()}


def guest_os_digest() -> str:
    """The tiny guest OS is built into the image, so a change to its builder (or to the first-boot hook
    its ISO carries) makes a new image."""
    return hashlib.sha256(Path(guest_os.__file__).read_bytes() + first_boot_hook()).hexdigest()[:16]


def recipe_hash(data: dict[str, object]) -> str:
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_dir(pve_version: str, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "images" / recipe_hash(recipe(pve_version))


def mmdebstrap_argv(pve_version: str, target: Path) -> list[str]:
    argv = ["mmdebstrap", "--variant=apt", "--include=" + ",".join(PACKAGES)]
    argv += [f"--customize-hook={hook}" for hook in CUSTOMIZE]
    return [*argv, DEBIAN_SUITE[pve_version], str(target)]


RECIPE_FILE = ".pvelab-recipe.json"  # in each image: what it was built from


def images_in_use(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[Path]:
    """Images a lab still needs: the one each lab's record names (its nodes' disks sit on it, powered
    on or not) and every overlay's lower directory mounted now."""
    used: set[Path] = set()
    records = [state_dir() / "lab.json", *labs_dir().glob("*/lab.json")]
    for record in records:
        try:
            used.add(Path(json.loads(record.read_text())["image"]))
        except (OSError, ValueError, KeyError):
            continue
    try:
        for line in mountinfo.read_text().splitlines():
            if " - overlay " in line:
                used.update(Path(part.split("=", 1)[1]) for part in line.split(" - overlay ")[1].split(",")
                            if part.startswith("lowerdir="))
    except OSError:
        pass
    return used


def prune_older_images(keep: Path, suite: str, log: Callable[[str], None]) -> None:
    """Images are ~0.4 GiB each: once a new one for a Debian release is built, the older ones go -
    except those a lab still uses (a running lab's nodes have their root on it: deleting it would
    pull the files from under them, as a test run building a newer image once did to a lab beside it)."""
    in_use = images_in_use()
    for other in keep.parent.iterdir():
        try:
            built_from = json.loads((other / RECIPE_FILE).read_text())
        except (OSError, ValueError):
            continue  # not an image this code built (or one being built)
        if other != keep and built_from.get("suite") == suite:
            if other in in_use:
                log(f"kept the older {suite} node image {other.name}: a lab uses it (it goes when a newer "
                    "image is built after that lab is down)")
                continue
            shutil.rmtree(other, ignore_errors=True)
            log(f"removed the older {suite} node image {other.name}")


def ensure_image(pve_version: str, cache: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Return the cached root filesystem for nodes of this PVE major, building it first if needed."""
    final = image_dir(pve_version, cache)
    if (final / "etc" / "os-release").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Several `up`s at once (class.yml starts a server's labs together) build it once: the others
    # wait here and find it made.
    with open(final.with_name(final.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "etc" / "os-release").exists():
            return final
        return _build_image(pve_version, final, log)


def _build_image(pve_version: str, final: Path, log: Callable[[str], None]) -> Path:
    require_tools("mmdebstrap", "xorriso")
    building = final.with_name(final.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the Debian {DEBIAN_SUITE[pve_version]} node image {final.name} for PVE {pve_version} "
        "with mmdebstrap (once; about a minute)...")
    started = time.monotonic()
    proc = subprocess.run(mmdebstrap_argv(pve_version, building), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        print(tail, file=sys.stderr)
        raise TwinError(
            "building the node image with mmdebstrap failed",
            "check that the Debian mirror in /etc/apt/sources.list* is reachable, then run up again",
        )
    guest_os.build_iso(building)
    guest_os.build_ct_template(building)
    # The node runs no kernel of its own: the guest OS carries a copy of it, so drop the rest.
    for leftover in [*(building / "boot").glob("*"), *(building / "lib" / "modules").glob("*")]:
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    (building / RECIPE_FILE).write_text(json.dumps(recipe(pve_version), sort_keys=True) + "\n")
    building.rename(final)
    prune_older_images(final, DEBIAN_SUITE[pve_version], log)
    log(f"node image ready in {time.monotonic() - started:.0f} s: {final}")
    return final
