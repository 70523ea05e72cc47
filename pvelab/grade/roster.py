"""A class roster: who is graded, and how the grader reaches each student's cluster (read-only).

    defaults:                       # for every student unless given
      api_user: grader@pve           # an audit-level user (role PVEAuditor), or
      api_token_id: grader@pve!grade # a token of one, with api_token_secret
      ssh_user: root
      ssh_key_file: ~/.ssh/grader
    students:
      - id: s001
        name: Ada Lovelace
        email: ada@example.edu
        nodes:
          - {name: pve1, address: 198.18.0.11, bmc: 198.18.2.11}
          - {name: pve2, address: 198.18.0.12, bmc: 198.18.2.12}
        params: {cluster_name: lab-s001}   # per-student expectations the rubric's probes read
        api_password: ...                  # or per-student credentials

Loading refuses a duplicate student id and an address (node or BMC) given to two students."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCESS_KEYS = ("api_user", "api_password", "api_token_id", "api_token_secret", "api_port", "ssh_user",
               "ssh_key_file", "ssh_known_hosts_file", "bmc_user", "bmc_password", "bmc_port")
STUDENT_KEYS = {"id", "name", "email", "nodes", "params", *ACCESS_KEYS}
NODE_KEYS = {"name", "address", "bmc"}


class RosterError(ValueError):
    """A roster that cannot be used, with the file and the student that is wrong."""


@dataclass(frozen=True)
class NodeAddress:
    name: str
    address: str
    bmc: str | None = None


@dataclass(frozen=True)
class Student:
    id: str
    nodes: tuple[NodeAddress, ...]
    name: str = ""
    email: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    access: dict[str, Any] = field(default_factory=dict)  # the ACCESS_KEYS given (secrets: never in reports)


def load_roster(path: Path) -> list[Student]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RosterError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("students"), list) or not data["students"]:
        raise RosterError(f"{path}: a roster is a mapping with a 'students' list")
    defaults = {k: v for k, v in (data.get("defaults") or {}).items() if k in ACCESS_KEYS}
    students: list[Student] = []
    owner: dict[str, str] = {}
    for number, raw in enumerate(data["students"], 1):
        student = parse_student(path, number, raw, defaults)
        if any(s.id == student.id for s in students):
            raise RosterError(f"{path}: student '{student.id}' is listed twice")
        for address in [n.address for n in student.nodes] + [n.bmc for n in student.nodes if n.bmc]:
            if address in owner:
                raise RosterError(f"{path}: address {address} is given to both '{owner[address]}' and "
                                  f"'{student.id}': each student grades their own cluster")
            owner[address] = student.id
        students.append(student)
    return students


def parse_student(path: Path, number: int, raw: Any, defaults: dict[str, Any]) -> Student:
    where = f"{path}: student #{number}"
    if not isinstance(raw, dict) or not raw.get("id"):
        raise RosterError(f"{where} needs an 'id'")
    unknown = set(raw) - STUDENT_KEYS
    if unknown:
        raise RosterError(f"{where} ('{raw['id']}') has unknown keys: {', '.join(sorted(unknown))}")
    nodes = raw.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise RosterError(f"{where} ('{raw['id']}') has no 'nodes' (name and address of each)")
    parsed: list[NodeAddress] = []
    for node in nodes:
        if not isinstance(node, dict) or not node.get("name") or not node.get("address") or set(node) - NODE_KEYS:
            raise RosterError(f"{where} ('{raw['id']}'): each node is {{name, address[, bmc]}}, not {node!r}")
        parsed.append(NodeAddress(str(node["name"]), str(node["address"]), str(node["bmc"]) if node.get("bmc")
                                  else None))
    access = {**defaults, **{k: raw[k] for k in ACCESS_KEYS if k in raw}}
    if not access.get("api_password") and not access.get("api_token_secret"):
        raise RosterError(f"{where} ('{raw['id']}') has no API credentials: give api_password or "
                          "api_token_id and api_token_secret (here or in defaults)")
    return Student(id=str(raw["id"]), nodes=tuple(parsed), name=str(raw.get("name") or ""),
                   email=str(raw.get("email") or ""), params=dict(raw.get("params") or {}), access=access)
