"""Read back every output of a `pvelab grade` run the way its readers do (Gradescope's JSON, a CI's
JUnit, a spreadsheet's CSV, a browser's rendering of the HTML), each as {student: (total, [(status,
points) per check])}, so tests can assert that all four say the same."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

Table = dict[str, tuple[float, list[tuple[str, float]]]]
JUNIT_STATUS = {"failure": None, "error": None, "skipped": "skipped"}  # failure/error carry their status in `type`


class Cells(HTMLParser):
    """The rendered overview: each student's total, and each check cell's status class and score."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.row: str | None = None
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and (a.get("id") or "").startswith("row-"):
            self.row = str(a["id"])[4:]
            self.rows[self.row] = {"cells": []}
        elif tag == "td" and self.row:
            if a.get("class") == "total":
                self.rows[self.row]["total"] = float(str(a["data-score"]))
            else:
                self.cell = str(a.get("class"))

    def handle_data(self, data: str) -> None:
        if self.cell and self.row:
            self.rows[self.row]["cells"].append((self.cell, float(data)))
            self.cell = None


def browser_flags(profile: Path) -> list[str]:
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: scripts/setup.sh installs it (the report is checked in a real browser)"
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]


def from_html(out: Path, profile: Path) -> Table:
    """The overview table as headless chromium renders report.html."""
    dom = subprocess.run([*browser_flags(profile), "--dump-dom", (out / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    cells = Cells()
    cells.feed(dom)
    return {student: (row["total"], row["cells"]) for student, row in cells.rows.items()}


def from_gradescope(out: Path) -> Table:
    table: Table = {}
    for path in sorted((out / "students").glob("*/results.json")):
        data = json.loads(path.read_text())
        checks = [(t["extra_data"]["pvelab_status"], t["score"]) for t in data["tests"]]
        table[path.parent.name] = (data["score"], checks)
    return table


def from_junit(out: Path) -> Table:
    table: Table = {}
    for suite in ElementTree.parse(out / "junit.xml").getroot().iter("testsuite"):
        score = next(float(p.get("value", "")) for p in suite.iter("property") if p.get("name") == "score")
        cases = []
        for case in suite.iter("testcase"):
            points = next(float(p.get("value", "")) for p in case.iter("property") if p.get("name") == "points")
            marks = [m for m in case if m.tag in JUNIT_STATUS]
            status = "passed" if not marks else JUNIT_STATUS[marks[0].tag] or str(marks[0].get("type"))
            cases.append((status, points))
        table[str(suite.get("name"))] = (score, cases)
    return table


def from_gradebook(out: Path) -> dict[str, tuple[float, list[float]]]:
    """The CSV has points, not statuses: {student: (total, [points per check])}."""
    with (out / "gradebook.csv").open() as fh:
        rows = list(csv.reader(fh))
    return {row[0]: (float(row[3]), [float(v) for v in row[6:]]) for row in rows[1:]}


def assert_outputs_agree(out: Path, profile: Path) -> Table:
    """All four outputs say the same per student and per check; returns that table."""
    gradescope = from_gradescope(out)
    assert from_junit(out) == gradescope
    assert from_html(out, profile) == gradescope
    assert from_gradebook(out) == {s: (total, [p for _, p in cells]) for s, (total, cells) in gradescope.items()}
    for total, cells in gradescope.values():
        assert round(sum(p for _, p in cells), 2) == total
    return gradescope
