"""pvesh: its output formats, and a call for another node sent to that node (the lab tests call
pvesh on nodes)."""

import json
import socket
import subprocess

import pytest

from pvelab.pve import members, remote, version
from pvelab.pve.api import direct, pvesh
from pvelab.pve.api.pvesh import main, parse_args, render

VERSION = {"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83"}


def test_text_is_a_key_value_table_sorted_by_key():
    lines = render(VERSION, "text").splitlines()
    assert lines[0].startswith("┌") and lines[2].startswith("╞") and lines[-1].startswith("└")
    assert lines[1] == "│ key     │ value            │"
    assert [line.split("│")[1].strip() for line in lines[3::2]] == ["release", "repoid", "version"]


def test_a_list_of_objects_is_one_row_each_with_every_column():
    lines = render([{"name": "pve1", "nodeid": 1}, {"name": "pve2", "online": 1}], "text").splitlines()
    assert lines[1].split("│")[1:-1] == [" name ", " nodeid ", " online "]
    assert len([line for line in lines if line.startswith("│ pve")]) == 2


def test_noborder_and_noheader():
    assert render({"a": 1}, "text", border=False) == "key value\na   1"
    assert render({"a": 1}, "text", border=False, header=False) == "a 1"


def test_json_and_yaml():
    assert json.loads(render(VERSION, "json")) == VERSION
    assert render({"a": [1, 2]}, "yaml") == "---\na:\n- 1\n- 2"


def test_options_and_display_flags_are_told_apart():
    method, path, params, display = parse_args(["create", "/cluster/config", "--clustername", "c", "--noborder",
                                                "--output-format", "json"])
    assert (method, path, params) == ("POST", "/cluster/config", {"clustername": "c"})
    assert display == {"output": "json", "border": False, "header": True, "noproxy": False, "command": "create"}


@pytest.fixture
def on_pve1(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """pvesh on pve1 of a 3-node cluster; each command sent over SSH is recorded (pve2 answers with one task)."""
    monkeypatch.setattr(version, "major", lambda: "9")
    monkeypatch.setattr(pvesh, "nodename", lambda: "pve1")
    nodelist = {f"pve{i}": {"id": i, "online": 1, "ip": f"198.18.0.1{i}"} for i in (1, 2, 3)}
    monkeypatch.setattr(members, "read", lambda: {"nodelist": nodelist})
    sent: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        sent.append(argv)
        return subprocess.CompletedProcess(argv, 0, json.dumps([{"upid": "UPID:pve2:x", "node": "pve2"}]), "")

    monkeypatch.setattr(remote.subprocess, "run", run)
    monkeypatch.setattr(direct, "call", lambda *a: pytest.fail(f"answered on pve1: {a}"))
    return sent


def test_a_call_for_another_node_is_made_by_pvesh_there(on_pve1: list[list[str]],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "/nodes/pve2/tasks", "--limit", "1", "--output-format", "json"]) == 0
    (argv,) = on_pve1
    assert "BatchMode=yes" in argv and "HostKeyAlias=pve2" in argv and "root@198.18.0.12" in argv
    assert argv[-1] == "pvesh --noproxy get /nodes/pve2/tasks --output-format json --limit 1"
    assert json.loads(capsys.readouterr().out) == [{"upid": "UPID:pve2:x", "node": "pve2"}]


def test_an_unknown_node_fails_with_pves_lookup_error(on_pve1: list[list[str]], monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def no_such_host(*_: object, **__: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(remote.socket, "getaddrinfo", no_such_host)
    assert main(["get", "/nodes/pve9/status"]) == 255
    assert capsys.readouterr().err == ("hostname lookup 'pve9' failed - failed to get address info for: pve9: "
                                       "Name or service not known\n")
    assert on_pve1 == []


def test_a_proxied_call_that_would_be_proxied_again_is_refused(on_pve1: list[list[str]],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--noproxy", "get", "/nodes/pve3/status"]) == 255
    assert capsys.readouterr().err == "proxy loop detected - aborting\n" and on_pve1 == []
