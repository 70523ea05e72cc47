"""watchdog-mux: owns the node's /dev/watchdog (the twin's board watchdog, outside the node) and shares
it among the HA daemons over /run/watchdog-mux.sock. It feeds the device once a second while every
client has written within 60 s; a client that goes silent, or closes without writing `V` last,
stops the feeding and the board resets the node 10 s later."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time

from pvelab.pve import version

# plain paths: this daemon stays as small as an interpreter can be (no pathlib)
SOCKET_PATH = "/run/watchdog-mux.sock"
ACTIVE_MARKER = "/run/watchdog-mux.active"
DEVICE = "/dev/watchdog"
DEVICE_TIMEOUT = 10
CLIENT_TIMEOUT = 60
CLIENT_WARNING = CLIENT_TIMEOUT - 10
MAX_CLIENTS = 100
BACKLOG = 32


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    def __init__(self, sock: socket.socket, pid: int, time: float) -> None:
        self.sock, self.pid, self.time = sock, pid, time
        self.magic_close = False  # the last byte it wrote was `V`
        self.warned = False

    @property
    def name(self) -> str:
        """pve-ha-manager names the client's PID since 5.1.2 (PVE 9)."""
        return f"client (PID {self.pid})" if version.major() != "8" else "client"


class WatchdogMux:
    def __init__(self, device_fd: int) -> None:
        self.device_fd = device_fd
        self.clients: dict[int, Client] = {}
        self.updating = True
        self.unclean = False  # a client closed without `V`: the node is to be reset
        self.terminate = False

    def keepalive(self) -> None:
        try:
            os.write(self.device_fd, b"\0")
        except OSError as exc:
            say(f"watchdog update failed: {exc.strerror}")

    def tick(self, now: float) -> None:
        """The idle second: warn about, or give up on, clients that stopped writing; else feed."""
        for client in self.clients.values():
            age = now - client.time
            if client.warned and age <= CLIENT_WARNING:
                client.warned = False
                say(f"{client.name} watchdog was updated before expiring")
            if not client.warned and age > CLIENT_WARNING:
                client.warned = True
                say(f"{client.name} watchdog is about to expire")
            if age > CLIENT_TIMEOUT:
                self.updating = False
                say(f"{client.name} watchdog expired - disable watchdog updates")
        if self.updating:
            self.keepalive()

    def accept(self, listener: socket.socket, poller: select.poll) -> None:
        conn, _ = listener.accept()
        if len(self.clients) >= MAX_CLIENTS:
            conn.close()
            say("unable to alloc wd_client structure")
            return
        conn.setblocking(False)
        pid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        self.clients[conn.fileno()] = Client(conn, pid, time.time())
        with contextlib.suppress(FileExistsError):
            os.mkdir(ACTIVE_MARKER, 0o600)
        poller.register(conn.fileno(), select.POLLIN)
        say(f"added new {self.clients[conn.fileno()].name} to watch")

    def read(self, fd: int, poller: select.poll) -> None:
        client = self.clients[fd]
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            client.magic_close = data[-1:] == b"V"
            client.time = time.time()
            return
        poller.unregister(fd)
        client.sock.close()
        del self.clients[fd]
        if client.magic_close:
            say(f"{client.name} has disconnected cleanly. Removing it gracefully from the watch")
        else:
            say(f"{client.name} did not stop watchdog - disable watchdog updates")
            self.updating = False
            self.unclean = True
        if not self.clients:
            say("all watchdog client connections to the multiplexer closed")
            if not self.unclean:
                os.rmdir(ACTIVE_MARKER)

    def serve(self, listener: socket.socket) -> None:
        poller = select.poll()
        poller.register(listener.fileno(), select.POLLIN)
        while not self.terminate:
            try:
                events = poller.poll(1000)
            except InterruptedError:
                continue
            if not events:
                if self.updating:
                    self.tick(time.time())
                continue
            if not self.updating:
                break
            for fd, _ in events:
                if fd == listener.fileno():
                    self.accept(listener, poller)
                elif fd in self.clients:
                    self.read(fd, poller)

    def close(self) -> None:
        if self.clients or self.unclean:
            say("exit watchdog-mux with active connections")
        else:
            say("clean exit")
            os.write(self.device_fd, b"V")  # magic close: the device stops counting
        os.close(self.device_fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_PATH)


def open_device() -> int:
    if not os.path.exists(DEVICE):
        module = os.environ.get("WATCHDOG_MODULE")
        if module:
            say(f"Loading watchdog module '{module}'")
        say(f"watchdog open: {os.strerror(2)}")
        raise SystemExit(1)
    fd = os.open(DEVICE, os.O_WRONLY)
    os.write(fd, f"timeout {DEVICE_TIMEOUT}\n".encode())  # the twin's board: WDIOC_SETTIMEOUT
    say("Watchdog driver 'pvelab board watchdog', version 0")
    return fd


def main() -> int:
    if os.path.exists(ACTIVE_MARKER):
        say("watchdog active - unable to restart watchdog-mux")
        return 1
    mux = WatchdogMux(open_device())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET_PATH)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET_PATH)
    listener.listen(BACKLOG)

    def on_signal(signo: int, _frame: object) -> None:
        if signo == signal.SIGHUP:
            say("got SIGHUP - ignored")
        else:
            say("got terminate request")
            mux.terminate = True

    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, on_signal)
    mux.serve(listener)
    mux.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
