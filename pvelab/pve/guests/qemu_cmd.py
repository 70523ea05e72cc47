"""A VM's QEMU command line from its config, in qemu-server's shape (what `qm showcmd` prints), and
the few changes that make it run on the twin's Debian QEMU without KVM (`runnable`).

The shape follows qemu-server's cfg2cmd test expectations (tests/fixtures/pve/qemu-server/), in the
`-drive` form QEMU on PVE 8 gets; PVE 9 describes the same drives with `-blockdev` JSON."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from pvelab.pve.guests import store

RUN = "/var/run/qemu-server"
# Where pve-bridge lives, by PVE major version.
BRIDGE_SCRIPTS = {"8": "/var/lib/qemu-server", "9": "/usr/libexec/qemu-server"}
# qemu-server's default CPU when the config names none (the GUI writes `cpu: x86-64-v2-AES` on PVE 8/9).
DEFAULT_CPU = "kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep"
SCSI_CONTROLLERS = {"virtio-scsi-pci": "virtio-scsi-pci", "virtio-scsi-single": "virtio-scsi-pci",
                    "lsi": "lsi53c895a", "lsi53c810": "lsi53c810", "megasas": "megasas", "pvscsi": "pvscsi"}

# A volume ID as the path QEMU opens (`pvesm path`).
PathOf = Callable[[str], str]


def boot_indexes(options: dict[str, str]) -> dict[str, int]:
    """bootindex per device: `boot: order=a;b` counts up from 100; the legacy default puts disks
    (bootdisk) at 100, CD-ROMs from 200 and NICs from 300, as qemu-server does."""
    boot = store.parse_props(options.get("boot", ""), "legacy") if options.get("boot") else {}
    if "order" in boot:
        return {dev: 100 + i for i, dev in enumerate(d for d in boot["order"].split(";") if d)}
    out: dict[str, int] = {}
    if options.get("bootdisk"):
        out[options["bootdisk"]] = 100
    drives = store.drives(options)
    cdroms = sorted((k for k, d in drives.items() if store.is_cdrom(d) and not store.is_cloudinit(d)), key=_order)
    for i, key in enumerate(cdroms):
        out[key] = 200 + i
    for i, key in enumerate(sorted(k for k in options if k.startswith("net") and k[3:].isdigit())):
        out[key] = 300 + i
    return out


def _order(key: str) -> tuple[str, int]:
    found = store.DRIVE_KEY.match(key)
    return (found.group(1), int(found.group(2))) if found else (key, 0)


def drive_args(key: str, drive: dict[str, str], path_of: PathOf, bootindex: int | None) -> list[str]:
    bus, index = _order(key)
    file = drive.get("file", "none")
    cdrom = store.is_cdrom(drive)
    boot = f",bootindex={bootindex}" if bootindex is not None else ""
    args: list[str] = []
    if file != "none":
        path = path_of(file) if ":" in file else file
        spec = f"file={path},if=none,id=drive-{key}"
        # the format from the drive, else from the volume's name (qemu-server's parse_volname): a
        # qcow2 image opened as raw would show the guest the image's own layout
        fmt = drive.get("format") or next((f for f in ("qcow2", "vmdk") if file.endswith(f".{f}")), "raw")
        spec += ",media=cdrom,aio=io_uring" if cdrom else \
            f",format={fmt},cache={drive.get('cache', 'none')},aio=io_uring,detect-zeroes=on"
        args += ["-drive", spec]
    if bus == "ide":
        kind = "ide-cd" if cdrom else "ide-hd"
        attach = f",drive=drive-{key}" if file != "none" else ""
        args += ["-device", f"{kind},bus=ide.{index // 2},unit={index % 2}{attach},id={key}{boot}"]
    elif bus == "sata":
        kind = "ide-cd" if cdrom else "ide-hd"
        args += ["-device", f"{kind},bus=ahci0.{index},drive=drive-{key},id={key}{boot}"]
    elif bus == "scsi":
        args += ["-device", f"scsi-{'cd' if cdrom else 'hd'},bus=scsihw0.0,channel=0,scsi-id={index},lun=0,"
                            f"drive=drive-{key},id={key}{boot}"]
    elif bus == "virtio":
        args += ["-device", f"virtio-blk-pci,drive=drive-{key},id={key},bus=pci.0,addr={hex(0xa + index)}{boot}"]
    return args


def net_args(key: str, net: dict[str, str], vmid: int, major: str, bootindex: int | None) -> list[str]:
    index = int(key[3:])
    scripts = BRIDGE_SCRIPTS.get(major, BRIDGE_SCRIPTS["9"])
    model = {"virtio": "virtio-net-pci", "e1000": "e1000", "rtl8139": "rtl8139"}.get(net["model"], net["model"])
    device = f"{model},mac={net['macaddr']},netdev={key},bus=pci.0,addr={hex(0x12 + index)},id={key}"
    if net["model"] == "virtio":
        device += ",rx_queue_size=1024,tx_queue_size=256"
    if bootindex is not None:
        device += f",bootindex={bootindex}"
    if net["model"] == "virtio" and (net.get("mtu") or major != "8"):  # PVE 9 passes the bridge's MTU
        device += f",host_mtu={net.get('mtu', '1500')}"
    return ["-netdev", f"type=tap,id={key},ifname=tap{vmid}i{index},script={scripts}/pve-bridge,"
                       f"downscript={scripts}/pve-bridgedown" + (",vhost=on" if net["model"] == "virtio" else ""),
            "-device", device]


def command(vmid: int, options: dict[str, str], path_of: PathOf, major: str) -> list[str]:
    """The QEMU command line qemu-server would run for this config."""
    name = options.get("name", f"vm{vmid}")
    sockets, cores = int(options.get("sockets", 1)), int(options.get("cores", 1))
    vcpus = sockets * cores
    memory = store.parse_props(options.get("memory", "512"), "current")["current"]
    argv = ["/usr/bin/kvm", "-id", str(vmid), "-name", f"{name},debug-threads=on",
            "-no-shutdown",
            "-chardev", f"socket,id=qmp,path={RUN}/{vmid}.qmp,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", "socket,id=qmp-event,path=/var/run/qmeventd.sock," +
            ("reconnect=5" if major == "8" else "reconnect-ms=5000"),
            "-mon", "chardev=qmp-event,mode=control",
            "-pidfile", f"{RUN}/{vmid}.pid", "-daemonize"]
    if options.get("smbios1"):
        argv += ["-smbios", f"type=1,{options['smbios1']}"]
    argv += ["-smp", f"{vcpus},sockets={sockets},cores={cores},maxcpus={vcpus}", "-nodefaults",
             "-boot", "menu=on,strict=on,reboot-timeout=1000,splash=/usr/share/qemu-server/bootsplash.jpg",
             "-vnc", f"unix:{RUN}/{vmid}.vnc,password=on",
             "-cpu", DEFAULT_CPU if not options.get("cpu") else
             store.parse_props(options["cpu"], "cputype")["cputype"],
             "-m", memory,
             "-global", "PIIX4_PM.disable_s3=1", "-global", "PIIX4_PM.disable_s4=1",
             "-device", "pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e",
             "-device", "pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f"]
    if options.get("vmgenid") and options["vmgenid"] != "0":
        argv += ["-device", f"vmgenid,guid={options['vmgenid']}"]
    if options.get("tablet", "1") != "0":
        argv += ["-device", "piix3-usb-uhci,id=uhci,bus=pci.0,addr=0x1.0x2",
                 "-device", "usb-tablet,id=tablet,bus=uhci.0,port=1"]
    for key in sorted(k for k in options if k.startswith("serial") and k[6:].isdigit()):
        argv += ["-chardev", f"socket,id={key},path={RUN}/{vmid}.{key},server=on,wait=off",
                 "-device", f"isa-serial,chardev={key}"]
    vga = store.parse_props(options.get("vga", "std"), "type").get("type", "std")
    if not vga.startswith("serial") and vga != "none":
        argv += ["-device", f"{ {'std': 'VGA', 'qxl': 'qxl-vga', 'virtio': 'virtio-vga'}.get(vga, 'VGA')},"
                            "id=vga,bus=pci.0,addr=0x2"]
    if options.get("balloon", "1") != "0":
        argv += ["-device", "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x3,free-page-reporting=on"]
    argv += ["-iscsi", "initiator-name=iqn.1993-08.org.debian:01:aabbccddeeff"]
    indexes = boot_indexes(options)
    drives = store.drives(options)
    if any(k.startswith("scsi") for k in drives):
        controller = SCSI_CONTROLLERS.get(options.get("scsihw", "lsi"), "lsi53c895a")
        argv += ["-device", f"{controller},id=scsihw0,bus=pci.0,addr=0x5"]
    if any(k.startswith("sata") for k in drives):
        argv += ["-device", "ahci,id=ahci0,multifunction=on,bus=pci.0,addr=0x7"]
    for key in sorted(drives, key=_order):
        argv += drive_args(key, drives[key], path_of, indexes.get(key))
    for key in sorted(k for k in options if k.startswith("net") and k[3:].isdigit()):
        argv += net_args(key, store.parse_net(options[key]), vmid, major, indexes.get(key))
    argv += ["-machine", f"type={options.get('machine', 'pc')}+pve0"]
    if options.get("args"):
        argv += shlex.split(options["args"])
    return argv


def runnable(argv: list[str], vmid: int, node: str) -> tuple[list[str], list[str]]:
    """The command as the twin runs it, and what was changed (for the task log). Debian's QEMU has
    no PVE patches and these machines no KVM: TCG instead of KVM, no `-id` (a PVE-only option),
    the plain machine type, no KVM-only CPU flags, no vhost-net, no boot splash; the console of a
    guest without a serial port goes to a file; fw_cfg tells the tiny guest OS its VMID and node."""
    out: list[str] = ["qemu-system-x86_64", "-accel", "tcg,tb-size=32"]
    changed = ["KVM is not available on this machine: running QEMU with TCG (software emulation)"]
    rewrite = {"-cpu": lambda a: ",".join(f for f in a.split(",") if f != "enforce" and not f.startswith("+kvm_")),
               "-machine": lambda a: ",".join(p.split("+pve")[0] if p.startswith("type=") else p for p in a.split(",")),
               "-boot": lambda a: ",".join(p for p in a.split(",") if not p.startswith("splash=")),
               "-netdev": lambda a: ",".join(p for p in a.split(",") if p != "vhost=on")}
    i = 1
    while i < len(argv):
        option = argv[i]
        if option == "-id":
            i += 2
            continue
        out.append(option)
        if option in rewrite and i + 1 < len(argv):
            out.append(rewrite[option](argv[i + 1]))
            i += 1
        i += 1
    if not any(a.startswith("isa-serial,") for a in out):  # a guest without a serial port of its own:
        # its console (ttyS0) is kept in a file, so a guest that never answers can be told from one that is slow
        out += ["-chardev", f"file,id=pvelab-console,path={console_log(vmid)}", "-device",
                "isa-serial,chardev=pvelab-console"]
        changed.append(f"the guest's console (a serial port the config does not have) is logged to {console_log(vmid)}")
    out += ["-fw_cfg", f"name=opt/pvelab/vmid,string={vmid}", "-fw_cfg", f"name=opt/pvelab/node,string={node}"]
    return out, changed


def console_log(vmid: int) -> str:
    return f"{RUN}/{vmid}.console"

