"""watchdog-mux as a process, with a plain file for /dev/watchdog: it arms the device, feeds it while its
clients write, lets a client go on `V`, stops feeding when one closes without it, and disarms the
device only on a clean exit (PVE's watchdog-mux rules)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def start_mux(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    device, sock, marker = tmp_path / "watchdog", tmp_path / "mux.sock", tmp_path / "mux.active"
    device.write_text("")
    # run from the tree under test: `python -c` imports from its working directory first
    code = ("import pvelab.pve.ha.watchdog_mux as w; "
            f"w.DEVICE, w.SOCKET_PATH, w.ACTIVE_MARKER = {str(device)!r}, {str(sock)!r}, {str(marker)!r}; "
            "raise SystemExit(w.main())")
    mux = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline or mux.poll() is not None:
            mux.kill()
            pytest.fail(f"watchdog-mux did not start: {mux.communicate()[1]}")
        time.sleep(0.05)
    return mux, device, marker


def client(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(path.parent / "mux.sock"))
    return conn


def stop(mux: subprocess.Popen[str]) -> str:
    mux.send_signal(signal.SIGTERM)
    return mux.communicate(timeout=10)[1]


def test_a_client_that_says_goodbye_leaves_the_device_disarmed_on_exit(tmp_path: Path) -> None:
    mux, device, marker = start_mux(tmp_path)
    conn = client(device)
    conn.send(b"\0")
    time.sleep(1.5)  # an idle second: the device is fed
    assert marker.is_dir()
    conn.send(b"V")
    conn.close()
    time.sleep(0.5)
    log = stop(mux)
    assert device.read_bytes().startswith(b"timeout 10\n") and b"\0" in device.read_bytes()
    assert device.read_bytes().endswith(b"V")  # the clean exit's magic close
    assert "has disconnected cleanly. Removing it gracefully from the watch" in log and "clean exit" in log
    assert not marker.exists()


def test_a_client_closing_without_v_stops_the_feeding(tmp_path: Path) -> None:
    mux, device, marker = start_mux(tmp_path)
    conn = client(device)
    conn.send(b"\0")
    conn.close()
    time.sleep(0.5)
    fed = device.read_bytes()
    time.sleep(2)
    log = stop(mux)
    assert "did not stop watchdog - disable watchdog updates" in log
    assert "exit watchdog-mux with active connections" in log
    assert not device.read_bytes().endswith(b"V") and device.read_bytes() == fed  # no more feeding, still armed
    assert marker.is_dir()  # so a restarted watchdog-mux refuses to start
