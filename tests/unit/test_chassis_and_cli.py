import json
import os
import shutil
import socketserver
import threading

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.errors import TwinError
from pvelab.twin.chassis import handle
from pvelab.twin.control import request
from pvelab.twin.lab import HOST_TOOLS, Lab


class PowerBoard:
    """A stand-in supervisor on a real unix socket: one node, a power switch, a request log."""

    def __init__(self, path):
        self.state = "off"
        self.requests = []
        board = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                req = json.loads(self.rfile.readline())
                board.requests.append(req)
                if req["node"] != "pve1":
                    answer = {"ok": False, "error": f"unknown node '{req['node']}'"}
                else:
                    if req["action"] in ("on", "reset"):
                        board.state = "on"
                    elif req["action"] == "off":
                        board.state = "off"
                    answer = {"ok": True, "state": board.state}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def board(tmp_path):
    b = PowerBoard(tmp_path / "sock")
    yield b
    b.close()


def test_ipmi_power_on_and_status_go_to_the_supervisor(board, tmp_path):
    sock = tmp_path / "sock"
    assert handle(sock, "pve1", "get", ["power"]) == "power:0"
    assert handle(sock, "pve1", "set", ["power", "1"]) == ""
    assert handle(sock, "pve1", "get", ["power"]) == "power:1"
    assert board.requests[1] == {"op": "power", "node": "pve1", "action": "on", "cause": "ipmi"}


def test_ipmi_reset_is_a_reset_and_boot_is_ignored(board, tmp_path):
    handle(tmp_path / "sock", "pve1", "set", ["boot", "pxe", "reset", "1"])
    assert [r["action"] for r in board.requests] == ["reset"]


def test_unknown_chassis_parameter_is_an_error(board, tmp_path):
    with pytest.raises(TwinError, match="Invalid parameter: fan"):
        handle(tmp_path / "sock", "pve1", "get", ["fan"])


def test_supervisor_errors_reach_the_caller(board, tmp_path):
    with pytest.raises(TwinError, match="unknown node 'pve9'"):
        request(tmp_path / "sock", "power", node="pve9", action="status")


def test_no_supervisor_means_no_lab(tmp_path):
    with pytest.raises(TwinError) as err:
        request(tmp_path / "missing.sock", "ping")
    assert "not running" in err.value.cause and "pvelab twin up" in err.value.fix


def test_a_supervisor_that_drops_the_connection_is_a_lab_going_down(tmp_path):
    """`pvelab twin list` while a lab is torn down met a reset connection and crashed with a traceback."""
    import socket
    import threading
    import time

    path = tmp_path / "closing.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def reset_the_caller():
        conn, _ = server.accept()
        time.sleep(0.3)  # the request arrives and stays unread
        conn.close()  # closed with unread data: the caller's read gets a reset, not an end of file

    threading.Thread(target=reset_the_caller, daemon=True).start()
    with pytest.raises(TwinError, match="closed the connection during 'ping'"):
        request(path, "ping", timeout=5)
    server.close()


def test_cli_usage_errors_exit_2(capsys):
    assert main(["twin", "power", "pve1", "explode"]) == ExitStatus.USAGE
    assert main([]) == ExitStatus.USAGE


def test_cli_without_a_lab_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path / "lab"))
    assert main(["twin", "status"]) == ExitStatus.ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pvelab: error: no lab is up — start one: pvelab twin up"]


def test_cli_refuses_a_bad_delay(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path / "lab"))
    assert main(["twin", "latency", "pve1", "soon"]) == ExitStatus.ERROR
    assert "cannot read 'soon' as a delay" in capsys.readouterr().err


def test_cli_needs_root_for_up(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["twin", "up"]) == ExitStatus.ERROR
    assert "needs root" in capsys.readouterr().err


@pytest.fixture
def no_lab_build(monkeypatch, tmp_path):
    """`up` run as root against an empty state dir, which must stop in its checks, before building."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path / "lab"))
    monkeypatch.setattr(Lab, "_build", lambda self, spec: pytest.fail("up went past its checks"))
    monkeypatch.setattr(Lab, "down", lambda self, quiet=False: [])
    monkeypatch.setattr(Lab, "leftovers", lambda self: [])  # a lab up on this machine is not this test's business


def test_cli_names_a_missing_systemd_nspawn(no_lab_build, monkeypatch, tmp_path, capsys):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in HOST_TOOLS:
        if tool != "systemd-nspawn" and shutil.which(tool):
            (tools / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(tools))
    assert main(["twin", "up"]) == ExitStatus.ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing tools:" in err[0] and "systemd-nspawn" in err[0]
    assert "run scripts/setup.sh as root" in err[0]


def test_cli_says_when_the_host_allows_no_network_namespaces(no_lab_build, monkeypatch, tmp_path, capsys):
    real_ip = shutil.which("ip")
    if real_ip is None or shutil.which("systemd-nspawn") is None:
        pytest.fail("the host tools are missing: run scripts/setup.sh as root")
    shim = tmp_path / "bin" / "ip"  # an `ip` that behaves like one in a container without CAP_SYS_ADMIN
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nif [ "$1 $2" = "netns add" ]; then\n'
                    '  echo "mount --make-shared /run/netns failed: Operation not permitted" >&2; exit 1\nfi\n'
                    f'exec {real_ip} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    assert main(["twin", "up"]) == ExitStatus.ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pvelab: error: cannot create network namespaces here — run on a host (or a privileged "
                   "container) that allows 'ip netns add'"]


def test_up_refuses_more_nodes_than_the_hosts_inotify_allowance(no_lab_build, monkeypatch, tmp_path, capsys):
    """Past root's inotify allowance a node's systemd cannot start and the node never answers (measured:
    the 10th lab of 3 nodes at the default 128); `up` says so before it boots anything."""
    from pvelab.twin import lab as lab_module

    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    monkeypatch.setattr(lab_module, "INOTIFY_SYSCTL", limit)
    monkeypatch.setenv("PVELAB_LABS_DIR", str(tmp_path / "labs"))
    monkeypatch.setattr(lab_module, "require_netns_support", lambda prefix: None)
    assert main(["twin", "up", "--nodes", "13"]) == ExitStatus.ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "13 lab nodes need about 130 inotify instances, and this host allows 128" in err[0]
    assert "run scripts/setup.sh" in err[0]


def test_named_labs_bad_names_and_an_empty_host_get_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("PVELAB_LABS_DIR", str(tmp_path / "labs"))
    assert main(["twin", "status", "--lab", "Class 1"]) == ExitStatus.ERROR
    assert capsys.readouterr().err.strip() == ("pvelab: error: 'Class 1' is not a lab name — use a lower-case letter, "
                                               "then up to 30 lower-case letters, digits or dashes (e.g. s01)")
    assert main(["twin", "status", "--lab", "s01"]) == ExitStatus.ERROR
    assert capsys.readouterr().err.strip() == "pvelab: error: no lab 's01' is up — start it: pvelab twin up --lab s01"
    monkeypatch.setenv("PVELAB_LAB", "s02")  # the environment picks the lab as --lab does
    assert main(["twin", "status"]) == ExitStatus.ERROR
    assert "no lab 's02' is up" in capsys.readouterr().err
    monkeypatch.delenv("PVELAB_LAB")
    (tmp_path / "labs" / "not a lab").mkdir(parents=True)  # a directory someone made there is not a lab
    assert main(["twin", "list"]) == ExitStatus.OK
    assert capsys.readouterr().out == "no lab is up\n"
    assert main(["twin", "roster", "--all"]) == ExitStatus.ERROR
    assert "no named lab is up" in capsys.readouterr().err
