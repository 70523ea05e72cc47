"""The Cluster Resource Scheduler the CRM places services with (datacenter.cfg `crs: ha=...`):
- `basic`: a node's score is how many services use it;
- `static`: each service counts with its configured CPUs and memory (`cores`×`sockets` or `vcpus`,
  `memory`), against each node's CPU count and memory;
- `dynamic`: nodes count with their measured load and services with theirs.
Static and dynamic score a start with TOPSIS over four criteria (average and highest CPU and memory
load after the start, memory weighted most), and auto-rebalancing chooses the migration that lowers
the nodes' load imbalance most - as PVE's proxmox-resource-scheduling does (its weights, its
imbalance measure, its tie-breaks); the code is ours."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# Criteria: average CPU, highest CPU, average memory, highest memory; all minimised (negative), 1:2:5:10.
PVE_CRITERIA = (-1.0, -2.0, -5.0, -10.0)
DIGITS = 15  # an imbalance is cut to f64's significant decimal digits before migrations are compared
USAGE_STATES = ("started", "request_stop", "fence", "freeze", "error", "recovery", "migrate", "relocate")


@dataclass
class Stats:
    """A node's or a resource's figures: CPUs in use and in total, memory in bytes used and in total."""
    cpu: float = 0.0
    maxcpu: float = 0.0
    mem: int = 0
    maxmem: int = 0

    def with_started(self, res: Stats) -> Stats:
        """As if `res` were started here at its maximum (maxcpu 0 = unlimited: the node's CPUs)."""
        return replace(self, cpu=self.cpu + (res.maxcpu or self.maxcpu), mem=self.mem + res.maxmem)

    def with_running(self, res: Stats) -> Stats:
        return replace(self, cpu=self.cpu + res.cpu, mem=self.mem + res.mem)

    def without_running(self, res: Stats) -> Stats:
        return replace(self, cpu=max(0.0, self.cpu - res.cpu), mem=max(0, self.mem - res.mem))

    def cpu_load(self) -> float:
        return self.cpu / self.maxcpu

    def mem_load(self) -> float:
        return self.mem / self.maxmem

    def load(self) -> float:
        return (self.cpu_load() + self.mem_load()) / 2.0


@dataclass
class Resource:
    stats: Stats
    running: bool  # a service that is only starting counts at its maximum (dynamic mode)
    current: str
    target: str | None = None


@dataclass(frozen=True, order=True)
class Migration:
    imbalance: float
    sid: str
    source: str
    target: str


def used_service_nodes(sd: dict[str, Any], online: set[str]) -> tuple[str | None, str | None]:
    """The online node a service occupies and the online node it is moving to (pve-ha-manager's
    get_used_service_nodes)."""
    state, node, target = sd.get("state"), sd.get("node"), sd.get("target")
    if state in ("stopped", "request_start"):
        return None, None
    current = node if state in USAGE_STATES and node in online else None
    moving = target if state in ("migrate", "relocate", "request_start_balance") and target in online else None
    return current, moving


def l2(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def topsis_scores(matrix: list[list[float]], criteria: tuple[float, ...] = PVE_CRITERIA) -> list[float]:
    """TOPSIS: each alternative's closeness to the ideal (1.0) rather than the anti-ideal (0.0), with
    each column normalised; a criterion's weight is relative, negative where less is better."""
    if not matrix:
        return []
    weights = [abs(c) / sum(abs(c) for c in criteria) for c in criteria]
    columns = range(len(criteria))
    norms = [l2([row[c] for row in matrix]) for c in columns]
    normal = [[row[c] / norms[c] if norms[c] else row[c] for c in columns] for row in matrix]
    low = [min(row[c] for row in normal) for c in columns]
    high = [max(row[c] for row in normal) for c in columns]
    best = [high[c] if criteria[c] >= 0 else low[c] for c in columns]
    worst = [low[c] if criteria[c] >= 0 else high[c] for c in columns]
    scores = []
    for row in normal:
        to_best = l2([weights[c] * (row[c] - best[c]) for c in columns])
        to_worst = l2([weights[c] * (row[c] - worst[c]) for c in columns])
        scores.append(to_worst / (to_best + to_worst) if to_best + to_worst else 0.0)
    return scores


def ranked(scores: list[float]) -> list[int]:
    """Indices from the best score down; equal scores keep their order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def alternative(loads: list[Stats]) -> list[float]:
    """A cluster state as TOPSIS sees it: 1 + the root mean square and the highest of CPU and memory load."""
    cpu, mem = [s.cpu_load() for s in loads], [s.mem_load() for s in loads]
    return [1.0 + l2(cpu) / math.sqrt(len(cpu)), 1.0 + max(0.0, *cpu),
            1.0 + l2(mem) / math.sqrt(len(mem)), 1.0 + max(0.0, *mem)]


def imbalance(loads: list[float]) -> float:
    """The nodes' loads' coefficient of variation (standard deviation over mean): 0 when even. This is
    proxmox-resource-scheduling 2.0's measure, the one pve-ha-manager's tests expect; 2.1 (May 2026)
    divides it by its maximum for the node count, sqrt(n - 1)."""
    if not loads or sum(loads) == 0.0:
        return 0.0
    mean = sum(loads) / len(loads)
    return math.sqrt(sum((x - mean) ** 2 for x in loads) / len(loads)) / mean


def truncated(value: float) -> float:
    factor = 10.0 ** DIGITS
    return math.trunc(value * factor) / factor


def start_scores(view: dict[str, Stats], started: Stats) -> dict[str, float]:
    """Each node's TOPSIS score (higher is better) for starting a service of figures `started` on it,
    judged by the whole cluster's load afterwards."""
    names = list(view)
    matrix = [alternative([view[n].with_started(started) if n == node else view[n] for n in names])
              for node in names]
    return dict(zip(names, topsis_scores(matrix), strict=True))


Move = tuple[str, str, str, Stats]  # service (leader), source node, target node, what moves with it


def rank_migrations(view: dict[str, Stats], moves: list[Move], method: str) -> list[Migration]:
    """The candidate moves from best to worst: by the imbalance each leaves (`bruteforce`; ties by
    service, source, target) or by TOPSIS over the load each leaves (`topsis`)."""
    def after(move: Move) -> list[Stats]:
        _, source, target, moved = move
        return [s.without_running(moved) if n == source else s.with_running(moved) if n == target else s
                for n, s in view.items()]

    scored = [Migration(truncated(imbalance([s.load() for s in after(m)])), m[0], m[1], m[2]) for m in moves]
    if method == "topsis":
        return [scored[i] for i in ranked(topsis_scores([alternative(after(m)) for m in moves]))]
    return sorted(scored)


class Usage:
    """The online nodes' usage by services, in one scheduler mode (pve-ha-manager's Usage classes)."""

    def __init__(self, mode: str, log: Callable[[str, str], None], nodes: dict[str, Stats],
                 service_stats: dict[str, dict[str, Any]]) -> None:
        self.mode, self.log = mode, log
        self.nodes = nodes  # base figures: maxima only (static), measured load (dynamic), none (basic)
        self.service_stats = service_stats
        self.resources: dict[str, Resource] = {}

    def online(self) -> set[str]:
        return set(self.nodes)

    def add_service_usage(self, sid: str, sd: dict[str, Any]) -> None:
        used, moving = used_service_nodes(sd, self.online())
        running = bool(sd.get("running")) if sd.get("state") == "started" else used is not None
        # starting balanced, or moved off a node in maintenance: it counts where it goes
        current, target = (used, moving) if used is not None else (moving, None)
        if current is None:
            return
        if self.mode == "basic":
            self.resources[sid] = Resource(Stats(), running, current, target)
            return
        usage = (self.service_stats.get(sid) or {}).get("usage")
        if not usage:
            self.log("warning", f"unable to add service '{sid}' - did not get {self.mode} service usage"
                                f" information for '{sid}'")
            return
        if current == target:
            self.log("warning", f"unable to add service '{sid}' - resource '{sid}' has the same current and"
                                " target node")
            return
        self.resources[sid] = Resource(resource_stats(usage), running, current, target)

    def remove_service_usage(self, sid: str) -> None:
        self.resources.pop(sid, None)

    def on_node(self, node: str) -> list[Resource]:
        return [r for _, r in sorted(self.resources.items()) if node in (r.current, r.target)]

    def aggregate(self, count: Callable[[Resource], bool]) -> dict[str, Stats]:
        """Each node's figures with the resources `count` picks added as started at their maxima."""
        out = {}
        for node, base in sorted(self.nodes.items()):
            stats = base
            for res in self.on_node(node):
                if count(res):
                    stats = stats.with_started(res.stats)
            out[node] = stats
        return out

    def balancing_view(self) -> dict[str, Stats]:
        # static: the nodes' maxima carry nothing, every placed service counts at its maximum;
        # dynamic: the measured load already holds the running services
        return self.aggregate(lambda _: self.mode == "static")

    def scores(self, sid: str) -> dict[str, float]:
        """Each online node's score for starting `sid` on it; lower is better."""
        if self.mode == "basic":
            return {node: float(len(self.on_node(node))) for node in self.nodes}
        usage = (self.service_stats.get(sid) or {}).get("usage")
        if not usage:
            self.log("err", f"unable to score nodes according to {self.mode} usage for service '{sid}' - did not"
                            f" get {self.mode} service usage information for '{sid}'")
            return dict.fromkeys(self.nodes, 0.0)
        view = self.aggregate(lambda r: self.mode == "static" or not r.running)
        return {node: -score for node, score in start_scores(view, resource_stats(usage)).items()}

    def imbalance(self) -> float:
        if self.mode == "basic":
            return 0.0
        return imbalance([s.load() for s in self.balancing_view().values()])

    def best_migration(self, candidates: list[tuple[str, list[str], list[str]]], method: str) -> Migration | None:
        """The best of the candidate moves: a leading service, the bundle moving with it, its targets."""
        if self.mode == "basic":
            return None
        moves: list[Move] = []
        for leader, bundle, targets in candidates:
            moved = Stats()
            for sid in bundle:
                s = self.resources[sid].stats
                moved = Stats(moved.cpu + s.cpu, moved.maxcpu + s.maxcpu, moved.mem + s.mem, moved.maxmem + s.maxmem)
            moves += [(leader, self.resources[leader].current, target, moved) for target in targets]
        return next(iter(rank_migrations(self.balancing_view(), moves, method)), None)


def resource_stats(usage: dict[str, Any]) -> Stats:
    """A service's figures: static ones have only maxima, which are also what it uses."""
    maxcpu, maxmem = float(usage.get("maxcpu", 0.0)), int(usage.get("maxmem", 0))
    return Stats(float(usage.get("cpu", maxcpu)), maxcpu, int(usage.get("mem", maxmem)), maxmem)


def node_stats(mode: str, figures: dict[str, Any] | None, node: str) -> Stats:
    """A node's base figures for the scheduler, refused as PVE refuses incomplete ones."""
    if not figures:
        raise ValueError(f"did not get {mode} node usage information for '{node}'")
    if figures.get("maxcpu") is None:
        raise ValueError(f"{mode} node usage information for '{node}' missing cpu count")
    if figures.get("maxmem") is None:
        raise ValueError(f"{mode} node usage information for '{node}' missing memory")
    if mode == "static":
        return Stats(0.0, float(int(figures["maxcpu"])), 0, int(figures["maxmem"]))
    return Stats(float(figures.get("cpu", 0.0)), float(int(figures["maxcpu"])), int(figures.get("mem", 0)),
                 int(figures["maxmem"]))
