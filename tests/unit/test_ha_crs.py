"""The CRM's resource scheduler (pvelab/pve/ha/crs.py). The cluster figures and expected rankings of the
first tests are proxmox-resource-scheduling's own (proxmox/proxmox-rs, proxmox-resource-scheduling/
tests/topsis.rs and tests/scheduler.rs at commit 5f5aae68, version 2.0.0 - the one pve-ha-manager's
scenarios expect), carried over as data: Rust tests cannot be read unchanged here."""

from __future__ import annotations

from typing import Any

import pytest

from pvelab.pve.ha import crs
from pvelab.pve.ha.crs import Stats
from pvelab.pve.ha.env import static_usage

GIB, MIB = 1 << 30, 1 << 20


def ranking(matrix: list[list[float]], criteria: tuple[float, ...]) -> list[int]:
    return crs.ranked(crs.topsis_scores(matrix, criteria))


@pytest.mark.parametrize(("matrix", "maximise", "minimise"), [
    ([[0.0]], [0], [0]),
    ([[0.0], [2.0]], [1, 0], [0, 1]),
    ([[1.0], [2.0], [5.0], [3.0], [4.0]], [2, 4, 3, 1, 0], [0, 1, 3, 4, 2]),
    ([[-2.0], [-5.0], [-4.0], [1.0], [-3.0]], [3, 0, 4, 2, 1], [1, 2, 4, 0, 3]),
])
def test_topsis_ranks_one_criterion_as_proxmox_resource_scheduling(matrix: list[list[float]], maximise: list[int],
                                                                   minimise: list[int]) -> None:
    assert ranking(matrix, (1.0,)) == maximise
    assert ranking(matrix, (-1.0,)) == minimise


