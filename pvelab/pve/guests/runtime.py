"""A VM's QEMU process on this node: start it from its config, ask it how it is, stop it. As on
PVE, each QEMU runs in its own systemd scope (qemu.slice/VMID.scope), so restarting the API
daemons never touches a running guest, and it daemonizes with a pid file and a QMP socket."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.poll import poll
from pvelab.procfs import running_for
from pvelab.pve import members, version
from pvelab.pve.guests import qemu_cmd, qmp, store
from pvelab.pve.guests.config import VmConfig
from pvelab.pve.guests.qemu_drive import Volume, is_device_file
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage import volname, volumes

Log = Callable[[str], None]
RUN_DIR = qmp.RUN_DIR
# qemu.slice's CPU weight: guests get what corosync, pmxcfs and the HA daemons leave (the system
# slice keeps the default 100), so a busy guest under TCG cannot starve the cluster stack.
GUEST_CPU_WEIGHT = 20


def pid_of(vmid: int) -> int | None:
    """The VM's QEMU pid, when its pid file names a live QEMU (PVE's check_running)."""
    try:
        pid = int((RUN_DIR / f"{vmid}.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if any(b"qemu" in part or part == b"/usr/bin/kvm" for part in cmdline[:1]) else None


def quorate() -> bool:
    return members.quorate()


def check_quorum() -> None:
    if not quorate():
        raise GuestError("cluster not ready - no quorum?")


def volume_path(volid: str) -> str:
    """A volume's path for QEMU; an unknown storage is the guest's error."""
    try:
        return volumes.volume_location(volid)
    except storage_config.StorageError as exc:
        raise GuestError(str(exc)) from exc


def volume_exists(volid: str) -> bool:
    try:
        return volumes.volume_exists(volid)
    except storage_config.StorageError as exc:
        raise GuestError(str(exc)) from exc


class NodeStorages:
    """The storage layer as qemu-server's command line asks it (qemu_drive.Storages)."""

    def volume(self, volid: str) -> Volume:
        try:
            store_, name = volumes.volume_backend(volid)
            options = {**store_.options, "content": set(storage_config.content_of(store_.options))}
            if options["type"] == "dir":
                vtype, image = volname.parse_volname(name)[:2]
            else:
                vtype, image = "images", store_.image_name(name)
            fmt = store_.volume_format(name) if vtype == "images" else "raw"
            return Volume(store_.id, options, vtype, image, fmt, store_.location(name))
        except storage_config.StorageError as exc:
            raise GuestError(str(exc)) from exc

    def is_device(self, path: str) -> bool:
        return is_device_file(path)

    def snapshot_chain(self, volid: str) -> dict[str, dict[str, str]]:
        return {}  # no storage here keeps snapshots as a volume chain

    def cdrom_path(self) -> str:
        return "/dev/cdrom"

    def has_ceph_keyring(self, storage: str) -> bool:
        return Path(f"/etc/pve/priv/ceph/{storage}.keyring").exists()


@functools.cache
def installed_qemu() -> str:
    """The node's QEMU version, as qemu-server's kvm_user_version reads it."""
    out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out)
    return found.group(1) if found else ""


def iscsi_initiator() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/etc/iscsi/initiatorname.iscsi").read_text().splitlines():
            found = re.match(r"^\s*InitiatorName\s*=\s*([.\-:\w]+)", line)
            if found:
                return found.group(1)
    return None


