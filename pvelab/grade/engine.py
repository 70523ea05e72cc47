"""Grading: every student's cluster in parallel, each check scored from its probe's outcome.

A check's status is one of: passed, partial, failed, blocked (a `requires` did not pass), skipped
(version guard, a drill without --drills, or hidden from a self-check), unreachable (the cluster
did not answer - not the same as wrong), error (the probe broke: the message says why). One
cluster's trouble never stops or slows the others: each runs in its own thread and every request
has its check's timeout (timeout_s, or --timeout for all)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pvelab.grade.access import ClusterAccess, Unreachable
from pvelab.grade.probes import PROBES, Outcome
from pvelab.grade.roster import Student
from pvelab.grade.rubric import Check, Rubric

STATUSES = ("passed", "partial", "failed", "blocked", "skipped", "unreachable", "error")


@dataclass
class CheckResult:
    check: Check
    status: str
    score: float
    message: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def max_score(self) -> int:
        return self.check.points


@dataclass
class StudentResult:
    student: Student
    checks: list[CheckResult]
    started: float
    seconds: float
    reachable: bool
    pve_major: int | None
    fingerprints: dict[str, str]
    evidence: list[dict[str, Any]]
    identities: dict[str, str] = field(default_factory=dict)  # cluster name, Ceph fsid... as probes saw them

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 2)

    @property
    def max_score(self) -> int:
        return sum(c.max_score for c in self.checks)


@dataclass(frozen=True)
class GradeOptions:
    drills: bool = False  # run destructive checks (timed drills)
    self_check: bool = False  # only visible, non-destructive checks, as a student sees them
    timeout: float | None = None  # overrides every check's timeout_s


def score_of(check: Check, outcome: Outcome) -> tuple[str, float]:
    if check.partial == "thresholds":
        if outcome.seconds is None or not outcome.ok:
            return "failed", 0.0
        fraction = next((f for limit, f in check.thresholds_s if outcome.seconds <= limit), 0.0)
        return ("passed" if fraction == 1 else "partial" if fraction else "failed"), round(check.points * fraction, 2)
    if outcome.ok:
        return "passed", float(check.points)
    if check.partial == "all" or outcome.total == 0 or outcome.passed == 0:
        return "failed", 0.0
    return "partial", round(check.points * outcome.passed / outcome.total, 2)


def grade_student(student: Student, rubric: Rubric, options: GradeOptions,
                  access_factory: Callable[[Student, float], ClusterAccess]) -> StudentResult:
    started = time.time()
    timeout = options.timeout or max(c.timeout_s for c in rubric.checks)
    cx = access_factory(student, timeout)
    cx.drills = options.drills
    major: int | None = None
    reachable = True
    try:
        major = cx.pve_major()
    except Unreachable:
        reachable = False
    except Exception:  # noqa: BLE001 - an odd answer: grade on, version guards cannot apply
        major = None
    results: dict[str, CheckResult] = {}
    try:
        for check in rubric.checks:
            results[check.id] = run_check(cx, student, check, options, results, reachable, major)
    finally:
        cx.close()
    return StudentResult(student, list(results.values()), started, time.time() - started, reachable, major,
                         dict(cx.fingerprints), [e.as_dict() for e in cx.evidence], dict(cx.identities))


def run_check(cx: ClusterAccess, student: Student, check: Check, options: GradeOptions,
              done: dict[str, CheckResult], reachable: bool, major: int | None) -> CheckResult:
    if options.self_check and (check.visibility != "visible" or check.destructive):
        return CheckResult(check, "skipped", 0.0, "not part of the self-check")
    if check.destructive and not options.drills:
        return CheckResult(check, "skipped", 0.0, "a drill: runs only with --drills")
    if not check.applies_to(major):
        return CheckResult(check, "skipped", 0.0, f"not for PVE {major} (pve: {check.pve})")
    if not reachable:
        return CheckResult(check, "unreachable", 0.0, "the cluster did not answer the grader")
    blocked = [r for r in check.requires if done[r].status not in ("passed", "partial")]
    if blocked:
        return CheckResult(check, "blocked", 0.0, f"blocked by {', '.join(blocked)}")
    began = time.monotonic()
    cx.timeout = options.timeout or check.timeout_s  # each request of this check waits at most this long
    try:
        outcome = PROBES[check.probe](cx, {**student.params, **check.params})
    except Unreachable as exc:
        return CheckResult(check, "unreachable", 0.0, str(exc), seconds=time.monotonic() - began)
    except Exception as exc:  # noqa: BLE001 - one broken probe or odd answer must not stop the run
        return CheckResult(check, "error", 0.0, f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - began)
    status, score = score_of(check, outcome)
    return CheckResult(check, status, score, "; ".join(outcome.problems), outcome.facts,
                       seconds=time.monotonic() - began)


def grade_class(students: list[Student], rubric: Rubric, options: GradeOptions,
                access_factory: Callable[[Student, float], ClusterAccess] | None = None) -> list[StudentResult]:
    """Every student at once (one thread each), in roster order."""
    factory = access_factory or ClusterAccess
    with ThreadPoolExecutor(max_workers=max(1, len(students))) as pool:
        futures = [pool.submit(grade_student, s, rubric, options, factory) for s in students]
        return [f.result() for f in futures]


@dataclass(frozen=True)
class SharedIdentity:
    kind: str  # certificate, cluster name, ceph fsid
    value: str
    students: tuple[str, ...]

    def __str__(self) -> str:
        shown = f"{self.value[:23]}..." if self.kind == "certificate" else f"'{self.value}'"
        return f"one {self.kind} ({shown}) is seen in the clusters of {', '.join(self.students)}"


def shared_identities(results: list[StudentResult]) -> list[SharedIdentity]:
    """What names one cluster, seen in several students' clusters: a node certificate or a Ceph fsid
    (each unique to a cluster), or a cluster name when those students were given different names
    (the same name everywhere, as a class often is, proves nothing)."""
    seen: dict[tuple[str, str], list[StudentResult]] = {}
    for result in results:
        found = {("certificate", fp) for fp in result.fingerprints.values()} | set(result.identities.items())
        for key in sorted(found):
            seen.setdefault(key, []).append(result)
    shared = []
    for (kind, value), holders in seen.items():
        planned = {str(r.student.params.get("cluster_name", "")) for r in holders}
        if len(holders) > 1 and (kind != "cluster name" or len(planned) == len(holders)):
            shared.append(SharedIdentity(kind, value, tuple(r.student.id for r in holders)))
    return shared
