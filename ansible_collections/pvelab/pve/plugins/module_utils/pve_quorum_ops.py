"""`pvecm expected`: lowering expected votes so a partition counts as quorate. Emergencies only."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner
from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import parse_status

SPLIT_BRAIN_WARNING = (
    "pvecm expected {expected} on {node}: its partition {counts} as quorate with {votes} vote(s). If the "
    "other side is alive and does the same, both sides write to /etc/pve and diverge (split brain), and one "
    "side's changes are lost when they meet again. Heal the network as soon as you can; corosync raises "
    "expected votes again when the nodes rejoin."
)


def set_expected(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    if not p["accept_split_brain_risk"]:
        raise PveError(f"refusing to run 'pvecm expected {p['expected']}' on '{p['api_host']}': it can split the "
                       "brain of the cluster. Use it only in an emergency, when you know the other nodes are down "
                       "for good, and say so with accept_split_brain_risk: true")
    if p["expected"] < 1:
        raise PveError(f"expected must be at least 1, not {p['expected']}")
    ssh = SshRunner.from_params(p, p["api_host"])
    try:
        before = parse_status(ssh.check("pvecm status"))
        if before.get("expected_votes") == p["expected"]:
            return {"changed": False, "expected_votes": p["expected"], "quorate": before.get("quorate")}
        after = before
        if not check_mode:
            ssh.check(f"pvecm expected {int(p['expected'])}")
            after = parse_status(ssh.check("pvecm status"))
    finally:
        ssh.close()
    warning = SPLIT_BRAIN_WARNING.format(expected=p["expected"], node=p["api_host"],
                                         counts="would count" if check_mode else "now counts",
                                         votes=before.get("total_votes", "?"))
    result = {"changed": True, "expected_votes": p["expected"] if check_mode else after.get("expected_votes"),
              "quorate": after.get("quorate"), "warnings": [warning],
              "diff": {"before": {"expected_votes": before.get("expected_votes")},
                       "after": {"expected_votes": p["expected"]}}}
    if check_mode:
        result["msg"] = f"expected votes on '{p['api_host']}' would be set to {p['expected']}"
        result["quorate"] = would_be_quorate(before.get("total_votes"), p["expected"])
    return result


def would_be_quorate(total_votes: int | None, expected: int) -> bool | None:
    """votequorum's rule: quorum is expected // 2 + 1 votes."""
    return None if total_votes is None else total_votes >= expected // 2 + 1
