"""qemu-server's own test of reading and writing VM configs (src/test/run_parse_config_tests.pl with
its parse-config-input and parse-config-expected files, tests/fixtures/qemu-server/SOURCES.md):
each config read and written back, strict and not, as the .pl does - the text written must be the
expected file (or the input, where there is none); where a `.strict.error` or `.non-strict.error`
file exists, reading in that mode must fail with its text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.pve.guests import config

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
