"""The lab twin's hardware layer, on a real lab: SSH, IPMI power, watchdog, faults, teardown.

Every test leaves the lab whole: faults are undone in the test and an audit checks every node
answers again, so the tests hold in any order. Teardown is tested in test_twin_teardown.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.errors import TwinError
from pvelab.twin.bmc import BmcClient
from pvelab.twin.drive import ssh
from pvelab.twin.lab import Lab, port_open

from .conftest import audit_hardware, lab_addr, pve_version, wait_until

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def whole_after_each_test(lab: Lab) -> Iterator[None]:
    yield
    audit_hardware(lab)


def can_ping(lab: Lab, src: str, dst_addr: str) -> bool:
    return ssh(lab, src, f"ping -c1 -W1 {dst_addr}").returncode == 0


def bmc_of(lab: Lab, node: str) -> BmcClient:
    record = lab.require_record()
    return BmcClient(record.spec.node(node).bmc_addr, record.bmc_password)


def test_each_node_answers_ssh_with_its_name_and_addresses(lab: Lab) -> None:
    spec = lab.require_record().spec
    for node in spec.nodes:
        out = ssh(lab, node.name, "hostname; ip -4 -o addr show; getent hosts pve1 pve2 pve3; ip -o link show eth0")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == node.name
        assert "master vmbr0" in lines[-1]
        assert "iface vmbr0 inet static" in ssh(lab, node.name, "cat /etc/network/interfaces").stdout
        assert re.search(rf"\bvmbr0\s+inet {re.escape(node.link_addr(0))}/24", out.stdout)  # PVE's management bridge
        assert re.search(rf"\beth1\s+inet {re.escape(node.link_addr(1))}/24", out.stdout)
        for other in spec.nodes:
            assert re.search(rf"^{re.escape(other.link_addr(0))}\s+.*\b{other.name}\b", out.stdout, re.M)


def test_nodes_run_a_real_systemd_with_sshd(lab: Lab) -> None:
    out = ssh(lab, "pve1", "ps -p 1 -o comm=; systemctl is-active ssh")
    assert out.stdout.split() == ["systemd", "active"]


def test_readiness_polls_leave_the_host_welcome_at_sshd(lab: Lab) -> None:
    # OpenSSH 9.8+ refuses a source after ~15 connections that never log in (PerSourcePenalties); a
    # readiness poll that only connected to port 22 locked the host out of a PVE 9 node mid-setup
    node = lab.require_record().spec.node("pve1")
    assert all(lab.node_ready(node) for _ in range(20))
    out = ssh(lab, "pve1", "echo still-welcome")
    assert out.returncode == 0 and out.stdout.strip() == "still-welcome", out.stderr


def test_ipmi_power_off_and_on_through_the_bmc(lab: Lab) -> None:
    addr = lab.require_record().spec.node("pve2").link_addr(0)
    boot_before = lab.boot_id("pve2")
    ipmi = bmc_of(lab, "pve2").connect()
    assert ipmi.get_chassis_status().power_on
    ipmi.chassis_control_power_down()
    assert not ipmi.get_chassis_status().power_on
    wait_until(lambda: not port_open(addr, 22), 10, "pve2 going unreachable after IPMI power off")
    assert not can_ping(lab, "pve1", addr)
    ipmi.chassis_control_power_up()
    assert ipmi.get_chassis_status().power_on
    wait_until(lambda: lab.node_ready(lab.require_record().spec.node("pve2")), 60, "pve2 answering SSH")
    assert lab.boot_id("pve2") != boot_before
    assert any("pve2: power off (ipmi)" in e for e in lab.events("pve2"))


def test_ipmitool_reaches_the_bmc_too(lab: Lab) -> None:
    record = lab.require_record()
    from pvelab.twin.bmc import ipmitool_argv

    out = subprocess.run([*ipmitool_argv(record.spec.node("pve1"), record.bmc_password),
                          "chassis", "power", "status"], capture_output=True, text=True, timeout=30, check=False)
    assert out.stdout.strip() == "Chassis Power is on", out.stderr
    wrong = subprocess.run([*ipmitool_argv(record.spec.node("pve1"), "wrong"), "chassis", "power", "status"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert wrong.returncode != 0


# As on PVE, watchdog-mux owns each node's /dev/watchdog; these tests talk to the board's watchdog
# directly, so they stop it first (with no HA client it exits cleanly, disarming the device).
FREE_THE_WATCHDOG = "systemctl stop pve-ha-lrm pve-ha-crm watchdog-mux"


def test_watchdog_resets_a_node_that_stops_petting_it(lab: Lab) -> None:
    boot_before = lab.boot_id("pve3")
    out = ssh(lab, "pve3", f"{FREE_THE_WATCHDOG}; echo 'timeout 2' > /dev/watchdog")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: json.loads(lab.paths.watchdog_state("pve3").read_text())["armed"], 5, "watchdog armed")
    wait_until(lambda: _boot_id_or_none(lab, "pve3") not in (None, boot_before), 30, "pve3 reset by its watchdog")
    assert any("watchdog expired" in e for e in lab.events("pve3"))
    sel = bmc_of(lab, "pve3").connect().get_sel_entries()
    watchdog_events = [entry for entry in sel if entry.sensor_type == 0x23]
    assert watchdog_events, "no Watchdog 2 event in the BMC's SEL"
    assert abs(watchdog_events[-1].timestamp - time.time()) < 600  # stamped with the BMC's wall clock


def test_magic_close_disarms_the_watchdog(lab: Lab) -> None:
    assert ssh(lab, "pve1", f"{FREE_THE_WATCHDOG}; echo 'timeout 2' > /dev/watchdog; printf V > /dev/watchdog"
               ).returncode == 0
    wait_until(lambda: not json.loads(lab.paths.watchdog_state("pve1").read_text())["armed"], 5,
               "watchdog disarmed by magic close")
    boot = lab.boot_id("pve1")
    time.sleep(3)  # longer than the 2 s timeout it had
    assert _boot_id_or_none(lab, "pve1") == boot
    assert not any("watchdog expired" in e for e in lab.events("pve1"))


def _boot_id_or_none(lab: Lab, node: str) -> str | None:
    try:
        return lab.boot_id(node) or None
    except (TwinError, subprocess.TimeoutExpired):
        return None


def test_partition_cuts_a_node_from_the_others_until_heal(lab: Lab) -> None:
    spec = lab.require_record().spec
    pve3 = spec.node("pve3")
    assert main(["twin", "partition", "pve3"]) == ExitStatus.OK
    try:
        for link in (0, 1):
            assert not can_ping(lab, "pve1", pve3.link_addr(link))
            assert not can_ping(lab, "pve2", pve3.link_addr(link))
        assert can_ping(lab, "pve1", spec.node("pve2").link_addr(0))
        assert ssh(lab, "pve3", "hostname").stdout.strip() == "pve3"  # the host still reaches it
    finally:
        assert main(["twin", "heal"]) == ExitStatus.OK
    assert can_ping(lab, "pve1", pve3.link_addr(0))


def test_partition_of_one_link_leaves_the_other(lab: Lab) -> None:
    pve2 = lab.require_record().spec.node("pve2")
    assert main(["twin", "partition", "pve2", "--from", "pve1", "--link", "1"]) == ExitStatus.OK
    try:
        assert not can_ping(lab, "pve1", pve2.link_addr(1))
        assert can_ping(lab, "pve1", pve2.link_addr(0))
        assert can_ping(lab, "pve3", pve2.link_addr(1))
    finally:
        main(["twin", "heal"])


def test_latency_adds_delay_to_every_link(lab: Lab) -> None:
    pve2 = lab.require_record().spec.node("pve2")

    def avg_rtt(addr: str) -> float:
        out = ssh(lab, "pve1", f"ping -c4 -i0.2 -q {addr}").stdout
        return float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))  # type: ignore[union-attr]

    assert main(["twin", "latency", "pve2", "30ms"]) == ExitStatus.OK
    try:
        assert avg_rtt(pve2.link_addr(0)) >= 30
        assert avg_rtt(pve2.link_addr(1)) >= 30
    finally:
        assert main(["twin", "latency", "pve2", "0"]) == ExitStatus.OK
    assert avg_rtt(pve2.link_addr(0)) < 10


def test_freeze_hangs_a_node_with_its_links_up(lab: Lab) -> None:
    assert main(["twin", "freeze", "pve1"]) == ExitStatus.OK
    try:
        hung = subprocess.run(lab.ssh_argv(lab.require_record().spec.node("pve1"), "true"),
                              capture_output=True, timeout=30, check=False)
        assert hung.returncode != 0
        assert can_ping(lab, "pve2", lab_addr(lab, 11))  # the kernel answers, its processes do not
    finally:
        assert main(["twin", "thaw", "pve1"]) == ExitStatus.OK
    assert ssh(lab, "pve1", "hostname").stdout.strip() == "pve1"


def test_up_on_a_running_lab_changes_nothing(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    boots = {n: lab.boot_id(n) for n in ("pve1", "pve2", "pve3")}
    # this lab was made without a storage server (the CLI adds one unless told not to)
    assert main(["twin", "up", "--pve-version", pve_version(), "--no-storage-server"]) == ExitStatus.OK
    assert "already up; nothing changed" in capsys.readouterr().out
    assert {n: lab.boot_id(n) for n in boots} == boots


def test_a_different_lab_on_a_running_one_is_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", "up", "--nodes", "2", "--no-storage-server"]) == ExitStatus.ERROR
    assert "already up" in capsys.readouterr().err
    assert main(["twin", "up", "--pve-version", pve_version()]) == ExitStatus.ERROR  # asks for a storage server
    assert "no storage server) is already up" in capsys.readouterr().err


def test_unknown_node_gets_one_clear_line(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", "power", "pve9", "off"]) == ExitStatus.ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pvelab: error: unknown node 'pve9' — this lab has: pve1, pve2, pve3"]


def test_status_and_inventory(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", "status"]) == ExitStatus.OK
    out = capsys.readouterr().out
    addresses = r"\s+".join(re.escape(lab_addr(lab, 12, link)) for link in (0, 1, None))
    assert re.search(rf"^pve2\s+on\s+{addresses}\s+\d+s", out, re.M)
    assert main(["twin", "inventory"]) == ExitStatus.OK
    inventory = Path(capsys.readouterr().out.strip())
    ansible = subprocess.run([str(Path(os.sys.executable).parent / "ansible"), "-i", str(inventory), "pve_nodes",
                              "-m", "command", "-a", "hostname", "-o"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert ansible.returncode == 0, ansible.stdout + ansible.stderr
    assert sorted(re.findall(r"^(pve\d) \| CHANGED \| rc=0 \| \(stdout\) (pve\d)$", ansible.stdout, re.M)) == [
        ("pve1", "pve1"), ("pve2", "pve2"), ("pve3", "pve3")]
