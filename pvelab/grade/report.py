"""What a grading run writes, all from one model (engine.StudentResult):

    OUT/students/<id>/results.json   Gradescope's results format (a student's tests, scores, hints)
    OUT/students/<id>/evidence.json  every request the grader made and the answer (secrets never)
    OUT/junit.xml                    one testsuite per student, one testcase per check (for CI)
    OUT/gradebook.csv                one row per student, a column per check
    OUT/report.html                  one self-contained page: class overview, then each student
    OUT/manifest.json                sha256 of every file above and what several students' clusters
                                     share (a certificate, a cluster name...), HMAC-SHA256-signed
                                     with the instructor's key when one is given (manifest.json.hmac)

Files are written to a temporary directory and moved into place, so a run that fails writes nothing
half."""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pvelab.grade.engine import SharedIdentity, StudentResult, shared_identities
from pvelab.grade.rubric import Rubric

GRADESCOPE_STATUS = {"passed": "passed", "partial": "failed", "failed": "failed", "blocked": "failed",
                     "skipped": "passed", "unreachable": "failed", "error": "failed"}
GRADESCOPE_VISIBILITY = {"visible": "visible", "after_due_date": "after_due_date",
                         "after_published": "after_published", "hidden": "hidden"}


def gradescope(result: StudentResult) -> dict[str, Any]:
    tests = []
    for number, c in enumerate(result.checks, 1):
        output = c.message if c.status == "passed" else "; ".join(x for x in (c.message, c.check.hint) if x)
        if c.facts:  # what the probe saw or measured (a drill's timing), as evidence beside the score
            output = f"{output} (seen: {json.dumps(c.facts, sort_keys=True, default=str)[:300]})".strip()
        tests.append({"name": f"{c.check.id}: {c.check.title}", "number": str(number), "score": c.score,
                      "max_score": c.max_score, "status": GRADESCOPE_STATUS[c.status],
                      "output": f"[{c.status}] {output}".strip(),
                      "visibility": GRADESCOPE_VISIBILITY[c.check.visibility],
                      "tags": [c.check.id.split(".")[0]],
                      "extra_data": {"pvelab_status": c.status, **({"facts": c.facts} if c.facts else {})}})
    return {"score": result.score, "execution_time": round(result.seconds, 2),
            "output": f"{result.score} of {result.max_score} points"
                      + ("" if result.reachable else " - the cluster did not answer the grader"),
            "stdout_visibility": "hidden", "tests": tests}


def junit(results: list[StudentResult]) -> str:
    suites = ElementTree.Element("testsuites", name="pvelab grade")
    for result in results:
        counts = {s: sum(c.status == s for c in result.checks) for s in ("skipped", "unreachable", "error")}
        failures = sum(c.status in ("failed", "partial", "blocked") for c in result.checks)
        suite = ElementTree.SubElement(suites, "testsuite", name=result.student.id, tests=str(len(result.checks)),
                                       failures=str(failures), errors=str(counts["unreachable"] + counts["error"]),
                                       skipped=str(counts["skipped"]), time=f"{result.seconds:.3f}",
                                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(result.started)))
        properties = ElementTree.SubElement(suite, "properties")
        ElementTree.SubElement(properties, "property", name="score", value=str(result.score))
        ElementTree.SubElement(properties, "property", name="max_score", value=str(result.max_score))
        for c in result.checks:
            case = ElementTree.SubElement(suite, "testcase", classname=c.check.id.split(".")[0], name=c.check.id,
                                          time=f"{c.seconds:.3f}")
            case_props = ElementTree.SubElement(case, "properties")
            ElementTree.SubElement(case_props, "property", name="points", value=str(c.score))
            ElementTree.SubElement(case_props, "property", name="max_points", value=str(c.max_score))
            if c.status in ("failed", "partial", "blocked"):
                failure = ElementTree.SubElement(case, "failure", message=c.check.hint or c.message, type=c.status)
                failure.text = c.message
            elif c.status in ("unreachable", "error"):
                ElementTree.SubElement(case, "error", message=c.message, type=c.status)
            elif c.status == "skipped":
                ElementTree.SubElement(case, "skipped", message=c.message)
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


