"""The PVE version a twin node presents (chosen per lab: 8 or 9), and `pveversion`."""

from __future__ import annotations

import os
import subprocess
import sys

MAJOR_FILE = "/usr/share/pvelab/pve-major"  # a str: watchdog-mux reads it without importing pathlib
RELEASES = {
    "9": {"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83"},
    "8": {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"},
}


def major() -> str:
    try:
        with open(MAJOR_FILE) as fh:
            value = fh.read().strip()
    except FileNotFoundError:
        return "9"
    return value if value in RELEASES else "9"


def version_info() -> dict[str, str]:
    return dict(RELEASES[major()])


def pveversion_line() -> str:
    info = version_info()
    return f"pve-manager/{info['version']}/{info['repoid']} (running kernel: {os.uname().release})"


# `pveversion -v`: PVE's package list (pve-manager's APT versions call), in its order: proxmox-ve,
# pve-manager, kernels, then the rest by name; optional packages only where installed.
LISTED_PACKAGES = (
    "ceph-fuse", "corosync", "libjs-extjs", "libknet1", "libproxmox-acme-perl", "libproxmox-backup-qemu0",
    "libproxmox-rs-perl", "libpve-access-control", "libpve-cluster-api-perl", "libpve-cluster-perl",
    "libpve-common-perl", "libpve-guest-common-perl", "libpve-http-server-perl", "libpve-notify-perl",
    "libpve-rs-perl", "libpve-storage-perl", "libqb0", "libspice-server1", "lvm2", "lxc-pve", "lxcfs", "novnc-pve",
    "proxmox-backup-client", "proxmox-backup-restore-image", "proxmox-mail-forward", "proxmox-mini-journalreader",
    "proxmox-widget-toolkit", "pve-cluster", "pve-container", "pve-docs", "pve-edk2-firmware", "pve-firewall",
    "pve-firmware", "pve-ha-manager", "pve-i18n", "pve-qemu-kvm", "pve-xtermjs", "qemu-server", "smartmontools",
    "spiceterm", "swtpm", "vncterm",
)
OPTIONAL_PACKAGES = (
    "amd64-microcode", "ceph", "criu", "dnsmasq", "frr-pythontools", "gfs2-utils", "ifupdown", "ifupdown2",
    "intel-microcode", "ksm-control-daemon", "ksmtuned", "libpve-apiclient-perl", "libpve-network-perl",
    "openvswitch-switch", "proxmox-backup-file-restore", "proxmox-enterprise-support-keyring", "proxmox-firewall",
    "proxmox-kernel-helper", "proxmox-offline-mirror-helper", "pve-esxi-import-tools", "pve-zsync",
    "zfsutils-linux",
)
# PVE's own packages whose part the twin's PVE layer plays: shown with the presented release, marked.
LAYER_PACKAGES = ("libpve-cluster-api-perl", "libpve-cluster-perl", "libpve-common-perl", "libpve-guest-common-perl",
                  "libpve-http-server-perl", "libpve-storage-perl", "pve-cluster", "pve-container", "pve-ha-manager",
                  "qemu-server")
# PVE's builds of Debian software, played by the node's Debian packages (their real versions are shown).
DEBIAN_PACKAGES = {"pve-qemu-kvm": ("qemu-system-x86",), "lxc-pve": ("lxc",), "libqb0": ("libqb100",),
                   "libknet1": ("libknet1t64", "libknet1"), "ceph": ("ceph-common",)}


def installed_versions(names: list[str]) -> dict[str, str]:
    """{Debian package: version} for those of `names` dpkg has installed."""
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n", *names],
                          capture_output=True, text=True, check=False)
    return {name: ver for name, ver, status in (line.split(" ", 2) for line in done.stdout.splitlines()
                                                 if line.count(" ") == 2) if status == "installed"}


def package_lines(installed: dict[str, str] | None = None) -> list[str]:
    """`pveversion -v`'s lines: PVE's packages as this node has them (absent ones left out, as PVE's
    list leaves out packages its APT does not know)."""
    info = version_info()
    wanted = [n for names in DEBIAN_PACKAGES.values() for n in names] + list(LISTED_PACKAGES + OPTIONAL_PACKAGES)
    have = installed_versions(wanted) if installed is None else installed
    lines = [f"proxmox-ve: {info['release']}.0 (running kernel: {os.uname().release})",
             f"pve-manager: {info['version']} (running version: {info['version']}/{info['repoid']})"]
    for name in sorted(LISTED_PACKAGES + OPTIONAL_PACKAGES):
        found = next((have[n] for n in (*DEBIAN_PACKAGES.get(name, ()), name) if n in have), None)
        if name in LAYER_PACKAGES:
            lines.append(f"{name}: {info['version']}+pvelab")
        elif found:
            lines.append(f"{name}: {found}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--verbose"], ["-v"]):
        print("USAGE: pveversion [--verbose]", file=sys.stderr)
        return 255
    print("\n".join(package_lines()) if args else pveversion_line())
    return 0
