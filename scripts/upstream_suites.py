"""The table of Proxmox's own regression suites run against pvelab (docs/upstream-suites.md): per suite,
the cases run, passed and failed, from a fresh run of the unit tier's harnesses.

  .venv/bin/python scripts/upstream_suites.py            print the table
  .venv/bin/python scripts/upstream_suites.py --write    and write it into docs/upstream-suites.md

Each pve-storage file is counted by its own TAP lines (the file's is_deeply cases); the other suites by
the harness's test cases (one per upstream case)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DOC = REPO / "docs" / "upstream-suites.md"
BEGIN, END = "<!-- upstream-table:begin -->", "<!-- upstream-table:end -->"
# (suite, repository and file, the harness's test module, the test functions that are its cases)
SUITES = [
    ("qemu-server snapshots", "proxmox/qemu-server `src/test/snapshot-test.pm`", "test_snapshot_upstream",
     "test_qemu_servers_snapshot_case"),
    ("qemu-server config read and write", "proxmox/qemu-server `src/test/run_parse_config_tests.pl`",
     "test_vm_config_upstream", "test_a_config_is_read_and_written_back_as_qemu_server_does"),
    ("qemu-server restored configs", "proxmox/qemu-server `src/test/run_qemu_restore_config_tests.pl`",
     "test_vm_config_upstream", "test_an_archived_config_is_restored_as_qemu_server_restores_it"),
    ("pve-container snapshots", "proxmox/pve-container `src/test/snapshot-test.pm`", "test_snapshot_upstream",
     "test_pve_containers_snapshot_case"),
    ("pve-access-control permissions", "proxmox/pve-access-control `src/test/perm-test1..8.pl`",
     "test_access_upstream", "test_upstream_permission_case"),
    ("pve-access-control user.cfg round trips", "proxmox/pve-access-control `src/test/parser_writer.pl`",
     "test_access_upstream", "test_user_cfg_written_back_as_pve_writes_it"),
    ("pve-access-control permission dumps", "proxmox/pve-access-control `src/test/api-get-permissions-test.pl`",
     "test_access_upstream", "test_who_may_read_whose_permissions"),
    ("pve-manager guests of a backup job", "proxmox/pve-manager `test/vzdump_guest_included_test.pl`",
     "test_vzdump_upstream", "test_the_guests_a_job_covers_are_pves"),
    ("pve-cluster corosync.conf", "proxmox/pve-cluster `src/test/corosync_parser_test.pl`", "test_cluster_upstream",
     "test_a_config_is_written_back_as_pve_writes_it"),
    ("pve-installer answers accepted", "proxmox/pve-installer `proxmox-auto-installer/tests/resources/parse_answer/`",
     "test_answer_upstream", "test_answers_the_installer_accepts_are_accepted"),
    ("pve-installer answers refused", "proxmox/pve-installer `proxmox-auto-installer/tests/resources/"
     "parse_answer_fail/`", "test_answer_upstream", "test_answers_the_installer_refuses_are_refused_in_its_words"),
]
PERL_FILES = [f"pve-storage/{name}" for name in (
    "prune_backups_test.pm", "parse_volname_test.pm", "archive_info_test.pm", "filesystem_path_test.pm",
    "get_subdir_test.pm", "path_to_volume_id_test.pm", "run_volume_access_tests.pl")] + [
    "pve-guest-common/abstract-config-tests.pl"]
NOT_YET: list[tuple[str, str, str]] = []  # suites the issue names that no harness runs yet, and why


def harness_counts() -> dict[str, tuple[int, int]]:
    """{test function: (passed, failed)} from one pytest run of the harness modules."""
    modules = sorted({f"tests/unit/{suite[2]}.py" for suite in SUITES})
    with TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *modules], cwd=REPO, capture_output=True, check=False)
        counts: dict[str, list[int]] = {}
        for case in ET.parse(report).iter("testcase"):
            function = case.get("name", "").split("[", 1)[0]
            failed = case.find("failure") is not None or case.find("error") is not None
            counts.setdefault(function, [0, 0])[1 if failed else 0] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def perl_counts(name: str) -> tuple[int, int, int]:
    """(planned, passed, failed) of one of Proxmox's Perl test files, run by perl through the harness."""
    from tests.unit.test_storage_upstream import run_tap

    tap = run_tap(name)
    planned = re.search(r"^1\.\.(\d+)$", tap, re.MULTILINE)
    return (int(planned.group(1)) if planned else 0, len(re.findall(r"^ok \d+", tap, re.MULTILINE)),
            len(re.findall(r"^not ok \d+", tap, re.MULTILINE)))


