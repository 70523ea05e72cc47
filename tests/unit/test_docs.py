"""The README is the front door: short, and every link in it (and in docs/) leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_stays_a_front_door() -> None:
    assert (REPO / "README.md").stat().st_size <= 15 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [target for target in LINK.findall(page.read_text())
              if not re.match(r"[a-z]+:", target) and not target.startswith("#")
              and not (page.parent / target.split("#", 1)[0]).exists()]
    assert broken == []


def test_the_readme_links_every_docs_page() -> None:
    linked = {(REPO / t).resolve() for t in LINK.findall((REPO / "README.md").read_text())}
    assert set(PAGES[2:]) - linked == set()
