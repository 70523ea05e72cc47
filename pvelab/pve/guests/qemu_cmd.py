"""A VM's QEMU command line from its config, as qemu-server's config_to_command makes it (what
`qm showcmd` prints), and the few changes that make it run on the twin's Debian QEMU without KVM
(`runnable`). qemu-server's own cfg2cmd cases judge it word for word (tests/unit/test_cfg2cmd_upstream.py);
the drives are in qemu_drive.py, the rest of the hardware in qemu_devices.py, versions in
qemu_version.py. What the node is asked (QEMU's version, storages, PCI devices, bridge MTUs) comes
through a `Host`, so the same code runs in the node and against qemu-server's mocked test host."""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvelab.pve.guests import qemu_devices as hw
from pvelab.pve.guests import qemu_drive as drives
from pvelab.pve.guests import qemu_version as versions
from pvelab.pve.guests.store import GuestError, is_cdrom, is_cloudinit, parse_net, parse_props

RUN = "/var/run/qemu-server"
# Where pve-bridge lives, by PVE major version.
BRIDGE_SCRIPTS = {"8": "/var/lib/qemu-server", "9": "/usr/libexec/qemu-server"}
EDK2 = "/usr/share/pve-edk2-firmware//"  # qemu-server joins its base (with a slash) and the name with a slash
# pve-edk2-firmware's images: (code, vars) by kind; the vars images' sizes are what a raw efidisk gets
OVMF_FILES = {"4m-no-smm": ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
              "4m-no-smm-ms": ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.ms.fd"),
              "4m": ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.fd"),
              "4m-ms": ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"),
              "4m-sev": ("OVMF_CVM_CODE_4M.fd", "OVMF_CVM_VARS_4M.fd"), "4m-snp": ("OVMF_CVM_4M.fd", ""),
              "default": ("OVMF_CODE.fd", "OVMF_VARS.fd")}
OVMF_VARS_SIZES = {"OVMF_VARS.fd": 131072, "OVMF_VARS_4M.fd": 540672, "OVMF_VARS_4M.ms.fd": 540672,
                   "OVMF_CVM_VARS_4M.fd": 540672}
HOTPLUG_DEFAULT = "network,disk,usb"
MAX_NETS, MAX_SERIAL, MAX_PARALLEL = 32, 4, 3


@dataclass
class Host:
    """What config_to_command asks of the node it runs on."""
    kvm_version: str  # the installed QEMU's version
    nodename: str
    storages: drives.Storages
    major: str = "9"  # the PVE release the node presents
    bridge_mtu: Callable[[str], int] = lambda _bridge: 1500
    cpus: int = 1024
    phys_bits: int = 46
    cpu_models: dict[str, dict[str, str]] = field(default_factory=dict)  # /etc/pve/virtual-guest/cpu-models.conf
    hw_capabilities: dict[str, Any] = field(default_factory=dict)
    lspci: Callable[[str], list[str]] = lambda _id: []
    pci_mapping: Callable[[str], list[str]] = lambda _name: []
    iscsi_initiator: str | None = None
    warn: Callable[[str], None] = lambda _message: None
    is_file: Callable[[str], bool] = lambda _path: True  # firmware images


def boot_order(options: dict[str, str]) -> dict[str, int]:
    """bootindex per device: `boot: order=a;b` counts up from 100; the legacy default (`cdn`) puts the
    boot disk at 100, CD-ROMs from 200 and NICs from 300, as qemu-server's device_bootorder does."""
    boot = parse_props(options["boot"], "legacy") if options.get("boot") else {}
    if "boot" in options and "legacy" not in boot:  # an empty `boot:` gives no indexes at all
        return {dev: 100 + i for i, dev in enumerate(d for d in boot.get("order", "").split(";") if d)}
    counters = {letter: (i + 1) * 100 for i, letter in enumerate(boot.get("legacy", "cdn"))}
    out: dict[str, int] = {}
    for key, drive in drives.drives_in_order(options):
        if is_cdrom(drive) and not is_cloudinit(drive):
            if "d" in counters:
                out[key] = counters["d"]
                counters["d"] += 1
        elif "c" in counters:
            if options.get("bootdisk") == key:
                out[key] = counters["c"]
            counters["c"] += 1
    if "n" in counters:
        for i in range(MAX_NETS):
            if options.get(f"net{i}"):
                out[f"net{i}"] = counters["n"]
                counters["n"] += 1
    return out


