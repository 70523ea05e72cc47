"""What the HA daemons touch on a real node: pmxcfs locks, the watchdog-mux socket, the cluster's members,
HA's files and the guests' configs. The CRM's Manager and the LRM see only this (PVE's Env::PVE2)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

from pvelab.pve import members, version
from pvelab.pve.ha import config
from pvelab.pve.ha.rules import CompiledRules, compile_rules, group_nofailback

LOCK_LIFETIME = 120.0  # pmxcfs's CFS_LOCK_TIMEOUT: within it a lock is renewed, after it taken anew
WATCHDOG_SOCKET = Path("/run/watchdog-mux.sock")
PRIORITIES = {"err": 3, "warn": 4, "warning": 4, "notice": 5, "info": 6}
KINDS = {"vm": "qemu", "ct": "lxc"}


def log(level: str, message: str) -> None:
    """One journal line at syslog priority `level` (systemd reads the <N> prefix)."""
    print(f"<{PRIORITIES.get(level, 6)}>{message.rstrip()}", flush=True)


def protected_lock(get: Any) -> bool:
    """pve-ha-manager tries a lock up to 5 times, 1 s apart."""
    start = time.monotonic()
    for _ in range(6):
        if get():
            return True
        if time.monotonic() - start > 5:
            break
        time.sleep(1)
    return False


def sleep_until(deadline: float, stop: Any) -> None:
    while time.time() < deadline and not stop():
        time.sleep(min(1.0, deadline - time.time()))


class Locks:
    """pmxcfs lock directories as pve-ha-manager uses them: within 120 s of the last success only a
    renewal (utime) is tried; after that a mkdir, and on failure an unlock request for a stale lock."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, bool]] = {}  # lock -> (time last held, held)

    def get(self, name: str) -> bool:
        path = config.LOCK_DIR / name
        now = time.time()
        last_time, held = self.last.get(name, (0.0, False))
        error = ""
        try:
            if now - last_time < LOCK_LIFETIME:
                try:
                    os.utime(path, (0, int(now)))
                except OSError as exc:
                    raise OSError(exc.errno, f"cfs lock update failed - {os.strerror(exc.errno or 0)}") from exc
            else:
                try:
                    path.mkdir()
                except FileExistsError:
                    with contextlib.suppress(OSError):
                        os.utime(path, (0, 0))
                    raise OSError(errno.EEXIST, "can't get cfs lock") from None
        except OSError as exc:
            error = exc.strerror or str(exc)
        if not error:
            if not held:
                log("info", f"successfully acquired lock '{name}'")
            self.last[name] = (now, True)
            return True
        if held:  # PVE's message lacks the closing quote
            log("err", f"lost lock '{name} - {error}")
        self.last[name] = (last_time, False)
        return False

    def release(self, name: str) -> bool:
        self.last.pop(name, None)
        try:
            (config.LOCK_DIR / name).rmdir()
        except OSError:
            return False
        return True


