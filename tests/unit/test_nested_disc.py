"""The answer disc a nested node boots with beside the installer, and the twin's stand-in installer
reading the answer the controller rendered (the awk reader of the tiny guest OS, run here by sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pvelab.nested import answer
from pvelab.nested.disc import LABEL, write_answer_disc
from pvelab.twin import guest_os

PLAN = answer.NodePlan(hostname="s1-pve1", domain="student1.lab", cidr="198.18.40.11/24", gateway="198.18.40.1",
                       dns="198.18.40.1", mac="BC:24:11:40:01:01", root_password_hashed="$6$salt$hash")


def test_the_disc_is_labelled_for_the_installer_and_holds_the_answer(tmp_path: Path) -> None:
    disc = write_answer_disc(answer.render(PLAN), tmp_path / "ais.iso")
    info = subprocess.run(["xorriso", "-indev", str(disc), "-pvd_info"], capture_output=True, text=True, check=True)
    assert f"Volume Id    : {LABEL}" in info.stdout + info.stderr
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(disc), "-extract", "/answer.toml",
                    str(tmp_path / "read.toml")], capture_output=True, check=True)
    assert (tmp_path / "read.toml").read_text() == answer.render(PLAN)


def test_the_same_answer_makes_the_same_disc(tmp_path: Path) -> None:
    first = write_answer_disc(answer.render(PLAN), tmp_path / "a.iso").read_bytes()
    assert write_answer_disc(answer.render(PLAN), tmp_path / "b.iso").read_bytes() == first
    other = answer.render(answer.NodePlan(**{**PLAN.__dict__, "cidr": "198.18.40.12/24"}))
    assert write_answer_disc(other, tmp_path / "c.iso").read_bytes() != first


def standin_reads(answer_file: Path, section: str, key: str) -> str:
    """The stand-in installer's `toml` function (from the guest OS's init), run by sh."""
    init = guest_os.INIT
    function = init[init.index("toml() {"):init.index("\n}\n", init.index("toml() {")) + 3]
    done = subprocess.run(["sh", "-c", f'{function}\ntoml "$1" "$2" "$3"', "sh", str(answer_file), section, key],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("section,key,expected", [
    ("global", "fqdn", "s1-pve1.student1.lab"),
    ("global", "reboot-mode", "power-off"),
    ("global", "root-password-hashed", "$6$salt$hash"),
    ("global", "root-password", ""),  # a key of its own, not a prefix of the hashed one
    ("network", "cidr", "198.18.40.11/24"),
    ("network", "gateway", "198.18.40.1"),
    ("disk-setup", "disk-list", "sda"),
    ("disk-setup", "filesystem", "ext4"),
    ("first-boot", "source", ""),  # no such table
])
def test_the_standin_installer_reads_what_the_controller_rendered(tmp_path: Path, section: str, key: str,
                                                                 expected: str) -> None:
    (tmp_path / "answer.toml").write_text(answer.render(PLAN))
    assert standin_reads(tmp_path / "answer.toml", section, key) == expected


def test_the_standin_reads_the_os_disks_serial_filter(tmp_path: Path) -> None:
    (tmp_path / "answer.toml").write_text(answer.render(answer.NodePlan(**{**PLAN.__dict__,
                                                                          "os_disk_serial": "os-4101"})))
    assert standin_reads(tmp_path / "answer.toml", "disk-setup", "filter.ID_SERIAL") == "*os-4101"
    assert standin_reads(tmp_path / "answer.toml", "disk-setup", "disk-list") == ""


def test_the_installed_systems_place_on_disk_is_the_one_init_reads() -> None:
    assert f"INSTALLED_AT={guest_os.INSTALLED_AT_KIB}  # KiB" in guest_os.INIT
