"""/etc/pve/ceph.conf read and written as PVE does (pve-storage's CephConfig)."""

from __future__ import annotations

from pathlib import Path

from pvelab.pve.ceph.conf import dump, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "ceph"


def test_pves_own_file_reads_and_writes_back_byte_for_byte() -> None:
    text = (FIXTURES / "ceph-pve9-init-3mons.conf").read_text()
    config = parse(text)
    assert config["global"]["mon_host"] == "10.10.10.1 10.10.10.2 10.10.10.3"
    assert config["client"]["keyring"] == "/etc/pve/priv/$cluster.$name.keyring"
    assert list(config) == ["global", "client", "client.crash", "mon.pve1", "mon.pve2", "mon.pve3"]
    assert dump(config) == text


def test_sections_go_in_pves_order_and_keys_sorted() -> None:
    config = {"osd.0": {"b": "1"}, "mgr": {"x": "1"}, "zzz": {"k": "v"}, "mon": {"b": "2", "a": "1"},
              "client.crash": {"keyring": "k"}, "global": {"fsid": "f"}, "mds.a": {"k": "v"}}
    assert [line for line in dump(config).splitlines() if line.startswith("[")] == [
        "[global]", "[client.crash]", "[mds.a]", "[mon]", "[osd.0]", "[mgr]", "[zzz]"]
    assert "[mon]\n\ta = 1\n\tb = 2\n\n" in dump(config)


def test_cephs_grammar_comments_quotes_spaces_and_continuations() -> None:
    text = ("# a comment\n; another\n[global]\n  mon host = 10.0.0.1   # trailing comment\n"
            "\tauth  client   required=cephx\n\tquoted = \"a b \\; c\"  ; after\n\tsingle = 'x'\n"
            "\tlong = one \\\n    two\n\tliteral = a\\;b\n[mon.pve1] ; fine\n\tpublic_addr = 10.0.0.1\n")
    warnings: list[str] = []
    config = parse(text + "[more]\n\traw = \"a ; b\"\n", warnings)
    assert warnings == ["failed to parse quoted value - skip: \traw = \"a ; b\""]  # a comment sign inside quotes
    del config["more"]
    assert config == {"global": {"mon_host": "10.0.0.1", "auth_client_required": "cephx", "quoted": "a b ; c",
                                 "single": "x", "long": "one two", "literal": "a;b"},
                      "mon.pve1": {"public_addr": "10.0.0.1"}}
    assert "\tliteral = a\\;b\n" in dump(config) and "\tquoted = a b \\; c\n" in dump(config)


def test_lines_pve_cannot_read_are_skipped_with_its_warnings() -> None:
    warnings: list[str] = []
    config = parse("orphan = 1\n[global]\n\tno equals here\n\tempty =\n[bad] junk\n\tk = v\n[ok]\n\tk = v\n", warnings)
    assert config == {"global": {}, "ok": {"k": "v"}}
    assert warnings == ["no section header - skip: orphan = 1", "expected '=' after key - skip: \tno equals here",
                        "failed to parse value - skip: \tempty =",
                        "unexpected remainder after section - skip: [bad] junk", "no section header - skip: \tk = v"]
    assert parse(None) == {} and parse("") == {}