def hotplug_features(options: dict[str, str]) -> set[str]:
    value = options.get("hotplug", "1")
    if value == "0":
        return set()
    features = set((HOTPLUG_DEFAULT if value == "1" else value).split(","))
    for feature in features:
        if feature not in ("network", "disk", "cpu", "memory", "usb", "cloudinit"):
            raise GuestError(f"invalid hotplug feature '{feature}'")
    return features


def smbios(value: str) -> str:
    props = parse_props(value)
    if props.pop("base64", None) in ("1", "on"):
        text = ""
        for key, encoded in props.items():
            decoded = encoded if key == "uuid" else base64.b64decode(encoded).decode(errors="replace")
            if decoded:
                text += f",{key}=" + decoded.replace(",", ",,")
        return "type=1" + text
    return f"type=1,{value}"


def ovmf_args(options: dict[str, str], vmid: int, host: Host, machine_version: str, q35: bool,
              guard: versions.VersionGuard, template: bool) -> tuple[list[str], list[str]]:
    """The UEFI firmware: a read-only code image and the VM's variables (its efidisk, else a
    temporary copy), as pflash blockdevs from machine 10.0 on."""
    kind = hw.sev_type(options)
    efidisk = parse_props(options["efidisk0"], "file") if options.get("efidisk0") else None
    if kind == "snp":
        if efidisk is not None:
            host.warn("EFI disks are not supported with SEV-SNP and will be ignored")
        if not host.is_file(EDK2 + OVMF_FILES["4m-snp"][0]):
            raise GuestError(f"EFI base image '{EDK2 + OVMF_FILES['4m-snp'][0]}' not found")
        return ["-bios", EDK2 + OVMF_FILES["4m-snp"][0]], []
    files = "default"
    if kind:
        files = "4m-sev"
    elif efidisk is not None and efidisk.get("efitype") == "4m":
        files = ("4m" if q35 else "4m-no-smm") + ("-ms" if efidisk.get("pre-enrolled-keys") in ("1", "on") else "")
    code, variables = (EDK2 + f for f in OVMF_FILES[files])
    if not host.is_file(code):
        raise GuestError(f"EFI base image '{code}' not found")
    if not host.is_file(variables):
        raise GuestError(f"EFI vars image '{variables}' not found")
    vars_size = OVMF_VARS_SIZES[OVMF_FILES[files][1]]
    if efidisk is None:
        host.warn("no efidisk configured! Using temporary efivars disk.")
        efidisk = {"file": f"/tmp/{vmid}-ovmf.fd", "format": "raw"}
    volid = drives.volume_id(efidisk["file"])
    fmt = efidisk.get("format") or (host.storages.volume(volid).format if volid else None)
    if fmt is None:
        raise GuestError("efidisk format must be specified")
    if versions.at_least(machine_version, 10, 0) and guard(10, 0, 0):
        efidisk.setdefault("cache", "writeback")  # QEMU's default before -blockdev (PVE bug #3329)
        variables_node = drives.drive_blockdev(host.storages, "efidisk0", efidisk, read_only=template)
        if fmt == "raw":
            variables_node["file"]["size"] = vars_size
        code_node = {"driver": "raw", "file": {"driver": "file", "filename": code}, "node-name": "pflash0",
                     "read-only": True}
        return (["-object", drives.json_text(drives.throttle_group("efidisk0", efidisk)),
                 "-blockdev", drives.json_text(code_node), "-blockdev", drives.json_text(variables_node)],
                ["pflash0=pflash0", f"pflash1={variables_node['node-name']}"])
    path = host.storages.volume(volid).path if volid else efidisk["file"]
    var_drive = "if=pflash,unit=1,id=drive-efidisk0"
    if path.startswith("rbd:"):
        var_drive += ",cache=writeback"
        path += ":rbd_cache_policy=writeback"
    var_drive += f",format={fmt},file={path}"
    if fmt == "raw" and guard(4, 1, 2):
        var_drive += f",size={vars_size}"
    if template and volid:
        var_drive += ",readonly=on"
    return ["-drive", f"if=pflash,unit=0,format=raw,readonly=on,file={code}", "-drive", var_drive], []


def command(vmid: int, options: dict[str, str], host: Host) -> list[str]:
    """The QEMU command line qemu-server makes of this config (config_to_command)."""
    return CommandLine(vmid, options, host).build()


