"""A class of nested labs planned on one L0 host: fixed VMIDs, bridges, addresses and MACs by student and
node, every answer checked against its VM before anything is made, and refusals that say what to change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pvelab.cli import main
from pvelab.nested import answer
from pvelab.nested.plan import NestedClass, PlanError, placement, plan_class
from pvelab.pve.api import schema

SETTINGS = {"students": ["s001", "s002"], "root_password_hashed": "$6$salt$hash",
            "installer_iso": "local:iso/proxmox-ve_9.1-1.iso", "ssh_keys": ["ssh-ed25519 AAAA teacher"]}


def test_each_student_gets_three_nodes_in_a_fixed_place() -> None:
    nodes = plan_class(NestedClass.of(SETTINGS))
    assert [(n.student, n.name, n.vmid) for n in nodes] == [
        ("s001", "pve1", 4011), ("s001", "pve2", 4012), ("s001", "pve3", 4013),
        ("s002", "pve1", 4021), ("s002", "pve2", 4022), ("s002", "pve3", 4023)]
    first, other = nodes[0], nodes[3]
    assert (first.address, first.link1_address, first.gateway) == ("10.99.0.11", "10.99.1.11", "10.99.0.1")
    assert (other.address, other.bridges) == ("10.99.2.11", ("vmbr4002", "vmbr4003"))
    assert first.bridges == ("vmbr4000", "vmbr4001")
    assert first.plan.mac == "BC:24:11:0F:AB:00" and first.plan.extra_macs == ("BC:24:11:0F:AB:01",)
    assert len({n.plan.mac for n in nodes}) == 6 and len({n.disc_name for n in nodes}) == 6


def test_a_student_added_changes_no_one_elses_lab() -> None:
    before = plan_class(NestedClass.of(SETTINGS))
    after = plan_class(NestedClass.of({**SETTINGS, "students": ["s001", "s002", "s003"]}))
    assert after[:6] == before


def test_each_answer_is_the_nodes_and_each_vm_one_pve_accepts() -> None:
    for node in plan_class(NestedClass.of(SETTINGS)):
        text = node.answer
        assert f'fqdn = "{node.name}.{node.student}.lab"' in text and f'cidr = "{node.address}/24"' in text
        assert 'reboot-mode = "power-off"' in text
        params = node.create_params()
        assert params["ide3"] == f"local:iso/{node.disc_name},media=cdrom"
        assert params["net0"] == f"virtio={node.plan.mac},bridge={node.bridges[0]},firewall=0"
        found = schema.match("9", "POST", "/nodes/l0/qemu")
        assert found is not None
        schema.verify(found[0], {**{k: str(v) for k, v in params.items()}, "node": "l0"})


def test_each_answer_installs_onto_the_os_disk_by_its_serial_whatever_order_the_disks_come_in() -> None:
    for node in plan_class(NestedClass.of(SETTINGS)):
        params = node.create_params()
        assert str(params["scsi0"]).endswith(f",serial=os-{node.vmid}")
        assert str(params["scsi1"]).endswith(f",serial=osd-{node.vmid}")
        assert f'filter.ID_SERIAL = "*os-{node.vmid}"' in node.answer and "disk-list" not in node.answer
        # the installer's view at its worst: the OSD disk probed first, as sda
        machine = answer.planned_machine(node.plan, 32, f"osd-{node.vmid}")
        checked = answer.check(node.answer, machine)
        assert answer.select_disks(checked["disk-setup"], machine) == ["1"]
        assert machine.udev_disks["1"]["ID_SERIAL"] == f"0QEMU_QEMU_HARDDISK_os-{node.vmid}"


def test_an_answer_by_name_is_shown_to_pick_the_osd_disk_in_that_order() -> None:
    node = plan_class(NestedClass.of(SETTINGS))[0]
    by_name = answer.NodePlan(**{**node.plan.__dict__, "os_disk_serial": ""})
    machine = answer.planned_machine(by_name, 32, f"osd-{node.vmid}")
    assert 'disk-list = ["sda"]' in answer.render(by_name)
    checked = answer.check(answer.render(by_name), machine)
    assert answer.select_disks(checked["disk-setup"], machine) == ["0"]  # the OSD disk: why serials


@pytest.mark.parametrize("change,message", [
    ({"students": []}, "the nested lab needs students"),
    ({"installer_iso": ""}, "the nested lab needs installer_iso"),
    ({"color": "blue"}, "unknown nested lab settings: color"),
    ({"students": ["a", "a"]}, "a student is listed twice"),
    ({"network": "10.99.0.0/24"}, "10.99.0.0/24 has 1 /24s: room for 0 students, not 1"),
    ({"first_vmid": 50}, "VMIDs 61..73 are outside"),
    ({"first_vmid": 65520}, "VMIDs 65531..65543 are outside 100..65535"),  # the MACs carry two bytes
    ({"students": ["s_1"]}, "s_1/pve1: "),  # no FQDN the installer takes
])
def test_a_class_that_cannot_be_planned_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises((PlanError, answer.AnswerError), match=message.replace("(", "\\(").replace(".", "\\.")):
        plan_class(NestedClass.of({**SETTINGS, **change}))


def test_the_cli_prints_the_plan_and_writes_each_disc_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    (tmp_path / "class.yml").write_text(yaml.safe_dump(SETTINGS))
    assert main(["nested", "plan", str(tmp_path / "class.yml"), "--discs", str(tmp_path / "discs")]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert [(n["student"], n["name"], n["fqdn"], n["address"]) for n in nodes[:2]] == [
        ("s001", "pve1", "pve1.s001.lab", "10.99.0.11"), ("s001", "pve2", "pve2.s001.lab", "10.99.0.12")]
    assert nodes[0]["create"]["ide3"] == "local:iso/pvelab-ais-4011.iso,media=cdrom"
    assert nodes[0]["after_install"] == {"delete": "ide2,ide3", "boot": "order=scsi0"}
    disc = Path(nodes[0]["disc"])
    assert disc == tmp_path / "discs" / "pvelab-ais-4011.iso" and len(list(disc.parent.glob("*.iso"))) == 6
    made = disc.stat().st_mtime_ns
    assert main(["nested", "plan", str(tmp_path / "class.yml"), "--discs", str(tmp_path / "discs")]) == 0
    assert disc.stat().st_mtime_ns == made  # the same answer: the disc is left as it is


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "class.yml").write_text(yaml.safe_dump({**SETTINGS, "students": ["a", "a"]}))
    assert main(["nested", "plan", str(tmp_path / "class.yml")]) == 1
    assert capsys.readouterr().err == "pvelab: error: a student is listed twice\n"
    assert main(["nested", "plan", str(tmp_path / "missing.yml")]) == 1
    assert "cannot read the settings" in capsys.readouterr().err


def hosts_of(students: int, *capacities: int) -> list[str | None]:
    klass = NestedClass.of({**SETTINGS, "students": [f"s{i:03}" for i in range(students)],
                            "hosts": {f"l0{chr(97 + i)}": c for i, c in enumerate(capacities)}})
    return placement(klass)


def test_students_are_spread_over_the_l0_hosts_in_turn_passing_full_ones() -> None:
    assert hosts_of(5, 0, 0) == ["l0a", "l0b", "l0a", "l0b", "l0a"]
    assert hosts_of(5, 1, 0, 2) == ["l0a", "l0b", "l0c", "l0b", "l0c"]
    assert hosts_of(4, 1, 0, 2)[:3] == hosts_of(3, 1, 0, 2)  # an added student moves no one
    assert hosts_of(2) == [None, None]  # no hosts given: the one L0 host the playbook names


def test_each_node_is_planned_on_its_students_host() -> None:
    nodes = plan_class(NestedClass.of({**SETTINGS, "hosts": {"l0a": 0, "l0b": 0}}))
    assert [(n.student, n.l0_node) for n in nodes] == [("s001", "l0a")] * 3 + [("s002", "l0b")] * 3


@pytest.mark.parametrize("hosts,message", [
    ({"l0a": 1}, "the class has 2 students and its L0 hosts take 1 (l0a 1: their nested_capacity): add a host or "
                 "raise a capacity"),
    ({"l0a": -1}, "L0 host l0a: its capacity is a number of students (0: no limit), not -1"),
    ({"l0a": "2"}, "L0 host l0a: its capacity is a number of students (0: no limit), not '2'"),
    (["l0a"], "hosts maps each L0 host's node name to the students it takes"),
])
def test_l0_hosts_that_cannot_take_the_class_are_refused(hosts: object, message: str) -> None:
    with pytest.raises(PlanError, match=re.escape(message)):
        plan_class(NestedClass.of({**SETTINGS, "hosts": hosts}))