def bridge_mtu(bridge: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{bridge}/mtu").read_text())
    except (OSError, ValueError):
        return 1500


def node_host() -> qemu_cmd.Host:
    return qemu_cmd.Host(kvm_version=installed_qemu(), nodename=os.uname().nodename, storages=NodeStorages(),
                         major=version.major(), bridge_mtu=bridge_mtu, cpus=os.cpu_count() or 1,
                         iscsi_initiator=iscsi_initiator(), warn=lambda message: print(f"WARN: {message}"),
                         is_file=os.path.isfile)


def command(vmid: int, conf: VmConfig) -> list[str]:
    """The command line qemu-server would run for this VM on this node (`qm showcmd`)."""
    return qemu_cmd.command(vmid, conf.main.options, node_host())


def qmp_status(vmid: int) -> str | None:
    with contextlib.suppress(qmp.QmpError):
        return str(qmp.command(vmid, "query-status", timeout=2)["status"])
    return None


def status(vmid: int, conf: VmConfig) -> dict[str, Any]:
    """GET .../status/current's answer."""
    options = conf.main.options
    memory = int(store.parse_props(options.get("memory", "512"), "current")["current"]) * 1024 * 1024
    cpus = int(options.get("sockets", 1)) * int(options.get("cores", 1))
    out: dict[str, Any] = {"vmid": vmid, "status": "stopped", "name": options.get("name", f"VM {vmid}"),
                           "cpus": cpus, "maxmem": memory, "maxdisk": max_disk(options), "cpu": 0, "mem": 0,
                           "disk": 0, "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0, "uptime": 0,
                           "qmpstatus": "stopped", "ha": {"managed": 0}}
    if options.get("lock"):
        out["lock"] = options["lock"]
    if options.get("tags"):
        out["tags"] = options["tags"]
    pid = pid_of(vmid)
    if pid is not None:
        out.update(status="running", pid=pid, uptime=int(running_for(pid)), mem=rss(pid),
                   qmpstatus=qmp_status(vmid) or "running")
    return out


def max_disk(options: dict[str, str]) -> int:
    """The boot disk's size, as PVE reports maxdisk."""
    for drive in store.drives(options).values():
        if not store.is_cdrom(drive) and "size" in drive:
            return store.size_bytes(drive["size"])
    return 0


def rss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- cloud-init (NoCloud, as PVE generates it for Linux guests) --------------------------------------
def cloudinit_files(vmid: int, options: dict[str, str]) -> dict[str, str]:
    name = options.get("name", f"VM{vmid}")
    network = "version: 1\nconfig:\n"
    for key in sorted(k for k in options if k.startswith("net") and k[3:].isdigit()):
        index = key[3:]
        net = store.parse_net(options[key])
        mac = net.get("macaddr", "").lower()
        network += f"    - type: physical\n      name: eth{index}\n      mac_address: '{mac}'\n      subnets:\n"
        ipconfig = store.parse_props(options.get(f"ipconfig{index}", ""))
        ip = ipconfig.get("ip", "")
        if ip == "dhcp":
            network += "      - type: dhcp4\n"
        elif ip:
            address, _, prefix = ip.partition("/")
            bits = (0xFFFFFFFF << (32 - int(prefix or 24))) & 0xFFFFFFFF
            netmask = ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))
            network += f"      - type: static\n        address: '{address}'\n        netmask: '{netmask}'\n"
            if ipconfig.get("gw"):
                network += f"        gateway: '{ipconfig['gw']}'\n"
    user = f"#cloud-config\nhostname: {name}\nmanage_etc_hosts: true\nfqdn: {name}\n"
    if options.get("ciuser"):
        user += f"user: {options['ciuser']}\n"
    user += "chpasswd:\n  expire: False\nusers:\n  - default\npackage_upgrade: true\n"
    instance = hashlib.sha1((user + network).encode()).hexdigest()
    return {"meta-data": f"instance-id: {instance}\n", "user-data": user, "network-config": network}


def write_cloudinit(vmid: int, options: dict[str, str], volid: str) -> None:
    """The cloud-init drive's ISO, written into its volume (qemu-server's generate_cloudinitconfig)."""
    target = volume_path(volid)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in cloudinit_files(vmid, options).items():
            Path(tmp, name).write_text(text)
        iso = Path(tmp).with_suffix(".iso")
        try:
            subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", "cidata", "-J", "-r", tmp],
                           check=True, capture_output=True)
            fmt = "qcow2" if target.endswith(".qcow2") else "raw"
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(iso), target], check=True,
                           capture_output=True)
        finally:
            iso.unlink(missing_ok=True)


