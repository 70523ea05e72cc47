"""A grading rubric: checks with points, partial credit, prerequisites, version guards, hints.

The YAML an instructor writes (one file per lab):

    rubric: course-lab
    defaults: {visibility: visible, timeout_s: 10}
    checks:
      - id: cluster.nodes_online          # unique; a probe of pvelab.grade.probes by default
        title: Three nodes online
        points: 6
        partial: per_item                 # per_item (points spread over items) | all (all or nothing)
        requires: [access.api]            # not run (0 points, "blocked by ...") unless these passed, at
                                          # least in part (one node down does not block the rest)
        pve: ">=9"                        # version guard: skipped on other versions
        hint: pvecm nodes lists the members  # shown to the student when it fails
        instructor_note: ...              # never shown to students
        visibility: visible               # visible | after_due_date | after_published | hidden
        params: {expected: 3}             # given to the probe
        destructive: false                # true: runs only with --drills

Loading refuses, with the line that is wrong, an unknown probe, a bad point value, a duplicate id,
an unknown or cyclic `requires`, and unknown keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")
PARTIALS = ("per_item", "all", "thresholds")
CHECK_KEYS = {"id", "title", "points", "partial", "thresholds_s", "requires", "pve", "hint", "instructor_note",
              "visibility", "params", "destructive", "probe", "timeout_s"}
VERSION_GUARD = re.compile(r"^(>=|<=|==|>|<)?\s*(\d+)$")


class RubricError(ValueError):
    """A rubric that cannot be used, with the file and line that is wrong."""


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    points: int
    probe: str
    line: int
    partial: str = "per_item"
    thresholds_s: tuple[tuple[float, float], ...] = ()  # (seconds, fraction of points) for timed drills
    requires: tuple[str, ...] = ()
    pve: str | None = None
    hint: str = ""
    instructor_note: str = ""
    visibility: str = "visible"
    params: dict[str, Any] = field(default_factory=dict)
    destructive: bool = False
    timeout_s: float = 10.0
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)  # where each key was written

    def applies_to(self, major: int | None) -> bool:
        """Whether the version guard lets this check run on PVE `major` (unknown version: yes)."""
        if self.pve is None or major is None:
            return True
        found = VERSION_GUARD.match(self.pve)
        assert found is not None  # checked when loaded
        op, value = found.group(1) or "==", int(found.group(2))
        return {">=": major >= value, "<=": major <= value, "==": major == value, ">": major > value,
                "<": major < value}[op]


@dataclass(frozen=True)
class Rubric:
    name: str
    checks: tuple[Check, ...]

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks)

    def check(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)


def load_rubric(path: Path, known_probes: Callable[[str], bool]) -> Rubric:
    """The rubric in `path`; RubricError naming `path:line` for anything wrong."""
    text = path.read_text()
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RubricError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(root, yaml.MappingNode):
        raise RubricError(f"{path}:1: a rubric is a mapping with 'rubric' and 'checks'")
    top = {key.value: value for key, value in root.value}
    if "checks" not in top or not isinstance(top["checks"], yaml.SequenceNode) or not top["checks"].value:
        raise RubricError(f"{path}:{root.start_mark.line + 1}: the rubric has no 'checks' list")
    unknown_top = set(top) - {"rubric", "defaults", "checks", "version"}
    if unknown_top:
        raise RubricError(f"{path}:{root.start_mark.line + 1}: unknown rubric keys: {', '.join(sorted(unknown_top))}")
    data = yaml.safe_load(text)
    defaults = data.get("defaults") or {}
    checks: list[Check] = []
    for node, raw in zip(top["checks"].value, data["checks"], strict=True):
        mapping = isinstance(node, yaml.MappingNode)
        key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if mapping else {}
        checks.append(parse_check(path, node.start_mark.line + 1, raw, defaults, known_probes, key_lines))
    ids = [c.id for c in checks]
    for number, check in enumerate(checks):
        if check.id in ids[:number]:
            raise RubricError(f"{path}:{check.line}: check id '{check.id}' is used twice")
        for needed in check.requires:
            if needed not in ids:
                raise RubricError(f"{path}:{check.key_lines.get('requires', check.line)}: '{check.id}' requires "
                                  f"'{needed}', which is not in the rubric")
    refuse_cycles(path, checks)
    return Rubric(name=str(data.get("rubric") or path.stem), checks=tuple(checks))


def parse_check(path: Path, line: int, raw: Any, defaults: dict[str, Any],
                known_probes: Callable[[str], bool], key_lines: dict[str, int] | None = None) -> Check:
    where = f"{path}:{line}"

    def at(key: str) -> str:  # the line of the key that is wrong, when the check itself gives it
        return f"{path}:{(key_lines or {}).get(key, line)}"
    if not isinstance(raw, dict):
        raise RubricError(f"{where}: a check is a mapping (id, title, points, ...)")
    unknown = set(raw) - CHECK_KEYS
    if unknown:
        raise RubricError(f"{where}: unknown keys in check '{raw.get('id')}': {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(CHECK_KEYS))})")
    merged = {**{k: v for k, v in defaults.items() if k in CHECK_KEYS}, **raw}
    check_id = merged.get("id")
    if not isinstance(check_id, str) or not check_id:
        raise RubricError(f"{where}: a check needs an 'id'")
    points = merged.get("points")
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise RubricError(f"{at('points')}: '{check_id}' has points {points!r}: give a whole number, 0 or more")
    probe = str(merged.get("probe") or check_id)
    if not known_probes(probe):
        raise RubricError(f"{at('probe' if 'probe' in raw else 'id')}: '{check_id}' uses probe '{probe}', which "
                          "pvelab does not have (pvelab grade --list-probes shows them)")
    partial = merged.get("partial", "thresholds" if "thresholds_s" in merged else "per_item")
    if partial not in PARTIALS:
        raise RubricError(f"{at('partial')}: '{check_id}' has partial '{partial}': use one of {', '.join(PARTIALS)}")
    visibility = merged.get("visibility", "visible")
    if visibility not in VISIBILITIES:
        raise RubricError(f"{at('visibility')}: '{check_id}' has visibility '{visibility}': use one of "
                          f"{', '.join(VISIBILITIES)}")
    pve = merged.get("pve")
    if pve is not None and not VERSION_GUARD.match(str(pve)):
        raise RubricError(f"{at('pve')}: '{check_id}' has pve '{pve}': write a major version with an optional "
                          "comparison, e.g. '>=9' or '8'")
    requires = merged.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise RubricError(f"{at('requires')}: '{check_id}' requires must be a list of check ids")
    thresholds = merged.get("thresholds_s") or {}
    if partial == "thresholds":
        thresholds = parse_thresholds(at("thresholds_s"), check_id, thresholds)
    timeout = merged.get("timeout_s", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise RubricError(f"{at('timeout_s')}: '{check_id}' has timeout_s {timeout!r}: give seconds, more than 0")
    return Check(id=check_id, title=str(merged.get("title") or check_id), points=points, probe=probe, line=line,
                 partial=partial, thresholds_s=tuple(thresholds) if partial == "thresholds" else (),
                 requires=tuple(requires), pve=None if pve is None else str(pve), hint=str(merged.get("hint") or ""),
                 instructor_note=str(merged.get("instructor_note") or ""), visibility=visibility,
                 params=dict(merged.get("params") or {}), destructive=bool(merged.get("destructive", False)),
                 timeout_s=float(timeout), key_lines=dict(key_lines or {}))


def parse_thresholds(where: str, check_id: str, raw: Any) -> list[tuple[float, float]]:
    """{full: 180, half: 300} or {180: 1.0, 300: 0.5} -> [(180, 1.0), (300, 0.5)], fastest first."""
    names = {"full": 1.0, "half": 0.5}
    if not isinstance(raw, dict) or not raw:
        raise RubricError(f"{where}: '{check_id}' needs thresholds_s, e.g. {{full: 180, half: 300}}")
    out: list[tuple[float, float]] = []
    for key, value in raw.items():
        if key in names and isinstance(value, int | float):
            out.append((float(value), names[key]))
        elif isinstance(key, int | float) and isinstance(value, int | float) and 0 <= value <= 1:
            out.append((float(key), float(value)))
        else:
            raise RubricError(f"{where}: '{check_id}' has a bad threshold {key!r}: {value!r} - use full/half: "
                              "seconds, or seconds: fraction of points (0 to 1)")
    return sorted(out)


def refuse_cycles(path: Path, checks: list[Check]) -> None:
    requires = {c.id: c.requires for c in checks}
    done: set[str] = set()

    def visit(check_id: str, trail: tuple[str, ...]) -> None:
        if check_id in trail:
            cycle = " -> ".join((*trail[trail.index(check_id):], check_id))
            line = next(c.line for c in checks if c.id == check_id)
            raise RubricError(f"{path}:{line}: 'requires' makes a cycle: {cycle}")
        if check_id in done:
            return
        for needed in requires[check_id]:
            visit(needed, (*trail, check_id))
        done.add(check_id)

    for check in checks:
        visit(check.id, ())
