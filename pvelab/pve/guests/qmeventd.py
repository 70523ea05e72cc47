"""qmeventd: every QEMU connects to /var/run/qmeventd.sock (its `-chardev ...qmp-event` in the VM's
command) and this daemon watches its QMP events, as qemu-server's qmeventd does. QEMU runs with
`-no-shutdown`, so a guest that powers itself off leaves QEMU up with QMP status `shutdown`: on the
`SHUTDOWN` event the daemon asks `query-status` and, when the VM is no longer active (and no backup
holds it), sends `quit` (SIGTERM if that cannot be sent, SIGKILL after the kill timeout). When the
socket closes it runs `qm cleanup VMID <graceful> <guest>`: whether a SHUTDOWN came first, and
whether the guest asked for it. vzdump registers a backup with `{"vzdump": {"vmid": ...}}`; a VM in
a backup is kept until that client closes.

    qmeventd [-f] [-v] [-t SECONDS] SOCKET"""

from __future__ import annotations

import contextlib
import getopt
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DEFAULT_KILL_TIMEOUT = 60
SOCKET = "/var/run/qmeventd.sock"
QM = "/usr/sbin/qm"
ACTIVE = ("running", "paused", "suspended", "prelaunch")
USAGE = f"""Usage: {{prog}} [-f] [-v] PATH
  -f       run in foreground (default: false)
  -v       verbose (default: false)
  -t <s>   kill timeout (default: {DEFAULT_KILL_TIMEOUT}s)
  PATH     use PATH for socket
"""


def vmid_of(pid: int) -> int:
    """The VMID from the QEMU's `-pidfile .../VMID.pid` (as qmeventd reads it: `-id` is PVE's own
    patch, the pid file's name is always there); 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError as exc:
        print(f"error parsing vmid for {pid}: {exc.strerror}", file=sys.stderr)
        return 0
    for option, value in zip(words, words[1:], strict=False):
        if option == b"-pidfile":
            name = value.rsplit(b"/", 1)[-1]
            if name.endswith(b".pid") and name[:-4].isdigit():
                return int(name[:-4])
            print(f"unexpected pidfile option {value.decode(errors='replace')}", file=sys.stderr)
            return 0
    print(f"error parsing vmid for {pid}: no matching pidfile option", file=sys.stderr)
    return 0


def peer_of(sock: socket.socket) -> tuple[int, int]:
    """The connecting process's pid and uid (SO_PEERCRED)."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid


@dataclass
class Client:
    sock: socket.socket
    pid: int
    kind: str = "none"  # qemu, vzdump
    state: str = "handshake"  # idle, expect-status, terminating
    vmid: str = ""
    graceful: bool = False
    guest: bool = False
    backup: bool = False
    term_check_queued: bool = False
    kill_at: float = 0.0
    buf: bytes = field(default=b"", repr=False)