def gradebook(results: list[StudentResult], rubric: Rubric) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student_id", "name", "email", "score", "max_score", "reachable",
                     *(c.id for c in rubric.checks)])
    for r in results:
        by_id = {c.check.id: c.score for c in r.checks}
        writer.writerow([r.student.id, r.student.name, r.student.email, f"{r.score:g}", r.max_score,
                         "yes" if r.reachable else "no", *(f"{by_id[c.id]:g}" for c in rubric.checks)])
    return out.getvalue()


def page(results: list[StudentResult], rubric: Rubric, shared: list[SharedIdentity]) -> str:
    """One self-contained HTML page; the numbers come from the same results as the JSON and CSV."""
    esc = html.escape
    head = "".join(f'<th title="{esc(c.title)}">{esc(c.id)}</th>' for c in rubric.checks)
    rows = []
    for r in results:
        cells = "".join(f'<td class="{c.status}" title="{esc(c.message)}">{c.score:g}</td>' for c in r.checks)
        rows.append(f'<tr id="row-{esc(r.student.id)}"><th><a href="#student-{esc(r.student.id)}">'
                    f'{esc(r.student.id)}</a></th><td class="total" data-score="{r.score:g}">{r.score:g} / '
                    f"{r.max_score}</td>{cells}</tr>")
    details = []
    for r in results:
        items = "".join(
            f'<li class="{c.status}"><b>{esc(c.check.id)}</b> {esc(c.check.title)}: {c.score:g}/{c.max_score} '
            f"[{c.status}]" + (f"<br>{esc(c.message)}" if c.message else "")
            + (f'<br><i>hint: {esc(c.check.hint)}</i>' if c.check.hint and c.status != "passed" else "") + "</li>"
            for c in r.checks)
        details.append(f'<section id="student-{esc(r.student.id)}"><h2>{esc(r.student.id)} {esc(r.student.name)}'
                       f"</h2><p>{r.score:g} of {r.max_score} points, graded in {r.seconds:.1f} s"
                       f"{'' if r.reachable else ' - <b>unreachable</b>'}</p><ul>{items}</ul>"
                       f'<p><a href="students/{esc(r.student.id)}/evidence.json">evidence</a></p></section>')
    warning = "".join(f"<p class=warn>{esc(str(s))}</p>" for s in shared)
    style = ("body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}.passed{background:#cfc}"
             ".partial{background:#ffc}.failed,.blocked{background:#fcc}.unreachable,.error{background:#ccc}"
             ".skipped{color:#888}.warn{color:#a00;font-weight:bold}")
    return (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{esc(rubric.name)}</title><style>{style}"
            f"</style></head><body><h1>{esc(rubric.name)}</h1>{warning}<table id=overview><tr><th>student</th>"
            f"<th>score</th>{head}</tr>{''.join(rows)}</table>{''.join(details)}</body></html>\n")


def write_run(out: Path, results: list[StudentResult], rubric: Rubric, key: bytes | None = None) -> Path:
    """Everything into `out` (replaced whole: written beside it, then moved into place)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for r in results:
            folder = staging / "students" / r.student.id
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps(gradescope(r), indent=1) + "\n")
            (folder / "evidence.json").write_text(json.dumps(r.evidence, indent=1, default=str) + "\n")
        (staging / "junit.xml").write_text(junit(results))
        (staging / "gradebook.csv").write_text(gradebook(results, rubric))
        shared = shared_identities(results)
        (staging / "report.html").write_text(page(results, rubric, shared))
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {"rubric": rubric.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": {str(p.relative_to(staging)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
                    "shared_identities": [{"kind": s.kind, "value": s.value, "students": list(s.students)}
                                          for s in shared]}
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        (staging / "manifest.json").write_text(text)
        if key:
            (staging / "manifest.json.hmac").write_text(hmac.new(key, text.encode(), hashlib.sha256).hexdigest() + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def verify_manifest(out: Path, key: bytes) -> list[str]:
    """What does not match: the manifest's signature, then each file's hash ([] when all hold)."""
    text = (out / "manifest.json").read_text()
    problems = []
    signature = (out / "manifest.json.hmac").read_text().strip() if (out / "manifest.json.hmac").exists() else ""
    if not hmac.compare_digest(signature, hmac.new(key, text.encode(), hashlib.sha256).hexdigest()):
        problems.append("manifest.json: the signature does not match (edited, or another key)")
    for name, digest in json.loads(text)["files"].items():
        path = out / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: changed since the run")
    return problems
