"""proxmox-auto-installer's own answer-file tests (tests/fixtures/pve-installer/SOURCES.md) against
pvelab's answer checker: every answer its parse_answer accepts is accepted on the test machine
(run-env-info.json, run-env-udev.json, a case's own run-env where it has one), every one it refuses is
refused with the installer's message (`parse-error` or `error` of the case's .json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pvelab.nested import answer
from pvelab.nested.answer import AnswerError, Locales, Machine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve-installer"
VALID = sorted(p.stem for p in (FIXTURES / "parse_answer").glob("*.toml"))
INVALID = sorted(p.stem for p in (FIXTURES / "parse_answer_fail").glob("*.toml"))


def machine(case: Path) -> Machine:
    run_env = case.with_suffix(".run-env.json")
    info = json.loads((run_env if run_env.exists() else FIXTURES / "run-env-info.json").read_text())
    return Machine.of(info, json.loads((FIXTURES / "run-env-udev.json").read_text()))


LOCALES = Locales.of(json.loads((FIXTURES / "locales.json").read_text()))


def declared(module: str) -> list[str]:
    """The cases parse-answer.rs declares in one of its test modules."""
    text = (FIXTURES / "parse-answer.rs").read_text()
    block = text[text.index(f"mod {module} {{"):]
    block = block[block.index("declare_tests!("):block.index(");")]
    return sorted(n for n in re.findall(r"^\s+([a-z0-9_]+),?$", block, re.MULTILINE) if not n.startswith("run_named"))


def test_the_suite_is_whole() -> None:
    """Every case the installer's test file declares has its fixture here, and no other."""
    assert (declared("parse_answer"), declared("parse_answer_fail")) == (VALID, INVALID)
    assert (len(VALID), len(INVALID)) == (19, 12)


@pytest.mark.parametrize("name", VALID)
def test_answers_the_installer_accepts_are_accepted(name: str) -> None:
    case = FIXTURES / "parse_answer" / f"{name}.toml"
    checked = answer.check(case.read_text(), machine(case), LOCALES)
    expected = json.loads(case.with_suffix(".json").read_text())
    # what the installer makes of it, where both say it: the keyboard map, country, zone, mail
    assert (checked["global"]["keyboard"], checked["global"]["country"], checked["global"]["timezone"],
            checked["global"]["mailto"]) == (expected["keymap"], expected["country"], expected["timezone"],
                                             expected["mailto"])


@pytest.mark.parametrize("name", INVALID)
def test_answers_the_installer_refuses_are_refused_in_its_words(name: str) -> None:
    case = FIXTURES / "parse_answer_fail" / f"{name}.toml"
    wanted = json.loads(case.with_suffix(".json").read_text())
    with pytest.raises(AnswerError) as refused:
        answer.check(case.read_text(), machine(case), LOCALES)
    assert str(refused.value) == wanted.get("parse-error", wanted.get("error"))


MINIMAL = (FIXTURES / "parse_answer" / "minimal.toml").read_text()


@pytest.mark.parametrize(("change", "message"), [
    (("[global]\n", "[global]\nreboot-mode = \"halt\"\n"),
     "error parsing answer.toml: unknown variant `halt`, expected one of `reboot`, `power-off`"),
    (("[global]\n", "[global]\nrebootmode = \"power-off\"\n"),
     "error parsing answer.toml: unknown field `rebootmode`, expected one of `country`, `fqdn`, `keyboard`, "
     "`mailto`, `timezone`, `root-password`, `root-password-hashed`, `reboot-on-error`, `reboot-mode`, "
     "`root-ssh-keys`, `subscription-key`"),
    (('disk-list = ["sda"]', 'disk-list = ["sdz"]'), "disk in 'disk-selection' not found"),
])
def test_what_the_nested_lab_writes_is_checked_as_the_installer_reads_it(change: tuple[str, str],
                                                                          message: str) -> None:
    case = FIXTURES / "parse_answer" / "minimal.toml"
    text = MINIMAL.replace(*change, 1)
    assert text != MINIMAL
    with pytest.raises(AnswerError) as refused:
        answer.check(text, machine(case), LOCALES)
    assert str(refused.value) == message