class Daemon:
    """The event loop's state: clients by socket, QEMU clients by VMID, the ones waiting for SIGKILL.
    `run_cleanup`, `resolve_vmid`, `signal_pid` and `peer` are qm, /proc, kill and SO_PEERCRED on a
    node; tests pass their own."""

    def __init__(self, kill_timeout: int = DEFAULT_KILL_TIMEOUT, verbose: bool = False,
                 run_cleanup: Callable[[str, bool, bool], None] | None = None,
                 resolve_vmid: Callable[[int], int] = vmid_of,
                 signal_pid: Callable[[int, int], None] = os.kill,
                 peer: Callable[[socket.socket], tuple[int, int]] = peer_of) -> None:
        self.kill_timeout, self.verbose = kill_timeout, verbose
        self.peer = peer
        self.run_cleanup = run_cleanup or spawn_qm_cleanup
        self.resolve_vmid, self.signal_pid = resolve_vmid, signal_pid
        self.selector = selectors.DefaultSelector()
        self.vm_clients: dict[str, Client] = {}
        self.forced: list[Client] = []

    def say(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    # -- clients ----------------------------------------------------------------------------------
    def add(self, sock: socket.socket) -> Client | None:
        pid, uid = self.peer(sock)
        if pid == 0:
            print("could not get pid from client", file=sys.stderr)
            sock.close()
            return None
        if uid != 0:
            print(f"rejecting non-root client (pid {pid}, uid {uid})", file=sys.stderr)
            sock.close()
            return None
        sock.setblocking(False)
        client = Client(sock, pid)
        self.selector.register(sock, selectors.EVENT_READ, client)
        self.say(f"added new client, pid: {pid}")
        return client

    def readable(self, client: Client) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            print(f"read: {exc.strerror}", file=sys.stderr)
            data = b""
        if not data:
            self.say(f"pid{client.pid}: got EOF")
            self.close(client)
            return
        client.buf += data
        decoder = json.JSONDecoder()
        while client.buf.strip():
            text = client.buf.decode(errors="replace").lstrip()
            try:
                message, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(client.buf) > 4096:
                    self.say(f"pid{client.pid}: msg too large, discarding buffer")
                    client.buf = b""
                return  # the rest of the message comes with the next read
            client.buf = text[end:].encode()
            if isinstance(message, dict):
                self.dispatch(client, message)
            if client.kind == "closed":
                return

    def dispatch(self, client: Client, message: dict) -> None:
        if "QMP" in message:
            self.handshake(client)
        elif "event" in message:
            self.event(client, message)
        elif "return" in message:
            self.answer(client, message["return"], error=False)
        elif "error" in message:
            self.answer(client, message["error"], error=True)
        elif "vzdump" in message:
            self.vzdump_handshake(client, message["vzdump"])

    def send(self, client: Client, request: dict) -> bool:
        try:
            client.sock.sendall(json.dumps(request).encode() + b"\n")
            return True
        except OSError:
            return False

    # -- QEMU clients -----------------------------------------------------------------------------
    def handshake(self, client: Client) -> None:
        self.say(f"pid{client.pid}: got QMP handshake, assuming QEMU client")
        vmid = self.resolve_vmid(client.pid)
        if not vmid:
            print(f"could not get vmid from pid {client.pid}", file=sys.stderr)
            self.close(client)
            return
        client.vmid, client.kind = str(vmid), "qemu"
        self.vm_clients[client.vmid] = client
        self.say(f"pid{client.pid}: assigned VMID: {client.vmid}")
        if not self.send(client, {"execute": "qmp_capabilities"}):
            print(f"{client.vmid}: cannot send QMP message", file=sys.stderr)
            self.close(client)

    def event(self, client: Client, message: dict) -> None:
        self.say(f"{client.vmid}: got QMP event: {message['event']}")
        if client.state == "terminating":
            return  # QEMU sometimes sends a second SHUTDOWN after SIGTERM
        if message["event"] == "SHUTDOWN":
            client.graceful = True
            client.guest = bool((message.get("data") or {}).get("guest", False))
            self.terminate_check(client)

    def terminate_check(self, client: Client) -> None:
        if client.state != "idle":
            client.term_check_queued = True  # asked again once the request in flight is answered
            return
        client.term_check_queued = False
        client.state = "expect-status"
        self.say(f"{client.vmid}: query-status")
        if not self.send(client, {"execute": "query-status"}):
            print(f"{client.vmid}: cannot send QMP message", file=sys.stderr)
            self.close(client)

    def answer(self, client: Client, data: object, error: bool) -> None:
        if error:
            desc = data.get("desc", "n/a") if isinstance(data, dict) else "n/a"
            print(f"{client.vmid}: received error from QMP: {desc}", file=sys.stderr)
            client.state = "idle"
        elif client.state == "expect-status":
            client.state = "idle"
            status = data.get("status") if isinstance(data, dict) else None
            if status in ACTIVE:
                self.say(f"{client.vmid}: got status: VM is active")
            elif not client.backup:
                self.terminate(client)
            else:
                self.say(f"{client.vmid}: not active, but running backup - keep alive")
        elif client.state == "handshake":
            client.state = "idle"
            self.say(f"{client.vmid}: QMP handshake complete")
        if client.term_check_queued and client.kind != "closed":
            self.terminate_check(client)

    def terminate(self, client: Client) -> None:
        self.say(f"{client.vmid}: terminating client (pid {client.pid})")
        client.state = "terminating"
        self.say(f"{client.vmid}: sending 'quit' via QMP")
        if not self.send(client, {"execute": "quit"}):
            self.say(f"{client.vmid}: sending 'SIGTERM' to pid {client.pid}")
            with contextlib.suppress(ProcessLookupError):
                self.signal_pid(client.pid, signal.SIGTERM)
        client.kill_at = time.monotonic() + self.kill_timeout
        self.forced.append(client)

    # -- vzdump clients ---------------------------------------------------------------------------
    def vzdump_handshake(self, client: Client, data: object) -> None:
        client.state = "idle"
        vmid = data.get("vmid") if isinstance(data, dict) else None
        if not isinstance(vmid, str | int) or isinstance(vmid, bool):
            self.say(f"pid{client.pid}: invalid vzdump handshake: no vmid")
            return
        vm = self.vm_clients.get(str(vmid))
        if vm is None:
            self.say(f"{vmid}: vzdump requested backup start for unregistered VM")
            return
        vm.backup = True
        client.kind, client.vmid = "vzdump", str(vmid)
        self.say(f"{vmid}: vzdump backup started")

    # -- the end of a client ----------------------------------------------------------------------
    def close(self, client: Client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()
        kind, client.kind = client.kind, "closed"
        if kind == "qemu":
            if self.vm_clients.get(client.vmid) is client:
                del self.vm_clients[client.vmid]
            self.say(f"{client.vmid}: executing cleanup (graceful: {int(client.graceful)}, "
                     f"guest: {int(client.guest)})")
            self.run_cleanup(client.vmid, client.graceful, client.guest)
        elif kind == "vzdump":
            vm = self.vm_clients.get(client.vmid)
            if vm is not None:
                self.say(f"{client.vmid}: backup ended")
                vm.backup = False
                self.terminate_check(vm)
        if client in self.forced:
            self.forced.remove(client)

    def forced_cleanups(self, now: float) -> None:
        """SIGKILL for a QEMU that outlived `quit` by the kill timeout."""
        for client in [c for c in self.forced if c.kill_at <= now]:
            self.forced.remove(client)
            try:
                self.signal_pid(client.pid, signal.SIGKILL)
                print(f"cleanup failed, terminating pid '{client.pid}' with SIGKILL", file=sys.stderr)
            except ProcessLookupError:
                pass
            except OSError as exc:
                print(f"SIGKILL cleanup of pid '{client.pid}' failed - {exc.strerror}", file=sys.stderr)

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, None)
        while True:
            for key, _ in self.selector.select(timeout=10 if self.forced else None):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        conn, _ = listener.accept()
                        self.add(conn)
                else:
                    self.readable(key.data)
            self.forced_cleanups(time.monotonic())


@contextlib.contextmanager
def backup_running(vmid: int, warn: Callable[[str], None], path: str = SOCKET) -> Iterator[None]:
    """vzdump's side (register_qmeventd_handle): while the backup reads through QEMU, a VM whose guest
    powers off is kept until the connection closes. Without the daemon the backup goes on, warned."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        for attempt in range(1, 6):
            try:
                sock.connect(path)
                break
            except (BlockingIOError, InterruptedError):
                if attempt == 5:
                    warn(f"unable to connect to qmeventd socket (vmid: {vmid}) - timeout after {attempt} retries")
                    sock.close()
                    yield
                    return
                time.sleep(0.025)
            except OSError as exc:
                warn(f"unable to connect to qmeventd socket (vmid: {vmid}) - {exc.strerror}")
                sock.close()
                yield
                return
        sock.sendall(json.dumps({"vzdump": {"vmid": str(vmid)}}).encode())
        yield
    finally:
        sock.close()


def spawn_qm_cleanup(vmid: str, graceful: bool, guest: bool) -> None:
    """`qm cleanup VMID <graceful> <guest>`, not waited for (SIGCHLD is ignored: no zombies)."""
    try:
        subprocess.Popen([QM, "cleanup", vmid, "1" if graceful else "0", "1" if guest else "0"],
                         stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        print(f"execvp: {exc.strerror}", file=sys.stderr)


def listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(10)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prog = "qmeventd"
    try:
        opts, rest = getopt.getopt(args, "hfvt:")
    except getopt.GetoptError:
        print(USAGE.format(prog=prog), file=sys.stderr, end="")
        return 1
    foreground, verbose, kill_timeout = False, False, DEFAULT_KILL_TIMEOUT
    for opt, value in opts:
        if opt == "-h":
            print(USAGE.format(prog=prog), end="")
            return 0
        if opt == "-f":
            foreground = True
        elif opt == "-v":
            verbose = True
        elif opt == "-t":
            if not value.isdigit() or not 0 < int(value) <= 2**31 - 1:
                print(USAGE.format(prog=prog), file=sys.stderr, end="")
                return 1
            kill_timeout = int(value)
    if not rest:
        print(USAGE.format(prog=prog), file=sys.stderr, end="")
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        listener = listen(rest[0])
    except OSError as exc:
        print(f"bind: {exc.strerror}", file=sys.stderr)
        return 1
    if not foreground and os.fork():  # daemon(0, 1): the parent returns once the socket listens
        os._exit(0)
    if not foreground:
        os.setsid()
        os.chdir("/")
    Daemon(kill_timeout, verbose).serve(listener)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