class CommandLine:
    """config_to_command's walk through a config, a method per part: `cmd` gathers the options
    before the devices, `devices` the devices (bridges go in front of them at the end)."""

    def __init__(self, vmid: int, options: dict[str, str], host: Host) -> None:
        drives.check_volume_storage_type(host.storages, options)
        self.vmid, self.host = vmid, host
        self.template = options.get("template") == "1"
        if self.template:  # a template starts only for backups: its disks and little else
            options = {"template": "1", "kvm": "0", "vga": "none",
                       **{k: options[k] for k in ("scsihw", "bios", "name") if k in options},
                       **{k: options[k] for k in drives.DRIVE_ORDER if k in options}}
        self.options = options
        self.machine_conf = parse_props(options["machine"], "type") if options.get("machine") else {}
        self.winversion = versions.windows_version(options.get("ostype"))
        self.kvm = options.get("kvm", "1") not in ("0", "off")
        kvmver = host.kvm_version
        if not kvmver or versions.parts(kvmver)[0] < 6:
            raise GuestError(f"Detected old QEMU binary ('{kvmver or 'undefined'}', at least 6.0 is required)")
        self.machine = versions.vm_machine(options, self.machine_conf.get("type"), kvmver)
        self.machine_version = versions.extract_version(self.machine, kvmver) or "0.0"
        versions.check_runnable(self.machine, self.machine_version, kvmver, host.nodename)
        self.guard = versions.VersionGuard(self.machine_version)
        self.q35 = versions.machine_is_q35(self.machine_conf.get("type"))
        self.hotplug = hotplug_features(options)
        self.old_bios_files = self.machine.endswith(".pxe") or not self.at_least(2, 4)
        self.machine = self.machine.removesuffix(".pxe")
        self.cmd: list[str] = []
        self.devices: list[str] = []
        self.machine_flags: list[str] = []
        self.bridges: set[int] = set()
        self.bootorder = boot_order(options)
        self.sockets = int(options.get("sockets") or options.get("smp") or 1)
        self.cores = int(options.get("cores") or 1)
        self.vga, self.qxlnum = hw.vga_properties(options, self.machine_version, self.winversion)

    def at_least(self, major: int, minor: int, pve: int = 0) -> bool:
        return versions.at_least(self.machine_version, major, minor, pve)

    def build(self) -> list[str]:
        self.process()
        self.firmware()
        self.early_devices()
        kvm_off, gpu_passthrough, legacy_igd = hw.hostpci_devices(
            self.vmid, self.options, self.devices, self.vga, self.winversion, self.bridges, self.bootorder, self.q35,
            self.host.lspci, self.host.pci_mapping)
        self.devices += hw.usb_devices(self.options, self.at_least(4, 0), self.bootorder, self.machine_version,
                                       self.host.warn)
        self.ports_and_sound()
        self.processors_and_display()
        global_flags, machine_flags, rtc_flags = timer_flags(self.options, self.winversion, self.guard)
        for flag in global_flags:
            self.cmd += ["-global", flag]
        self.machine_flags += machine_flags
        self.cmd += ["-cpu", hw.cpu_option(self.options, self.kvm, kvm_off, self.machine_version, self.winversion,
                                           gpu_passthrough, self.host.cpu_models)]
        self.cmd += hw.memory_args(self.options, self.sockets, self.cores, "memory" in self.hotplug,
                                   self.host.phys_bits)
        if self.options.get("freeze") in ("1", "on"):
            self.cmd.append("-S")
        if self.options.get("keyboard"):
            self.cmd += ["-k", self.options["keyboard"]]
        self.agent_and_rng()
        spice_args(self.options, self.vga, self.qxlnum, self.winversion, self.machine_version, self.bridges,
                   self.cmd, self.devices, self.q35)
        self.balloon_and_watchdog()
        drive_args(self.options, self.host, self.machine_version, self.guard, self.bridges, self.bootorder, self.q35,
                   self.template, self.cmd, self.devices)
        self.nics()
        self.pci_bridges(legacy_igd)
        self.machine_options()
        self.cmd += self.devices
        if rtc_flags:
            self.cmd += ["-rtc", ",".join(rtc_flags)]
        self.cmd += ["-machine", ",".join(self.machine_flags)]
        if self.options.get("vmstate"):
            self.cmd += ["-loadstate", self.host.storages.volume(self.options["vmstate"]).path]
        if self.template:
            self.cmd.append("-snapshot")
        if self.options.get("args"):
            self.cmd += shlex.split(self.options["args"])
        return self.cmd

    def process(self) -> None:
        """The QEMU process: affinity, ids, QMP sockets, pid file, SMBIOS."""
        vmid, options = self.vmid, self.options
        if options.get("affinity"):
            self.cmd += ["/usr/bin/taskset", "--cpu-list", "--all-tasks", options["affinity"]]
        name = options.get("name") or f"vm{vmid}"
        self.cmd += ["/usr/bin/kvm", "-id", str(vmid), "-name", f"{name},debug-threads=on",
                     "-no-shutdown", "-chardev", f"socket,id=qmp,path={RUN}/{vmid}.qmp,server=on,wait=off",
                     "-mon", "chardev=qmp,mode=control"]
        if self.at_least(2, 12):
            reconnect = "reconnect-ms=5000" if versions.at_least(self.host.kvm_version, 9, 2) else "reconnect=5"
            self.cmd += ["-chardev", f"socket,id=qmp-event,path=/var/run/qmeventd.sock,{reconnect}",
                         "-mon", "chardev=qmp-event,mode=control"]
        self.cmd += ["-pidfile", f"{RUN}/{vmid}.pid", "-daemonize"]
        if options.get("smbios1"):
            self.cmd += ["-smbios", smbios(options["smbios1"])]

    def firmware(self) -> None:
        if self.options.get("bios") == "ovmf":
            if hw.cpu_bits(self.options, self.host.cpu_models) == 32:
                raise GuestError("OVMF (UEFI) BIOS is not supported on 32-bit CPU types")
            firmware, flags = ovmf_args(self.options, self.vmid, self.host, self.machine_version, self.q35, self.guard,
                                        self.template)
            self.cmd += firmware
            self.machine_flags += flags
        if self.q35:
            self.devices += ["-readconfig", "/usr/share/qemu-server/pve-q35-4.0.cfg" if self.at_least(4, 0)
                             else "/usr/share/qemu-server/pve-q35.cfg"]
        # VMs created before QEMU 6.1 keep q35's old PCI hotplug on bridges (systemd's NIC names)
        machine_type = self.machine_conf.get("type")
        if (not machine_type or machine_type in ("pc", "q35", "virt")) and self.q35 \
                and not versions.at_least(versions.created_with(self.options) or "0.0", 6, 1) \
                and versions.at_least(self.host.kvm_version, 6, 1) and self.options.get("ostype") == "l26":
            self.cmd += ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]

    def early_devices(self) -> None:
        """vmgenid, the USB controllers, the tablet."""
        if self.options.get("vmgenid"):
            self.devices += ["-device", f"vmgenid,guid={self.options['vmgenid']}"]
        self.devices += hw.usb_controllers(self.options, self.bridges, self.machine_version, self.q35)
        tablet = self.options.get("tablet")
        if tablet is not None:
            use_tablet = tablet not in ("0", "off")
        else:  # not for SPICE, nor without a display
            use_tablet = not self.qxlnum and not self.vga["type"].startswith("serial")
        if use_tablet:
            self.devices += ["-device", f"usb-tablet,id=tablet,bus={'ehci' if self.q35 else 'uhci'}.0,port=1"]

    def ports_and_sound(self) -> None:
        """Serial and parallel ports, audio, the TPM."""
        vmid, options = self.vmid, self.options
        for i in range(MAX_SERIAL):
            path = options.get(f"serial{i}")
            if path == "socket":
                self.devices += ["-chardev", f"socket,id=serial{i},path={RUN}/{vmid}.serial{i},server=on,wait=off",
                                 "-device", f"isa-serial,chardev=serial{i}"]
            elif path:
                self.devices += ["-chardev", f"serial,id=serial{i},path={path}",
                                 "-device", f"isa-serial,chardev=serial{i}"]
        for i in range(MAX_PARALLEL):
            path = options.get(f"parallel{i}")
            if path:
                kind = "serial" if path.startswith("/dev/usb/lp") else "parallel"
                self.devices += ["-chardev", f"{kind},id=parallel{i},path={path}",
                                 "-device", f"isa-parallel,chardev=parallel{i}"]
        if self.at_least(4, 0) and options.get("audio0"):
            self.devices += audio_args(options["audio0"], self.machine_version)
        if options.get("tpmstate0") and not self.template:
            self.devices += ["-chardev", f"socket,id=tpmchar,path={RUN}/{vmid}.swtpm", "-tpmdev",
                             "emulator,id=tpmdev,chardev=tpmchar", "-device", "tpm-tis,tpmdev=tpmdev"]

    def processors_and_display(self) -> None:
        options = self.options
        sockets, cores = self.sockets, self.cores
        maxcpus = sockets * cores
        vcpus = int(options.get("vcpus") or maxcpus)
        if self.host.cpus < maxcpus:
            raise GuestError(f"MAX {self.host.cpus} vcpus allowed per VM on this node")
        if "cpu" in self.hotplug and self.at_least(2, 7):
            self.cmd += ["-smp", f"1,sockets={sockets},cores={cores},maxcpus={maxcpus}"]
            for i in range(2, vcpus + 1):
                self.cmd += ["-device", hw.cpu_hotplug_device(options, self.kvm, i, self.host.cpu_models)]
        else:
            self.cmd += ["-smp", f"{vcpus},sockets={sockets},cores={cores},maxcpus={maxcpus}"]
        self.cmd += ["-nodefaults", "-boot",
                     "menu=on,strict=on,reboot-timeout=1000,splash=/usr/share/qemu-server/bootsplash.jpg"]
        if options.get("acpi") in ("0", "off"):
            self.machine_flags.append("acpi=off")
        if options.get("reboot") in ("0", "off"):
            self.cmd.append("-no-reboot")
        kind = self.vga["type"]
        if kind and not kind.startswith("serial") and kind != "none":
            self.devices += ["-device", hw.vga_device(options, self.vga, self.machine_version, None, self.qxlnum,
                                                      self.bridges, self.q35)]
            if kind == "virtio-gl":
                self.cmd += ["-display", "egl-headless,gl=core"]
            self.cmd += ["-vnc", f"unix:{RUN}/{self.vmid}.vnc,password=on"]
        else:
            if kind == "none":
                self.cmd += ["-vga", "none"]
            self.cmd.append("-nographic")

    def agent_and_rng(self) -> None:
        options = self.options
        agent = parse_props(options["agent"], "enabled") if options.get("agent") else {}
        if agent.get("enabled") in ("1", "on"):
            self.devices += ["-chardev", f"socket,path={RUN}/{self.vmid}.qga,server=on,wait=off,id=qga0"]
            if agent.get("type", "virtio") == "virtio":
                self.devices += ["-device", f"virtio-serial,id=qga0{hw.pci_addr('qga0', self.bridges)}",
                                 "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]
            elif agent["type"] == "isa":
                self.devices += ["-device", "isa-serial,chardev=qga0"]
        if options.get("rng0") and self.guard(4, 1, 2):
            rng = parse_props(options["rng0"], "source")
            max_bytes = rng.get("max_bytes", "1024")
            limiter = f",max-bytes={max_bytes},period={rng.get('period', '1000')}" if max_bytes not in ("0", "") else ""
            self.devices += ["-object", f"rng-random,filename={rng['source']},id=rng0",
                             "-device", f"virtio-rng-pci,rng=rng0{limiter}{hw.pci_addr('rng0', self.bridges)}"]

    def balloon_and_watchdog(self) -> None:
        options = self.options
        if options.get("balloon", "1") != "0":
            self.devices += ["-device", "virtio-balloon-pci,id=balloon0" + hw.pci_addr("balloon0", self.bridges)
                             + (",free-page-reporting=on" if self.at_least(6, 2) else "")]
        if options.get("watchdog"):
            watchdog = parse_props(options["watchdog"], "model")
            self.devices += ["-device", watchdog.get("model", "i6300esb") + hw.pci_addr("watchdog", self.bridges)]
            if watchdog.get("action"):
                self.devices += ["-watchdog-action", watchdog["action"]]
        if self.host.iscsi_initiator:
            self.devices += ["-iscsi", f"initiator-name={self.host.iscsi_initiator}"]

    def nics(self) -> None:
        scripts = BRIDGE_SCRIPTS.get(self.host.major, BRIDGE_SCRIPTS["9"])
        for i in range(MAX_NETS):
            key = f"net{i}"
            if not self.options.get(key):
                continue
            net = parse_net(self.options[key])
            self.devices += ["-netdev", hw.netdev(self.vmid, self.options, net, key, scripts)]
            self.guard(10, 0, 1)  # host_mtu tells 10.0+pve1 apart
            self.devices += ["-device", hw.net_device(net, key, self.bridges, self.machine_version, self.old_bios_files,
                                                      self.host.bridge_mtu, self.bootorder.get(key))]
        if self.options.get("ivshmem"):
            ivshmem = parse_props(self.options["ivshmem"], "size")
            bus = hw.pcie_addr("ivshmem") if self.q35 else hw.pci_addr("ivshmem", self.bridges)
            path = f"/dev/shm/pve-shm-{ivshmem.get('name', self.vmid)}"
            self.devices += ["-device", f"ivshmem-plain,memdev=ivshmem{bus},", "-object",
                             f"memory-backend-file,id=ivshmem,share=on,mem-path={path},size={ivshmem['size']}M"]

    def pci_bridges(self, legacy_igd: bool) -> None:
        """The PCI bridges the devices' slots need (q35's config file brings the first three)."""
        bridges = self.bridges
        if 4 in bridges:
            bridges.add(1)  # pci.4 is nested in pci.1
        if not self.q35:
            if self.at_least(2, 3):
                bridges |= {1, 2}
            if (self.options.get("scsihw") or "lsi").startswith("virtio-scsi-single"):
                bridges.add(3)
        for bridge in sorted(bridges, key=str, reverse=True):
            if self.q35 and bridge < 4:
                continue
            name = f"{bridge}-igd" if bridge == 2 and legacy_igd else str(bridge)
            spec = f"pci-bridge,id=pci.{bridge},chassis_nr={bridge}{hw.pci_addr(f'pci.{name}', None)}"
            if self.q35:
                self.devices[2:2] = ["-device", spec]
            elif bridge > 0:
                self.devices[0:0] = ["-device", spec]

    def machine_options(self) -> None:
        """-machine's flags, the power states, vIOMMU, SEV."""
        if not self.kvm:
            self.machine_flags.append("accel=tcg")
        self.cmd += power_state_flags(self.machine_conf, self.guard)
        kind = self.vga["type"]
        if self.options.get("bios", "seabios") == "seabios" and (kind.startswith("serial") or kind == "none") \
                and not self.machine.startswith("virt"):
            self.machine_flags.append("smm=off")
        self.machine_flags.append(f"type={self.machine.rsplit('+pve', 1)[0]}+pve{self.guard.required_pve}")
        check_machine_properties(self.machine_conf)
        viommu = self.machine_conf.get("viommu")
        if viommu:
            extra = f",aw-bits={self.machine_conf['aw-bits']}" if self.machine_conf.get("aw-bits") else ""
            if viommu == "intel":
                self.devices[0:0] = ["-device", f"intel-iommu,intremap=on,caching-mode=on{extra}"]
                self.machine_flags.append("kernel-irqchip=split")
            else:
                self.devices += ["-device", f"virtio-iommu-pci{extra}"]
        if self.options.get("amd-sev"):
            self.devices += ["-object", hw.sev_object(self.options, self.host.hw_capabilities)]
            self.machine_flags.append("confidential-guest-support=sev0")


def timer_flags(options: dict[str, str], winversion: int, guard: versions.VersionGuard
                ) -> tuple[list[str], list[str], list[str]]:
    """qemu-server's Cfg2Cmd::Timer: (-global flags, -machine flags, -rtc flags)."""
    drift = options.get("tdf")
    localtime = options.get("localtime")
    acpi = options.get("acpi", "1") not in ("0", "off")
    if winversion >= 5:
        if localtime is None:
            localtime = "1"
        if acpi and drift is None:
            drift = "1"
    global_flags: list[str] = []
    machine_flags: list[str] = []
    if winversion >= 6:
        global_flags.append("kvm-pit.lost_tick_policy=discard")
        machine_flags.append("hpet=off")
    elif options.get("ostype") == "l26" and guard(10, 1, 0):
        machine_flags.append("hpet=off")
    rtc = ["driftfix=slew"] if drift in ("1", "on") else []
    startdate = options.get("startdate", "now")
    if startdate != "now":
        rtc.append(f"base={startdate}")
    elif localtime in ("1", "on"):
        rtc.append("base=localtime")
    return global_flags, machine_flags, rtc


def power_state_flags(machine_conf: dict[str, str], guard: versions.VersionGuard) -> list[str]:
    device = "ICH9-LPC" if "q35" in machine_conf.get("type", "") else "PIIX4_PM"
    default = "0" if guard(9, 2, 1) else "1"
    out: list[str] = []
    for state in ("s3", "s4"):
        if machine_conf.get(f"enable-{state}", default) in ("0", "off"):
            out += ["-global", f"{device}.disable_{state}=1"]
    return out


def check_machine_properties(machine_conf: dict[str, str]) -> None:
    if machine_conf.get("viommu") == "intel":
        if "q35" not in machine_conf.get("type", ""):
            raise GuestError("to use Intel vIOMMU please set the machine type to q35")
        if machine_conf.get("aw-bits") and machine_conf["aw-bits"] not in ("39", "48"):
            raise GuestError("Intel vIOMMU supports only 39 or 48 bits as address width")
    if machine_conf.get("aw-bits") and not machine_conf.get("viommu"):
        raise GuestError("cannot set aw-bits if no vIOMMU is configured")


def audio_args(value: str, machine_version: str) -> list[str]:
    audio = parse_props(value, "device")
    backend = audio.get("driver", "spice")
    backend_id = f"{backend}-backend0"
    audiodev = f",audiodev={backend_id}" if versions.at_least(machine_version, 4, 2) else ""
    addr = hw.pci_addr("audio0", None)
    if audio["device"] == "AC97":
        out = ["-device", f"AC97,id=audiodev0{addr}{audiodev}"]
    elif audio["device"].endswith("intel-hda"):
        out = ["-device", f"{audio['device']},id=audiodev0{addr}",
               "-device", f"hda-micro,id=audiodev0-codec0,bus=audiodev0.0,cad=0{audiodev}",
               "-device", f"hda-duplex,id=audiodev0-codec1,bus=audiodev0.0,cad=1{audiodev}"]
    else:
        raise GuestError(f"unknown audio device '{audio['device']}', implement me!")
    return out + ["-audiodev", f"{backend},id={backend_id}"]


def spice_args(options: dict[str, str], vga: dict[str, str], qxlnum: int, winversion: int, machine_version: str,
               bridges: set[int], cmd: list[str], devices: list[str], q35: bool) -> None:
    if vga.get("clipboard") == "vnc" and not vga["type"].startswith(("std", "cirrus", "vmware", "virtio", "qxl")):
        raise GuestError(f"vga type {vga['type']} is not compatible with VNC clipboard")
    is_spice = bool(qxlnum) or vga["type"].startswith("virtio")
    if not is_spice and vga.get("clipboard") != "vnc":
        return
    if qxlnum > 1:
        if winversion:
            for i in range(1, qxlnum):
                devices += ["-device", hw.vga_device(options, vga, machine_version, i, qxlnum, bridges, q35)]
        else:
            ram, vram = "134217728", "67108864"
            if vga.get("memory"):
                ram, vram = str(qxlnum * 4 * int(vga["memory"]) << 20), str(qxlnum * 2 * int(vga["memory"]) << 20)
            cmd += ["-global", f"qxl-vga.ram_size={ram}", "-global", f"qxl-vga.vram_size={vram}"]
    devices += ["-device", f"virtio-serial,id=spice{hw.pci_addr('spice', bridges)}"]
    if vga.get("clipboard") == "vnc":
        devices += ["-chardev", "qemu-vdagent,id=vdagent,name=vdagent,clipboard=on"]
    else:
        devices += ["-chardev", "spicevmc,id=vdagent,name=vdagent"]
    devices += ["-device", "virtserialport,chardev=vdagent,name=com.redhat.spice.0"]
    if is_spice:
        enhancements = parse_props(options.get("spice_enhancements", ""))
        if enhancements.get("foldersharing") in ("1", "on"):
            devices += ["-chardev", "spiceport,id=foldershare,name=org.spice-space.webdav.0",
                        "-device", "virtserialport,chardev=foldershare,name=org.spice-space.webdav.0"]
        spice = "tls-port=61000,addr=127.0.0.1,tls-ciphers=HIGH,seamless-migration=on"
        if enhancements.get("videostreaming"):
            spice += f",streaming-video={enhancements['videostreaming']}"
        devices += ["-spice", spice]


def drive_args(options: dict[str, str], host: Host, machine_version: str, guard: versions.VersionGuard,
               bridges: set[int], bootorder: dict[str, int], q35: bool, template: bool, cmd: list[str],
               devices: list[str]) -> None:
    """Each drive: its controller (once), its -blockdev (or -drive) and its device."""
    controllers: set[str] = set()
    scsihw = options.get("scsihw") or "lsi"
    for key, drive in drives.drives_in_order(options):
        bus, index = drives.interface(key)
        if bus in ("efidisk", "tpmstate"):
            continue
        if bus == "virtio" and drive.get("iothread") in ("1", "on"):
            cmd += ["-object", f"iothread,id=iothread-{key}"]
        if bus == "scsi":
            _per, controller, prefix = drives.scsi_controller(options.get("scsihw"), index)
            if index > 13 and not guard(4, 1, 2):
                raise GuestError(f"scsi{index}: machine version 4.1~pve2 or higher is required to use more than 14"
                                 " SCSI disks")
            name = f"{prefix}{controller}"
            addr = hw.pci_addr(name, bridges)
            kind = "virtio-scsi-pci" if scsihw.startswith("virtio-scsi-single") else scsihw
            iothread = queues = ""
            if options.get("scsihw") == "virtio-scsi-single" and drive.get("iothread") in ("1", "on"):
                iothread = f",iothread=iothread-{name}"
                cmd += ["-object", f"iothread,id=iothread-{name}"]
            elif drive.get("iothread") in ("1", "on"):
                host.warn("iothread is only valid with virtio disk or virtio-scsi-single controller, ignoring")
            if options.get("scsihw") == "virtio-scsi-single" and drive.get("queues"):
                queues = f",num_queues={drive['queues']}"
            if name not in controllers:
                devices += ["-device", f"{kind},id={name}{addr}{iothread}{queues}"]
                controllers.add(name)
        if bus == "sata":
            name = f"ahci{index // drives.MAX_SATA_DISKS}"
            if name not in controllers:
                devices += ["-device", f"ahci,id={name},multifunction=on{hw.pci_addr(name, bridges)}"]
                controllers.add(name)
        if versions.at_least(machine_version, 10, 0):
            if drive["file"] != "none":
                cmd += ["-object", drives.json_text(drives.throttle_group(key, drive))]
                devices += ["-blockdev", drives.json_text(drives.drive_blockdev(host.storages, key, drive, template))]
        else:
            spec = drives.legacy_drive(host.storages, key, drive)
            if template and bus not in ("ide", "sata"):
                spec += ",readonly=on"
            devices += ["-drive", spec]
        addr = hw.pci_addr(key, bridges) if bus == "virtio" else ""
        devices += ["-device", drives.device(options, key, drive, host.storages, machine_version, addr, q35,
                                             bootorder.get(key))]


def runnable(argv: list[str], vmid: int, node: str,
             is_device: Callable[[str], bool] = drives.is_device_file) -> tuple[list[str], list[str]]:
    """The command as the twin runs it, and what was changed (for the task log). Debian's QEMU has
    no PVE patches and these machines no KVM: TCG instead of KVM, no `-id` (a PVE-only option),
    the plain machine type, no KVM-only CPU flags (and `max` for the CPU type `host`), no vhost-net,
    no boot splash; an emulated LVM volume is a file, not a device-mapper device, so QEMU opens it
    with its `file` driver; the console of a guest without a serial port goes to a file; fw_cfg tells
    the tiny guest OS its VMID and node."""
    out: list[str] = ["qemu-system-x86_64", "-accel", "tcg,tb-size=32"]
    changed = ["KVM is not available on this machine: running QEMU with TCG (software emulation)"]
    def tcg_cpu(arg: str) -> str:
        flags = [f for f in arg.split(",") if f != "enforce" and not f.startswith("+kvm_")]
        if flags and flags[0] == "host":  # the host's own CPU needs KVM; `max` is all that TCG emulates
            flags[0] = "max"
            changed.append("CPU type 'host' needs KVM: QEMU's 'max' (every feature TCG emulates) stands in for it")
        return ",".join(flags)

    rewrite = {"-cpu": tcg_cpu,
               "-machine": lambda a: ",".join(p.split("+pve")[0] if p.startswith("type=") else p for p in a.split(",")),
               "-boot": lambda a: ",".join(p for p in a.split(",") if not p.startswith("splash=")),
               "-netdev": lambda a: ",".join(p for p in a.split(",") if p != "vhost=on")}
    files: list[str] = []

    def plain_files(text: str) -> str:
        node = json.loads(text)
        walk = node
        while isinstance(walk, dict):
            if walk.get("driver") == "host_device" and not is_device(walk.get("filename", "")):
                walk["driver"] = "file"
                files.append(walk["filename"])
            walk = walk.get("file")
        return drives.json_text(node)

    rewrite["-blockdev"] = plain_files
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
    if files:
        changed.append(f"{', '.join(files)}: an emulated LVM volume is a file here (no device-mapper): opened"
                       " with QEMU's file driver instead of host_device")
    out += ["-fw_cfg", f"name=opt/pvelab/vmid,string={vmid}", "-fw_cfg", f"name=opt/pvelab/node,string={node}"]
    return out, changed


def console_log(vmid: int) -> str:
    return f"{RUN}/{vmid}.console"