def test_power_off_after_the_install_is_what_a_nested_lab_asks_for() -> None:
    case = FIXTURES / "parse_answer" / "minimal.toml"
    keys = 'root-ssh-keys = ["ssh-ed25519 AAAA x"]'
    text = MINIMAL.replace("[global]\n", f'[global]\nreboot-mode = "power-off"\n{keys}\n')
    assert answer.check(text, machine(case))["global"]["reboot-mode"] == "power-off"


PLAN = answer.NodePlan(hostname="pve1", domain="student1.lab", cidr="198.18.40.11/24", gateway="198.18.40.1",
                       dns="198.18.40.1", mac="BC:24:11:40:01:01", root_password_hashed="$6$salt$hash",
                       ssh_keys=("ssh-ed25519 AAAAC3Nza controller",), extra_macs=("BC:24:11:40:01:02",),
                       first_boot_hook=True)


def test_a_nested_nodes_answer_is_one_the_installer_accepts_on_that_vm() -> None:
    text = answer.render(PLAN)
    checked = answer.check(text, answer.planned_machine(PLAN), LOCALES)
    assert checked["global"]["reboot-mode"] == "power-off"
    assert checked["global"]["fqdn"] == {"simple": "pve1.student1.lab"}
    assert checked["network"]["filter"] == {"ID_NET_NAME_MAC": "*bc2411400101"}
    assert answer.single_nic(checked["network"]["filter"], answer.planned_machine(PLAN).udev_nics) == "ens18"
    assert checked["first-boot"] == {"source": "from-iso", "ordering": "network-online"}


def test_an_answer_for_another_vm_is_refused_before_any_vm_is_made() -> None:
    other = answer.planned_machine(answer.NodePlan(**{**PLAN.__dict__, "mac": "BC:24:11:40:02:01"}))
    with pytest.raises(AnswerError, match="filter did not match any device"):
        answer.check(answer.render(PLAN), other, LOCALES)
    with pytest.raises(AnswerError, match="invalid IP address"):
        answer.check(answer.render(answer.NodePlan(**{**PLAN.__dict__, "cidr": "198.18.40.11/40"})),
                     answer.planned_machine(PLAN))


CHANGELOG = (FIXTURES / "debian-changelog").read_text()
# each feature's release, and what its changelog entry says of it
RELEASE_SAYS = {"`global.root-password-hashed`": "root_password_hashed", "`[post-installation-webhook]`":
                "post-installation-webhook", "`[first-boot]`": "first-boot hook", "kebab-case keys": "kebab-case",
                '`global.reboot-mode = "power-off"`': "power off the machine", "`global.fqdn` from DHCP":
                "FQDN from DHCP", "`[network.interface-name-pinning]`": "interface name pinning",
                "`global.subscription-key`": "subscription-key"}


def release_notes(version: tuple[int, int, int]) -> str:
    start = CHANGELOG.index(f"proxmox-installer ({'.'.join(map(str, version))})")
    return CHANGELOG[start:CHANGELOG.index("\nproxmox-installer (", start + 1)]


@pytest.mark.parametrize(("version", "what"), [(v, w) for v, w, _ in answer.INSTALLER_FEATURES])
def test_each_feature_arrived_with_the_release_proxmoxs_changelog_names(version: tuple[int, int, int],
                                                                          what: str) -> None:
    assert RELEASE_SAYS[what] in release_notes(version)


def test_an_installer_too_old_for_the_answer_is_refused_before_any_vm_is_made() -> None:
    text = answer.render(PLAN)
    assert {what for _, what in answer.needed_installer(text)} == {
        "`global.root-password-hashed`", "`[first-boot]`", "kebab-case keys", '`global.reboot-mode = "power-off"`'}
    answer.check_installer(text, "8.4.3")
    answer.check_installer(text, "9.1.7")
    with pytest.raises(AnswerError, match=r"proxmox-installer 8\.4\.1\) is too old for this answer: "
                                          r'`global.reboot-mode = "power-off"` needs proxmox-installer 8\.4\.3'):
        answer.check_installer(text, "8.4.1")
    legacy = (FIXTURES / "parse_answer_fail" / "ipv4_and_subnet_mask_33.toml").read_text().replace("/33", "/24")
    assert answer.needed_installer(legacy) == []  # snake_case keys, no newer section: any installer reads it
