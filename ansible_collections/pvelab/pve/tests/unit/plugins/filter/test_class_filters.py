"""How class.yml places a class on its lab servers: by room left, in list order, refused before anything
is made when it cannot be placed."""

from __future__ import annotations

import pytest

from ansible_collections.pvelab.pve.plugins.filter import classes


def ids(plan: dict[str, list[dict[str, object]]]) -> dict[str, list[object]]:
    return {server: [lab["id"] for lab in labs] for server, labs in plan.items()}


def test_students_spread_by_the_share_of_capacity_used() -> None:
    plan = classes.class_plan(["a", "b", "c", "d", "e", "f"], {"big": 4, "small": 2})
    assert ids(plan) == {"big": ["a", "c", "d", "f"], "small": ["b", "e"]}


def test_equal_servers_take_turns_and_labs_are_named_by_prefix() -> None:
    plan = classes.class_plan(["s1", "s2", "s3", "s4"], {"here": 4, "there": 4}, prefix="c2-")
    assert ids(plan) == {"here": ["s1", "s3"], "there": ["s2", "s4"]}
    assert [lab["lab"] for lab in plan["there"]] == ["c2-s2", "c2-s4"]
    assert all(lab["slot"] is None for labs in plan.values() for lab in labs)  # each server picks


def test_appending_a_student_keeps_every_earlier_placement() -> None:
    before = classes.class_plan(["a", "b", "c"], {"x": 3, "y": 3})
    after = classes.class_plan(["a", "b", "c", "d"], {"x": 3, "y": 3})
    for server, labs in before.items():
        assert after[server][:len(labs)] == labs


def test_a_first_slot_gives_each_lab_its_own_across_servers() -> None:
    plan = classes.class_plan(["a", "b", "c"], {"x": 2, "y": 2}, first_slot=10)
    assert sorted(lab["slot"] for labs in plan.values() for lab in labs) == [10, 11, 12]
    assert plan["y"][0] == {"id": "b", "lab": "b", "slot": 11}


def test_names_and_emails_ride_along_for_the_roster() -> None:
    plan = classes.class_plan([{"id": "s1", "name": "Ada Lovelace", "email": "ada@example.edu"}], {"x": 1})
    assert plan["x"] == [{"id": "s1", "lab": "s1", "slot": None, "name": "Ada Lovelace", "email": "ada@example.edu"}]


@pytest.mark.parametrize("students,capacities,kwargs,message", [
    ([], {"x": 1}, {}, "the class list is empty"),
    (["a"], {}, {}, "no lab servers"),
    (["a", "b", "c"], {"x": 1, "y": 1}, {}, "3 students, but the lab servers hold 2 labs"),
    (["a", "a"], {"x": 4}, {}, "students listed twice: a"),
    (["Ada"], {"x": 4}, {}, "student id 'Ada' makes the lab name 'Ada', which is not one"),
    (["a"], {"x": 4}, {"prefix": "1-"}, "lab name '1-a'"),
    (["a", "b"], {"x": 4}, {"first_slot": 99}, "slots 99..100 do not fit in 1..99"),
    (["a"], {"x": 4}, {"first_slot": 0}, "slots 0..0 do not fit"),
])
def test_a_class_that_cannot_be_placed_is_refused_saying_why(
        students: list[str], capacities: dict[str, int], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(classes.ClassPlanError, match=message.replace(".", "\\.").replace("(", "\\(")):
        classes.class_plan(students, capacities, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("memtotal_mb,vcpus,expected", [
    (24 * 1024, 2, 8),   # the bench's machine: memory allows 9, two cores carry 8
    (24 * 1024, 16, 9),  # cores to spare: memory bounds it
    (4096, 8, 0),        # too small for one whole course lab beside the host
    (128 * 1024, 8, 32),
])
def test_capacity_from_the_class_benchs_figures(memtotal_mb: int, vcpus: int, expected: int) -> None:
    assert classes.class_capacity(memtotal_mb, vcpus) == expected


# What `pvelab twin roster --lab c-s1 --student s1` prints on a lab server (secrets made up).
TWIN_ROSTER = {
    "defaults": {"api_user": "root@pam", "api_password": "pw1", "ssh_user": "root",
                 "ssh_key_file": "/var/lib/pvelab/labs/c-s1/ssh/id_ed25519",
                 "ssh_known_hosts_file": "/var/lib/pvelab/labs/c-s1/ssh/known_hosts",
                 "bmc_user": "admin", "bmc_password": "bmc1", "bmc_port": 623},
    "students": [{"id": "s1", "nodes": [{"name": "pve1", "address": "198.18.3.11", "bmc": "198.18.5.11"}],
                  "params": {}}],
}


def test_a_roster_entry_carries_its_labs_secrets_and_the_copied_ssh_files() -> None:
    lab = {"id": "s1", "lab": "c-s1", "slot": None, "name": "Ada"}
    entry = classes.class_roster_entry(TWIN_ROSTER, lab, "/home/me/class/s1", {"cluster_name": "edu"})
    assert entry["api_password"] == "pw1" and entry["bmc_password"] == "bmc1" and entry["name"] == "Ada"
    assert entry["ssh_key_file"] == "/home/me/class/s1/id_ed25519"
    assert entry["ssh_known_hosts_file"] == "/home/me/class/s1/known_hosts"
    assert entry["params"] == {"cluster_name": "edu"} and entry["nodes"] == TWIN_ROSTER["students"][0]["nodes"]


def test_the_class_roster_follows_the_class_list_and_misses_nobody() -> None:
    entries = [{"id": "b"}, {"id": "a"}, {"id": "gone"}]
    assert classes.class_roster(entries, ["a", {"id": "b"}]) == {"students": [{"id": "a"}, {"id": "b"}]}
    with pytest.raises(classes.AnsibleFilterError, match="no lab was gathered for c"):
        classes.class_roster(entries, ["a", "b", "c"])


def test_a_students_inventory_points_at_the_controllers_copies() -> None:
    inventory = {"all": {"children": {"pve_nodes": {"hosts": {"pve1": {"ansible_host": "198.18.3.11"}}}}, "vars": {
        "ansible_ssh_private_key_file": "/var/lib/pvelab/labs/c-s1/ssh/id_ed25519",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/var/lib/pvelab/labs/c-s1/ssh/known_hosts "
                                   "-o StrictHostKeyChecking=yes",
        "pve_ssh_known_hosts_file": "/var/lib/pvelab/labs/c-s1/ssh/known_hosts",
        "lab_grader_token_file": "/var/lib/pvelab/labs/c-s1/grader-token", "pve_root_password": "pw1"}}}
    got = classes.class_inventory(inventory, "/c/s1")["all"]
    assert got["children"] == inventory["all"]["children"]
    assert got["vars"]["ansible_ssh_private_key_file"] == "/c/s1/id_ed25519"
    assert got["vars"]["ansible_ssh_common_args"] == ("-o UserKnownHostsFile=/c/s1/known_hosts "
                                                      "-o StrictHostKeyChecking=yes")
    assert got["vars"]["lab_grader_token_file"] == "/c/s1/grader-token" and got["vars"]["pve_root_password"] == "pw1"
