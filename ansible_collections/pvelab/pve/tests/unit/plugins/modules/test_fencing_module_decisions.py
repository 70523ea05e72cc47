"""pve_fencing and pve_bmc_power with fake SSH and a fake IPMI session: the watchdog module line written
once (softdog comments it out), the BMC checked without power changes, power actions only when confirmed."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_fencing_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_bmc_power, pve_fencing
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import module_params

SHIPPED = "# select watchdog module (default is softdog)\n#WATCHDOG_MODULE=ipmi_watchdog\n"


options = module_params


class FakeIpmi:
    def __init__(self, power_on: bool = True) -> None:
        self.power_on, self.actions = power_on, []

    def get_chassis_status(self) -> Any:
        return type("Status", (), {"power_on": self.power_on})()

    def chassis_control_power_down(self) -> None:
        self.actions.append("off")
        self.power_on = False


class FakeFile:
    def __init__(self, text: str) -> None:
        self.text, self.commands = text, []

    def run(self, command: str, stdin: str | None = None, timeout: float = 300) -> tuple[int, str, str]:
        self.commands.append(command)
        if command.startswith("cat > "):
            self.text = stdin or ""
            return 0, "", ""
        return 0, self.text, ""


@pytest.mark.parametrize("module,line", [("ipmi_watchdog", "WATCHDOG_MODULE=ipmi_watchdog"),
                                         ("softdog", "#WATCHDOG_MODULE=ipmi_watchdog")])
def test_the_watchdog_module_line_is_set_once(monkeypatch: pytest.MonkeyPatch, module: str, line: str) -> None:
    node = FakeFile(SHIPPED.replace("#WATCHDOG", "WATCHDOG") if module == "softdog" else SHIPPED)
    monkeypatch.setattr(pve_fencing_ops.SshRunner, "from_params", classmethod(lambda cls, p, host: node))
    p = options(pve_fencing.ARGUMENT_SPEC, host="198.18.0.11", watchdog_module=module)
    preview = pve_fencing_ops.ensure_fencing(p, check_mode=True)
    assert preview["changed"] and node.commands == ["cat /etc/default/pve-ha-manager"]
    done = pve_fencing_ops.ensure_fencing(p, check_mode=False)
    assert node.text.splitlines()[1] == line and "next reboot" in done["warnings"][0]
    assert pve_fencing_ops.ensure_fencing(p, check_mode=False)["changed"] is False


def test_the_bmc_check_reads_power_and_changes_nothing() -> None:
    ipmi = FakeIpmi()
    p = options(pve_fencing.ARGUMENT_SPEC, host="198.18.0.11", bmc_address="198.18.2.11", bmc_password="pw")
    result = pve_fencing_ops.ensure_fencing(p, False, session=lambda *a: ipmi)
    assert result == {"changed": False, "bmc": {"address": "198.18.2.11", "power_on": True}} and ipmi.actions == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_power_off_needs_confirm(check_mode: bool) -> None:
    ipmi = FakeIpmi()
    p = options(pve_bmc_power.ARGUMENT_SPEC, bmc_address="198.18.2.11", action="off")
    with pytest.raises(PveError, match="set confirm: true"):
        pve_fencing_ops.bmc_power(p, check_mode, session=lambda *a: ipmi)
    assert ipmi.actions == []


def test_power_off_when_confirmed_and_no_change_when_already_off() -> None:
    ipmi = FakeIpmi()
    p = options(pve_bmc_power.ARGUMENT_SPEC, bmc_address="198.18.2.11", action="off", confirm=True)
    assert pve_fencing_ops.bmc_power(p, True, session=lambda *a: ipmi)["msg"] == "the BMC would power off"
    assert pve_fencing_ops.bmc_power(p, False, session=lambda *a: ipmi)["changed"] is True
    assert ipmi.actions == ["off"]
    assert pve_fencing_ops.bmc_power(p, False, session=lambda *a: ipmi)["changed"] is False
