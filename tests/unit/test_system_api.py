"""The node pages (version, time, dns, hosts, syslog, journal, services, subscription) on files kept in a
temporary directory and commands answered by stand-ins: PVE's formats, its parsing of resolv.conf and
/etc/hosts, its refusals that write nothing, mini-journalreader's ranges. The lab suite reads the
same pages from real nodes (systemd, the journal) and validates them against the schema."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import schema
from pvelab.pve.api.routes import ApiException, Caller, Context, WithAttributes, handler_for
from pvelab.pve.system import api as system
from pvelab.pve.system import journal

ROOT = Caller("root@pam")


def call(method: str, path: str, params: dict[str, Any] | None = None) -> Any:
    found = schema.match("9", method, path)
    assert found is not None, path
    endpoint, values = found
    typed = schema.verify(endpoint, {**(params or {}), **values}, form=False)
    answer = handler_for(method, endpoint.template, path)(Context(ROOT, "pve1"), typed)
    data = answer.data if isinstance(answer, WithAttributes) else answer
    assert schema.returns_problems(endpoint.info.get("returns", {}), data) == [], (method, path, data)
    return answer


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "resolv.conf").write_text("# from the installer\ndomain lab.example\nnameserver 198.18.0.1\n"
                                          "nameserver fd00::1\nnameserver 198.18.0.2\nnameserver 198.18.0.3\n"
                                          "options rotate\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n198.18.0.11 pve1.lab pve1\n# a comment\n")
    (tmp_path / "ssh_host_rsa_key.pub").write_text("ssh-rsa AAAAB3Nza root@pve1\n")
    for name, file in (("RESOLV_CONF", "resolv.conf"), ("ETC_HOSTS", "hosts"), ("SSH_RSA_KEY", "ssh_host_rsa_key.pub"),
                       ("SUBSCRIPTION", "subscription")):
        monkeypatch.setattr(system, name, tmp_path / file)
    return tmp_path


def test_dns_reads_pves_three_servers_and_writes_them_first_keeping_other_lines(etc: Path) -> None:
    assert call("GET", "/nodes/pve1/dns") == {"search": "lab.example", "dns1": "198.18.0.1", "dns2": "fd00::1",
                                              "dns3": "198.18.0.2"}
    call("PUT", "/nodes/pve1/dns", {"search": "class.example", "dns1": "198.18.0.9", "dns2": "198.18.0.9"})
    assert (etc / "resolv.conf").read_text() == ("search class.example\nnameserver 198.18.0.9\n"
                                                 "# from the installer\noptions rotate\n")


def test_hosts_come_with_their_digest_and_bad_lines_are_refused_unwritten(etc: Path) -> None:
    before = (etc / "hosts").read_text()
    hosts = call("GET", "/nodes/pve1/hosts")
    assert hosts == {"data": before, "digest": hashlib.sha1(before.encode()).hexdigest()}  # noqa: S324
    for data, message in (("198.18.0.300 pve9\n", "Invalid IP '198.18.0.300'"),
                          ("198.18.0.19 pve_9\n", "Invalid Hostname 'pve_9'")):
        with pytest.raises(ApiException) as caught:
            call("POST", "/nodes/pve1/hosts", {"data": data})
        assert caught.value.errors == {"data": message}
    with pytest.raises(ApiException) as stale:
        call("POST", "/nodes/pve1/hosts", {"data": before + "198.18.0.12 pve2\n", "digest": "0" * 40})
    assert "detected modified configuration" in str(stale.value)
    assert (etc / "hosts").read_text() == before
    call("POST", "/nodes/pve1/hosts", {"data": before + "198.18.0.12 pve2\n", "digest": hosts["digest"]})
    assert (etc / "hosts").read_text().endswith("198.18.0.12 pve2\n")


def test_a_lab_node_has_no_subscription_and_shows_its_server_id(etc: Path) -> None:
    answer = call("GET", "/nodes/pve1/subscription")
    assert answer["status"] == "notfound" and answer["message"] == "There is no subscription key"
    assert answer["serverid"] == hashlib.md5(b"ssh-rsa AAAAB3Nza root@pve1\n").hexdigest().upper()  # noqa: S324


def test_the_node_version_is_the_presented_release() -> None:
    assert set(call("GET", "/nodes/pve1/version")) == {"version", "release", "repoid"}


def fake_run(outputs: dict[str, str], seen: list[list[str]]) -> Any:
    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        key = next((k for k in outputs if k in " ".join(argv)), None)
        return subprocess.CompletedProcess(argv, 0 if key else 1, outputs.get(key or "", ""), "")
    return run


def test_services_are_listed_and_stated_as_systemd_shows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = {"show pveproxy": "Description=PVE API Proxy Server\nLoadState=loaded\nSubState=running\n"
                              "ActiveState=active\nUnitFileState=enabled\nType=simple\n",
             "show pvedaemon": "Description=pvedaemon.service\nLoadState=not-found\nSubState=dead\n"
                               "ActiveState=inactive\n",
             "show cron": "Description=Regular background program processing daemon\nLoadState=loaded\n"
                          "SubState=dead\nActiveState=inactive\nType=oneshot\nResult=success\nUnitFileState=disabled\n"}
    monkeypatch.setattr(subprocess, "run", fake_run(shown, []))
    listed = {s["service"]: s for s in call("GET", "/nodes/pve1/services")}
    assert set(listed) == {"pveproxy", "pvedaemon", "cron"}  # the others have no unit at all here
    assert (listed["pveproxy"]["state"], listed["pveproxy"]["unit-state"], listed["pveproxy"]["desc"]) == (
        "running", "enabled", "PVE API Proxy Server")
    assert listed["pvedaemon"]["unit-state"] == "not-found"
    assert listed["cron"]["state"] == "success"  # a oneshot's result, as PVE shows it
    assert call("GET", "/nodes/pve1/services/pveproxy/state")["active-state"] == "active"


def test_stopping_an_essential_service_is_refused_in_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from pvelab.pve.api import tasks

    failures: list[str] = []

    def start(node: str, kind: str, ident: str, user: str, work: Any) -> str:
        try:
            work(lambda line: None)
        except RuntimeError as exc:
            failures.append(f"{kind} {ident}: {exc}")
        return "UPID:pve1:1:1:1:srvstop:pveproxy:root@pam:"

    monkeypatch.setattr(tasks, "start", start)
    seen: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", fake_run({}, seen))
    call("POST", "/nodes/pve1/services/pveproxy/stop")
    assert failures == ["srvstop pveproxy: invalid service cmd 'pveproxy stop': refusing to stop essential service!"]
    assert not any(argv[0] == "systemctl" for argv in seen)


def test_syslog_pages_through_the_journal_with_pves_numbering(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = "".join(f"Dec 03 10:00:{i:02d} pve1 x[1]: line {i}\n" for i in range(1, 121))
    monkeypatch.setattr(subprocess, "run", fake_run({"journalctl": text}, seen))
    answer = call("GET", "/nodes/pve1/syslog", {"start": 100, "service": "sshd"})
    assert isinstance(answer, WithAttributes) and answer.attributes == {"total": 120}
    assert [line["n"] for line in answer.data] == list(range(101, 121))
    assert seen[-1] == ["journalctl", "-o", "short", "--no-pager", "--unit", "ssh"]  # PVE's alias for sshd
    monkeypatch.setattr(subprocess, "run", fake_run({"journalctl": ""}, seen))
    assert call("GET", "/nodes/pve1/syslog").attributes == {"total": 1}


def entry(n: int, boot: str = "b1", **fields: Any) -> dict[str, Any]:
    return {"__CURSOR": f"s=x;i={n}", "__REALTIME_TIMESTAMP": str(int(time.mktime((2026, 12, 3, 10, 0, n, 0, 0, -1))
                                                                        * 1_000_000)),
            "_HOSTNAME": "pve1", "SYSLOG_IDENTIFIER": "pvedaemon", "_PID": "42", "MESSAGE": f"message {n}",
            "_BOOT_ID": boot, **fields}


def test_the_journal_reads_ranges_as_mini_journalreader_prints_them(monkeypatch: pytest.MonkeyPatch) -> None:
    log = [entry(1), entry(2), entry(3, boot="b2", SYSLOG_IDENTIFIER=None, _COMM=None, _PID=None),
           entry(4, boot="b2", MESSAGE=[104, 105])]
    asked: list[list[str]] = []

    def entries(argv: list[str]) -> list[dict[str, Any]]:
        asked.append(argv)
        return list(log)

    monkeypatch.setattr(journal, "entries", entries)
    lines = call("GET", "/nodes/pve1/journal")
    assert lines == ["s=x;i=1", "Dec 03 10:00:01 pve1 pvedaemon[42]: message 1",
                     "Dec 03 10:00:02 pve1 pvedaemon[42]: message 2", "-- Reboot --",
                     "Dec 03 10:00:03 pve1 unknow: message 3", "Dec 03 10:00:04 pve1 pvedaemon[42]: hi", "s=x;i=4"]
    after = call("GET", "/nodes/pve1/journal", {"startcursor": "s=x;i=1", "endcursor": "s=x;i=3"})
    assert after == ["s=x;i=1", "Dec 03 10:00:02 pve1 pvedaemon[42]: message 2", "s=x;i=3"]
    assert asked[-1] == ["--cursor", "s=x;i=1"]
