"""The VM command line against qemu-server's own cfg2cmd expectations (see tests/fixtures/qemu-server/SOURCES.md),
and the rewrite the twin applies to run it without KVM."""

from __future__ import annotations

import shlex
from pathlib import Path

from pvelab.pve.guests import qemu_cmd, store
from pvelab.pve.guests.config import parse

CFG2CMD = Path(__file__).resolve().parent.parent / "fixtures" / "qemu-server" / "cfg2cmd"


def expected(name: str) -> list[str]:
    return shlex.split((CFG2CMD / f"{name}.conf.cmd").read_text().replace("\\\n", " "))


def generated(name: str) -> list[str]:
    options = parse((CFG2CMD / f"{name}.conf").read_text()).main.options
    return qemu_cmd.command(8006, options, lambda volid: f"/path/of/{volid}", "9")


def test_a_minimal_config_gives_qemu_servers_command_line_word_for_word() -> None:
    assert generated("minimal-defaults") == expected("minimal-defaults")


def test_a_virtio_nic_and_the_cdrom_are_as_qemu_server_makes_them() -> None:
    ours, theirs = generated("simple1"), expected("simple1")
    for option in ("-netdev", "-device"):
        wanted = [theirs[i + 1] for i, word in enumerate(theirs) if word == option and "net0" in theirs[i + 1]]
        assert wanted and all(w in ours for w in wanted), wanted
    assert "ide-cd,bus=ide.1,unit=0,id=ide2,bootindex=200" in ours
    assert ours[ours.index("-smp") + 1] == "3,sockets=1,cores=3,maxcpus=3" and ours[ours.index("-m") + 1] == "768"


def test_the_twin_runs_the_same_command_under_tcg_without_pve_only_options() -> None:
    argv = generated("simple1")
    runnable, notes = qemu_cmd.runnable(argv, 8006, "pve1")
    assert runnable[:3] == ["qemu-system-x86_64", "-accel", "tcg,tb-size=32"] and "TCG" in notes[0]
    assert "-id" not in runnable and "type=pc" in runnable and "vhost=on" not in " ".join(runnable)
    assert runnable[runnable.index("-cpu") + 1] == "kvm64,+lahf_lm,+sep"
    assert runnable[-2:] == ["-fw_cfg", "name=opt/pvelab/node,string=pve1"]
    untouched = [a for a in argv[1:] if a not in ("-id", "8006") and not a.startswith(("type=", "menu=", "kvm64",
                                                                                         "type=tap"))]
    assert all(a in runnable for a in untouched)


def test_a_guest_without_a_serial_port_has_its_console_logged_and_one_with_a_port_keeps_it() -> None:
    logged, notes = qemu_cmd.runnable(generated("simple1"), 8006, "pve1")
    assert logged[-8:-4] == ["-chardev", "file,id=pvelab-console,path=/var/run/qemu-server/8006.console",
            "-device", "isa-serial,chardev=pvelab-console"]
    assert "/var/run/qemu-server/8006.console" in notes[-1]
    own, _ = qemu_cmd.runnable(["/usr/bin/kvm", "-device", "isa-serial,chardev=serial0"], 8006, "pve1")
    assert "pvelab-console" not in " ".join(own)


def test_boot_order_and_legacy_boot_indexes() -> None:
    assert qemu_cmd.boot_indexes({"boot": "order=scsi0;ide2;net0"}) == {"scsi0": 100, "ide2": 101, "net0": 102}
    legacy = qemu_cmd.boot_indexes({"bootdisk": "scsi0", "ide2": "none,media=cdrom",
                                    "net0": "virtio=A2:C0:43:77:08:A0"})
    assert legacy == {"scsi0": 100, "ide2": 200, "net0": 300}


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
    """qemu-server reads the format from the volume's name: QEMU opening a qcow2 image as raw would show
    the guest the image's own layout (and QEMU refuses internal snapshots of it)."""
    args = qemu_cmd.drive_args("scsi0", {"file": "qdir:150/vm-150-disk-0.qcow2"}, lambda v: f"/img/{v}", 100)
    assert "format=qcow2" in args[1] and "format=raw" not in args[1]
    raw = qemu_cmd.drive_args("scsi1", {"file": "local-lvm:vm-150-disk-1"}, lambda v: f"/dev/pve/{v}", None)
    assert "format=raw" in raw[1]
