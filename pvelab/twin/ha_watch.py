"""Watching an HA drill from outside the nodes (the tests and the benchmark share it): once a second,
which nodes run a QEMU for each watched guest (two at once would be a split brain), and what the CRM's
manager_status says, as a timeline of first sightings (`pve1 unknown`, `vm:110 fence`, ...)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pvelab.twin import cgroups
from pvelab.twin.drive import ssh
from pvelab.twin.lab import Lab


def qemu_nodes(nodes: list[str], vm_name: str) -> list[str]:
    """The nodes on which a QEMU named `vm_name` runs, read from the host's /proc (no node is asked)."""
    found = []
    for node in nodes:
        for pid in cgroups.pids(node):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"qemu-system" in argv[0] and any(a.split(b",")[0] == vm_name.encode() for a in argv[1:]):
                found.append(node)
                break
    return found


def manager_status(lab: Lab, node: str) -> dict:
    out = ssh(lab, node, "cat /etc/pve/ha/manager_status", timeout=10)
    try:
        return dict(json.loads(out.stdout)) if out.returncode == 0 else {}
    except ValueError:
        return {}


@dataclass
class HaWatch:
    lab: Lab
    nodes: list[str]
    guests: dict[str, str]  # sid -> QEMU name (web110)
    observers: list[str]  # nodes to read manager_status from, first reachable wins
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    double_runs: list[tuple[float, str, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> HaWatch:
        self.started = time.monotonic()
        for target in (self._watch_qemu, self._watch_status):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def note(self, what: str) -> None:
        if what not in self.seen():
            self.timeline.append((time.monotonic() - self.started, what))

    def seen(self) -> list[str]:
        return [what for _, what in self.timeline]

    def first(self, what: str) -> float | None:
        return next((at for at, seen in self.timeline if seen == what), None)

    def _watch_qemu(self) -> None:
        while not self._stop.is_set():
            for sid, name in self.guests.items():
                running = qemu_nodes(self.nodes, name)
                if len(running) > 1:
                    self.double_runs.append((time.monotonic() - self.started, sid, running))
                for node in running:
                    self.note(f"{sid} qemu on {node}")
            self._stop.wait(1.0)

    def _watch_status(self) -> None:
        while not self._stop.is_set():
            for node in self.observers:
                try:
                    status = manager_status(self.lab, node)
                except Exception:  # noqa: BLE001 - a node going down mid-read is part of a drill
                    continue
                if status:
                    for name, state in (status.get("node_status") or {}).items():
                        self.note(f"{name} {state}")
                    for sid, sd in (status.get("service_status") or {}).items():
                        self.note(f"{sid} {sd.get('state')} on {sd.get('node')}")
                    break
            self._stop.wait(2.0)