class WatchdogClient:
    """A connection to watchdog-mux: one byte per round keeps the node alive, `V` then close lets go."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(WATCHDOG_SOCKET))
        except OSError as exc:
            self.sock.close()
            raise OSError(exc.errno, f"unable to open watchdog socket - {exc.strerror}") from exc
        log("info", "watchdog active")

    def update(self) -> None:
        self.sock.send(b"\0")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(b"V")
        self.sock.close()
        log("info", "watchdog closed (disabled)")


class NodeEnv:
    """The Manager's Env on a real node."""

    def __init__(self, nodename: str, locks: Locks) -> None:
        self.nodename, self.locks = nodename, locks
        self.static_info: dict[str, dict[str, Any]] = {}

    def now(self) -> float:
        return time.time()

    def log(self, level: str, message: str) -> None:
        log(level, message)

    def node_info(self) -> dict[str, bool]:
        return members.node_info(self.nodename)

    def lrm_status(self, node: str) -> dict[str, Any] | None:
        return config.lrm_status(node)

    def service_config(self) -> dict[str, dict[str, str]]:
        return service_config()

    def compiled_rules(self, service_config: dict[str, dict[str, str]], nodes: list[str]) -> CompiledRules:
        return compile_rules(config.resources(), int(version.major()), nodes)

    def crm_commands(self) -> list[str]:
        return config.take_crm_commands()

    def set_requested_state(self, sid: str, state: str) -> None:
        config.set_requested_state(sid, state)

    def get_agent_lock(self, node: str) -> bool:
        return self.locks.get(f"ha_agent_{node}_lock")

    def steal_service(self, sid: str, source: str, target: str) -> None:
        from pvelab.pve.guests import store  # only on recovery: the idle daemons stay small

        kind, vmid = config.parse_sid(sid)
        store.config_path(source, vmid, KINDS[kind]).rename(store.config_path(target, vmid, KINDS[kind]))

    def remove_locks(self, sid: str, node: str, locks: tuple[str, ...]) -> str | None:
        from pvelab.pve.guests import store  # only on recovery: the idle daemons stay small

        kind, vmid = config.parse_sid(sid)
        try:
            lock = store.load(node, vmid, KINDS[kind]).main.options.get("lock")
            if lock in locks:
                store.set_lock(node, vmid, None, KINDS[kind])
                return lock
        except (OSError, store.GuestError):
            pass
        return None

    def write_manager_status(self, status: dict[str, Any]) -> None:
        config.write_manager_status(status)

    def crs_settings(self) -> dict[str, str]:
        return config.datacenter_option("crs")

    def node_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        """Each node's CPUs and memory, as its pvestatd's static-info tells them: this node's own, the
        others' asked from their API once (they change only at a node's boot). The measured load the
        'dynamic' mode needs is not collected in the twin (no pvestatd RRD): that mode falls back to
        'basic', as PVE does when it lacks the figures."""
        if mode != "static":
            raise ValueError(f"did not get {mode} node usage information - not collected on this cluster")
        for node, info in sorted((members.read().get("nodelist") or {}).items()):
            if node not in self.static_info and (info.get("online") or node == self.nodename):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    self.static_info[node] = static_info(node, info.get("ip"), node == self.nodename)
        return dict(self.static_info)

    def service_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        """Every guest with its node, and in the static mode its configured CPUs and memory. Only HA
        resources count as running here: the twin has no RRD telling which other guests run."""
        from pvelab.pve.guests import store  # only in the static mode: the idle daemons stay small

        out: dict[str, dict[str, Any]] = {}
        for vmid, guest in members.vmlist().items():
            kind = "vm" if guest.get("type") == "qemu" else "ct"
            entry: dict[str, Any] = {"node": guest["node"], "state": "stopped", "running": False, "usage": {}}
            if mode == "static":
                with contextlib.suppress(OSError, store.GuestError):
                    options = store.load(guest["node"], vmid, KINDS[kind]).main.options
                    entry["usage"] = static_usage(kind, options)
            out[f"{kind}:{vmid}"] = entry
        return out


def static_info(node: str, address: str | None, local: bool) -> dict[str, Any]:
    if local:
        from pvelab.pve.cluster.api import node_memory  # only in the static mode

        return {"maxcpu": os.cpu_count() or 1, "maxmem": node_memory()["total"]}
    from pvelab.pve.api import auth  # only in the static mode
    from pvelab.pve.apiclient import PinnedClient

    client = PinnedClient(address or node, None, timeout=3.0)
    client.ticket = auth.make_ticket("root@pam")
    status = client.request("GET", f"/nodes/{node}/status")
    return {"maxcpu": status["cpuinfo"]["cpus"], "maxmem": status["memory"]["total"]}


def static_usage(kind: str, options: dict[str, str]) -> dict[str, Any]:
    """A guest's configured maxima (PVE's derived max-cpu and max-memory): a VM's vcpus or
    sockets x cores, a container's cpulimit or cores (0: unlimited); memory in bytes."""
    memory = options.get("memory", "512").split("current=")[-1].split(",")[0]
    if kind == "vm":
        cpus = float(options.get("vcpus") or int(options.get("sockets", 1)) * int(options.get("cores", 1)))
    else:
        cpus = float(options.get("cpulimit") or options.get("cores") or 0)
    return {"maxcpu": cpus, "maxmem": int(memory) * 1024 * 1024}


