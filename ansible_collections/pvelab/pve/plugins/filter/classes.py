"""Jinja filters `playbooks/class.yml` plans a class and gathers its labs with:
  {{ class_students | class_plan(capacities, prefix='c1-', first_slot=1) }}  {server: [{id, lab, slot}, ...]}
  {{ memtotal_mb | class_capacity(vcpus) }}                                  labs a server holds
  {{ twin_roster | class_roster_entry(planned_lab, local_dir, params) }}    a student's roster entry
  {{ entries | class_roster(class_students) }}                             the class roster
  {{ twin_inventory | class_inventory(local_dir) }}                         a student's inventory

Every server computes the same plan from the same inputs and takes its own part, so the plan needs
no controller state: students are placed in list order, each on the server with the most room left
(its share of its capacity used, the inventory's order on ties). Appending students keeps every
earlier placement; removing or reordering may move labs between servers."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from ansible.errors import AnsibleFilterError

# A twin lab's name (pvelab.twin.state.LAB_NAME; the collection does not import the project).
LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
MAX_SLOT = 99  # pvelab.twin.spec.MAX_SLOT: named labs take slots 1..99
# From docs/benchmarks.md (bench.class_labs --course, 2 cores, 24 GiB): a whole course lab holds about
# 2.1 GiB (PSS) and 15 % of a core idle; 9 ran at once, the 10th did not come up, and the host's CPU
# was saturated from 8 on. Kept for the host: 2 GiB.
COURSE_LAB_MIB = 2400
LABS_PER_CORE = 4
HOST_RESERVE_MIB = 2048


class ClassPlanError(AnsibleFilterError):
    """A class that cannot be placed: the message says what to change."""


def class_capacity(memtotal_mb: int, vcpus: int, lab_mib: int = COURSE_LAB_MIB, per_core: int = LABS_PER_CORE) -> int:
    """How many whole course labs a server holds, from the class bench's figures: what memory allows
    (less the host's reserve), bounded by what its cores carry."""
    by_memory = max(0, (int(memtotal_mb) - HOST_RESERVE_MIB) // int(lab_mib))
    return min(by_memory, int(vcpus) * int(per_core))


def student_id(entry: Any) -> str:
    """A class list entry: a student id, or a mapping with `id` (and name, email for the roster)."""
    return str(entry.get("id") if isinstance(entry, dict) else entry or "")


def class_plan(students: list[Any], capacities: dict[str, Any], prefix: str = "",
               first_slot: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each server's labs: {server: [{id, lab, slot, name, email}]}; slot is None unless `first_slot`
    gives every lab its own (first_slot + the student's place in the list), as labs on several
    servers need when one grader reaches them all."""
    if not students:
        raise ClassPlanError("the class list is empty: set class_students (student ids)")
    caps = {str(server): int(cap) for server, cap in (capacities or {}).items()}
    if not caps:
        raise ClassPlanError("no lab servers: put hosts in the inventory group lab_servers")
    if any(cap < 0 for cap in caps.values()):
        raise ClassPlanError(f"a capacity is negative: {caps}")
    ids = [student_id(entry) for entry in students]
    for sid in ids:
        if not LAB_NAME.fullmatch(prefix + sid):
            raise ClassPlanError(f"student id '{sid}' makes the lab name '{prefix + sid}', which is not one: "
                                 "lowercase letters, digits and '-', starting with a letter, at most 31 characters")
    twice = sorted({sid for sid in ids if ids.count(sid) > 1})
    if twice:
        raise ClassPlanError(f"students listed twice: {', '.join(twice)}")
    room = sum(caps.values())
    if len(ids) > room:
        raise ClassPlanError(f"{len(ids)} students, but the lab servers hold {room} labs ({caps}): add a server, "
                             "or raise lab_capacity where the class bench says a server holds more")
    if first_slot is not None and not 1 <= int(first_slot) <= MAX_SLOT - len(ids) + 1:
        raise ClassPlanError(f"slots {first_slot}..{int(first_slot) + len(ids) - 1} do not fit in 1..{MAX_SLOT}: "
                             "lower class_first_slot")
    plan: dict[str, list[dict[str, Any]]] = {server: [] for server in caps}
    order = list(caps)
    for place, entry in enumerate(students):
        sid = ids[place]
        open_servers = [s for s in order if len(plan[s]) < caps[s]]
        server = min(open_servers, key=lambda s: (len(plan[s]) / caps[s], order.index(s)))
        extra = {k: str(entry[k]) for k in ("name", "email") if isinstance(entry, dict) and entry.get(k)}
        plan[server].append({"id": sid, "lab": prefix + sid,
                             "slot": None if first_slot is None else int(first_slot) + place, **extra})
    return plan


def local_copy(server_path: str, local_dir: str) -> str:
    """Where class.yml copies a lab's file (SSH key, known_hosts) on the controller."""
    return posixpath.join(local_dir, posixpath.basename(server_path))


def class_roster_entry(twin_roster: dict[str, Any], lab: dict[str, Any], local_dir: str,
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One student's roster entry from `pvelab twin roster` on their server: the lab's access merged in
    (each student has their own secrets), its SSH files as copied to `local_dir` on the controller,
    the class's rubric params, the student's name and email from the class list."""
    students = twin_roster.get("students") or []
    if len(students) != 1:
        raise AnsibleFilterError(f"`pvelab twin roster --lab {lab['lab']}` gave {len(students)} students, not one")
    entry = {**students[0], **(twin_roster.get("defaults") or {}), "id": lab["id"], "params": dict(params or {})}
    entry.update({k: lab[k] for k in ("name", "email") if lab.get(k)})
    for key in ("ssh_key_file", "ssh_known_hosts_file"):
        if entry.get(key):
            entry[key] = local_copy(entry[key], local_dir)
    return entry


def class_roster(entries: list[dict[str, Any]], students: list[Any]) -> dict[str, Any]:
    """The roster `pvelab grade` reads: every student's entry, in class list order."""
    order = [student_id(s) for s in students]
    missing = sorted(set(order) - {e["id"] for e in entries})
    if missing:
        raise AnsibleFilterError(f"no lab was gathered for {', '.join(missing)}: run class.yml without --limit")
    return {"students": sorted((e for e in entries if e["id"] in order), key=lambda e: order.index(e["id"]))}


def class_inventory(inventory: dict[str, Any], local_dir: str) -> dict[str, Any]:
    """A lab's inventory (`pvelab twin up` writes it on its server) for the controller: its SSH key,
    known_hosts and grader token file where class.yml keeps them for that student."""
    values = dict(inventory["all"]["vars"])
    old_known = values.get("pve_ssh_known_hosts_file", "")
    for key in ("ansible_ssh_private_key_file", "pve_ssh_known_hosts_file", "lab_grader_token_file"):
        if values.get(key):
            values[key] = local_copy(values[key], local_dir)
    if old_known and values.get("ansible_ssh_common_args"):
        values["ansible_ssh_common_args"] = values["ansible_ssh_common_args"].replace(
            old_known, values["pve_ssh_known_hosts_file"])
    return {"all": {**inventory["all"], "vars": values}}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"class_plan": class_plan, "class_capacity": class_capacity, "class_roster_entry": class_roster_entry,
                "class_roster": class_roster, "class_inventory": class_inventory}
