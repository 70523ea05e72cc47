"""pve-cluster's own corosync.conf test (src/test/corosync_parser_test.pl with its three configs,
tests/fixtures/pve-cluster/SOURCES.md) against pvelab's reader, writer and checker: each config read,
written back and read again gives the same config, the text written is the file's own (blank lines
aside), and verify finds no error - with the .pl's own table of host names for resolving, as its mock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pvelab.pve.cluster import corosync_conf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve-cluster"
CONFIGS = sorted((FIXTURES / "corosync_configs").glob("*.conf"))


def known_hosts() -> dict[str, str]:
    """The .pl's $known_hosts, read from the file itself."""
    script = (FIXTURES / "corosync_parser_test.pl").read_text()
    table = script.split("my $known_hosts = {", 1)[1].split("};", 1)[0]
    return dict(re.findall(r'"([^"]+)"\s*=>\s*"([^"]+)"', table))


def without_blank_lines(text: str) -> str:
    return re.sub(r"^\s*\n+", "", text, flags=re.MULTILINE)  # the .pl's s/^\s*\n+//mg


def test_the_three_configs_and_the_host_table_are_read() -> None:
    assert [c.name for c in CONFIGS] == ["multiple-nodes.conf", "old.conf", "single-node.conf"]
    assert len(known_hosts()) == 8


@pytest.mark.parametrize("path", CONFIGS, ids=[c.name for c in CONFIGS])
def test_a_config_is_written_back_as_pve_writes_it(path: Path) -> None:
    raw1 = path.read_text()
    config1 = corosync_conf.parse(raw1)
    raw2 = corosync_conf.dump(config1)
    assert corosync_conf.parse(raw2) == config1  # "self check hash"
    assert without_blank_lines(raw2) == without_blank_lines(raw1)  # "self check raw"
    hosts = known_hosts()

    def resolve(host: str, _conf: corosync_conf.Conf) -> str:
        if host not in hosts:
            raise AssertionError(f"got unknown hostname '{host}' during mocked resolve_hostname_like_corosync")
        return hosts[host]

    errors, _warnings = corosync_conf.verify(config1, resolve)
    assert errors == []


def test_verify_says_what_pve_says_of_broken_links() -> None:
    conf = corosync_conf.parse(CONFIGS[0].read_text())
    del conf["nodelist"]["node"][1]["ring1_addr"]
    errors, warnings = corosync_conf.verify(conf, lambda host, _conf: {"prox1": "127.0.1.1"}.get(host, host))
    assert errors == ["node 'prox2' is missing address forinterface number 1"]
    assert "warning: ring0_addr 'prox1' for node 'prox1' resolves to '127.0.1.1' - consider replacing it with the " \
           "currently resolved IP address for stability" in warnings
    assert corosync_conf.verify({"totem": {}}) == (["no nodes found"], [])
