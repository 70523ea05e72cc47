"""Proof that the test suite leaves a user's labs alone (scripts/test.sh runs it around the lab tests).

`record` notes every lab that is up and is not the tests' own (the default lab and named labs): each
node's boot id, corosync.conf and quorum. Where no default lab or no named lab is up, it brings one up
as a user would (`pvelab twin up`, one node, `pvecm create`), so the proof never rests on nothing.
`check` finds each recorded lab up, quorate, on the same boots and the same corosync.conf, then takes
down only the labs `record` made. `cleanup` does that last step alone (test.sh calls it on any exit).

    python -m tests.user_labs record|check|cleanup
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pvelab.twin.drive import pvecm_create, quorum_view, ssh
from pvelab.twin.lab import Lab, lab_dirs
from pvelab.twin.spec import LabSpec

TEST_LAB = os.environ.get("PVELAB_TEST_LAB", "pvelab-ci")
GUARD_LAB = "users-class"  # the named lab made when a user has none up
STATE = Path(os.environ.get("PVELAB_USER_LABS_STATE", Path(tempfile.gettempdir()) / "pvelab-user-labs.json"))


def is_up(lab: Lab) -> bool:
    return lab.record is not None and lab.supervisor_alive()


def users_labs() -> list[Lab]:
    """Labs up on this host that are not the tests' own."""
    named = [Lab.named(n, log=print) for n in lab_dirs() if not n.startswith(TEST_LAB)]
    return [lab for lab in [Lab(log=print), *named] if is_up(lab)]


def snapshot(lab: Lab) -> dict[str, Any]:
    nodes = [n.name for n in lab.require_record().spec.nodes]
    return {"nodes": {n: {"boot_id": lab.boot_id(n),
                          "corosync.conf": ssh(lab, n, "cat /etc/pve/corosync.conf").stdout,
                          "quorate": quorum_view(lab, n).get("quorate"),
                          "members": quorum_view(lab, n).get("nodes")} for n in nodes}}


MARK = ".made-for-the-user-labs-proof"  # in a lab's state directory: this proof made it, it may go


def bring_up(lab: Lab) -> bool:
    """What a user does first: a lab (one node is enough to prove it is left alone) and its cluster.
    False when the slot holds a broken lab that is not this proof's (it is left as it is)."""
    if lab.leftovers():
        if not (lab.paths.root / MARK).exists():
            print(f"user_labs: {describe(lab.name)} is half there (not up, not gone): left alone, not used")
            return False
        lab.down(quiet=True)  # this proof's own, from an interrupted run
    lab.up(LabSpec(node_count=1))
    (lab.paths.root / MARK).touch()
    made = pvecm_create(lab, "pve1", "users")
    if made.returncode != 0:
        lab.down(quiet=True)
        raise SystemExit(f"user_labs: pvecm create on the guard lab failed: {made.stderr.strip()}")
    return True


def record() -> int:
    labs = users_labs()
    made = []
    if not any(lab.name == "" for lab in labs):
        made.append("")
    if not any(lab.name for lab in labs):
        made.append(GUARD_LAB)
    for name in list(made):
        lab = Lab.named(name, log=print) if name else Lab(log=print)
        print(f"user_labs: no {'named' if name else 'default'} lab is up: bringing one up, as a user would")
        if bring_up(lab):
            labs.append(lab)
        else:
            made.remove(name)
    if not labs:
        raise SystemExit("user_labs: no lab to prove anything with (see above)")
    snapshots = {lab.name: snapshot(lab) for lab in labs}
    STATE.write_text(json.dumps({"made": made, "labs": snapshots}, indent=1))
    for lab in labs:
        print(f"user_labs: {describe(lab.name)} is up ({', '.join(snapshots[lab.name]['nodes'])})"
              + (" — made for this proof" if lab.name in made else " — the user's"))
    return 0


def describe(name: str) -> str:
    return f"named lab '{name}'" if name else "the default lab"


def differences(name: str, before: dict[str, Any]) -> list[str]:
    lab = Lab.named(name, log=print) if name else Lab(log=print)
    if not is_up(lab):
        return [f"{describe(name)} is no longer up"]
    now = snapshot(lab)
    found = []
    for node, was in before["nodes"].items():
        got = now["nodes"].get(node)
        if got is None:
            found.append(f"{describe(name)}: {node} is gone")
            continue
        if got["boot_id"] != was["boot_id"]:
            found.append(f"{describe(name)}: {node} was rebooted or powered off (boot id changed)")
        if got["corosync.conf"] != was["corosync.conf"]:
            found.append(f"{describe(name)}: {node}'s corosync.conf changed")
        if got["quorate"] is not True or got["members"] != was["members"]:
            found.append(f"{describe(name)}: {node} is not quorate with its {was['members']} member(s) "
                         f"(quorate {got['quorate']}, members {got['members']})")
    return found


def check() -> int:
    state = json.loads(STATE.read_text())
    found = [line for name, before in state["labs"].items() for line in differences(name, before)]
    for name in state["labs"]:
        print(f"user_labs: {describe(name)}: " + ("CHANGED" if any(describe(name) in f for f in found)
                                                   else "up, quorate, same boots and corosync.conf"))
    for line in found:
        print(f"user_labs: {line}", file=sys.stderr)
    cleanup()
    return 1 if found else 0


def cleanup() -> int:
    """Take down the labs `record` made (never one it found up)."""
    if not STATE.exists():
        return 0
    for name in json.loads(STATE.read_text())["made"]:
        (Lab.named(name, log=print) if name else Lab(log=print)).down(quiet=True)
    STATE.unlink()
    return 0


if __name__ == "__main__":
    actions = {"record": record, "check": check, "cleanup": cleanup}
    if len(sys.argv) != 2 or sys.argv[1] not in actions:
        raise SystemExit(f"usage: python -m tests.user_labs {'|'.join(actions)}")
    sys.exit(actions[sys.argv[1]]())