def service_config() -> dict[str, dict[str, str]]:
    """Each resource with its defaults filled in, plus `type` and the `node` its guest lives on now."""
    guests = members.vmlist()
    groups = config.groups() if version.major() == "8" else {}
    out = {}
    for sid, options in config.resources().items():
        kind, vmid = sid.split(":")
        entry = config.with_defaults(options)
        entry["type"] = kind
        if group_nofailback(options, groups):
            entry["failback"] = "0"
        guest = guests.get(int(vmid))
        if guest is not None and guest.get("type") == KINDS[kind]:
            entry["node"] = guest["node"]
        out[sid] = entry
    return out


class DaemonEnv:
    """What the CRM and LRM daemons ask of their node (PVE's Env, the daemons' side): the clock and
    sleeping, the log, quorum, HA's files, the cluster's locks, the watchdog, the resource agents, the
    Manager's own Env. This one is a real node's; a simulated cluster gives its own, so the daemons'
    logic can run without a node."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.locks = Locks()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def sleep_until(self, deadline: float, stop: Any) -> None:
        sleep_until(deadline, stop)

    def log(self, level: str, message: str) -> None:
        log(level, message)

    def quorate(self) -> bool:
        return members.quorate()

    def manager_status(self) -> dict[str, Any]:
        return config.manager_status()

    def write_lrm_status(self, status: dict[str, Any]) -> None:
        config.write_lrm_status(self.node, status)

    def resources(self) -> dict[str, dict[str, str]]:
        return config.resources()

    def crm_commands_queued(self) -> bool:
        return bool(config.read_text(config.CRM_COMMANDS).strip())

    def service_config(self) -> dict[str, dict[str, str]]:
        return service_config()

    def datacenter_option(self, name: str) -> dict[str, str]:
        return config.datacenter_option(name)

    def get_lock(self, name: str) -> bool:
        return protected_lock(lambda: self.locks.get(name))

    def release_lock(self, name: str) -> bool:
        return self.locks.release(name)

    def open_watchdog(self) -> WatchdogClient:
        return WatchdogClient()

    def manager(self, status: dict[str, Any]) -> Any:
        from pvelab.pve.ha.manager import Manager  # only a master needs it

        return Manager(NodeEnv(self.node, self.locks), status)

    def start_agent(self, command: list[str]) -> Any:
        """A resource agent run as its own process; the handle answers poll()."""
        return subprocess.Popen(command)

    def shutdown_jobs(self) -> tuple[bool, bool]:
        """(shutting down, rebooting), from systemd's queued jobs as pve-ha-manager checks them."""
        try:
            jobs = subprocess.run(["systemctl", "list-jobs", "--plain", "--no-legend"], capture_output=True,
                                  check=False, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return False, False
        targets = {line.split()[1] for line in jobs.splitlines()
                   if len(line.split()) > 2 and line.split()[2] == "start"}
        reboot = "reboot.target" in targets
        return reboot or "shutdown.target" in targets or "poweroff.target" in targets, reboot


class Daemon(Protocol):
    def iteration(self) -> bool: ...
    def request_shutdown(self, *_: Any) -> None: ...


def release_startup_memory() -> None:
    """Give the heap the imports left behind back to the system: an idle daemon keeps ~1 MiB less."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_daemon(daemon: Daemon) -> int:
    """pve-ha-crm's and pve-ha-lrm's main loop: iterate until a SIGTERM/SIGINT is handled to its end."""
    release_startup_memory()
    signal.signal(signal.SIGTERM, daemon.request_shutdown)
    signal.signal(signal.SIGINT, daemon.request_shutdown)
    log("info", "starting server")
    while daemon.iteration():
        pass
    log("info", "server stopped")
    return 0
