"""Containers on this node, as pve-container runs them: Debian's LXC, privileged, started by
`systemctl start pve-container@VMID` (lxc-start in the foreground under systemd), with the LXC
config generated from the CT's PVE config at each start (/var/lib/lxc/VMID/config).

The twin's LXC config sets the NIC's address itself (lxc.net.N.ipv4.*), as it does for a CT whose
ostype PVE does not manage; memory limits are not applied (the nodes see no memory controller)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.poll import poll
from pvelab.procfs import running_for
from pvelab.pve.guests import store
from pvelab.pve.guests.config import VmConfig
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage.volumes import volume_path as storage_volume_path

Log = Callable[[str], None]
LXC_DIR = Path("/var/lib/lxc")
CGROUP2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
KIND = "lxc"


def volume_path(volid: str) -> Path:
    return storage_volume_path(volid).resolve()


def volumes_of(options: dict[str, str]) -> list[str]:
    """The volume IDs of a CT's root filesystem and mount points."""
    return [store.parse_drive(value)["file"] for key, value in options.items()
            if key == "rootfs" or (key.startswith("mp") and key[2:].isdigit())]


def state(vmid: int) -> tuple[str, int | None]:
    """('RUNNING'|'STOPPED'|..., init pid) from lxc-info."""
    out = subprocess.run(["lxc-info", "-n", str(vmid), "-s", "-p"], capture_output=True, text=True,
                         check=False).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    pid = fields.get("PID", "").strip()
    return fields.get("State", "STOPPED").strip(), int(pid) if pid.isdigit() else None


def running(vmid: int) -> bool:
    return state(vmid)[0] == "RUNNING"


def status(vmid: int, conf: VmConfig) -> dict[str, Any]:
    options = conf.main.options
    rootfs = store.parse_drive(options.get("rootfs", ""))
    out: dict[str, Any] = {"vmid": vmid, "status": "stopped", "name": options.get("hostname", f"CT{vmid}"),
                           "cpus": int(options.get("cores", 1)), "maxmem": int(options.get("memory", 512)) << 20,
                           "maxswap": int(options.get("swap", 512)) << 20,
                           "maxdisk": store.size_bytes(rootfs.get("size", "0"), "G"), "cpu": 0, "mem": 0, "disk": 0,
                           "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0, "uptime": 0, "type": "lxc",
                           "ha": {"managed": 0}}
    if options.get("lock"):
        out["lock"] = options["lock"]
    current, pid = state(vmid)
    if current == "RUNNING" and pid:
        out.update(status="running", uptime=int(running_for(pid)))
    return out


def net_lines(index: str, net: dict[str, str]) -> list[str]:
    lines = [f"lxc.net.{index}.type = veth", f"lxc.net.{index}.veth.pair = veth{{vmid}}i{index}",
             f"lxc.net.{index}.hwaddr = {net.get('hwaddr', '')}", f"lxc.net.{index}.name = {net.get('name', 'eth0')}",
             f"lxc.net.{index}.link = {net.get('bridge', 'vmbr0')}", f"lxc.net.{index}.flags = up",
             f"lxc.net.{index}.mtu = {net.get('mtu', '1500')}"]
    if net.get("ip") and net["ip"] not in ("dhcp", "manual"):
        lines.append(f"lxc.net.{index}.ipv4.address = {net['ip']}")
    if net.get("gw"):
        lines.append(f"lxc.net.{index}.ipv4.gateway = {net['gw']}")
    return lines


