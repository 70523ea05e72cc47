"""The `pvelab` command. Parsing here, work in pvelab.twin; errors become one line and exit 1."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum

import yaml

from pvelab import __version__
from pvelab.errors import TwinError
from pvelab.grade import cli as grade_cli
from pvelab.grade.cli import GradeError
from pvelab.nested import cli as nested_cli
from pvelab.nested.answer import AnswerError
from pvelab.nested.plan import PlanError
from pvelab.twin import disks
from pvelab.twin.inventory import class_roster, roster
from pvelab.twin.lab import Lab, all_labs, stray_prefixes, sweep_prefix
from pvelab.twin.spec import LINKS, LabSpec
from pvelab.twin.state import labs_dir


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvelab", description="Proxmox VE teaching labs")
    parser.add_argument("--version", action="version", version=f"pvelab {__version__}")
    top = parser.add_subparsers(dest="area", required=True)
    twin = top.add_parser("twin", help="the embedded lab twin: real Debian nodes with BMCs")
    cmds = twin.add_subparsers(dest="command", required=True)

    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--lab", metavar="NAME", default=os.environ.get("PVELAB_LAB", ""),
                       help="a named lab beside the default one (default: $PVELAB_LAB, else the default lab)")

    def command(name: str, func: Callable[[Lab, argparse.Namespace], None], text: str) -> argparse.ArgumentParser:
        sub = cmds.add_parser(name, help=text, parents=[which])
        sub.set_defaults(func=func)
        return sub

    up = command("up", cmd_up, "build (once) and boot the lab; changes nothing if it is up")
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument("--slot", type=int, metavar="K",
                    help="a named lab's slot (its addresses: docs/twin.md); default: the lowest free one")
    up.add_argument("--pve-version", default="9", choices=["8", "9"],
                    help="PVE version the nodes present: 9 on Debian 13 (default), 8 on Debian 12")
    up.add_argument("--osd-disks", type=int, default=1, metavar="N",
                    help="data disks per node for Ceph OSDs, shown as /dev/sdb, ... (default 1)")
    up.add_argument("--osd-size", default="16G", metavar="SIZE",
                    help="size of each data disk, sparse on the host (default 16G)")
    up.add_argument("--storage-server", action=argparse.BooleanOptionalAction, default=True,
                    help="the storage server `nas` beside the nodes (an NFS export, an iSCSI target with LUNs, a "
                         "BMC) on link0 (default: yes)")
    down = command("down", cmd_down, "remove everything the lab made (safe to run twice)")
    down.add_argument("--all", action="store_true", help="take down every lab on this host, named or not")
    command("list", cmd_list, "a table of the labs on this host: the default one and the named ones")
    command("status", lambda lab, _args: print_status(lab), "a table of nodes: power, addresses, uptime, watchdog")
    command("storage-server", lambda lab, _args: print("\n".join(lab.storage_server().describe())),
            "the storage server: its export, target, LUNs and the nodes using them now")
    ssh = command("ssh", cmd_ssh, "open a shell on a node (or run a command there)")
    ssh.add_argument("node")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    power = command("power", lambda lab, a: print(f"{a.node}: {lab.power(a.node, a.action)}"),
                    "press a node's power button through the supervisor")
    power.add_argument("node")
    power.add_argument("action", choices=["on", "off", "reset", "status"])
    part = command("partition", lambda lab, a: print(lab.partition(a.nodes, a.others, a.link)),
                   "cut nodes off from the others (host access stays)")
    part.add_argument("nodes", nargs="+", metavar="NODE")
    part.add_argument("--from", dest="others", nargs="+", metavar="NODE",
                      help="cut only from these nodes (default: from every other node)")
    part.add_argument("--link", default="all", choices=[*(str(link) for link in LINKS), "all"],
                      help="which corosync link to cut (default: all)")
    command("heal", lambda lab, _args: print(lab.heal()), "remove every partition")
    lat = command("latency", lambda lab, a: print(lab.latency(a.node, a.delay)),
                  "add delay on every link of a node (like netem); 0 removes it")
    lat.add_argument("node")
    lat.add_argument("delay", help="e.g. 5ms, 0.2s, or 0 to remove")
    command("freeze", lambda lab, a: print(lab.freeze(a.node, True)),
            "hang a node: stop its processes, keep its links up").add_argument("node")
    command("thaw", lambda lab, a: print(lab.freeze(a.node, False)), "let a frozen node run again").add_argument("node")
    ev = command("events", lambda lab, a: print(*lab.events(a.node), sep="\n"),
                 "hardware events: power, watchdog resets, faults")
    ev.add_argument("node", nargs="?")
    command("console", cmd_console, "print a node's console log").add_argument("node")
    command("inventory", cmd_inventory, "print the path of the Ansible inventory of the lab")
    roster = command("roster", cmd_roster, "print a grading roster (YAML) with the lab as one student's cluster")
    roster.add_argument("--student", help="the student id (default: the lab's name, or twin)")
    roster.add_argument("--all", action="store_true",
                        help="every named lab up on this host, each as a student named like its lab (a class)")
    roster.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a per-student value the rubric reads, e.g. cluster_name=edu-cloud")
    grade_cli.add_parser(top)
    nested_cli.add_parser(top)
    return parser


def cmd_up(lab: Lab, args: argparse.Namespace) -> None:
    size = disks.parse_size(args.osd_size)
    disks.check_layout(args.osd_disks, size)
    lab.up(LabSpec(node_count=args.nodes, pve_version=args.pve_version, osd_disks=args.osd_disks, osd_size=size,
                   storage_server=args.storage_server),
           slot=args.slot)
    print_status(lab)


def cmd_down(lab: Lab, args: argparse.Namespace) -> None:
    if not args.all:
        lab.down()
        return
    for each in all_labs():
        if each.paths.root.exists() or each.name == "":
            label = each.name or "default"
            each.log = functools.partial(print, f"{label}:")
            each.down()
    for prefix in stray_prefixes():
        print(f"stray {prefix}: removed: " + ", ".join(sweep_prefix(prefix)))
    # a named lab's disks whose directory was deleted by hand
    for removed in disks.detach_under(labs_dir(), deleted_only=True):
        print(f"stray {removed}: detached")


def cmd_list(_lab: Lab, _args: argparse.Namespace) -> None:
    rows = [("LAB", "STATE", "NODES", "PVE", "LINK0", "LINK1", "BMC")]
    for each in all_labs():
        record = each.record
        if record is None:
            if each.name:
                rows.append((each.name, "half down (run: pvelab twin down --lab " + each.name + ")", "-", "-", "-",
                             "-", "-"))
            continue
        spec = record.spec
        state = "up" if each.supervisor_alive() else "broken (run: pvelab twin down" + (
            f" --lab {each.name})" if each.name else ")")
        rows.append((each.name or "(default)", state, str(spec.node_count), spec.pve_version, str(spec.subnet(0)),
                     str(spec.subnet(1)), str(spec.subnet(None))))
    if len(rows) == 1:
        print("no lab is up")
        return
    print_table(rows)


def cmd_inventory(lab: Lab, _args: argparse.Namespace) -> None:
    lab.require_record()
    print(lab.paths.inventory)


def cmd_roster(lab: Lab, args: argparse.Namespace) -> None:
    bad = [p for p in args.param if "=" not in p]
    if bad:
        raise TwinError(f"--param takes KEY=VALUE, not {bad[0]!r}")
    params = dict(p.split("=", 1) for p in args.param)
    if args.all:
        labs = [(each.name, record, each.paths) for each in all_labs()
                if each.name and (record := each.record) is not None]
        if not labs:
            raise TwinError("no named lab is up", "start one per student: pvelab twin up --lab NAME")
        data = class_roster(labs, params)
    else:
        data = roster(lab.require_record(), lab.paths, args.student or lab.name or "twin", params)
    print(yaml.safe_dump(data, sort_keys=False), end="")


def print_status(lab: Lab) -> None:
    rows = [("NODE", "POWER", "LINK0", "LINK1", "BMC", "UPTIME", "WATCHDOG")]
    for st in lab.status():
        power = "frozen" if st.frozen else st.power
        uptime = "-" if st.uptime is None else f"{st.uptime:.0f}s"
        rows.append((st.name, power, st.addresses[0], st.addresses[1], st.bmc, uptime, st.watchdog))
    print_table(rows)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_ssh(lab: Lab, args: argparse.Namespace) -> None:
    node = lab.require_record().spec.node(args.node)
    argv = lab.ssh_argv(node, *args.remote)
    if not args.remote:
        argv.insert(1, "-t")
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_console(lab: Lab, args: argparse.Namespace) -> None:
    lab.require_record().spec.node(args.node)
    sys.stdout.write(lab.paths.console_log(args.node).read_text(errors="replace"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and ExitStatus.USAGE
    try:
        args.func(Lab.named(args.lab) if getattr(args, "lab", "") else Lab(), args)
    except (TwinError, GradeError, PlanError, AnswerError) as exc:
        print(f"pvelab: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        print("pvelab: interrupted", file=sys.stderr)
        return ExitStatus.ERROR
    return ExitStatus.OK
