"""qmeventd as qemu-server's: a QEMU's events over a real socket pair, what the daemon answers, when
it quits a VM, when it runs `qm cleanup` and with which flags; and `qm cleanup` itself on a sandboxed
node (its waits, refusals and the reboot request)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pvelab.pve.guests import qm, qmeventd, runtime, store
from pvelab.pve.guests.store import GuestError

VMID = 100


class Qemu:
    """The QEMU end of a connection: what it sends, what the daemon sent it."""

    def __init__(self, daemon: qmeventd.Daemon) -> None:
        self.daemon = daemon
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.client = daemon.add(theirs)
        assert self.client is not None
        self.sock.settimeout(2)
        self.reader = self.sock.makefile("r")

    def send(self, *messages: dict, split: int | None = None) -> None:
        data = "".join(json.dumps(m) + "\r\n" for m in messages).encode()
        chunks = [data] if split is None else [data[:split], data[split:]]
        for chunk in chunks:
            self.sock.sendall(chunk)
            self.pump()

    def pump(self) -> None:
        assert self.client is not None
        if self.client.kind != "closed":
            self.daemon.readable(self.client)

    def received(self) -> dict:
        return dict(json.loads(self.reader.readline()))

    def nothing_received(self) -> bool:
        self.sock.setblocking(False)
        try:
            return self.sock.recv(1) == b""
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2)

    def close(self) -> None:
        self.reader.close()  # the file holds the socket open too
        self.sock.close()
        self.pump()

    def greet(self) -> None:
        self.send({"QMP": {"version": {}, "capabilities": []}})
        assert self.received() == {"execute": "qmp_capabilities"}
        self.send({"return": {}})


@pytest.fixture
def events() -> Iterator[tuple[qmeventd.Daemon, list[tuple[str, bool, bool]], list[tuple[int, int]]]]:
    cleanups: list[tuple[str, bool, bool]] = []
    signals: list[tuple[int, int]] = []
    daemon = qmeventd.Daemon(kill_timeout=60, run_cleanup=lambda *args: cleanups.append(args),
                             resolve_vmid=lambda pid: VMID, signal_pid=lambda pid, sig: signals.append((pid, sig)),
                             peer=lambda sock: (4242, 0))
    yield daemon, cleanups, signals


def test_a_guest_power_off_quits_qemu_then_cleans_up_as_graceful_and_guest_requested(events) -> None:
    daemon, cleanups, signals = events
    qemu = Qemu(daemon)
    qemu.greet()
    qemu.send({"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-shutdown"}})
    assert qemu.received() == {"execute": "query-status"}
    qemu.send({"return": {"status": "shutdown", "running": False}})
    assert qemu.received() == {"execute": "quit"}
    qemu.send({"return": {}})
    assert cleanups == []  # not before the socket closes: QEMU is still on its way out
    qemu.close()
    assert cleanups == [(str(VMID), True, True)]
    assert signals == [] and daemon.forced == [] and daemon.vm_clients == {}


def test_a_vm_still_active_after_shutdown_is_left_running(events) -> None:
    daemon, cleanups, _ = events
    qemu = Qemu(daemon)
    qemu.greet()
    qemu.send({"event": "SHUTDOWN", "data": {"guest": False, "reason": "host-qmp-system-reset"}})
    assert qemu.received() == {"execute": "query-status"}
    qemu.send({"return": {"status": "running", "running": True}})
    assert qemu.nothing_received() and cleanups == []


def test_a_crash_closes_the_socket_without_shutdown_and_cleans_up_as_not_graceful(events) -> None:
    daemon, cleanups, _ = events
    qemu = Qemu(daemon)
    qemu.greet()
    qemu.send({"event": "RESUME"})
    qemu.close()
    assert cleanups == [(str(VMID), False, False)]


def test_a_vm_in_a_backup_is_kept_until_the_backup_ends(events) -> None:
    daemon, cleanups, _ = events
    qemu = Qemu(daemon)
    qemu.greet()
    vzdump = Qemu(daemon)
    vzdump.send({"vzdump": {"vmid": str(VMID)}})
    qemu.send({"event": "SHUTDOWN", "data": {"guest": True}})
    assert qemu.received() == {"execute": "query-status"}
    qemu.send({"return": {"status": "shutdown"}})
    assert qemu.nothing_received()  # kept alive: vzdump still reads through it
    vzdump.close()
    assert qemu.received() == {"execute": "query-status"}  # the backup ended: asked again
    qemu.send({"return": {"status": "shutdown"}})
    assert qemu.received() == {"execute": "quit"}
    assert cleanups == []  # a vzdump client's end runs no cleanup


def test_a_qemu_that_outlives_quit_gets_sigkill_after_the_kill_timeout(events) -> None:
    daemon, _, signals = events
    qemu = Qemu(daemon)
    qemu.greet()
    qemu.send({"event": "SHUTDOWN", "data": {"guest": True}}, {"return": {"status": "shutdown"}})
    assert qemu.received() == {"execute": "query-status"} and qemu.received() == {"execute": "quit"}
    assert daemon.forced and signals == []
    daemon.forced_cleanups(daemon.forced[0].kill_at - 1)
    assert signals == []
    daemon.forced_cleanups(daemon.forced[0].kill_at)
    assert signals == [(4242, signal.SIGKILL)] and daemon.forced == []


def test_messages_split_over_reads_or_sent_together_are_each_handled(events) -> None:
    daemon, _, _ = events
    qemu = Qemu(daemon)
    qemu.send({"QMP": {"version": {}}}, split=7)
    assert qemu.received() == {"execute": "qmp_capabilities"}
    qemu.send({"return": {}}, {"event": "SHUTDOWN", "data": {"guest": False}})
    assert qemu.received() == {"execute": "query-status"}


def test_a_second_shutdown_while_asking_is_asked_again_after_the_answer(events) -> None:
    daemon, _, _ = events
    qemu = Qemu(daemon)
    qemu.greet()
    qemu.send({"event": "SHUTDOWN", "data": {"guest": False}}, {"event": "SHUTDOWN", "data": {"guest": True}})
    assert qemu.received() == {"execute": "query-status"}
    qemu.send({"return": {"status": "running"}})
    assert qemu.received() == {"execute": "query-status"}  # the queued check


def test_a_non_root_client_is_refused(events) -> None:
    daemon, _, _ = events
    ours, theirs = socket.socketpair()
    daemon.peer = lambda sock: (4242, 1000)
    assert daemon.add(theirs) is None
    ours.settimeout(1)
    assert ours.recv(1) == b""  # closed
    ours.close()


def started(argv: list[str]) -> subprocess.Popen[bytes]:
    """A process running `argv` (its exec done: /proc shows its command line)."""
    proc = subprocess.Popen(argv)
    for _ in range(200):
        if Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sh\0"):
            return proc
        threading.Event().wait(0.01)
    raise AssertionError("the process did not start")


def test_the_vmid_comes_from_qemus_pid_file_option() -> None:
    proc = started(["sh", "-c", "sleep 5; true", "-name", "vm", "-pidfile", "/var/run/qemu-server/123.pid"])
    try:
        assert qmeventd.vmid_of(proc.pid) == 123
    finally:
        proc.kill()
        proc.wait()
    proc = started(["sh", "-c", "sleep 5; true", "-pidfile", "/run/x/vm.pid"])
    try:
        assert qmeventd.vmid_of(proc.pid) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_daemon_runs_as_a_process_and_answers_a_qemu_on_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "qmeventd.sock"
    with subprocess.Popen([*qmeventd_argv(), "-f", str(path)], stderr=subprocess.PIPE, text=True) as proc:
        try:
            for _ in range(100):
                if path.exists():
                    break
                threading.Event().wait(0.05)
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(path))
                sock.sendall(b'{"QMP": {"version": {}}}\n')
                # this test's process has no -pidfile option: the daemon says so and hangs up
                assert sock.recv(100) == b""
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=5)
    assert "no matching pidfile option" in err and "could not get vmid from pid" in err


def qmeventd_argv() -> list[str]:
    return [sys.executable, "-m", "pvelab.pve.guests.qmeventd"]


# -- qm cleanup ------------------------------------------------------------------------------------
@pytest.fixture
def node(node_sandbox: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = node_sandbox("dir: local\n\tpath {root}/local\n\tcontent images\n")
    monkeypatch.setattr(runtime, "RUN_DIR", root / "run")
    (root / "run").mkdir()
    store.config_path("pve1", VMID).parent.mkdir(parents=True)
    store.config_path("pve1", VMID).write_text("memory: 64\nnet0: virtio=BC:24:11:00:01:00,bridge=vmbr0\n")
    for suffix in ("pid", "qmp", "vnc"):
        (root / "run" / f"{VMID}.{suffix}").write_text("")
    return root


def test_cleanup_after_a_guest_power_off_drops_the_run_files(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    said: list[str] = []
    assert runtime.cleanup_after_exit("pve1", VMID, True, True, said.append) is False
    assert list((node / "run").iterdir()) == []
    assert said == [f"Starting cleanup for {VMID}", f"Finished cleanup for {VMID}"]


def test_cleanup_after_a_stop_through_the_api_leaves_the_files_to_it(node: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    runtime.cleanup_after_exit("pve1", VMID, True, False, lambda _: None)
    assert sorted(p.name for p in (node / "run").iterdir()) == [f"{VMID}.pid", f"{VMID}.qmp", f"{VMID}.vnc"]


def test_cleanup_of_a_vm_that_is_not_here_does_nothing(node: Path) -> None:
    said: list[str] = []
    assert runtime.cleanup_after_exit("pve1", 999, False, False, said.append) is False and said == []


def test_a_vm_running_again_under_a_backup_lock_is_left_alone(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: 4242)
    store.config_path("pve1", VMID).write_text("memory: 64\nlock: backup\n")
    with pytest.raises(GuestError, match="^skipping cleanup - 'backup' lock is present and vm is running again$"):
        runtime.cleanup_after_exit("pve1", VMID, True, True, lambda _: None)
    assert (node / "run" / f"{VMID}.pid").exists()


def test_a_vm_started_again_meanwhile_aborts_the_cleanup_after_the_wait(node: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: 4242)
    said: list[str] = []
    with pytest.raises(GuestError, match="^aborting cleanup, VM is still running after 3 seconds$"):
        runtime.cleanup_after_exit("pve1", VMID, True, True, said.append, wait_s=3)
    assert f"VM cleanup: QEMU process 4242 for VM {VMID} still running (or newly started)" in said
    assert (node / "run" / f"{VMID}.pid").exists()


def test_a_rollback_in_progress_is_not_cleaned_up(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    store.config_path("pve1", VMID).write_text("memory: 64\nlock: rollback\n")
    with pytest.raises(GuestError, match="^skipping cleanup - 'rollback' lock is present$"):
        runtime.cleanup_after_exit("pve1", VMID, False, False, lambda _: None)


def test_a_reboot_request_is_cleared_and_answered_with_a_restart(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    runtime.request_reboot(VMID)
    assert runtime.cleanup_after_exit("pve1", VMID, True, True, lambda _: None) is True
    assert not (node / "run" / f"{VMID}.reboot").exists()
    assert runtime.cleanup_after_exit("pve1", VMID, True, True, lambda _: None) is False  # asked once


def test_the_config_lock_held_elsewhere_times_out_with_pves_message(node: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    with store.locked(VMID), pytest.raises(GuestError, match=r"^can't lock file '.*lock-100\.conf' - got timeout$"):
        runtime.cleanup_after_exit("pve1", VMID, True, True, lambda _: None, lock_s=0.3)


def test_qm_cleanup_checks_its_booleans_as_pve(capsys: pytest.CaptureFixture[str]) -> None:
    assert qm.main(["cleanup", str(VMID), "maybe", "1"]) != 0
    err = capsys.readouterr().err
    assert "Parameter verification failed" in err
    assert "clean-shutdown: type check ('boolean') failed - got 'maybe'" in err
    assert qm.main(["cleanup", str(VMID), "1"]) != 0
    assert "400 wrong number of arguments" in capsys.readouterr().err


def test_vzdump_registers_its_backup_with_the_daemon_or_warns_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "qmeventd.sock"
    warned: list[str] = []
    with qmeventd.backup_running(VMID, warned.append, str(path)):
        pass
    assert warned == [f"unable to connect to qmeventd socket (vmid: {VMID}) - No such file or directory"]
    listener = qmeventd.listen(str(path))
    try:
        with qmeventd.backup_running(VMID, warned.append, str(path)):
            conn, _ = listener.accept()
            conn.settimeout(2)
            assert json.loads(conn.recv(200)) == {"vzdump": {"vmid": str(VMID)}}
        assert conn.recv(1) == b""  # the backup ended: the connection closes
        conn.close()
    finally:
        listener.close()
    assert len(warned) == 1
