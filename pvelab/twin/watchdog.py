"""A hardware watchdog per node, living outside the node like a chip on the board.

Inside the node it is /dev/watchdog, a FIFO (no ioctls). The interface:
  - any write arms the watchdog (default timeout 10 s, like watchdog-mux sets) and pets it;
  - a line `timeout N` (1..3600) sets the timeout in seconds, arms and pets;
  - writing `V` as the last character before closing disarms it ("magic close");
    closing without it leaves the watchdog running, as Linux drivers do without nowayout.
If it is not petted in time, the daemon records a Watchdog 2 "Hard Reset" event in the BMC's
System Event Log and hard-resets the node through the BMC (IPMI chassis reset), as a real
board's watchdog would; the event also goes to the twin's event log.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from pvelab.twin import events
from pvelab.twin.bmc import BmcClient, watchdog_sel_record

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 3600.0


@dataclass
class WatchdogTimer:
    """The watchdog's logic, apart from all I/O (clock passed in)."""

    timeout: float = DEFAULT_TIMEOUT
    armed: bool = False
    deadline: float = 0.0
    magic_close: bool = False
    _partial: bytes = b""

    def feed(self, data: bytes, now: float) -> None:
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            words = line.split()
            if len(words) == 2 and words[0] == b"timeout" and words[1].isdigit():
                self.timeout = min(max(float(words[1]), 1.0), MAX_TIMEOUT)
        self.magic_close = data.rstrip(b"\n").endswith(b"V")
        self.armed = True
        self.deadline = now + self.timeout

    def writer_closed(self) -> None:
        if self.magic_close:
            self.disarm()
        self._partial = b""

    def disarm(self) -> None:
        self.armed = False
        self.magic_close = False

    def expired(self, now: float) -> bool:
        return self.armed and now >= self.deadline

    def seconds_left(self, now: float) -> float | None:
        return max(0.0, self.deadline - now) if self.armed else None

    def to_dict(self) -> dict[str, object]:
        """Wall-clock deadline, so a reader can compute the time left without asking the daemon."""
        return {"armed": self.armed, "timeout": self.timeout, "deadline": self.deadline if self.armed else None}


class WatchdogDaemon:
    def __init__(self, node: str, fifo: Path, state_file: Path, events_file: Path, bmc: BmcClient) -> None:
        self.node, self.fifo, self.state_file, self.events_file, self.bmc = (
            node, fifo, state_file, events_file, bmc)
        self.timer = WatchdogTimer()
        self.running = True

    def open_fifo(self) -> int:
        if not self.fifo.exists() or not stat.S_ISFIFO(self.fifo.stat().st_mode):
            self.fifo.unlink(missing_ok=True)
            os.mkfifo(self.fifo, 0o600)
        return os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)

    def save_state(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.timer.to_dict()))
        tmp.replace(self.state_file)

    def fire(self) -> None:
        waited = self.timer.timeout
        self.timer.disarm()
        self.save_state()
        events.record(self.events_file, self.node,
                      f"watchdog expired ({waited:.0f} s without a keepalive): hard reset through the BMC")
        try:
            self.bmc.add_sel_entry(watchdog_sel_record())
            self.bmc.hard_reset()
        except Exception as exc:  # noqa: BLE001 - any BMC failure is reported, the daemon keeps running
            events.record(self.events_file, self.node, f"watchdog could not reset the node via the BMC: {exc}")

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        # The supervisor sends SIGUSR1 when the node lost power: a reset disarms the watchdog.
        signal.signal(signal.SIGUSR1, lambda *_: self.timer.disarm())
        fd = self.open_fifo()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        self.save_state()
        saved = self.timer.to_dict()
        while self.running:
            left = self.timer.seconds_left(time.time())
            wait_ms = 1000 if left is None else int(min(left, 1.0) * 1000)
            for _, event in poller.poll(wait_ms):
                data = os.read(fd, 4096) if event & (select.POLLIN | select.POLLHUP) else b""
                if data:
                    self.timer.feed(data, time.time())
                else:  # every writer closed: reopen so poll stops reporting the hang-up
                    self.timer.writer_closed()
                    poller.unregister(fd)
                    os.close(fd)
                    fd = self.open_fifo()
                    poller.register(fd, select.POLLIN)
            if self.timer.expired(time.time()):
                self.fire()
            if self.timer.to_dict() != saved:  # at most one write per round, only on change
                self.save_state()
                saved = self.timer.to_dict()
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvelab-watchdog")
    parser.add_argument("node")
    parser.add_argument("--fifo", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--bmc", required=True)
    parser.add_argument("--bmc-password-file", type=Path, required=True)
    args = parser.parse_args(argv)
    bmc = BmcClient(args.bmc, args.bmc_password_file.read_text().strip())
    WatchdogDaemon(args.node, args.fifo, args.state, args.events, bmc).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
