"""pve-ha-manager's scenarios against pvelab's HA stack: the reader (tests/ha_scenarios.py) reads every
one whole - the measures come from it, so a scenario read wrong would judge the stack wrong - and the
simulator (tests/ha_sim.py) runs each with pvelab's own CRM, LRM, Manager and resource agent, whose
outcome must be what pve-ha-manager's log.expect records: the scenarios listed in
ha_scenarios_matching.txt must keep matching."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.ha_scenarios import PVE8_GROUP_SCENARIOS, SCENARIOS, Expected, all_scenarios, expected_from, load
from tests.ha_sim import simulate


def test_every_scenario_is_read_with_its_commands_hardware_services_and_expectations() -> None:
    scenarios = all_scenarios()
    assert len(scenarios) == 144  # the folders of pve-ha-manager's src/test at the commit in SOURCES.md
    for scenario in scenarios:
        assert scenario.commands and scenario.hardware, scenario.name
        assert scenario.expected.lines[0][2:] == ("hardware", "starting simulation"), scenario.name
        assert scenario.expected.lines[-1][3].startswith("exit simulation"), scenario.name
        for sid in scenario.expected.services:  # every service the log changes is one the scenario has
            assert sid in scenario.services or any("service" in c and sid in c for r in scenario.commands for c in r)


def test_the_basic_scenario_reads_as_its_log_says() -> None:
    """test-basic1: node3's network cut; vm:103 fenced and recovered to node2, vm:102 stopped."""
    basic = load(SCENARIOS / "test-basic1")
    assert basic.commands == [["power node1 on", "power node2 on", "power node3 on"], ["network node3 off"]]
    assert basic.expected.services == {"vm:101": ("started", "node1"), "vm:102": ("stopped", "node2"),
                                       "vm:103": ("started", "node2")}
    assert basic.expected.nodes == {"node1": "online", "node2": "online", "node3": "unknown"}
    assert ("vm:103", "fence", "recovery") in basic.expected.service_changes


def test_a_service_keeps_its_node_until_a_line_names_another() -> None:
    log = ("info      0     hardware: starting simulation\n"
           "info     20    node1/crm: service 'vm:1': state changed from 'started' to 'migrate'  "
           "(node = a, target = b)\n"
           "info     25    node1/crm: service 'vm:1': state changed from 'migrate' to 'started'  (node = b)\n"
           "info     30    node1/crm: service 'vm:1': state changed from 'started' to 'request_stop'\n")
    assert expected_from(log, {"vm:1": {"node": "a"}}).services == {"vm:1": ("request_stop", "b")}


# -- the scenarios run against pvelab's HA stack (tests/ha_sim.py) ---------------------------------------
MATCHING = Path(__file__).resolve().parent / "ha_scenarios_matching.txt"


def matching(kind: str) -> list[str]:
    return [line.split()[1] for line in MATCHING.read_text().splitlines() if line.startswith(f"{kind} ")]


@functools.cache
def outcome(name: str) -> Expected:
    return simulate(load(SCENARIOS / name))


@pytest.mark.parametrize("name", matching("final"))
def test_a_scenario_ends_as_pve_ha_managers_did(name: str) -> None:
    expected, got = load(SCENARIOS / name).expected, outcome(name)
    assert (got.services, got.nodes) == (expected.services, expected.nodes)


@pytest.mark.parametrize("name", matching("sequence"))
def test_a_scenarios_services_change_state_as_pve_ha_managers_did(name: str) -> None:
    assert outcome(name).service_changes == load(SCENARIOS / name).expected.service_changes


def test_the_matching_lists_name_every_scenario() -> None:
    names = {s.name for s in all_scenarios()}
    assert set(matching("final")) == names and set(matching("sequence")) == names


@pytest.mark.parametrize("name", sorted(d.name for d in PVE8_GROUP_SCENARIOS.iterdir()))
def test_pve_8s_group_based_scenarios_end_and_change_state_as_pve_8_did(name: str) -> None:
    """PVE 8's suite (before HA rules), its 9 scenarios with HA groups: groups are node affinity, a
    group's nofailback keeps a service where it is, and PVE 8's simulator names node figures cpus/memory."""
    scenario = load(PVE8_GROUP_SCENARIOS / name)
    got = simulate(scenario)
    assert (got.services, got.nodes) == (scenario.expected.services, scenario.expected.nodes)
    assert got.service_changes == scenario.expected.service_changes


def test_pve_8s_group_based_scenarios_are_all_there() -> None:
    assert len(all_scenarios(PVE8_GROUP_SCENARIOS)) == 9
    assert all("groups" in s.files for s in all_scenarios(PVE8_GROUP_SCENARIOS))
