"""The guest hardware of a VM's QEMU command line besides its drives, as qemu-server prints it: PCI
slots, USB controllers and devices, the display, the CPU model and its flags, memory (hotplug DIMMs,
NUMA nodes, hugepages), PCI passthrough, UEFI firmware, NICs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pvelab.pve.guests import qemu_version as versions
from pvelab.pve.guests.store import GuestError, parse_props

# -- PCI slots (qemu-server's PCI.pm) -----------------------------------------------------------------
PCI_ADDR: dict[str, tuple[int, int]] = {
    "piix3": (0, 1), "ehci": (0, 1), "vga": (0, 2), "legacy-igd": (0, 2), "balloon0": (0, 3), "watchdog": (0, 4),
    "scsihw0": (0, 5), "pci.3": (0, 5), "scsihw1": (0, 6), "ahci0": (0, 7), "qga0": (0, 8), "spice": (0, 9),
    **{f"virtio{i}": (0, 10 + i) for i in range(6)}, "hostpci0": (0, 16), "hostpci1": (0, 17),
    **{f"net{i}": (0, 18 + i) for i in range(6)}, "vga1": (0, 24), "vga2": (0, 25), "vga3": (0, 26),
    "hostpci2": (0, 27), "hostpci3": (0, 28), "pci.1": (0, 30), "pci.2": (0, 31),
    **{f"net{i}": (1, i - 5) for i in range(6, 32)}, "xhci": (1, 27), "pci.4": (1, 28), "rng0": (1, 29),
    "pci.2-igd": (1, 30),
    **{f"virtio{i}": (2, i - 5) for i in range(6, 16)}, "ivshmem": (2, 11), "audio0": (2, 12),
    **{f"hostpci{i}": (2, 9 + i) for i in range(4, 16)},
    **{f"virtioscsi{i}": (3, i + 1) for i in range(31)}, "scsihw2": (4, 1), "scsihw3": (4, 2), "scsihw4": (4, 3),
}
PCIE_ADDR: dict[str, tuple[str, int]] = {
    "vga": ("pcie.0", 1), **{f"hostpci{i}": (f"ich9-pcie-port-{i + 1}", 0) for i in range(16)},
    "hostpci0bus0": ("pcie.0", 16), "hostpci1bus0": ("pcie.0", 17), "hostpci2bus0": ("pcie.0", 18),
    "hostpci3bus0": ("pcie.0", 19), "ivshmem": ("pcie.0", 20),
    **{f"hostpci{i}bus0": ("pcie.0", 5 + i) for i in range(4, 11)},
    **{f"hostpci{i}bus0": ("pcie.0", 10 + i) for i in range(11, 16)},
}
ROOT_PORTS = {4: "10.0", 5: "10.1", 6: "10.2", 7: "10.3", 8: "10.4", 9: "10.5", 10: "10.6", 11: "10.7",
              12: "11.0", 13: "11.1", 14: "11.2", 15: "11.3"}


def pci_addr(device_id: str, bridges: set[int] | None) -> str:
    if device_id not in PCI_ADDR:
        return ""
    bus, addr = PCI_ADDR[device_id]
    if bridges is not None:
        bridges.add(bus)
    return f",bus=pci.{bus},addr={addr:#x}"


def pcie_addr(device_id: str) -> str:
    if device_id not in PCIE_ADDR:
        return ""
    bus, addr = PCIE_ADDR[device_id]
    return f",bus={bus},addr={addr:#x}"


def pcie_root_port(index: int) -> str:
    port = index + 1
    return (f"pcie-root-port,id=ich9-pcie-port-{port},addr={ROOT_PORTS[index]},x-speed=16,x-width=32,"
            f"multifunction=on,bus=pcie.0,port={port},chassis={port}")


# -- USB ---------------------------------------------------------------------------------------------
OLD_MAX_USB, MAX_USB = 5, 14
USB_ID = re.compile(r"^(0x)?([0-9A-Fa-f]{4}):(0x)?([0-9A-Fa-f]{4})$")
USB_PATH = re.compile(r"^(\d+)-(\d+(\.\d+)*)$")


def uses_qemu_xhci(options: dict[str, str], machine_version: str) -> bool:
    ostype = options.get("ostype")
    return versions.at_least(machine_version, 7, 1) and ostype is not None \
        and (ostype == "l26" or versions.windows_version(ostype) > 7)


def usable_usb_index(index: int, qemu_xhci: bool) -> None:
    if index >= OLD_MAX_USB and not qemu_xhci:
        raise GuestError(f"using usb{index} is only possible with machine type >= 7.1 and ostype l26 or windows > 7")


def usb_controllers(options: dict[str, str], bridges: set[int], machine_version: str, q35: bool) -> list[str]:
    out: list[str] = []
    qemu_xhci = uses_qemu_xhci(options, machine_version)
    if not q35:
        out += ["-device", f"piix3-usb-uhci,id=uhci{pci_addr('piix3', bridges)}.0x2"]
    usb2 = usb3 = any_usb = False
    for i in range(MAX_USB):
        if not options.get(f"usb{i}"):
            continue
        usable_usb_index(i, qemu_xhci)
        props = parse_props(options[f"usb{i}"], "host")
        any_usb = True
        if props.get("usb3") in ("1", "on"):
            usb3 = True
        else:
            usb2 = True
    if not qemu_xhci and not q35 and usb2:
        out += ["-readconfig", "/usr/share/qemu-server/pve-usb.cfg"]
    addr = pci_addr("xhci", bridges)
    if qemu_xhci and any_usb:
        out += ["-device", f"qemu-xhci,p2=15,p3=15,id=xhci{addr}"]
    elif usb3:
        out += ["-device", f"nec-usb-xhci,id=xhci{addr}"]
    return out


def usb_devices(options: dict[str, str], spice_usb3: bool, bootorder: dict[str, int], machine_version: str,
                warn: Callable[[str], None]) -> list[str]:
    out: list[str] = []
    qemu_xhci = uses_qemu_xhci(options, machine_version)
    for i in range(MAX_USB):
        name = f"usb{i}"
        if not options.get(name):
            continue
        usable_usb_index(i, qemu_xhci)
        props = parse_props(options[name], "host")
        port = i + 1 if qemu_xhci else None
        usb3 = props.get("usb3") in ("1", "on")
        if props.get("host", "").lower() == "spice":
            bus = "xhci" if (usb3 and spice_usb3) or qemu_xhci else "ehci"
            out += ["-chardev", f"spicevmc,id=usbredirchardev{i},name=usbredir",
                    "-device", f"usb-redir,chardev=usbredirchardev{i},id=usbredirdev{i},bus={bus}.0"
                    + (f",port={port}" if port is not None else "")]
            if bootorder.get(name):
                warn("warning: spice usb port set as bootdevice, ignoring")
            continue
        device = "usb-host"
        if usb3 or port is not None:
            device += ",bus=xhci.0" + (f",port={port}" if port is not None else "")
        host = props.get("host", "")
        found_id, found_path = USB_ID.match(host), USB_PATH.match(host)
        if found_id:
            device += f",vendorid=0x{found_id.group(2)},productid=0x{found_id.group(4)}"
        elif found_path:
            device += f",hostbus={found_path.group(1)},hostport={found_path.group(2)}"
        else:
            raise GuestError("no usb id or path given")
        device += f",id={name}" + (f",bootindex={bootorder[name]}" if bootorder.get(name) else "")
        out += ["-device", device]
    return out


# -- display -----------------------------------------------------------------------------------------
VGA_DEVICES = {"cirrus": "cirrus-vga", "std": "VGA", "vmware": "vmware-svga", "virtio": "virtio-vga",
               "virtio-gl": "virtio-vga-gl"}


def vga_properties(options: dict[str, str], machine_version: str, winversion: int) -> tuple[dict[str, str], int]:
    vga = parse_props(options.get("vga", ""), "type") if options.get("vga") else {}
    found = re.fullmatch(r"qxl([234])?", vga.get("type", ""))
    qxlnum = int(found.group(1) or 1) if found else 0
    if qxlnum:
        vga["type"] = "qxl"
    if not vga.get("type"):
        if versions.at_least(machine_version, 2, 9):
            vga["type"] = "std" if not winversion or winversion >= 6 else "cirrus"
        else:
            vga["type"] = "std" if winversion >= 6 else "cirrus"
    return vga, qxlnum


def vga_device(options: dict[str, str], vga: dict[str, str], machine_version: str, index: int | None, qxlnum: int,
               bridges: set[int], q35: bool) -> str:
    kind = VGA_DEVICES.get(vga["type"])
    max_outputs = ""
    if qxlnum:
        kind = "qxl" if index else "qxl-vga"
        ostype = options.get("ostype")
        if (not ostype or re.match(r"^(?:l\d\d)|(?:other)$", ostype)) and versions.at_least(machine_version, 4, 1):
            max_outputs = ",max_outputs=4"
    if not kind:
        raise GuestError(f"no device-type for {vga['type']}")
    memory = ""
    if vga.get("memory"):
        mb = int(vga["memory"])
        if vga["type"].startswith("virtio"):
            memory = f",max_hostmem={mb * 1024 * 1024}"
        elif qxlnum:
            memory = f",vgamem_mb={mb},ram_size_mb={mb * 4},vram_size_mb={mb * 2}"
        else:
            memory = f",vgamem_mb={mb}"
    elif qxlnum and index:
        memory = ",ram_size=67108864,vram_size=33554432"
    edid = ",edid=off" if kind == "VGA" and versions.windows_version(options.get("ostype")) \
        and options.get("bios", "seabios") != "ovmf" else ""
    vga_id = f"vga{index or ''}"
    addr = pcie_addr(vga_id) if q35 and vga_id == "vga" else pci_addr(vga_id, bridges)
    return f"{kind},id={vga_id}{memory}{max_outputs}{addr}{edid}"


# -- CPU (qemu-server's CPUConfig.pm) -----------------------------------------------------------------
BUILTIN_MODELS = {
    "x86-64-v2": "+popcnt;+pni;+sse4.1;+sse4.2;+ssse3",
    "x86-64-v2-AES": "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3",
    "x86-64-v3": "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;+xsave",
    "x86-64-v4": "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;+xsave;"
                 "+avx512f;+avx512bw;+avx512cd;+avx512dq;+avx512vl",
}
DEPRECATED_MODELS = {"Icelake-Client": "Icelake-Server", "Icelake-Client-noTSX": "Icelake-Server-noTSX"}
INTEL_MODELS = (  # noqa: SIM905 - qemu-server's list, as one text
    "486 pentium pentium2 pentium3 coreduo core2duo Conroe Penryn Nehalem Nehalem-IBRS Westmere Westmere-IBRS "
    "SandyBridge SandyBridge-IBRS IvyBridge IvyBridge-IBRS Haswell Haswell-IBRS Haswell-noTSX Haswell-noTSX-IBRS "
    "Broadwell Broadwell-IBRS Broadwell-noTSX Broadwell-noTSX-IBRS Skylake-Client Skylake-Client-IBRS "
    "Skylake-Client-noTSX-IBRS Skylake-Client-v4 Skylake-Server Skylake-Server-IBRS Skylake-Server-noTSX-IBRS "
    "Skylake-Server-v4 Skylake-Server-v5 Cascadelake-Server Cascadelake-Server-v2 Cascadelake-Server-noTSX "
    "Cascadelake-Server-v4 Cascadelake-Server-v5 Cooperlake Cooperlake-v2 KnightsMill Icelake-Client "
    "Icelake-Client-noTSX Icelake-Server Icelake-Server-noTSX Icelake-Server-v3 Icelake-Server-v4 "
    "Icelake-Server-v5 Icelake-Server-v6 SapphireRapids SapphireRapids-v2 GraniteRapids").split()
AMD_MODELS = (  # noqa: SIM905 - the same
    "athlon phenom Opteron_G1 Opteron_G2 Opteron_G3 Opteron_G4 Opteron_G5 EPYC EPYC-IBPB EPYC-v3 EPYC-v4 "
              "EPYC-Rome EPYC-Rome-v2 EPYC-Rome-v3 EPYC-Rome-v4 EPYC-Milan EPYC-Milan-v2 EPYC-Genoa").split()
CPU_VENDORS = {**dict.fromkeys(INTEL_MODELS, "GenuineIntel"), **dict.fromkeys(AMD_MODELS, "AuthenticAMD"),
               **dict.fromkeys(("host", "kvm32", "kvm64", "qemu32", "qemu64", "max"), "default")}
VM_CPU_FLAGS = ("pcid", "spec-ctrl", "ibpb", "ssbd", "virt-ssbd", "amd-ssbd", "amd-no-ssb", "pdpe1gb", "md-clear",
                "hv-tlbflush", "hv-evmcs", "aes")
CPU_32BIT = ("486", "pentium", "pentium2", "pentium3", "coreduo", "athlon", "kvm32", "qemu32")

Flag = tuple[str, str | None]  # (op '+', '-' or '', value)


def flag_list(text: str | None, only: tuple[str, ...] | None = None) -> dict[str, Flag]:
    out: dict[str, Flag] = {}
    for flag in (text or "").split(";"):
        found = re.fullmatch(r"([+-])([a-zA-Z0-9\-_.]+)", flag)
        if found and (only is None or found.group(2) in only):
            out[found.group(2)] = (found.group(1), None)
    return out


def cpu_conf(options: dict[str, str]) -> dict[str, str]:
    if not options.get("cpu"):
        return {}
    return parse_props(options["cpu"], "cputype")


def cpu_model(cputype: str, custom_models: dict[str, dict[str, str]]) -> tuple[str, dict[str, str] | None, str | None]:
    """(the model QEMU gets, the custom model's settings, the builtin model's flags)."""
    if cputype in BUILTIN_MODELS:
        return "qemu64", None, BUILTIN_MODELS[cputype]
    if cputype.startswith("custom-"):
        custom = custom_models.get(cputype.removeprefix("custom-"))
        if custom is None:
            raise GuestError(f"Custom cputype '{cputype.removeprefix('custom-')}' not found")
        return custom.get("reported-model", "kvm64"), custom, None
    return cputype, None, None


def hyperv_flags(winversion: int, machine_version: str, bios: str | None, gpu_passthrough: bool,
                 hv_vendor_id: str | None) -> dict[str, Flag]:
    if winversion < 6 or (bios == "ovmf" and winversion < 8):
        return {}
    flags: dict[str, Flag] = {}
    if gpu_passthrough or hv_vendor_id is not None:
        flags["hv_vendor_id"] = ("", hv_vendor_id or "proxmox")
    if versions.at_least(machine_version, 2, 3):
        flags.update(hv_spinlocks=("", "0x1fff"), hv_vapic=("", None), hv_time=("", None))
    else:
        flags["hv_spinlocks"] = ("", "0xffff")
    if versions.at_least(machine_version, 2, 6):
        flags.update(hv_reset=("", None), hv_vpindex=("", None), hv_runtime=("", None))
    if winversion >= 7:
        flags["hv_relaxed"] = ("", None)
        if versions.at_least(machine_version, 2, 12):
            flags.update(hv_synic=("", None), hv_stimer=("", None))
        if versions.at_least(machine_version, 3, 1):
            flags["hv_ipi"] = ("", None)
    return flags


def cpu_option(options: dict[str, str], kvm: bool, kvm_off: bool, machine_version: str, winversion: int,
               gpu_passthrough: bool, custom_models: dict[str, dict[str, str]]) -> str:
    """-cpu: the model, then every flag (PVE's, Hyper-V's, the model's, the VM's) by name."""
    cputype = "kvm64" if kvm else "qemu64"
    conf = cpu_conf(options)
    custom: dict[str, str] | None = None
    builtin_flags: str | None = None
    hv_vendor_id: str | None = None
    if conf:
        wanted = conf["cputype"]
        if not wanted.startswith("custom-") and wanted not in CPU_VENDORS and wanted not in BUILTIN_MODELS:
            raise GuestError(f"Built-in cputype '{wanted}' is not defined (missing 'custom-' prefix?)")
        cputype, custom, builtin_flags = cpu_model(wanted, custom_models)
        if custom is not None:
            if "hidden" in custom:
                kvm_off = custom["hidden"] in ("1", "on")
            hv_vendor_id = custom.get("hv-vendor-id")
        cputype = DEPRECATED_MODELS.get(cputype, cputype)
        if "hidden" in conf:
            kvm_off = conf["hidden"] in ("1", "on")
        hv_vendor_id = conf.get("hv-vendor-id", hv_vendor_id)
    flags: dict[str, Flag] = {}
    if cputype == "kvm64":
        flags["lahf_lm"] = ("+", None)
    if options.get("ostype") == "solaris":
        flags["x2apic"] = ("-", None)
    if cputype in ("kvm64", "kvm32"):
        flags["sep"] = ("+", None)
    if cputype.startswith("Opteron"):
        flags["rdtscp"] = ("-", None)
    if versions.at_least(machine_version, 2, 3) and kvm:
        flags.update(kvm_pv_unhalt=("+", None), kvm_pv_eoi=("+", None))
    if kvm:
        flags.update(hyperv_flags(winversion, machine_version, options.get("bios"), gpu_passthrough, hv_vendor_id))
    flags.update(flag_list(builtin_flags))
    flags.update(flag_list((custom or {}).get("flags")))
    flags.update(flag_list(conf.get("flags"), VM_CPU_FLAGS))
    if cputype != "host" and kvm:
        flags["enforce"] = ("", None)
    if kvm_off:
        flags["kvm"] = ("", "off")
    vendor = CPU_VENDORS.get(cputype)
    if vendor is None:
        raise GuestError("internal error")
    if vendor != "default":
        flags["vendor"] = ("", vendor)
    text = cputype + "".join(f",{op}{name}" + (f"={value}" if value else "")
                             for name, (op, value) in sorted(flags.items()))
    for option in ("guest-phys-bits", "phys-bits"):
        bits = ""
        for source in (custom, conf):
            value = (source or {}).get(option)
            if value:
                bits = ",host-phys-bits=true" if value == "host" else f",{option}={value}"
        text += bits
    return text


def cpu_hotplug_device(options: dict[str, str], kvm: bool, cpu_id: int,
                       custom_models: dict[str, dict[str, str]]) -> str:
    cpu = "kvm64" if kvm else "qemu64"
    conf = cpu_conf(options)
    if conf:
        cpu, _, _ = cpu_model(conf["cputype"], custom_models)
        cpu = DEPRECATED_MODELS.get(cpu, cpu)
    cores = int(options.get("cores") or 1)
    core = (cpu_id - 1) % cores
    socket = (cpu_id - 1 - core) // cores
    return f"{cpu}-x86_64-cpu,id=cpu{cpu_id},socket-id={socket},core-id={core},thread-id=0"


def cpu_bits(options: dict[str, str], custom_models: dict[str, dict[str, str]]) -> int:
    conf = cpu_conf(options)
    cputype = cpu_model(conf["cputype"], custom_models)[0] if conf else "qemu64"
    return 32 if cputype in CPU_32BIT else 64


# -- memory (qemu-server's Memory.pm) ----------------------------------------------------------------
STATIC_MEMORY = 1024
MAX_NUMA = 8


def current_memory(options: dict[str, str]) -> int:
    return int(parse_props(options.get("memory", "512"), "current").get("current", 512))


def number_sets(text: str) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for part in text.split(";"):
        start, _, end = part.partition("-")
        out.append((int(start), int(end) if end else None))
    return out


def max_memory(options: dict[str, str], host_phys_bits: int) -> int:
    conf = cpu_conf(options)
    bits: int | None = None
    if conf.get("phys-bits"):
        bits = host_phys_bits if conf["phys-bits"] == "host" else int(conf["phys-bits"])
    if bits is None:
        bits = host_phys_bits if conf.get("cputype") in ("host", "max") else min(host_phys_bits, 40)
    bits &= ~1
    return min(1 << (bits - 21), 4 * 1024 * 1024)


def hugepage_size(options: dict[str, str], size: int) -> int:
    if size <= 0 or size & 1:
        raise GuestError(f"memory size '{size}' is not a positive even integer; cannot use for hugepages")
    wanted = options["hugepages"]
    if wanted == "any":
        return 1024 if size & 1023 == 0 else 2
    if size % int(wanted):
        raise GuestError(f"Memory size {size} is not a multiple of the requested hugepages size {wanted}")
    return int(wanted)


def memory_object(options: dict[str, str], object_id: str, size: int) -> str:
    if options.get("hugepages"):
        path = f"/run/hugepages/kvm/{hugepage_size(options, size) * 1024}kB"
        return f"memory-backend-file,id={object_id},size={size}M,mem-path={path},share=on,prealloc=yes"
    if object_id.startswith("virtiofs-mem"):
        return f"memory-backend-memfd,id={object_id},size={size}M,share=on"
    return f"memory-backend-ram,id={object_id},size={size}M"


def numa_nodes(options: dict[str, str]) -> list[int]:
    nodes = [i for i in range(MAX_NUMA) if options.get(f"numa{i}")]
    return nodes or list(range(int(options.get("sockets") or 1)))


def memory_args(options: dict[str, str], sockets: int, cores: int, hotplug: bool, host_phys_bits: int) -> list[str]:
    """-m and, with NUMA, a memory backend and a -numa node per node; with hotplug, the DIMMs."""
    memory = current_memory(options)
    cmd: list[str] = []
    if hotplug:
        if options.get("numa") not in ("1", "on"):
            raise GuestError("NUMA needs to be enabled for memory hotplug")
        limit = max_memory(options, host_phys_bits)
        if memory > limit:
            raise GuestError(f"Total memory is bigger than {limit}MB")
        static = STATIC_MEMORY * (int(options.get("sockets") or 1) if options.get("hugepages") == "1024" else 1)
        if memory < static:
            raise GuestError(f"minimum memory must be {static}MB")
        cmd += ["-m", f"size={static},slots=255,maxmem={limit}M"]
    else:
        static = memory
        cmd += ["-m", str(static)]
    if options.get("hugepages") and options.get("numa") not in ("1", "on"):
        raise GuestError("numa needs to be enabled to use hugepages")
    if options.get("numa") in ("1", "on"):
        total = 0
        for i in range(MAX_NUMA):
            if not options.get(f"numa{i}"):
                continue
            numa = parse_props(options[f"numa{i}"])
            if not numa.get("memory"):
                raise GuestError(f"missing NUMA node{i} memory value")
            total += int(numa["memory"])
            obj = memory_object(options, f"ram-node{i}", int(numa["memory"]))
            if "cpus" not in numa:
                raise GuestError(f"missing NUMA node{i} cpus")
            cpus = ",cpus=".join(f"{a}-{b}" if b is not None else str(a) for a, b in number_sets(numa["cpus"]))
            if numa.get("hostnodes"):
                hostnodes = ",".join(f"{a}-{b}" if b is not None else str(a) for a, b in number_sets(numa["hostnodes"]))
                if not numa.get("policy"):
                    raise GuestError(f"you need to define a policy for hostnode {hostnodes}")
                obj += f",host-nodes={hostnodes},policy={numa['policy']}"
            elif options.get("hugepages"):
                raise GuestError("numa hostnodes need to be defined to use hugepages")
            cmd += ["-object", obj, "-numa", f"node,nodeid={i},cpus={cpus},memdev=ram-node{i}"]
        if total and total != static:
            raise GuestError("total memory for NUMA nodes must be equal to vm static memory")
        if not total:
            per_node = static // sockets
            for i in range(sockets):
                cpus = str(cores * i) + (f"-{cores * i + cores - 1}" if cores > 1 else "")
                cmd += ["-object", memory_object(options, f"ram-node{i}", per_node),
                        "-numa", f"node,nodeid={i},cpus={cpus},memdev=ram-node{i}"]
    if hotplug:
        cmd += dimms(options, memory, static)
    return cmd


def dimms(options: dict[str, str], memory: int, static: int) -> list[str]:
    out: list[str] = []
    size, current, dimm = (1024 if options.get("hugepages") == "1024" else 512), static, 0
    if current == memory:
        return out
    nodes = numa_nodes(options)
    for _ in range(8):
        for i in range(32):
            name = f"dimm{dimm}"
            dimm += 1
            current += size
            out += ["-object", memory_object(options, f"mem-{name}", size),
                    "-device", f"pc-dimm,id={name},memdev=mem-{name},node={nodes[i % len(nodes)]}"]
            if current > memory:
                raise GuestError(f"memory size ({memory}) must be aligned to {size} for hotplugging")
            if current >= memory:
                return out
        size *= 2
    return out


# -- NICs --------------------------------------------------------------------------------------------
OLD_ROMS = {"virtio-net-pci": "pxe-virtio.rom", "e1000": "pxe-e1000.rom", "e1000e": "pxe-e1000e.rom",
            "ne2k": "pxe-ne2k_pci.rom", "pcnet": "pxe-pcnet.rom", "rtl8139": "pxe-rtl8139.rom"}


def netdev(vmid: int, options: dict[str, str], net: dict[str, str], key: str, scripts: str) -> str:
    index = int(key[3:])
    if net.get("bridge"):
        vhost = ",vhost=on" if net["model"] == "virtio" else ""
        out = (f"type=tap,id={key},ifname=tap{vmid}i{index},script={scripts}/pve-bridge,"
               f"downscript={scripts}/pve-bridgedown{vhost}")
    else:
        out = f"type=user,id={key},hostname={options.get('name') or f'vm{vmid}'}"
    if net.get("queues") and net["model"] == "virtio":
        out += f",queues={net['queues']}"
    return out


def net_device(net: dict[str, str], key: str, bridges: set[int], machine_version: str, old_bios_files: bool,
               bridge_mtu: Callable[[str], int], bootindex: int | None) -> str:
    model = "virtio-net-pci" if net["model"] == "virtio" else net["model"]
    out = f"{model},mac={net['macaddr']},netdev={key}{pci_addr(key, bridges)},id={key}"
    virtio = net["model"] == "virtio"
    if virtio and int(net.get("queues") or 0) > 1:
        out += f",vectors={int(net['queues']) * 2 + 2},mq=on"
        if versions.at_least(machine_version, 7, 1):
            out += ",packed=on"
    if versions.at_least(machine_version, 7, 1) and virtio:
        out += ",rx_queue_size=1024,tx_queue_size=256"
    if bootindex:
        out += f",bootindex={bootindex}"
    if virtio and net.get("bridge"):
        mtu = int(net["mtu"]) if net.get("mtu") else None
        limit = bridge_mtu(net["bridge"])
        if mtu is None or mtu == 1:
            mtu = limit
        elif mtu < 576:
            raise GuestError(f"netdev {key}: MTU '{mtu}' is smaller than the IP minimum MTU '576'")
        elif mtu > limit:
            raise GuestError(f"netdev {key}: MTU '{mtu}' is bigger than the bridge MTU '{limit}' - adjust the MTU"
                             " for the network device in the VM configuration, while ensuring that the bridge is"
                             " configured as desired.")
        if versions.at_least(machine_version, 10, 0, 1) or mtu != 1500:
            out += f",host_mtu={mtu}"
    if old_bios_files and model in OLD_ROMS:
        out += f",romfile={OLD_ROMS[model]}"
    return out


# -- PCI passthrough ---------------------------------------------------------------------------------
def hostpci_choices(d: dict[str, str], lspci: Callable[[str], list[str]],
                    mapping: Callable[[str], list[str]]) -> list[list[str]]:
    """The host devices a hostpciN may use: one set of functions per alternative (a mapping may
    offer several), each function as lspci lists it (PCI.pm's parse_hostpci)."""
    if d.get("host") and d.get("mapping"):
        raise GuestError("Cannot set both 'host' and 'mapping'.")
    if d.get("mapping"):
        alternatives = [path.split(";") for path in mapping(d["mapping"])]
        if not alternatives:
            raise GuestError(f"PCI device mapping not found for '{d['mapping']}'")
    elif d.get("host"):
        alternatives = [d["host"].split(";")]
    else:
        raise GuestError("Either 'host' or 'mapping' must be set.")
    found: list[list[str]] = []
    for alternative in alternatives:
        ids: list[str] = []
        for pci_id in alternative:
            devs = lspci(pci_id)
            if not devs:
                raise GuestError(f"no PCI device found for '{pci_id}'")
            ids += devs
        if len(ids) > 1 and d.get("mdev"):
            raise GuestError("cannot use mediated device with multifunction device")
        found.append(ids)
    return found


def choose_functions(key: str, d: dict[str, str], found: list[list[str]], used: set[str]) -> list[str]:
    """The alternative a hostpciN gets: its only one, or the first whose functions are still free."""
    if d.get("mdev"):
        return [ids[0] for ids in found]
    if len(found) == 1:
        for pci_id in found[0]:
            if pci_id in used:
                raise GuestError(f"device '{pci_id}' assigned more than once")
            used.add(pci_id)
        return found[0]
    free = [ids for ids in found if not any(p in used for p in ids)]
    if not free:
        raise GuestError(f"could not find a free device for '{key}'")
    used.update(free[0])
    return free[0]


def hostpci_devices(vmid: int, options: dict[str, str], devices: list[str], vga: dict[str, str], winversion: int,
                    bridges: set[int], bootorder: dict[str, int], q35: bool, lspci: Callable[[str], list[str]],
                    mapping: Callable[[str], list[str]]) -> tuple[bool, bool, bool]:
    """vfio-pci devices for hostpciN (PCI.pm's print_hostpci_devices); (kvm off, GPU passthrough,
    legacy IGD)."""
    kvm_off = gpu = legacy_igd = False
    used: set[str] = set()
    on = ("1", "on")
    for i in range(16):
        key = f"hostpci{i}"
        if not options.get(key):
            continue
        d = parse_props(options[key], "host")
        found = hostpci_choices(d, lspci, mapping)
        if not q35 and d.get("pcie") in on:
            raise GuestError("q35 machine model is not enabled")
        chosen = choose_functions(key, d, found, used)
        legacy_igd = legacy_igd or d.get("legacy-igd") in on
        if d.get("pcie") in on:
            if winversion != 7 and i > 3:
                devices += ["-device", pcie_root_port(i)]
            addr = pcie_addr(f"{key}bus0" if winversion == 7 else key)
        else:
            addr = pci_addr("legacy-igd" if d.get("legacy-igd") in on else key, bridges)
        xvga = ""
        if d.get("x-vga") in on:
            xvga = ",x-vga=on" if options.get("bios") != "ovmf" else ""
            kvm_off = gpu = True
            if "vga" not in options:
                vga["type"] = "none"
        devices += vfio_devices(vmid, i, d, chosen, addr, xvga, bootorder.get(key))
    return kvm_off, gpu, legacy_igd


def vfio_devices(vmid: int, index: int, d: dict[str, str], chosen: list[str], addr: str, xvga: str,
                 bootindex: int | None) -> list[str]:
    key = f"hostpci{index}"
    multifunction = len(chosen) > 1 and not d.get("mdev")
    sysfs = f"/sys/bus/mdev/devices/{index:08d}-0000-0000-0000-{vmid:012d}" if d.get("mdev") else None
    out: list[str] = []
    for j, pci_id in enumerate(chosen):
        device = "vfio-pci" + (f",sysfsdev={sysfs}" if sysfs else f",host={pci_id}")
        fn = f".{j}" if multifunction else ""
        device += f",id={key}{fn}{addr}{fn}"
        if j == 0:
            if d.get("rombar") in ("0", "off"):
                device += ",rombar=0"
            device += xvga + (",multifunction=on" if multifunction else "")
            if d.get("romfile"):
                device += f",romfile=/usr/share/kvm/{d['romfile']}"
            if bootindex:
                device += f",bootindex={bootindex}"
            for option in ("vendor-id", "device-id", "sub-vendor-id", "sub-device-id"):
                if d.get(option):
                    device += f",x-pci-{option}={d[option]}"
        out += ["-device", device]
        if d.get("mdev"):
            break
    return out


# -- AMD SEV -----------------------------------------------------------------------------------------
def sev_type(options: dict[str, str]) -> str | None:
    if not options.get("amd-sev"):
        return None
    return parse_props(options["amd-sev"], "type").get("type")


def sev_object(options: dict[str, str], caps: dict[str, Any]) -> str:
    conf = parse_props(options["amd-sev"], "type")
    sev = caps.get("amd-sev") or {}
    if not sev.get("sev-support"):
        raise GuestError("Your CPU does not support AMD SEV.")
    if conf["type"] == "es" and not sev.get("sev-support-es"):
        raise GuestError("Your CPU does not support AMD SEV-ES.")
    if conf["type"] == "snp" and not sev.get("sev-support-snp"):
        raise GuestError("Your CPU does not support AMD SEV-SNP.")
    if options.get("bios") != "ovmf":
        raise GuestError("To use AMD SEV, you need to change the BIOS to OVMF.")
    on = ("1", "on")
    if conf["type"] in ("es", "std"):
        out = f"sev-guest,id=sev0,cbitpos={sev['cbitpos']},reduced-phys-bits={sev['reduced-phys-bits']}"
        policy = (1 if conf.get("no-debug") in on else 0) | (2 if conf.get("no-key-sharing") in on else 0) \
            | (4 if conf["type"] == "es" else 0) | 8
    else:
        out = f"sev-snp-guest,id=sev0,cbitpos={sev['cbitpos']},reduced-phys-bits={sev['reduced-phys-bits']}"
        policy = 1 << 17
        if conf.get("allow-smt", "1") in on:
            policy |= 1 << 16
        if conf.get("no-debug") not in on:
            policy |= 1 << 19
    out += f",policy={policy:#x}"
    if conf.get("kernel-hashes") in on:
        out += ",kernel-hashes=on"
    return out
