"""QEMU and machine versions as qemu-server weighs them: the machine type a VM runs (`pc` resolves
to the installed QEMU's version plus PVE's own revision of it, a Windows guest is pinned), the
checks that refuse a machine newer than the node can run, and the version guard features use."""

from __future__ import annotations

import re

from pvelab.pve.guests.store import GuestError

# PVE's own revisions of upstream machine versions (qemu-server's $PVE_MACHINE_VERSION, PVE 9.1)
PVE_MACHINE_REVISIONS = {"4.1": 2, "9.2": 1, "10.0": 1}
MACHINE_VERSION = re.compile(r"^(?:pc(?:-i440fx|-q35)?|virt)-(\d+)\.(\d+)(?:\.(\d+))?(?:\+pve(\d+))?(?:\.pxe)?")


def parts(version: str) -> tuple[int, int, int]:
    """(major, minor, pve revision) of '10.1', '9.2+pve1', '10.1.2' (a micro version is not compared)."""
    found = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\+pve(\d+))?", version)
    if not found:
        raise GuestError(f"internal error: cannot check version of invalid string '{version}'")
    return int(found.group(1)), int(found.group(2)), int(found.group(4) or 0)


def at_least(version: str, major: int, minor: int, pve: int = 0) -> bool:
    """qemu-server's min_version (a micro version counts where a +pve revision would)."""
    return parts(version) >= (major, minor, pve)


def pve_revision(version: str) -> int:
    """The highest PVE revision of a machine version (0 where PVE has none)."""
    found = re.match(r"^(\d+\.\d+)", version)
    if not found:
        raise GuestError(f"internal error: cannot get pve version for invalid string '{version}'")
    return PVE_MACHINE_REVISIONS.get(found.group(1), 0)


def machine_version_parts(machine: str) -> tuple[int, int, int | None] | None:
    found = MACHINE_VERSION.match(machine)
    if not found:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(4)) if found.group(4) else None


def extract_version(machine: str | None, kvm_version: str | None) -> str | None:
    """'major.minor[+pveN]' of a machine type, else of the installed QEMU with PVE's latest revision."""
    found = machine_version_parts(machine) if machine else None
    if found:
        major, minor, pve = found
        return f"{major}.{minor}" + (f"+pve{pve}" if pve else "")
    if kvm_version:
        short = re.match(r"^(\d+)\.(\d+)", kvm_version)
        if short:
            return f"{short.group(1)}.{short.group(2)}+pve{pve_revision(kvm_version)}"
    return None


def windows_version(ostype: str | None) -> int:
    if not ostype:
        return 0
    if ostype in ("wxp", "w2k3", "w2k"):
        return 5
    if ostype in ("w2k8", "wvista"):
        return 6
    found = re.fullmatch(r"win(\d+)", ostype)
    return int(found.group(1)) if found else 0


def machine_is_q35(machine_type: str | None) -> bool:
    return bool(machine_type) and "q35" in str(machine_type)


def created_with(options: dict[str, str]) -> str | None:
    """The QEMU version a VM was created with (`meta: creation-qemu=...`)."""
    found = re.search(r"creation-qemu=([\d.]+)", options.get("meta", ""))
    return found.group(1) if found else None


def vm_machine(options: dict[str, str], machine_type: str | None, kvm_version: str) -> str:
    """qemu-server's get_vm_machine: the full machine type with its +pve revision; a Windows guest
    without a machine version is pinned to the one it was created with (5.1 when it is older)."""
    machine = machine_type
    if not machine or machine in ("pc", "q35", "virt"):
        machine = machine or "pc"
        if windows_version(options.get("ostype")):
            base = "5.1"
            created = created_with(options)
            if created and at_least(created, 9, 1):
                base = ".".join(created.split(".")[:2])
            if not can_run_pve_revision(base, kvm_version):
                base = latest_installed(kvm_version)
            machine = {"pc": f"pc-i440fx-{base}", "q35": f"pc-q35-{base}", "virt": f"virt-{base}"}[machine]
        else:
            machine += f"+pve{pve_revision(kvm_version)}"
    if not re.search(r"\+pve\d+?(?:\.pxe)?$", machine):
        pxe = machine.endswith(".pxe")
        machine = machine.removesuffix(".pxe") + "+pve0" + (".pxe" if pxe else "")
    return machine


def latest_installed(kvm_version: str) -> str:
    short = ".".join(kvm_version.split(".")[:2])
    revision = pve_revision(short)
    return short + (f"+pve{revision}" if revision else "")


def check_runnable(machine: str, machine_version: str, kvm_version: str, node: str) -> None:
    """The refusals of config_to_command for a QEMU that is too old for the VM's machine."""
    major, minor, _ = parts(machine_version)
    if re.match(r"^\d+\.\d+\.(\d+)", kvm_version) and int(kvm_version.split(".")[2]) >= 90:
        return  # a release candidate: PVE only warns
    if not at_least(kvm_version, major, minor):
        raise GuestError(f"Installed QEMU version '{kvm_version}' is too old to run machine type '{machine}',"
                         f" please upgrade node '{node}'")
    if not can_run_pve_revision(machine_version, kvm_version):
        raise GuestError(f"Installed qemu-server (max feature level for {major}.{minor} is"
                         f" pve{pve_revision(machine_version)}) is too old to run machine type '{machine}',"
                         f" please upgrade node '{node}'")


def can_run_pve_revision(machine_version: str, kvm_version: str) -> bool:
    found = re.match(r"^(\d+)\.(\d+)(?:\+pve(\d+))?(?:\.pxe)?$", machine_version)
    if not found:
        return False
    major, minor, pve = int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)
    if parts(kvm_version)[:2] < (major, minor):
        return False
    return not pve or pve_revision(f"{major}.{minor}") >= pve


class VersionGuard:
    """qemu-server's $version_guard: a feature that needs a +pve revision raises the revision the VM
    is started with (a later upstream version has it anyway)."""

    def __init__(self, machine_version: str) -> None:
        self.machine_version = machine_version
        self.required_pve = 0

    def __call__(self, major: int, minor: int, pve: int = 0) -> bool:
        if not at_least(self.machine_version, major, minor, pve):
            return False
        if at_least(self.machine_version, major, minor, pve_revision(f"{major}.{minor}") + 1):
            return True
        if pve and pve > self.required_pve:
            self.required_pve = pve
        return True
