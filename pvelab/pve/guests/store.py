"""Where guests live: their config files in pmxcfs, the cluster-wide VMID list, config locks, and
PVE's property strings (`virtio=BC:24:11:..,bridge=vmbr0`, `local-lvm:vm-100-disk-0,size=1G`).

As on PVE: /etc/pve/nodes/<node>/qemu-server/<vmid>.conf, the node that holds the file owns the
guest, and moving the file to another node's directory is what moves a guest."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pvelab.pve import members
from pvelab.pve.guests.config import DRIVE_KEY, ConfigError, Section, VmConfig, dump, parse
from pvelab.pve.lockfile import lock_file
from pvelab.pve.refusal import Refusal

T = TypeVar("T")
NODES_DIR = Path("/etc/pve/nodes")
VMLIST = Path("/etc/pve/.vmlist")
LOCK_DIR = Path("/var/lock/qemu-server")
LXC_LOCK_DIR = Path("/run/lock/lxc")
NET_MODELS = ("virtio", "e1000", "e1000e", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "rtl8139",
              "vmxnet3", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet")


class GuestError(Refusal):
    """A refusal with PVE's message; status 500 unless a parameter is to blame (400)."""


def config_path(node: str, vmid: int, kind: str = "qemu") -> Path:
    return NODES_DIR / node / ("qemu-server" if kind == "qemu" else "lxc") / f"{vmid}.conf"


def vmlist() -> dict[int, dict[str, Any]]:
    """{vmid: {node, type, version}} for every guest of the cluster, as pmxcfs lists them."""
    return members.vmlist(VMLIST)


def owner(vmid: int) -> dict[str, Any] | None:
    return vmlist().get(vmid)


def relative(path: Path) -> str:
    return str(path.relative_to("/etc/pve"))


def load(node: str, vmid: int, kind: str = "qemu") -> VmConfig:
    path = config_path(node, vmid, kind)
    try:
        return parse(path.read_text(), typed=kind == "qemu")  # a VM's option of a wrong type is left out, as PVE
    except FileNotFoundError:
        raise GuestError(f"Configuration file '{relative(path)}' does not exist") from None
    except ConfigError as exc:
        raise GuestError(str(exc)) from exc


def save(node: str, vmid: int, conf: VmConfig, kind: str = "qemu") -> None:
    path = config_path(node, vmid, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{vmid}.conf.tmp")
        tmp.write_text(dump(conf))
        tmp.replace(path)
    except PermissionError as exc:
        raise GuestError("cluster not ready - no quorum?") from exc


def check_digest(conf: VmConfig, given: str | None) -> None:
    if given and given != conf.digest:
        raise GuestError("detected modified configuration - file changed by other user? Try again.")


def snapshot_section(conf: VmConfig, snapname: str) -> Section:
    """The config's snapshot of that name, or PVE's refusal."""
    found = conf.snapshots.get(snapname)
    if found is None:
        raise GuestError(f"snapshot '{snapname}' does not exist")
    return found


def options_at(conf: VmConfig, snapname: str | None) -> dict[str, str]:
    """The options of the snapshot named, or the config's own when none is."""
    return snapshot_section(conf, snapname).options if snapname else conf.main.options


def check_lock(conf: VmConfig, kind: str = "qemu") -> None:
    if conf.main.options.get("lock"):
        raise GuestError(f"{'VM' if kind == 'qemu' else 'CT'} is locked ({conf.main.options['lock']})")


def reserve(node: str, vmid: int, kind: str, prefix: str, check: Callable[[], T],
            force: bool = False) -> T:
    """PVE's create_and_lock_config: under the VMID's lock, refuse a VMID any guest of the cluster
    holds (check_vmid_unused's message, after `prefix`), run the caller's `check`, then claim the
    VMID with a config holding only `lock: create`. Returns what `check` returned."""
    with locked(vmid, kind):
        found = owner(vmid)
        if found is not None and not force:
            holder = "VM" if found.get("type") == "qemu" else "CT"
            raise GuestError(f"{prefix}{holder} {vmid} already exists on node '{found['node']}'")
        result = check()
        save(node, vmid, VmConfig(main=Section(options={"lock": "create"})), kind)
        return result


def set_lock(node: str, vmid: int, lock: str | None, kind: str = "qemu", move_to: str | None = None
             ) -> VmConfig:
    """Take the guest's config lock (`backup`, `migrate`: refused if it holds one) or drop it
    (None), under the VMID's lock; with `move_to`, the config then moves to that node, which is
    how a migration hands a guest over. Returns the config."""
    with locked(vmid, kind):
        conf = load(node, vmid, kind)
        if lock:
            check_lock(conf, kind)
            conf.main.options["lock"] = lock
        else:
            conf.main.options.pop("lock", None)
        save(node, vmid, conf, kind)
        if move_to:
            config_path(node, vmid, kind).rename(config_path(move_to, vmid, kind))
        return conf


@contextlib.contextmanager
def locked(vmid: int, kind: str = "qemu", timeout: float | None = None) -> Iterator[None]:
    """PVE's lock_config: a node-local flock per VMID, held while a config is read and written;
    with `timeout` (lock_config_full), PVE's error when it is not had within that many seconds."""
    directory = LOCK_DIR if kind == "qemu" else LXC_LOCK_DIR
    path = directory / f"pve-config-{vmid}.lock" if kind != "qemu" else directory / f"lock-{vmid}.conf"
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lock_file(path, timeout))
        except TimeoutError as exc:  # only the lock's own: the block's errors are its own
            raise GuestError(str(exc)) from None
        yield


