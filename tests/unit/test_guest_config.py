"""VM configs as qemu-server reads and writes them, against qemu-server's own test configs
(tests/fixtures/pve/qemu-server, see SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.pve.guests import config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "qemu-server"


@pytest.mark.parametrize("name", ["plain", "snapshots", "sections", "regular-vm-efi", "locked"])
def test_qemu_servers_configs_read_and_write_back_unchanged(name: str) -> None:
    text = (FIXTURES / f"{name}.conf").read_text()
    assert config.dump(config.parse(text)) == text


def test_sections_land_where_qemu_server_puts_them() -> None:
    conf = config.parse((FIXTURES / "sections.conf").read_text())
    assert conf.main.options["name"] == "deb1223" and conf.main.options["parent"] == "foo"
    assert conf.pending is not None and set(conf.special) == {"cloudinit"} and "foo" in conf.snapshots
    assert len(conf.digest) == 40


def test_the_description_is_encoded_as_pve_does() -> None:
    conf = config.VmConfig(main=config.Section({"memory": "512"}, "web server: 50% ready\nsecond line äö"))
    text = config.dump(conf)
    assert text == "#web server%3A 50%25 ready\n#second line %C3%A4%C3%B6\nmemory: 512\n"
    assert config.parse(text).main.description == "web server: 50% ready\nsecond line äö"


def test_the_cfg2cmd_test_config_keeps_its_comment_as_description() -> None:
    conf = config.parse((FIXTURES / "simple1.conf").read_text())
    # PVE keeps what follows the "#", its leading space included (only trailing space is stripped)
    assert conf.main.description == " TEST: Simple test for a basic configuration with no special things"
    assert conf.main.options["net0"] == "virtio=A2:C0:43:77:08:A0,bridge=vmbr0"


def test_a_line_that_is_not_key_value_is_an_error() -> None:
    with pytest.raises(config.ConfigError, match="unable to parse config line: what is this"):
        config.parse("memory: 512\nwhat is this\n")
