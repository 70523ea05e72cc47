"""qemu-server's own test of reading and writing VM configs (src/test/run_parse_config_tests.pl with
its parse-config-input and parse-config-expected files, tests/fixtures/qemu-server/SOURCES.md):
each config read and written back, strict and not, as the .pl does - the text written must be the
expected file (or the input, where there is none); where a `.strict.error` or `.non-strict.error`
file exists, reading in that mode must fail with its text. And its test of how a restore rewrites an
archived config (run_qemu_restore_config_tests.pl with restore-config-input and -expected)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pvelab.pve.guests import backup, config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qemu-server"
INPUTS = sorted((FIXTURES / "parse-config-input").glob("*.conf"))
CASES = [(path, strict) for strict in (False, True) for path in INPUTS]


def test_the_files_are_the_ones_the_script_plans_for() -> None:
    script = (FIXTURES / "run_parse_config_tests.pl").read_text()
    assert "plan tests => 2 * 10;" in script and len(INPUTS) == 10


@pytest.mark.parametrize(("path", "strict"), CASES,
                         ids=[f"{p.name}-{'strict' if s else 'non-strict'}" for p, s in CASES])
def test_a_config_is_read_and_written_back_as_qemu_server_does(path: Path, strict: bool) -> None:
    mode = "strict" if strict else "non-strict"
    expected_error = FIXTURES / "parse-config-expected" / f"{path.name}.{mode}.error"
    if expected_error.exists():
        with pytest.raises(config.ConfigError) as raised:
            config.parse(path.read_text(), strict=strict, vmid=8006, typed=True)
        assert f"{raised.value}\n" == expected_error.read_text()
        return
    written = config.dump(config.parse(path.read_text(), strict=strict, vmid=8006, typed=True))
    expected = FIXTURES / "parse-config-expected" / path.name
    assert written == (expected if expected.exists() else path).read_text()


# -- qemu-server's run_qemu_restore_config_tests.pl: the archived config as a restore rewrites it ----------
RESTORE_INPUTS = sorted((FIXTURES / "restore-config-input").glob("*.conf"))


def test_the_restore_files_are_the_ones_the_script_plans_for() -> None:
    script = (FIXTURES / "run_qemu_restore_config_tests.pl").read_text()
    assert "plan tests => 4;" in script and len(RESTORE_INPUTS) == 4


@pytest.mark.parametrize("path", RESTORE_INPUTS, ids=[p.name for p in RESTORE_INPUTS])
def test_an_archived_config_is_restored_as_qemu_server_restores_it(path: Path) -> None:
    """The .pl's own map (every disk onto a file storage 'target', numbered in map order) and line loop."""
    vmid, lines = path.stem, path.read_text().splitlines(keepends=True)
    disk_map: dict[str, str] = {}
    for line in lines:
        found = re.match(r"^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$", line.rstrip("\n"))
        if found:
            disk_map[found.group(1)] = f"target:{vmid}/vm-{vmid}-disk-{len(disk_map)}.{found.group(4) or 'raw'}"
    cookie = {"netcount": 0}
    got = "".join(backup.restore_update_config_line(cookie, disk_map, line, False) for line in lines)
    assert got == (FIXTURES / "restore-config-expected" / path.name).read_text()


def test_the_archive_keeps_the_main_section_as_vzdump_assembles_it() -> None:
    """Our side of the restore test's input: vzdump's assemble (the main section without lock, parent
    and unusedN; what was left out said), on qemu-server's own config with snapshots."""
    said: list[str] = []
    raw = (FIXTURES / "parse-config-input" / "snapshots.conf").read_text()
    archived = backup.archive_config(raw, [], said.append)
    main = raw.split("\n[", 1)[0] + "\n"
    kept = "".join(line for line in main.splitlines(keepends=True)
                   if not line.startswith(("parent:", "lock:", "unused")))
    assert archived == kept and "[" not in archived  # the blank line before the first section stays, as PVE
    assert said == ["skip unused drive 'rbd:vm-111-disk-0' (not included into backup)",
                    "snapshots found (not included into backup)"]
