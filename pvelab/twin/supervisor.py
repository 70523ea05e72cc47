"""The lab's supervisor: parent of every lab process (nodes, BMCs, watchdogs), owner of power.

One per lab, started detached by `pvelab twin up`. It answers JSON requests on a unix socket
(power on/off/reset/status, freeze/thaw, start, shutdown), restarts a node whose systemd asked
for a reboot, and reaps every child (the host's PID 1 may not, so it is a child subreaper).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvelab.errors import TwinError
from pvelab.poll import poll
from pvelab.twin import bmc, cgroups, events, latency
from pvelab.twin.host import udp_bound
from pvelab.twin.nas import StorageServer
from pvelab.twin.node import NSPAWN_REBOOT_EXIT, ContainerNode, PowerState
from pvelab.twin.spec import BMC_PORT, LINKS
from pvelab.twin.state import LabPaths, LabRecord

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PROCESS_NAME = b"pvelab-supervis"  # what ps shows (the kernel keeps 15 characters)
SERVICE_STOP_GRACE = 3.0
SERVICE_START_WAIT = 10.0
RESTART_BACKOFF = (1.0, 30.0)  # first and longest wait before restarting a crashed service
STABLE_AFTER = 60.0  # a service that ran this long has its backoff reset


@dataclass
class Service:
    kind: str  # "bmc", "watchdog" or "latency"
    node: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 0.0  # seconds to wait before the next restart after a crash
    restart_at: float | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at, self.restart_at = time.monotonic(), None

    def crashed(self, now: float) -> float:
        """Note a crash; return how long to wait before restarting (doubling, reset once it ran stably)."""
        first, longest = RESTART_BACKOFF
        ran_stably = now - self.started_at >= STABLE_AFTER
        self.backoff = first if ran_stably or not self.backoff else min(longest, self.backoff * 2)
        self.restart_at = now + self.backoff
        self.process = None
        return self.backoff

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(SERVICE_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(SERVICE_STOP_GRACE)
        self.process = None


def done(action: Callable[[], None]) -> dict[str, Any]:
    """Run a request that answers nothing but success."""
    action()
    return {}


class Supervisor:
    def __init__(self, paths: LabPaths, record: LabRecord) -> None:
        self.paths = paths
        self.record = record
        image = Path(record.image)
        # the storage server first: powered on before the nodes, as a lab's storage comes up first
        nas = record.spec.nas
        self.nodes: dict[str, ContainerNode | StorageServer] = {
            **({nas.name: StorageServer(nas, paths)} if nas else {}),
            **{n.name: ContainerNode(n, paths, image) for n in record.spec.nodes}}
        self.services: list[Service] = []
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        for spec in record.spec.machines:
            bmc_dir = paths.bmc_dir(spec.name)
            self.services.append(Service("bmc", spec.name, bmc.ipmi_sim_argv(bmc_dir),
                                         bmc_dir / "ipmi_sim.log"))
        for spec in record.spec.nodes:
            bmc_dir = paths.bmc_dir(spec.name)
            self.services.append(Service("watchdog", spec.name, [
                sys.executable, "-m", "pvelab.twin.watchdog", spec.name,
                "--fifo", str(paths.watchdog_fifo(spec.name)),
                "--state", str(paths.watchdog_state(spec.name)),
                "--events", str(paths.events), "--bmc", spec.bmc_addr,
                "--bmc-password-file", str(bmc_dir / "password"),
            ], paths.node_dir(spec.name) / "watchdog.log"))

    # -- requests --------------------------------------------------------------------------------
    def node(self, name: str) -> ContainerNode | StorageServer:
        try:
            return self.nodes[name]
        except KeyError:
            raise TwinError(f"unknown node '{name}'", f"this lab has: {', '.join(self.nodes)}") from None

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request: {"op": ..., params}; the table below is every door into the supervisor."""
        requests: dict[str, Callable[[], dict[str, Any]]] = {
            "ping": lambda: {"pid": os.getpid()},
            "start": lambda: done(self.start_all),
            "power": lambda: {"state": self.power(req["node"], req["action"], req.get("cause", "cli")).value},
            "latency": lambda: done(lambda: self.set_latency(req["node"], float(req["delay_ms"]))),
            "freeze": lambda: done(lambda: self.freeze(req["node"], bool(req["frozen"]))),
            "shutdown": lambda: done(self.shutdown),
        }
        op = req.get("op")
        if op not in requests:
            raise TwinError(f"unknown request '{op}'", f"known: {', '.join(requests)}")
        return requests[op]()

    def start_all(self) -> None:
        with self.lock:
            for service in self.services:
                if not service.alive():
                    service.start()
            # Ready when every BMC has bound its address; one that cannot bind exits at once.
            def ready() -> bool | None:
                dead = next((s for s in self.services if not s.alive()), None)
                if dead is not None:
                    raise TwinError(f"the {dead.kind} of {dead.node} exited at start", f"see {dead.log}")
                return True if all(udp_bound(n.bmc_addr, BMC_PORT) for n in self.record.spec.machines) else None

            if poll(ready, SERVICE_START_WAIT, 0.05) is None:
                raise TwinError(f"the BMCs did not listen within {SERVICE_START_WAIT:.0f} s",
                                f"see the ipmi_sim.log files under {self.paths.root}/nodes")
            for spec in self.record.spec.machines:  # a board's BMC keeps wall-clock time for its event log
                try:
                    bmc.BmcClient(spec.bmc_addr, self.record.bmc_password).set_sel_time()
                except Exception as exc:  # noqa: BLE001 - a clock is not worth failing the lab for
                    events.record(self.paths.events, spec.name, f"could not set the BMC's clock: {exc}")
            for name in self.nodes:
                self.power(name, "on", "lab start")

    def power(self, name: str, action: str, cause: str) -> PowerState:
        node = self.node(name)
        with self.lock:
            before = node.power_state()
            if action == "status":
                return before
            if action in ("off", "reset", "cycle") and before is PowerState.ON:
                node.power_off()
                self._node_lost_power(name)
            if action in ("on", "reset", "cycle"):
                node.power_on()
            after = node.power_state()
            if action != "status" and (before, after) != (PowerState.OFF, PowerState.OFF):
                events.record(self.paths.events, name, f"power {action} ({cause}): {before.value} -> {after.value}")
            return after

    def freeze(self, name: str, frozen: bool) -> None:
        node = self.node(name)
        with self.lock:
            if node.power_state() is PowerState.OFF:
                raise TwinError(f"node '{name}' is powered off", f"power it on: pvelab twin power {name} on")
            cgroups.freeze(node.spec.cgroup, frozen)
            events.record(self.paths.events, name, "frozen (hung: processes stopped, links up)"
                          if frozen else "thawed")

    def set_latency(self, name: str, delay_ms: float) -> None:
        spec = self.record.spec.node(name)
        ifnames = [spec.address_ifname(link) for link in LINKS]  # where the node's own packets leave
        with self.lock:
            for service in [s for s in self.services if s.kind == "latency" and s.node == name]:
                service.stop()
                self.services.remove(service)
            latency.remove_rules(spec.netns, ifnames)
            if delay_ms > 0:
                service = Service("latency", name, latency.daemon_argv(spec.netns, delay_ms),
                                  self.paths.node_dir(name) / "latency.log")
                service.start()
                self.services.append(service)
                if poll(lambda: True if latency.queue_bound(spec.netns) else None, SERVICE_START_WAIT, 0.05) is None:
                    raise TwinError(f"the latency daemon of {name} did not bind its queue", f"see {service.log}")
                latency.add_rules(spec.netns, ifnames)
            events.record(self.paths.events, name,
                          f"latency {delay_ms:g} ms added on every link" if delay_ms else "latency removed")

    def _node_lost_power(self, name: str) -> None:
        for service in self.services:
            if service.kind == "watchdog" and service.node == name and service.alive():
                assert service.process is not None
                service.process.send_signal(signal.SIGUSR1)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            for name, node in self.nodes.items():
                if node.power_state() is PowerState.ON:
                    node.power_off()
                    events.record(self.paths.events, name, "power off (lab down)")
            for service in self.services:
                service.stop()

    # -- background: reboots, crashed services, orphans ----------------------------------------
    def watch(self) -> None:
        while not self.stopping.is_set():
            if self.lock.acquire(timeout=0.2):
                try:
                    self._check_children()
                finally:
                    self.lock.release()
            self._reap_orphans()
            time.sleep(0.2)

    def _check_children(self) -> None:
        for name, node in self.nodes.items():
            process = node.process
            if process is None or process.poll() is None:
                continue
            node.process = None
            self._node_lost_power(name)
            if process.returncode == NSPAWN_REBOOT_EXIT:
                events.record(self.paths.events, name, "reboot requested by the node")
                node.power_on()
            else:
                cgroups.kill_all(node.spec.cgroup)
                events.record(self.paths.events, name, f"powered off (container exited {process.returncode})")
        now = time.monotonic()
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                code = service.process.returncode
                wait = service.crashed(now)
                events.record(self.paths.events, service.node,
                              f"{service.kind} exited ({code}); restarting it in {wait:.0f} s")
            elif service.process is None and service.restart_at is not None and now >= service.restart_at:
                service.start()

    def _reap_orphans(self) -> None:
        known = {n.process.pid for n in self.nodes.values() if n.process is not None}
        known |= {s.process.pid for s in self.services if s.process is not None}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in known:
                return
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                return


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        req: dict[str, Any] = {}
        try:
            req = json.loads(self.rfile.readline())
            answer = {"ok": True, **self.server.supervisor.handle(req)}
        except TwinError as exc:
            answer = {"ok": False, "error": exc.cause, "fix": exc.fix}
        except Exception as exc:  # noqa: BLE001 - the client gets the error, the lab keeps running
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(answer).encode() + b"\n")
        if answer["ok"] and req.get("op") == "shutdown":
            threading.Thread(target=self.server.shutdown, daemon=True).start()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        super().__init__(str(path), _Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvelab-supervisor")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = LabPaths(args.state)
    record = LabRecord.load(paths)
    if record is None:
        print(f"no lab record in {paths.root}", file=sys.stderr)
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_NAME, PROCESS_NAME, 0, 0, 0)
    supervisor = Supervisor(paths, record)
    paths.supervisor_socket.unlink(missing_ok=True)
    server = _Server(paths.supervisor_socket, supervisor)

    def stop_everything() -> None:
        supervisor.shutdown()
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop_everything, daemon=True).start())
    paths.supervisor_pid.write_text(f"{os.getpid()}\n")
    threading.Thread(target=supervisor.watch, daemon=True).start()
    print(f"supervisor {os.getpid()} listening on {paths.supervisor_socket}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        supervisor.stopping.set()
        paths.supervisor_socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
