"""The VM command line against qemu-server's own cfg2cmd expectations (see tests/fixtures/qemu-server/SOURCES.md),
and the rewrite the twin applies to run it without KVM."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.guests import qemu_cmd, qemu_devices, qemu_drive, store
from pvelab.pve.guests.config import parse
from pvelab.pve.guests.store import GuestError
from pvelab.twin.node_files import node_files
from tests.unit.test_cfg2cmd_upstream import mocked_host

CFG2CMD = Path(__file__).resolve().parent.parent / "fixtures" / "qemu-server" / "cfg2cmd"


def expected(name: str) -> list[str]:
    return shlex.split((CFG2CMD / f"{name}.conf.cmd").read_text().replace("\\\n", " "))


def generated(name: str, **host: Any) -> list[str]:
    options = parse((CFG2CMD / f"{name}.conf").read_text()).main.options
    return qemu_cmd.command(8006, options, replace(mocked_host({}), **host))


def test_qemu_servers_minimal_and_simple_cases_come_out_word_for_word() -> None:
    assert generated("minimal-defaults") == expected("minimal-defaults")
    assert generated("simple1") == expected("simple1")


def test_pve_8s_qemu_gets_drive_options_and_pve_9s_blockdev_trees() -> None:
    """The form follows the machine version: QEMU 9.2 (PVE 8) runs `pc` as 9.2 with -drive, QEMU 10
    as 10.x with a throttle group and -blockdev per disk; the CD-ROM without media has neither."""
    old = generated("simple1", kvm_version="9.2.0", major="8")
    assert "-blockdev" not in old and old[old.index("-machine") + 1] == "type=pc+pve1"  # 9.2+pve1: no S3/S4
    disk = next(a for a in old if a.startswith("file=/var/lib/vz/images/8006/vm-8006-disk-0.qcow2"))
    assert "format=qcow2" in disk and "id=drive-scsi0" in disk and "detect-zeroes=unmap" in disk
    assert "script=/var/lib/qemu-server/pve-bridge" in " ".join(old)
    new = generated("simple1")
    tree = json.loads(new[new.index("-blockdev") + 1])
    assert (tree["driver"], tree["file"]["driver"], tree["file"]["file"]["driver"]) == ("throttle", "qcow2", "file")
    assert tree["node-name"] == "drive-scsi0" and tree["file"]["node-name"] == \
        qemu_drive.node_name("fmt", "scsi0", "local:8006/vm-8006-disk-0.qcow2")
    assert "ide-cd,bus=ide.1,unit=0,id=ide2,bootindex=200" in new


def test_refusals_are_qemu_servers_own_words() -> None:
    with pytest.raises(GuestError, match=r"^Detected old QEMU binary \('5.0.1', at least 6.0 is required\)$"):
        generated("minimal-defaults", kvm_version="5.0.1")
    options = {"ide2": "local:iso/x.iso", "net0": "virtio=A2:C0:43:77:08:A0,bridge=vmbr0"}
    with pytest.raises(GuestError, match="^ide2: explicit media parameter is required for iso images$"):
        qemu_cmd.command(100, options, mocked_host({}))
    with pytest.raises(GuestError, match="^storage 'noimages' does not support content-type 'images'$"):
        qemu_cmd.command(100, {"scsi0": "noimages:100/vm-100-disk-0.raw"}, mocked_host({}))
    with pytest.raises(GuestError, match="^MAX 2 vcpus allowed per VM on this node$"):
        qemu_cmd.command(100, {"cores": "4"}, replace(mocked_host({}), cpus=2))
    # the twin's nodes carry no pve-edk2-firmware: a UEFI VM is refused as PVE refuses a missing image
    with pytest.raises(GuestError, match="^EFI base image '/usr/share/pve-edk2-firmware//OVMF_CODE.fd' not found$"):
        qemu_cmd.command(100, {"bios": "ovmf"}, replace(mocked_host({}), is_file=lambda _path: False))


def test_the_twin_runs_the_same_command_under_tcg_without_pve_only_options() -> None:
    argv = generated("simple1")
    runnable, notes = qemu_cmd.runnable(argv, 8006, "pve1", lambda _path: False)
    assert runnable[:3] == ["qemu-system-x86_64", "-accel", "tcg,tb-size=32"] and "TCG" in notes[0]
    assert "-id" not in runnable and "hpet=off,type=pc" in runnable and "vhost=on" not in " ".join(runnable)
    assert runnable[runnable.index("-cpu") + 1] == "kvm64,+lahf_lm,+sep"
    assert runnable[-2:] == ["-fw_cfg", "name=opt/pvelab/node,string=pve1"]
    untouched = [a for a in argv[1:] if a not in ("-id", "8006") and not a.startswith(("hpet=", "menu=", "kvm64",
                                                                                         "type=tap"))]
    assert all(a in runnable for a in untouched)


def test_the_cpu_type_host_runs_as_tcgs_max_and_says_so() -> None:
    """A nested PVE node's VM asks for `cpu: host` (nested virtualization); without KVM QEMU refuses it
    ("CPU model 'host' requires KVM or HVF"), so the twin runs `max` and the task log says why."""
    argv = qemu_cmd.command(100, {"cpu": "host"}, mocked_host({}))
    assert argv[argv.index("-cpu") + 1].startswith("host")
    runnable, notes = qemu_cmd.runnable(argv, 100, "pve1")
    assert runnable[runnable.index("-cpu") + 1].split(",")[0] == "max"
    assert any("CPU type 'host' needs KVM" in note for note in notes)


def test_an_emulated_lvm_volume_is_opened_as_the_file_it_is_here() -> None:
    """PVE opens an LVM volume with host_device; the twin's are files (no device-mapper), so the
    running command opens them with the file driver - and says so - while showcmd keeps PVE's."""
    argv = qemu_cmd.command(100, {"scsi0": "local-lvm:vm-100-disk-0,size=1G"}, mocked_host({}))
    shown = json.loads(argv[argv.index("-blockdev") + 1])
    assert shown["file"]["file"]["driver"] == "host_device"
    runnable, notes = qemu_cmd.runnable(argv, 100, "pve1", lambda path: path == "/dev/sda")
    run = json.loads(runnable[runnable.index("-blockdev") + 1])
    assert run["file"]["file"] == {**shown["file"]["file"], "driver": "file"}
    assert any("/dev/pve/vm-100-disk-0" in note and "file driver" in note for note in notes)
    kept, _ = qemu_cmd.runnable(argv, 100, "pve1", lambda _path: True)
    assert json.loads(kept[kept.index("-blockdev") + 1]) == shown


