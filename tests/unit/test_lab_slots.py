"""A named lab's slot: the lowest free one, or the one asked for (a class over several servers gives
each lab its own so their addresses never meet), refused when another lab holds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.errors import TwinError
from pvelab.twin import lab as lab_module
from pvelab.twin.lab import Lab


@pytest.fixture(autouse=True)
def labs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PVELAB_LABS_DIR", str(tmp_path))
    monkeypatch.setattr(lab_module, "prefixes_in_use", set)  # this host's links are not the test's
    return tmp_path


def test_labs_take_the_lowest_free_slot_and_keep_it() -> None:
    assert Lab.named("a").reserve_slot() == 1
    assert Lab.named("b").reserve_slot() == 2
    assert Lab.named("a").reserve_slot() == 1


def test_a_slot_asked_for_is_taken_and_then_skipped_by_others() -> None:
    assert Lab.named("s003").reserve_slot(7) == 7
    assert Lab.named("s003").reserve_slot(7) == 7  # again: the same
    assert Lab.named("other").reserve_slot() == 1


def test_a_slot_held_by_another_lab_is_refused_naming_it(labs_dir: Path) -> None:
    Lab.named("first").reserve_slot(5)
    with pytest.raises(TwinError, match="slot 5 is taken on this host \\(by lab 'first'\\)"):
        Lab.named("second").reserve_slot(5)
    assert not (labs_dir / "second" / "slot").exists()  # nothing reserved by the refusal


def test_a_lab_keeps_its_slot_and_a_different_one_is_refused() -> None:
    Lab.named("a").reserve_slot(3)
    with pytest.raises(TwinError, match="holds slot 3, not 4"):
        Lab.named("a").reserve_slot(4)


@pytest.mark.parametrize("slot", [0, 100])
def test_a_slot_out_of_range_is_refused(slot: int) -> None:
    with pytest.raises(TwinError, match=f"slot {slot} is not a named lab's slot"):
        Lab.named("a").reserve_slot(slot)


def test_links_of_a_slot_found_on_the_host_make_it_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_module, "prefixes_in_use", lambda: {lab_module.prefix_of(2)})
    with pytest.raises(TwinError, match="slot 2 is taken on this host \\(by links named pvl02\\*\\)"):
        Lab.named("a").reserve_slot(2)
    assert Lab.named("a").reserve_slot() == 1