def network_counts() -> tuple[int, int]:
    """(passed, failed) of pve-common's network tests, each t.*.pl a case of its runtest.pl."""
    from tests.unit.test_network_upstream import run_suite

    out = run_suite()[1]
    return len(re.findall(r"^PASS: ", out, re.MULTILINE)), len(re.findall(r"^FAIL: ", out, re.MULTILINE))


def table() -> str:
    rows = ["| suite | from | cases | passed | failed | note |", "| --- | --- | ---: | ---: | ---: | --- |"]
    counts = harness_counts()
    for suite, source, _module, function in SUITES:
        passed, failed = counts.get(function, (0, 0))
        rows.append(f"| {suite} | {source} | {passed + failed} | {passed} | {failed} | |")
    for name in PERL_FILES:
        planned, passed, failed = perl_counts(name)
        repository, file = name.split("/", 1)
        short = file.removesuffix("_test.pm").removeprefix("run_").removesuffix("_tests.pl").removesuffix(".pl")
        folder = "src/tests" if repository == "pve-guest-common" else "src/test"
        rows.append(f"| {repository} `{short}` | proxmox/{repository} `{folder}/{file}` | "
                    f"{planned} | {passed} | {failed} | run by perl, unchanged |")
    network = network_counts()
    rows.append(f"| pve-common `etc_network_interfaces` | proxmox/pve-common `test/etc_network_interfaces/` | "
                f"{sum(network)} | {network[0]} | {network[1]} | "
                "run by perl, unchanged (its runtest.pl and t.*.pl) |")
    from tests.unit.test_cfg2cmd_upstream import cases, outcome

    results = [outcome(case)[0] for case in cases()]
    rows.append(f"| qemu-server cfg2cmd | proxmox/qemu-server `src/test/cfg2cmd/` | {len(results)} | {sum(results)} | "
                f"{len(results) - sum(results)} | word for word, before the TCG rewrite, against qemu-server's mocked "
                "test host (its storages, PCI devices, CPU models and QEMU 10.1) |")
    from tests.ha_scenarios import all_scenarios
    from tests.ha_sim import simulate

    scenarios = all_scenarios()
    final = sequence = 0
    for scenario in scenarios:
        got = simulate(scenario)
        final += (got.services, got.nodes) == (scenario.expected.services, scenario.expected.nodes)
        sequence += got.service_changes == scenario.expected.service_changes
    rows.append(f"| pve-ha-manager scenarios | proxmox/pve-ha-manager `src/test/test-*/` | {len(scenarios)} | "
                f"{final} | {len(scenarios) - final} | final states and nodes of services and nodes; the whole "
                f"sequence of service state changes matches in {sequence} of {len(scenarios)}; the CRS scenarios run "
                "pvelab's static and dynamic scheduler; the group-migrate ones end as PVE's, though the one-time "
                "rewrite of groups into rules files is not built |")
    from tests.ha_scenarios import PVE8_GROUP_SCENARIOS

    pve8 = all_scenarios(PVE8_GROUP_SCENARIOS)
    alike = [(simulate(s), s.expected) for s in pve8]
    final8 = sum((g.services, g.nodes) == (e.services, e.nodes) for g, e in alike)
    sequence8 = sum(g.service_changes == e.service_changes for g, e in alike)
    rows.append(f"| pve-ha-manager scenarios, PVE 8 | proxmox/pve-ha-manager `src/test/test-*/` (4.0.7) | "
                f"{len(pve8)} | {final8} | {len(pve8) - final8} | the scenarios of PVE 8's suite with HA groups; "
                "the sequence of "
                f"service state changes matches in {sequence8} |")
    for suite, source, why in NOT_YET:
        rows.append(f"| {suite} | {source} | - | - | - | {why} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the table into docs/upstream-suites.md")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.write:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
