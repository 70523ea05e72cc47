"""`pvelab grade`: score every cluster of a roster with a rubric, write the reports, print a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pvelab.grade import probes
from pvelab.grade.engine import GradeOptions, grade_class, shared_identities
from pvelab.grade.report import verify_manifest, write_run
from pvelab.grade.roster import RosterError, load_roster
from pvelab.grade.rubric import RubricError, load_rubric


class GradeError(Exception):
    """Something `pvelab grade` cannot do, said in one line."""


DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubrics" / "course-lab.yml"


def add_parser(top: Any) -> None:
    grade = top.add_parser("grade", help="score a class's PVE clusters with a rubric (read-only)")
    grade.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                       help="the rubric YAML (default: the course lab's, shipped with pvelab)")
    grade.add_argument("--roster", type=Path, help="the class roster YAML (students and their clusters)")
    grade.add_argument("--out", type=Path, default=Path("grades"), help="where the reports go (default ./grades)")
    grade.add_argument("--key-file", type=Path, help="the instructor's key: signs the run's manifest (HMAC)")
    grade.add_argument("--self-check", action="store_true",
                       help="only the visible, non-destructive checks, with hints: what a student runs")
    grade.add_argument("--drills", action="store_true", help="also run destructive checks (timed drills)")
    grade.add_argument("--timeout", type=float, help="seconds for each request (default: the rubric's)")
    grade.add_argument("--list-probes", action="store_true", help="print the probes a rubric can use, and exit")
    grade.add_argument("--verify", type=Path, metavar="RUN_DIR",
                       help="check a run's files against its signed manifest (with --key-file), and exit")
    grade.set_defaults(func=cmd_grade)


def cmd_grade(_lab: Any, args: argparse.Namespace) -> None:
    try:
        grade(args)
    except (RubricError, RosterError, OSError, ValueError) as exc:
        raise GradeError(str(exc)) from exc


def grade(args: argparse.Namespace) -> None:
    if args.list_probes:
        for name, func in sorted(probes.PROBES.items()):
            print(f"{name:24} {(func.__doc__ or '').strip().splitlines()[0] if func.__doc__ else ''}")
        return
    if args.verify:
        if not args.key_file:
            raise ValueError("--verify needs --key-file, the key the run was signed with")
        problems = verify_manifest(args.verify, args.key_file.read_bytes().strip())
        print("\n".join(problems) or f"{args.verify}: every file matches its signed manifest")
        if problems:
            raise ValueError(f"{len(problems)} file(s) do not match the manifest")
        return
    if not args.roster:
        raise ValueError("give the class roster: --roster FILE (see `pvelab grade --help`)")
    rubric = load_rubric(args.rubric, probes.known)
    students = load_roster(args.roster)
    options = GradeOptions(drills=args.drills, self_check=args.self_check, timeout=args.timeout)
    print(f"grading {len(students)} cluster(s) with {rubric.name} ({len(rubric.checks)} checks, "
          f"{rubric.max_points} points)...", flush=True)
    results = grade_class(students, rubric, options)
    key = args.key_file.read_bytes().strip() if args.key_file else None
    out = write_run(args.out, results, rubric, key)
    for result in results:
        state = "" if result.reachable else "  UNREACHABLE"
        print(f"{result.student.id:12} {result.score:6g} / {result.max_score}{state}  ({result.seconds:.1f} s)")
        if args.self_check:
            for check in result.checks:
                if check.status not in ("passed", "skipped"):
                    print(f"  {check.status.upper():8} {check.check.title}: {check.message}"
                          + (f"\n           hint: {check.check.hint}" if check.check.hint else ""))
    for shared in shared_identities(results):
        print(f"WARNING: {shared}", file=sys.stderr)
    print(f"reports: {out}/report.html, gradebook.csv, junit.xml, students/*/results.json")
