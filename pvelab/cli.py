"""The `pvelab` command. Parsing here, work in pvelab.twin; errors become one line and exit 1."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

from pvelab import __version__
from pvelab.errors import TwinError
from pvelab.twin.spec import LINKS, LabSpec

if TYPE_CHECKING:
    from pvelab.twin.lab import Lab


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

    up = cmds.add_parser("up", help="build (once) and boot the lab; changes nothing if it is up")
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument("--pve-version", default="9", choices=["8", "9"], help="PVE version the nodes present")
    cmds.add_parser("down", help="remove everything the lab made (safe to run twice)")
    cmds.add_parser("status", help="a table of nodes: power, addresses, uptime, watchdog")
    ssh = cmds.add_parser("ssh", help="open a shell on a node (or run a command there)")
    ssh.add_argument("node")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    power = cmds.add_parser("power", help="press a node's power button through the supervisor")
    power.add_argument("node")
    power.add_argument("action", choices=["on", "off", "reset", "status"])
    part = cmds.add_parser("partition", help="cut nodes off from the others (host access stays)")
    part.add_argument("nodes", nargs="+", metavar="NODE")
    part.add_argument("--from", dest="others", nargs="+", metavar="NODE",
                      help="cut only from these nodes (default: from every other node)")
    part.add_argument("--link", default="all", choices=[*(str(link) for link in LINKS), "all"],
                      help="which corosync link to cut (default: all)")
    cmds.add_parser("heal", help="remove every partition")
    lat = cmds.add_parser("latency", help="add delay on every link of a node (like netem); 0 removes it")
    lat.add_argument("node")
    lat.add_argument("delay", help="e.g. 5ms, 0.2s, or 0 to remove")
    for name, text in (("freeze", "hang a node: stop its processes, keep its links up"),
                       ("thaw", "let a frozen node run again")):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("node")
    ev = cmds.add_parser("events", help="hardware events: power, watchdog resets, faults")
    ev.add_argument("node", nargs="?")
    con = cmds.add_parser("console", help="print a node's console log")
    con.add_argument("node")
    cmds.add_parser("inventory", help="print the path of the Ansible inventory of the lab")
    return parser


def cmd_up(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    lab = Lab()
    lab.up(LabSpec(node_count=args.nodes, pve_version=args.pve_version))
    print_status(lab)


def cmd_down(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    Lab().down()


def print_status(lab: Lab) -> None:
    rows = [("NODE", "POWER", "LINK0", "LINK1", "BMC", "UPTIME", "WATCHDOG")]
    for st in lab.status():
        power = "frozen" if st.frozen else st.power
        uptime = "-" if st.uptime is None else f"{st.uptime:.0f}s"
        rows.append((st.name, power, st.addresses[0], st.addresses[1], st.bmc, uptime, st.watchdog))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_status(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    print_status(Lab())


def cmd_ssh(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    lab = Lab()
    node = lab.require_record().spec.node(args.node)
    argv = lab.ssh_argv(node, *args.remote)
    if not args.remote:
        argv.insert(1, "-t")
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_power(args: argparse.Namespace) -> None:
    from pvelab.twin.control import request
    from pvelab.twin.lab import Lab

    lab = Lab()
    lab.require_record().spec.node(args.node)
    answer = request(lab.paths.supervisor_socket, "power", node=args.node, action=args.action, cause="cli")
    print(f"{args.node}: {answer['state']}")


def cmd_partition(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    print(Lab().partition(args.nodes, args.others, args.link))


def cmd_heal(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    print(Lab().heal())


def cmd_latency(args: argparse.Namespace) -> None:
    from pvelab.twin.control import request
    from pvelab.twin.lab import Lab
    from pvelab.twin.latency import parse_delay

    try:
        delay = parse_delay(args.delay)
    except ValueError as exc:
        raise TwinError(str(exc)) from None
    lab = Lab()
    lab.require_record().spec.node(args.node)
    request(lab.paths.supervisor_socket, "latency", node=args.node, delay_ms=delay * 1000)
    print(f"{args.node}: {delay * 1000:g} ms added on every link" if delay else f"{args.node}: latency removed")


def cmd_freeze(args: argparse.Namespace) -> None:
    from pvelab.twin.control import request
    from pvelab.twin.lab import Lab

    lab = Lab()
    lab.require_record().spec.node(args.node)
    request(lab.paths.supervisor_socket, "freeze", node=args.node, frozen=args.command == "freeze")
    print(f"{args.node}: {'frozen' if args.command == 'freeze' else 'running'}")


def cmd_events(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    for line in Lab().events(args.node):
        print(line)


def cmd_console(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    lab = Lab()
    lab.require_record().spec.node(args.node)
    sys.stdout.write(lab.paths.console_log(args.node).read_text(errors="replace"))


def cmd_inventory(args: argparse.Namespace) -> None:
    from pvelab.twin.lab import Lab

    lab = Lab()
    lab.require_record()
    print(lab.paths.inventory)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh": cmd_ssh, "power": cmd_power,
    "partition": cmd_partition, "heal": cmd_heal, "latency": cmd_latency, "freeze": cmd_freeze, "thaw": cmd_freeze,
    "events": cmd_events, "console": cmd_console, "inventory": cmd_inventory,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and ExitStatus.USAGE
    try:
        COMMANDS[args.command](args)
    except TwinError as exc:
        print(f"pvelab: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        print("pvelab: interrupted", file=sys.stderr)
        return ExitStatus.ERROR
    return ExitStatus.OK