def lxc_config(vmid: int, node: str, options: dict[str, str]) -> str:
    """/var/lib/lxc/VMID/config, as pve-container's update_lxc_config writes it (the parts that apply)."""
    lines = ["lxc.arch = amd64", "lxc.apparmor.profile = unconfined", "lxc.autodev = 1",
             "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed", "lxc.monitor.unshare = 1",
             f"lxc.tty.max = {options.get('tty', '2')}", "lxc.pty.max = 1024",
             "lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio",
             "lxc.environment = TERM=linux", f"lxc.environment = PVELAB_VMID={vmid}",
             f"lxc.environment = PVELAB_NODE={node}", f"lxc.uts.name = {options.get('hostname', f'CT{vmid}')}",
             f"lxc.rootfs.path = dir:{volume_path(store.parse_drive(options['rootfs'])['file'])}"]
    for key in sorted(k for k in options if k.startswith("net") and k[3:].isdigit()):
        lines += [line.replace("{vmid}", str(vmid)) for line in net_lines(key[3:], store.parse_props(options[key]))]
    for key, value in options.items():  # raw lxc.* keys in the CT config pass through, as in PVE
        if key.startswith("lxc."):
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def start(vmid: int, node: str, conf: VmConfig, log: Log) -> None:
    if running(vmid):
        raise GuestError(f"CT {vmid} already running")
    directory = LXC_DIR / str(vmid)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text(lxc_config(vmid, node, conf.main.options))
    subprocess.run(["systemctl", "reset-failed", f"pve-container@{vmid}"], capture_output=True, check=False)
    started = subprocess.run(["systemctl", "start", f"pve-container@{vmid}"], capture_output=True, text=True,
                             check=False)
    if started.returncode != 0 or poll(lambda: running(vmid) or None, timeout=10, interval=0.1) is None:
        log(subprocess.run(["journalctl", "-u", f"pve-container@{vmid}", "-n", "5", "--no-pager"],
                           capture_output=True, text=True, check=False).stdout.strip())
        raise GuestError(f"startup for container '{vmid}' failed")


def stop(vmid: int) -> None:
    if running(vmid):
        subprocess.run(["lxc-stop", "-n", str(vmid), "--kill"], capture_output=True, check=False)
    subprocess.run(["systemctl", "stop", f"pve-container@{vmid}"], capture_output=True, check=False)


def payload_cgroup(vmid: int) -> Path | None:
    """The container's own cgroup on the cgroup2 hierarchy (hybrid layout first, then a pure one)."""
    for root in CGROUP2_ROOTS:
        group = root / f"lxc.payload.{vmid}"
        if (group / "cgroup.freeze").exists():
            return group
    return None


def freeze(vmid: int, frozen: bool) -> None:
    """The container's processes frozen (or thawed), as PVE::LXC::freeze/thaw on a cgroup2 host (PVE's
    default): its cgroup's cgroup.freeze set, then waited for (30 s, as PVE's command timeout) until
    cgroup.events says so. lxc-freeze cannot do it here: it looks for the v1 freezer first, and the
    nodes' v1 controllers are read-only inside systemd-nspawn."""
    what = "freeze" if frozen else "thaw"
    group = payload_cgroup(vmid)
    if group is None:
        raise GuestError(f"unable to {what} container {vmid}: it has no cgroup (is it running?)")
    (group / "cgroup.freeze").write_text("1\n" if frozen else "0\n")
    wanted = f"frozen {int(frozen)}"
    if poll(lambda: wanted in (group / "cgroup.events").read_text().splitlines() or None, timeout=30,
            interval=0.02) is None:
        raise GuestError(f"unable to {what} container {vmid}: timed out after 30 s")


def shutdown(vmid: int, timeout: float, force_stop: bool) -> None:
    """The CT's init asked to power off (SIGPWR), as `pct shutdown`; killed after `timeout` if forced."""
    done = subprocess.run(["lxc-stop", "-n", str(vmid), "--timeout", str(int(timeout))], capture_output=True,
                          check=False)
    if done.returncode != 0 and running(vmid):
        if not force_stop:
            raise GuestError(f"shutdown failed: CT {vmid} is still running after {int(timeout)} s")
        stop(vmid)
    subprocess.run(["systemctl", "stop", f"pve-container@{vmid}"], capture_output=True, check=False)


def unpack_template(template: str, rootfs: Path) -> str:
    """The template unpacked into the root filesystem as pve-container does it (GNU tar, numeric
    owners, sparse); tar's `Total bytes written` line."""
    path = storage_volume_path(template)
    if not path.exists():
        raise GuestError(f"volume '{template}' does not exist")
    unpacked = subprocess.run(["tar", "xpf", str(path), "--totals", "--one-file-system", "--sparse",
                               "--numeric-owner", "-C", str(rootfs)], capture_output=True, text=True, check=False)
    if unpacked.returncode != 0:
        raise GuestError(f"unable to extract '{template}': {unpacked.stderr.strip()}")
    return next((line for line in unpacked.stderr.splitlines() if line.startswith("Total bytes")), "")


def attach(vmid: int, command: list[str]) -> int:
    """`pct enter` (no command: a shell) and `pct exec`: lxc-attach, the command's exit code."""
    if not running(vmid):
        raise GuestError(f"CT {vmid} not running")
    argv = ["lxc-attach", "-n", str(vmid), "--clear-env", "--keep-var", "TERM"]
    return subprocess.run([*argv, "--", *command] if command else argv, check=False).returncode