def test_a_guest_without_a_serial_port_has_its_console_logged_and_one_with_a_port_keeps_it() -> None:
    logged, notes = qemu_cmd.runnable(generated("simple1"), 8006, "pve1")
    assert logged[-8:-4] == ["-chardev", "file,id=pvelab-console,path=/var/run/qemu-server/8006.console",
                             "-device", "isa-serial,chardev=pvelab-console"]
    assert "/var/run/qemu-server/8006.console" in notes[-1]
    own, _ = qemu_cmd.runnable(["/usr/bin/kvm", "-device", "isa-serial,chardev=serial0"], 8006, "pve1")
    assert "pvelab-console" not in " ".join(own)


def test_boot_order_and_legacy_boot_indexes() -> None:
    assert qemu_cmd.boot_order({"boot": "order=scsi0;ide2;net0"}) == {"scsi0": 100, "ide2": 101, "net0": 102}
    legacy = qemu_cmd.boot_order({"bootdisk": "scsi0", "ide2": "none,media=cdrom", "scsi0": "local:1/vm-1-disk-0.raw",
                                  "net0": "virtio=A2:C0:43:77:08:A0"})
    assert legacy == {"scsi0": 100, "ide2": 200, "net0": 300}
    assert qemu_cmd.boot_order({"boot": "", "ide2": "none,media=cdrom", "scsi0": "local:1/vm-1-disk-0.raw"}) == {}


def test_property_strings_read_and_print_as_pve_writes_them() -> None:
    net = store.parse_net("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1")
    assert net == {"model": "virtio", "macaddr": "BC:24:11:00:00:01", "bridge": "vmbr0", "firewall": "1"}
    assert store.print_net({"model": "virtio", "bridge": "vmbr0", "macaddr": "BC:24:11:00:00:01"}) == \
        "virtio=BC:24:11:00:00:01,bridge=vmbr0"
    drive = store.parse_drive("local-lvm:vm-100-disk-0,size=1G")
    assert drive == {"file": "local-lvm:vm-100-disk-0", "size": "1G"} and store.print_drive(drive) == \
        "local-lvm:vm-100-disk-0,size=1G"
    assert [store.size_text(n) for n in (1 << 30, 64 << 20, 4096 * 3, 1000)] == ["1G", "64M", "12K", "1000"]
    assert [store.size_bytes(t) for t in ("1G", "64M", "12K", "1000", "0.5G")] == [1 << 30, 64 << 20, 12288, 1000,
                                                                                  1 << 29]
    assert store.size_bytes("4", "G") == 4 << 30 and store.size_bytes("8G", "G") == 8 << 30


def test_a_qcow2_volume_is_opened_as_qcow2_though_the_drive_names_no_format() -> None:
    """qemu-server reads the format from the storage: QEMU opening a qcow2 image as raw would show the
    guest the image's own layout (and QEMU refuses internal snapshots of it)."""
    argv = qemu_cmd.command(150, {"scsi0": "local:150/vm-150-disk-0.qcow2", "scsi1": "local-lvm:vm-150-disk-1"},
                            mocked_host({}))
    trees = [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "-blockdev"]
    assert [t["file"]["driver"] for t in trees] == ["qcow2", "raw"]
    with pytest.raises(GuestError, match="'format=raw' option different from storage format 'qcow2'"):
        qemu_cmd.command(150, {"scsi0": "local:150/vm-150-disk-0.qcow2,format=raw"}, mocked_host({}))


def test_every_readconfig_file_qemu_server_names_is_installed_in_the_nodes() -> None:
    """A q35 VM's command line reads qemu-server's pve-q35-4.0.cfg (its USB controllers): without the
    file QEMU stops at once ("Could not open '/usr/share/qemu-server/pve-q35-4.0.cfg'")."""
    source = "".join(Path(m.__file__).read_text() for m in (qemu_cmd, qemu_devices))
    named = set(re.findall(r"/usr/share/qemu-server/([\w.-]+\.cfg)", source))
    installed = {rel.rsplit("/", 1)[1]: content for rel, (content, _) in node_files("9").items()
                 if rel.startswith("usr/share/qemu-server/")}
    assert named == {"pve-q35-4.0.cfg", "pve-q35.cfg", "pve-usb.cfg"} and named <= set(installed)
    assert 'driver = "ich9-usb-ehci1"' in installed["pve-q35-4.0.cfg"]