def test_topsis_ranks_two_criteria_as_proxmox_resource_scheduling() -> None:
    matrix = [[0.0, 1.0], [1.0, 0.0], [1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]
    assert ranking(matrix, (1.0, -1.0)) == [2, 1, 4, 3, 0]
    assert ranking(matrix, (-1.0, 1.0)) == [0, 3, 4, 1, 2]
    assert ranking(matrix, (-1.0, -1.0)) == [2, 4, 1, 0, 3]
    assert ranking(matrix, (1.0, 1.0)) == [3, 0, 1, 4, 2]


HOMOGENEOUS = {"node1": Stats(1.7, 16, 12334 * MIB, 64 * GIB), "node2": Stats(15.184, 16, 529 * MIB, 64 * GIB),
               "node3": Stats(5.2, 16, 9381 * MIB, 64 * GIB)}
HETEROGENEOUS = {"node1": Stats(1.7, 16, 12334 * MIB, 128 * GIB), "node2": Stats(15.184, 32, 529 * MIB, 96 * GIB),
                 "node3": Stats(5.2, 24, 9381 * MIB, 64 * GIB)}
MOVES: list[crs.Move] = [("vm:101", "node1", "node2", Stats(0.7, 4.0, 8 * GIB, 16 * GIB)),
                         ("vm:101", "node1", "node3", Stats(0.7, 4.0, 8 * GIB, 16 * GIB))]


@pytest.mark.parametrize(("view", "imbalance"), [(HOMOGENEOUS, 0.4893954724628247),
                                                 (HETEROGENEOUS, 0.33026013056867354)])
def test_imbalance_and_the_best_balancing_moves_as_proxmox_resource_scheduling(view: dict[str, Stats],
                                                                               imbalance: float) -> None:
    assert crs.imbalance([s.load() for s in view.values()]) == pytest.approx(imbalance, abs=1e-15)
    assert [m.target for m in crs.rank_migrations(view, MOVES, "bruteforce")] == ["node3", "node2"]
    assert [m.target for m in crs.rank_migrations(view, MOVES, "topsis")] == ["node2", "node3"]


def test_an_even_or_empty_cluster_has_no_imbalance() -> None:
    assert crs.imbalance([]) == 0.0
    assert crs.imbalance([0.3, 0.3, 0.3]) == 0.0
    assert crs.imbalance([0.0, 0.0]) == 0.0


@pytest.mark.parametrize(("view", "started", "order"), [
    (HOMOGENEOUS, Stats(0.0, 1.0, 0, 12 * GIB), ["node2", "node3", "node1"]),  # memory-heavy
    (HOMOGENEOUS, Stats(0.0, 12.0, 0, 0), ["node1", "node3", "node2"]),  # CPU-heavy
    (HOMOGENEOUS, Stats(0.0, 0.0, 0, 0), ["node1", "node3", "node2"]),  # no CPU limit: a whole node's CPUs
    (HOMOGENEOUS, Stats(0.0, 12.0, 0, 12 * GIB), ["node2", "node3", "node1"]),
    (HETEROGENEOUS, Stats(0.0, 1.0, 0, 12 * GIB), ["node2", "node1", "node3"]),
    (HETEROGENEOUS, Stats(0.0, 12.0, 0, 0), ["node3", "node2", "node1"]),
    (HETEROGENEOUS, Stats(0.0, 0.0, 0, 0), ["node1", "node3", "node2"]),
    (HETEROGENEOUS, Stats(0.0, 12.0, 0, 12 * GIB), ["node2", "node1", "node3"]),
])
def test_nodes_to_start_on_rank_as_proxmox_resource_scheduling(view: dict[str, Stats], started: Stats,
                                                              order: list[str]) -> None:
    scores = crs.start_scores(view, started)
    assert sorted(scores, key=lambda n: -scores[n]) == order


def usage(mode: str, ss: dict[str, dict[str, Any]], stats: dict[str, dict[str, Any]]) -> crs.Usage:
    logged: list[str] = []
    nodes = {"a": Stats(0.0, 8, 0, 16 * GIB), "b": Stats(0.0, 8, 0, 32 * GIB)}
    u = crs.Usage(mode, lambda _, msg: logged.append(msg), nodes, {s: {"usage": v} for s, v in stats.items()})
    for sid, sd in ss.items():
        u.add_service_usage(sid, sd)
    u.logged = logged  # type: ignore[attr-defined]
    return u


def test_basic_mode_counts_the_services_using_each_node_moving_ones_on_both() -> None:
    u = usage("basic", {"vm:1": {"state": "started", "node": "a"},
                        "vm:2": {"state": "migrate", "node": "a", "target": "b"},
                        "vm:3": {"state": "stopped", "node": "b"}}, {})
    assert u.scores("vm:3") == {"a": 2.0, "b": 1.0}
    assert u.imbalance() == 0.0 and u.best_migration([("vm:1", ["vm:1"], ["b"])], "bruteforce") is None


def test_static_mode_counts_configured_maxima_and_prefers_the_node_left_lightest() -> None:
    stats = {"vm:1": {"maxcpu": 4.0, "maxmem": 8 * GIB}, "vm:2": {"maxcpu": 2.0, "maxmem": 4 * GIB}}
    u = usage("static", {"vm:1": {"state": "started", "node": "b"}}, stats)
    assert u.balancing_view()["b"] == Stats(4.0, 8, 8 * GIB, 32 * GIB)
    scores = u.scores("vm:2")
    assert scores["a"] < scores["b"]  # lower is better: a carries nothing yet
    assert u.imbalance() == pytest.approx(1.0)  # one of two nodes carries everything


def test_a_service_without_figures_is_left_out_with_pves_warning_and_scores_nothing() -> None:
    u = usage("static", {"vm:9": {"state": "started", "node": "a"}}, {})
    assert "vm:9" not in u.resources
    assert u.logged == ["unable to add service 'vm:9' - did not get static service usage information for 'vm:9'"]
    assert u.scores("vm:9") == {"a": 0.0, "b": 0.0}


def test_dynamic_mode_counts_only_starting_services_at_their_maxima() -> None:
    stats = {"vm:1": {"cpu": 1.0, "maxcpu": 4.0, "mem": GIB, "maxmem": 8 * GIB},
             "vm:2": {"cpu": 0.5, "maxcpu": 2.0, "mem": GIB, "maxmem": 4 * GIB}}
    u = usage("dynamic", {"vm:1": {"state": "started", "node": "a", "running": 1},
                          "vm:2": {"state": "request_start_balance", "node": "b", "target": "a"}}, stats)
    start_view = u.aggregate(lambda r: not r.running)
    assert start_view["a"].mem == 4 * GIB and start_view["b"].mem == 0  # vm:2 counts where it goes, at its max


@pytest.mark.parametrize(("figures", "message"), [
    (None, "did not get static node usage information for 'n'"),
    ({"maxmem": 1}, "static node usage information for 'n' missing cpu count"),
    ({"maxcpu": 1}, "static node usage information for 'n' missing memory"),
])
def test_incomplete_node_figures_are_refused_as_pve_words_it(figures: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        crs.node_stats("static", figures, "n")


@pytest.mark.parametrize(("kind", "options", "expected"), [
    ("vm", {}, {"maxcpu": 1.0, "maxmem": 512 * MIB}),
    ("vm", {"sockets": "2", "cores": "3", "memory": "2048"}, {"maxcpu": 6.0, "maxmem": 2 * GIB}),
    ("vm", {"vcpus": "2", "sockets": "2", "cores": "3", "memory": "current=1024"}, {"maxcpu": 2.0, "maxmem": GIB}),
    ("ct", {"cores": "2", "memory": "1024"}, {"maxcpu": 2.0, "maxmem": GIB}),
    ("ct", {"cores": "2", "cpulimit": "1.5"}, {"maxcpu": 1.5, "maxmem": 512 * MIB}),
    ("ct", {}, {"maxcpu": 0.0, "maxmem": 512 * MIB}),
])
def test_a_guests_static_figures_are_pves_derived_maxima(kind: str, options: dict[str, str],
                                                         expected: dict[str, Any]) -> None:
    assert static_usage(kind, options) == expected


def test_a_node_reads_every_guests_figures_and_counts_only_ha_resources_as_running(monkeypatch: Any) -> None:
    from pvelab.pve import members
    from pvelab.pve.guests import store
    from pvelab.pve.ha.env import Locks, NodeEnv

    class Conf:
        def __init__(self, options: dict[str, str]) -> None:
            self.main = type("Main", (), {"options": options})()

    configs = {(100, "qemu"): {"cores": "2", "memory": "1024"}, (200, "lxc"): {"cores": "1"}}
    monkeypatch.setattr(members, "vmlist", lambda: {100: {"node": "pve1", "type": "qemu"},
                                                    200: {"node": "pve2", "type": "lxc"}})
    monkeypatch.setattr(store, "load", lambda node, vmid, kind: Conf(configs[(vmid, kind)]))
    env = NodeEnv("pve1", Locks())
    stats = env.service_stats("static")
    assert stats["vm:100"] == {"node": "pve1", "state": "stopped", "running": False,
                               "usage": {"maxcpu": 2.0, "maxmem": GIB}}
    assert stats["ct:200"]["usage"] == {"maxcpu": 1.0, "maxmem": 512 * MIB}
    assert env.service_stats("basic")["vm:100"]["usage"] == {}
    with pytest.raises(ValueError, match="did not get dynamic node usage information"):
        env.node_stats("dynamic")
