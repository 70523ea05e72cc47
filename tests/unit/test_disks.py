"""The twin's data disks: sizes as a user writes them, the layouts it refuses, names as a node sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.errors import TwinError
from pvelab.twin import disks


@pytest.mark.parametrize(("text", "size"), [("16G", 16 * 1024 ** 3), ("16GiB", 16 * 1024 ** 3),
                                            ("512M", 512 * 1024 ** 2), ("1T", 1024 ** 4), ("4096", 4096),
                                            ("8 gb", 8 * 1024 ** 3)])
def test_sizes_read_as_users_write_them(text: str, size: int) -> None:
    assert disks.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "sixteen", "16X", "-1G", "1.5G"])
def test_a_size_it_cannot_read_is_refused_with_the_form_it_wants(text: str) -> None:
    with pytest.raises(TwinError, match="cannot read the disk size") as err:
        disks.parse_size(text)
    assert "16G" in err.value.fix


@pytest.mark.parametrize(("count", "size", "message"), [(5, 16 * 1024 ** 3, "--osd-disks between 0 and 4"),
                                                        (-1, 16 * 1024 ** 3, "--osd-disks"),
                                                        (1, 512 * 1024 ** 2, "--osd-size between 1G and 1T")])
def test_layouts_out_of_range_are_refused_naming_the_option(count: int, size: int, message: str) -> None:
    with pytest.raises(TwinError) as err:
        disks.check_layout(count, size)
    assert message in err.value.fix


def test_data_disks_are_named_after_the_system_disk_and_created_sparse(tmp_path: Path) -> None:
    assert disks.disk_names(3) == ["sdb", "sdc", "sdd"]
    disks.create(tmp_path, 2, 8 * 1024 ** 3)
    made = disks.images(tmp_path)
    assert [p.name for p in made] == ["sdb.img", "sdc.img"]
    assert all(p.stat().st_size == 8 * 1024 ** 3 and p.stat().st_blocks == 0 for p in made)
    made[0].write_bytes(b"kept")  # what a node wrote stays: create again changes nothing there
    disks.create(tmp_path, 2, 8 * 1024 ** 3)
    assert made[0].read_bytes() == b"kept"
