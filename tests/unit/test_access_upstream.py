"""pve-access-control's own regression tests, run against pvelab/pve/access: the perm-test*.pl
expectations (roles() and permissions() of users, groups, pools and tokens over test1..8.cfg) and
parser_writer.pl's user.cfg round trips. The fixtures are Proxmox's files, unchanged
(tests/fixtures/pve-access-control/SOURCES.md); this harness reads their Perl calls and literals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pvelab.pve.access import perms, usercfg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve-access-control"
CALL = re.compile(r"^check_(roles|permissions?)\((.*?)\);", re.S | re.M)
STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def perl_strings(args: str) -> list[str]:
    """The comma-separated arguments of a Perl call, each a concatenation of quoted literals."""
    args = re.sub(r"#[^\n]*", "", args)
    values, current, pos, seen = [], "", 0, False
    while pos < len(args):
        found = STRING.match(args, pos)
        if found:
            current += found.group(1) if found.group(1) is not None else \
                found.group(2).encode().decode("unicode_escape")
            pos, seen = found.end(), True
        elif args[pos] == ",":
            values.append(current)
            current, pos, seen = "", pos + 1, False
        else:
            pos += 1  # whitespace and the concatenating dots
    if seen:
        values.append(current)
    return values


def perm_cases() -> list[tuple[str, str, str, str, str, str]]:
    cases = []
    for script, major in [*((f"perm-test{n}.pl", "9") for n in range(1, 9)), ("pve8/perm-test1.pl", "8")]:
        text = (FIXTURES / script).read_text()
        cfg_name = re.search(r'my \$cfgfn = "([^"]+)"', text).group(1)  # type: ignore[union-attr]
        for kind, args in CALL.findall(text):
            who, path, expected = perl_strings(args)
            cases.append((script, cfg_name, major, "roles" if kind == "roles" else "permissions", who, path,
                          expected))
    return cases  # type: ignore[return-value]


PERM_CASES = perm_cases()


def test_every_upstream_permission_case_was_read() -> None:
    # 7+7 in test1 (twice: PVE 9 and 8), 6, 4, 2, 11, 23+19, 3+1, 11+6 minus the cases written as loops
    by_script: dict[str, int] = {}
    for case in PERM_CASES:
        by_script[case[0]] = by_script.get(case[0], 0) + 1
    assert set(by_script) == {*(f"perm-test{n}.pl" for n in range(1, 9)), "pve8/perm-test1.pl"}
    assert len(PERM_CASES) >= 100, by_script


@pytest.mark.parametrize(("script", "cfg_name", "major", "kind", "who", "path", "expected"), PERM_CASES,
                         ids=[f"{c[0]}:{c[3]}:{c[4]}:{c[5] or 'empty'}" for c in PERM_CASES])
def test_upstream_permission_case(script: str, cfg_name: str, major: str, kind: str, who: str, path: str,
                                  expected: str) -> None:
    cfg = usercfg.parse((FIXTURES / cfg_name).read_text(), major)
    got = perms.roles(cfg, who, path) if kind == "roles" else perms.Permissions(cfg).permissions(who, path)
    assert ",".join(sorted(got)) == expected


def default_raw(text: str) -> dict[str, dict[str, str]]:
    block = text[text.index("my $default_raw = {"):text.index("my $tests = [")]
    found: dict[str, dict[str, str]] = {}
    for section, body in re.findall(r"(\w+) => \{(.*?)\n    \}", block, re.S):
        found[section] = dict(re.findall(r"'([^']+)'\s*=>\s*'([^']*)'", body))
    return found


def perl_expression(expression: str, raw: dict[str, dict[str, str]]) -> str:
    """A concatenation of quoted literals and $default_raw->{section}->{'key'} lookups."""
    expression = re.sub(r"\$default_raw->\{(\w+)\}->\{'([^']+)'\}",
                        lambda m: "'" + raw[m.group(1)][m.group(2)] + "'", expression)
    return "".join(perl_strings(expression))


def round_trip_cases() -> list[tuple[str, str, str]]:
    text = (FIXTURES / "parser_writer.pl").read_text()
    raw = default_raw(text)
    cases = []
    tests = text[text.index("my $tests = ["):text.index("my $number_of_tests_run")]
    for body in re.split(r"\n    \{\n", tests)[1:]:
        name = re.search(r"name => [\"']([^\"']+)[\"']", body).group(1)  # type: ignore[union-attr]
        fields = dict(re.findall(r"(?<=\n)        (raw|expected_raw) =>(.*?),\n(?=        \w|    \})", body, re.S))
        has_config = "\n        config =>" in body
        has_expected_config = "\n        expected_config =>" in body
        # Perl's _rewrite (parse then write, no config given) or, where parse(raw) must equal the given
        # config exactly, its _write: both say write(parse(raw)) is the expected text
        if "raw" in fields and ((not has_config and "expected_raw" in fields) or
                                (has_config and not has_expected_config)):
            given = perl_expression(fields["raw"], raw)
            expected = perl_expression(fields.get("expected_raw", fields["raw"]), raw)
            cases.append((name, given, expected))
    return cases


ROUND_TRIPS = round_trip_cases()


def test_every_parser_writer_case_with_text_was_read() -> None:
    assert len(ROUND_TRIPS) >= 20 and len({name for name, _, _ in ROUND_TRIPS}) == len(ROUND_TRIPS)


@pytest.mark.parametrize(("name", "given", "expected"), ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS])
def test_user_cfg_written_back_as_pve_writes_it(name: str, given: str, expected: str) -> None:
    assert usercfg.write(usercfg.parse(given)) == expected


def permission_dump_cases() -> list[tuple[str, str, str | None, str | None]]:
    """api-get-permissions-test.pl: (rpcuser, userid param, expected: the user whose effective
    permissions come back, or None when the call must fail)."""
    text = (FIXTURES / "api-get-permissions-test.pl").read_text()
    dumps = dict(re.findall(r"my \$(\w+) = \$rpcenv->get_effective_permissions\('([^']+)'\);", text))
    cases = []
    for part in re.split(r"\n    \{\n", text)[1:]:
        block = part.split("\n    },")[0]
        caller = re.search(r"rpcuser => '([^']+)'", block)
        if caller is None:
            continue
        userid = re.search(r"userid => '([^']+)'", block)
        result = re.search(r"result => \$(\w+)", block)
        expected = None if "should_fail => 1" in block else dumps[result.group(1)] if result else None
        cases.append((caller.group(1), userid.group(1) if userid else None, expected))
    return [(c, u, e, "fails" if e is None else f"gets {e}") for c, u, e in cases]


DUMP_CASES = permission_dump_cases()


def test_every_permission_dump_case_was_read() -> None:
    assert len(DUMP_CASES) == 32 and sum(e is None for _, _, e, _ in DUMP_CASES) == 11


@pytest.mark.parametrize(("caller", "userid", "expected", "outcome"), DUMP_CASES,
                         ids=[f"{c[0]}:{c[1] or 'self'}:{c[3]}" for c in DUMP_CASES])
def test_who_may_read_whose_permissions(caller: str, userid: str | None, expected: str | None, outcome: str) -> None:
    from pvelab.pve.access import api as access_api

    cfg = usercfg.parse((FIXTURES / "api-get-permissions-test.cfg").read_text())
    if expected is None:
        with pytest.raises(perms.PermissionDenied):
            access_api.permissions_for(cfg, caller, userid, None)
    else:
        got = access_api.permissions_for(cfg, caller, userid, None)
        assert got == access_api.effective_permissions(cfg, expected) and got  # nobody here holds nothing
