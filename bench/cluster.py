"""Benchmark of the twin's Proxmox cluster layer: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.cluster

Measures, on fresh 3-node labs: "3 fresh nodes" to "3-node quorate cluster" through the CLI
(pvecm over SSH) and through the API (proxmoxer); then how long a partitioned node takes to
report Quorate: No, and a healed one to be quorate and to see what was written meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The modules' own API client and task waiter, from the collection in this repository.
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from pvelab.poll import wait_for
from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_create, quorum_view, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

NODES = ("pve1", "pve2", "pve3")


def until(predicate: Callable[[], bool], timeout: float = 180) -> float:
    return wait_for(predicate, timeout, "the step", interval=0.1)


def all_quorate(lab: Lab) -> bool:
    views = [quorum_view(lab, n) for n in NODES]
    return all(v.get("quorate") is True and v.get("nodes") == 3 for v in views)


def form_with_cli(lab: Lab) -> None:
    pvecm_create(lab, "pve1", "benchclu")
    fp = fingerprint(lab, "pve1")
    for node in ("pve2", "pve3"):
        pvecm_add(lab, node, "pve1", lab.require_record().root_password, fp)


def form_with_api(lab: Lab) -> None:
    password = lab.require_record().root_password

    def api(node: str) -> PveApi:
        return PveApi(lab.require_record().spec.node(node).link_addr(0), password=password)

    def finish(node: str, upid: str) -> None:
        api(node).wait_for_task(node, upid, timeout=180, reconnect=True)  # a joining node drops sessions

    finish("pve1", api("pve1").post("/cluster/config", clustername="benchclu", link0="198.18.0.11",
                                    link1="198.18.1.11"))
    fp = api("pve1").get("/cluster/config/join")["nodelist"][0]["pve_fp"]
    for index, node in ((2, "pve2"), (3, "pve3")):
        finish(node, api(node).post("/cluster/config/join", hostname="198.18.0.11", password=password,
                                    fingerprint=fp, link0=f"198.18.0.1{index}", link1=f"198.18.1.1{index}"))


def partition_figures(lab: Lab) -> dict[str, float]:
    lab.partition(["pve3"], None, "all")
    lost = until(lambda: quorum_view(lab, "pve3").get("quorate") is False)
    ssh(lab, "pve1", "echo meanwhile > /etc/pve/meanwhile.txt")
    lab.heal()
    healed = until(lambda: quorum_view(lab, "pve3").get("quorate") is True
                   and ssh(lab, "pve3", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n")
    return {"partitioned node reports Quorate: No": lost, "healed node quorate and consistent": healed}


def main() -> int:
    lab = Lab(log=lambda _msg: None)
    if lab.leftovers():
        print("a lab is up on this machine; take it down first (pvelab twin down)")
        return 1
    figures: dict[str, float] = {}
    for label, form in (("CLI (pvecm over SSH)", form_with_cli), ("API (proxmoxer)", form_with_api)):
        try:
            lab.up(LabSpec(node_count=3))
            started = time.monotonic()
            form(lab)
            until(lambda: all_quorate(lab))
            figures[f"3 fresh nodes -> quorate cluster, {label}"] = time.monotonic() - started
            if form is form_with_cli:
                figures.update(partition_figures(lab))
        finally:
            lab.down(quiet=True)
    print("\ntwin cluster layer, 3 nodes")
    for label, seconds in figures.items():
        print(f"  {label:<52} {seconds:7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