# -- property strings --------------------------------------------------------------------------
def parse_props(text: str, default_key: str | None = None) -> dict[str, str]:
    """`a=1,b=2` as {a: 1, b: 2}; a first bare word is `default_key`'s value."""
    out: dict[str, str] = {}
    for i, part in enumerate(p for p in text.split(",") if p):
        key, sep, value = part.partition("=")
        if not sep:
            if i or default_key is None:
                raise GuestError(f"unable to parse property string '{text}'")
            key, value = default_key, part
        out[key] = value
    return out


def print_props(props: dict[str, str], default_key: str | None = None) -> str:
    parts = [props[default_key]] if default_key and default_key in props else []
    parts += [f"{k}={v}" for k, v in props.items() if k != default_key]
    return ",".join(parts)


def parse_drive(value: str) -> dict[str, str]:
    return parse_props(value, "file")


def print_drive(drive: dict[str, str]) -> str:
    return print_props(drive, "file")


def parse_net(value: str) -> dict[str, str]:
    """{model, macaddr, bridge, ...} from `virtio=MAC,bridge=vmbr0` or `model=virtio,...`."""
    props: dict[str, str] = {}
    for i, part in enumerate(p for p in value.split(",") if p):
        key, sep, val = part.partition("=")
        if key in NET_MODELS:
            props["model"] = key
            if sep:
                props["macaddr"] = val
        elif sep:
            props[key] = val
        elif i == 0:
            props["model"] = key
        else:
            raise GuestError(f"unable to parse network options '{value}'")
    return props


def print_net(net: dict[str, str]) -> str:
    """As PVE writes it: `model=MAC` first, then the other options in name order."""
    head = f"{net['model']}={net['macaddr']}" if net.get("macaddr") else net["model"]
    return ",".join([head, *(f"{k}={net[k]}" for k in sorted(net) if k not in ("model", "macaddr"))])


def drives(options: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each drive of a config by key (ide2, scsi0, ...), as property dicts."""
    return {key: parse_drive(value) for key, value in options.items() if DRIVE_KEY.match(key)}


def is_cdrom(drive: dict[str, str]) -> bool:
    return drive.get("media") == "cdrom"


def is_cloudinit(drive: dict[str, str]) -> bool:
    return drive.get("file", "").split(":")[-1].endswith("cloudinit") or "-cloudinit" in drive.get("file", "")


UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_bytes(text: str, bare_unit: str = "") -> int:
    """A `size=` value (`1G`, `64M`, `4096K`) in bytes; a bare number counts in `bare_unit`
    (bytes for drives; pve-container reads a bare rootfs size as GiB)."""
    unit = text[-1] if text and text[-1] in UNITS else ""
    number = float(text[:-1] if unit else text or 0)
    return int(number * UNITS.get(unit or bare_unit, 1))


def random_mac() -> str:
    """A guest NIC's MAC as PVE makes one: the Proxmox OUI (datacenter.cfg's default mac_prefix)."""
    return "BC:24:11:" + ":".join(f"{random.randrange(256):02X}" for _ in range(3))


def size_text(count: int) -> str:
    """PVE's format_size for a drive's size=: the largest unit that divides it exactly."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count % factor == 0:
            return f"{count // factor}{unit}"
    return str(count)


def kinds_on(node: str) -> dict[int, str]:
    """Every guest of `node` by VMID, with its kind ("qemu" or "lxc"): what vzdump and its jobs cover."""
    return {**{vmid: "qemu" for vmid in guests_on(node)}, **{vmid: "lxc" for vmid in guests_on(node, "lxc")}}


def guests_on(node: str, kind: str = "qemu") -> dict[int, VmConfig]:
    """Every VM (or CT) config of `node`, by VMID (unreadable ones skipped)."""
    out: dict[int, VmConfig] = {}
    for path in sorted(config_path(node, 0, kind).parent.glob("*.conf")):
        if path.stem.isdigit():
            with contextlib.suppress(OSError, ConfigError):
                out[int(path.stem)] = parse(path.read_text())
    return out
