"""pve-manager's own test of which guests a backup job covers (test/vzdump_guest_included_test.pl,
tests/fixtures/pve-manager/SOURCES.md) against pvelab's included_guests: the .pl's vmlist, pool and
cases (all, exclude, pool, VMIDs, node limits, a VMID no node holds), read from the file itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.guests import backup

SCRIPT = (Path(__file__).resolve().parents[1] / "fixtures" / "pve-manager" / "vzdump_guest_included_test.pl"
          ).read_text()


def vmlist() -> dict[int, dict[str, Any]]:
    block = SCRIPT.split("my $vmlist = {", 1)[1].split("\n};", 1)[0]
    return {int(vmid): {"type": kind, "node": node} for vmid, kind, node in
            re.findall(r"(\d+) => \{\s*'type' => '(\w+)',\s*'node' => '(\w+)',\s*\}", block)}


def pools() -> dict[str, list[int]]:
    block = SCRIPT.split("my $pools = {", 1)[1].split("};", 1)[0]
    return {name: [int(v) for v in members.split(",")] for name, members in re.findall(r"(\w+) => \[([^\]]*)\]", block)}


def cases() -> list[tuple[str, dict[str, list[int]], dict[str, Any]]]:
    found = []
    for name, body in re.findall(r"\$addtest->\(\s*'([^']+)',\s*\{(.*?)\n\s*\},?\n\);", SCRIPT, re.S):
        expected_text = re.search(r"expected => \{(.*?)\},\s*param", body, re.S)
        assert expected_text, name
        expected = {("" if node == "''" else node): [int(v) for v in ids.split(",") if v.strip()]
                    for node, ids in re.findall(r"(\w+|'') => \[([^\]]*)\]", expected_text.group(1))}
        param_text = re.search(r"param => \{(.*?)\}", body, re.S)
        assert param_text, name
        params = {key: (quoted if quoted else int(number)) for key, quoted, number in
                  re.findall(r"(\w+) => (?:'([^']*)'|(\d+))", param_text.group(1))}
        found.append((name, expected, params))
    return found


def test_the_ten_cases_of_the_script_are_read() -> None:
    assert len(cases()) == 10 == int(re.search(r"tests => (\d+)", SCRIPT).group(1))  # type: ignore[union-attr]
    assert len(vmlist()) == 8 and pools() == {"testpool": [100, 101, 200, 201]}


@pytest.mark.parametrize(("name", "expected", "params"), cases(), ids=[c[0] for c in cases()])
def test_the_guests_a_job_covers_are_pves(name: str, expected: dict[str, list[int]], params: dict[str, Any]) -> None:
    members = pools()
    assert backup.included_guests(params, vmlist(), lambda pool: members[pool]) == expected