# -- start / stop ---------------------------------------------------------------------------------
def start(vmid: int, node: str, conf: VmConfig, log: Log, incoming: str | None = None,
          config_node: str | None = None, paused: bool = False) -> None:
    """Start the VM's QEMU (paused for an incoming migration when `incoming` is a URI)."""
    if pid_of(vmid) is not None:
        raise GuestError(f"VM {vmid} already running")
    options = conf.main.options
    for key, drive in store.drives(options).items():
        file = drive.get("file", "none")
        if store.is_cloudinit(drive):
            # qemu-server keeps the ISO as it is for an incoming migration (on shared storage the
            # source QEMU still has it open); a local one is made here, where it does not exist yet
            if not incoming or not os.path.exists(volume_path(file)):
                write_cloudinit(vmid, options, file)
        elif ":" in file and not volume_exists(file):
            raise GuestError(f"volume '{file}' does not exist")
        elif ":" not in file and file != "none" and not os.path.exists(file):
            raise GuestError(f"{key}: unable to find '{file}'")
    argv, notes = qemu_cmd.runnable(command(vmid, conf), vmid, node)
    if incoming:
        argv += ["-incoming", incoming]
    if paused:
        argv += ["-S"]
    for note in notes:
        log(note)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / f"{vmid}.pid").unlink(missing_ok=True)
    scope = ["systemd-run", "--scope", "--quiet", "--slice=qemu", f"--unit={vmid}", "-p", "KillMode=none",
             "-p", f"CPUWeight={GUEST_CPU_WEIGHT}", "--description", f"VM {vmid}"]
    subprocess.run(["systemctl", "reset-failed", f"{vmid}.scope"], capture_output=True, check=False)
    env = {**os.environ, **({"PVE_MIGRATED_FROM": config_node} if config_node else {})}
    proc = subprocess.run([*scope, *argv], capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise GuestError(f"start failed: QEMU exited with code {proc.returncode}\n{proc.stderr.strip()}")
    if poll(lambda: pid_of(vmid), timeout=10, interval=0.05) is None:
        raise GuestError(f"start failed: QEMU of VM {vmid} did not come up")


def stop(vmid: int, log: Log, timeout: float = 10) -> None:
    """`qm stop`: QEMU quits at once (QMP quit), killed if it does not go (PVE's vm_stop)."""
    pid = pid_of(vmid)
    if pid is None:
        return
    with contextlib.suppress(qmp.QmpError):
        qmp.command(vmid, "quit", timeout=2)
    if poll(lambda: pid_of(vmid) is None or None, timeout=timeout, interval=0.05) is None:
        log("VM still running - terminating now with SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if poll(lambda: pid_of(vmid) is None or None, timeout=5, interval=0.05) is None:
            log("VM still running - terminating now with SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    cleanup(vmid)


def shutdown(vmid: int, log: Log, timeout: float, force_stop: bool) -> None:
    """`qm shutdown`: ACPI power button, wait for the guest to power off, then QEMU quits."""
    if pid_of(vmid) is None:
        return
    qmp.command(vmid, "system_powerdown")
    gone = poll(lambda: pid_of(vmid) is None or qmp_status(vmid) == "shutdown" or None, timeout=timeout,
                interval=0.2)
    if gone is None and not force_stop:
        raise GuestError("VM quit/powerdown failed - got timeout")
    if gone is None:
        log("VM still running - terminating now with SIGTERM")
    stop(vmid, log)


def cleanup(vmid: int) -> None:
    """vm_stop_cleanup's part here: the stopped QEMU's run files go."""
    for suffix in ("mon", "qmp", "pid", "vnc", "qga"):
        (RUN_DIR / f"{vmid}.{suffix}").unlink(missing_ok=True)


def request_reboot(vmid: int) -> None:
    """A reboot is a shutdown with this file left: `qm cleanup` starts the VM again (PVE's reboot request)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / f"{vmid}.reboot").touch()


def clear_reboot_request(vmid: int) -> bool:
    try:
        (RUN_DIR / f"{vmid}.reboot").unlink()
        return True
    except FileNotFoundError:
        return False


def cleanup_after_exit(node: str, vmid: int, clean: bool, guest: bool, warn: Log,
                       wait_s: float = 30, lock_s: float = 60) -> bool:
    """`qm cleanup VMID CLEAN GUEST`, which qmeventd runs once a QEMU's event socket closed: under
    the config lock, wait for that QEMU to be gone (a VM started again meanwhile aborts the
    cleanup), unplug the taps of a crashed one, drop the run files of one that crashed or that
    the guest powered off (a stop through the API did that itself). Whether a reboot was asked
    for (the caller starts the VM again). PVE's messages."""
    if not store.config_path(node, vmid).exists():
        return False
    warn(f"Starting cleanup for {vmid}")
    with store.locked(vmid, timeout=lock_s):
        conf = store.load(node, vmid)
        lock = conf.main.options.get("lock")
        pid = pid_of(vmid)
        if pid is not None:
            if clean and lock == "backup":
                raise GuestError("skipping cleanup - 'backup' lock is present and vm is running again")
            started, warned = time.monotonic(), False
            while pid is not None and time.monotonic() - started < wait_s:
                if not warned and time.monotonic() - started > wait_s / 3:
                    warn(f"VM cleanup: QEMU process {pid} for VM {vmid} still running (or newly started)")
                    warned = True
                time.sleep(1)
                pid = pid_of(vmid)
            if pid is not None:
                raise GuestError(f"aborting cleanup, VM is still running after {int(wait_s)} seconds")
        if lock == "rollback":
            raise GuestError("skipping cleanup - 'rollback' lock is present")
        if not clean:  # QEMU's taps go with it; one a crash left behind is removed
            for key in conf.main.options:
                if key.startswith("net") and key[3:].isdigit() and Path(f"/sys/class/net/tap{vmid}i{key[3:]}").exists():
                    subprocess.run(["ip", "link", "delete", f"tap{vmid}i{key[3:]}"], capture_output=True, check=False)
        if not clean or guest:
            cleanup(vmid)
        restart = clear_reboot_request(vmid)
    warn(f"Finished cleanup for {vmid}")
    return restart
