"""`pct`: PVE's container manager command, each subcommand a call of the container API in-process
(as pve-container's pct), waiting for the task and printing as pct prints."""

from __future__ import annotations

import sys

from pvelab.procfs import nodename
from pvelab.pve.api import direct
from pvelab.pve.guests import containers, snapshot_cli, store
from pvelab.pve.guests.store import GuestError

USAGE = """USAGE: pct <COMMAND> [ARGS] [OPTIONS]
       pct clone <vmid> <newid> [OPTIONS]
       pct config <vmid> [OPTIONS]
       pct create <vmid> <ostemplate> [OPTIONS]
       pct delsnapshot <vmid> <snapname> [OPTIONS]
       pct destroy <vmid> [OPTIONS]
       pct enter <vmid>
       pct exec <vmid> [<extra-args>]
       pct list
       pct listsnapshot <vmid>
       pct migrate <vmid> <target> [OPTIONS]
       pct move-volume <vmid> <volume> [<storage>] [<target-vmid>] [<target-volume>] [OPTIONS]
       pct reboot <vmid> [OPTIONS]
       pct resize <vmid> <disk> <size> [OPTIONS]
       pct restore <vmid> <ostemplate> [OPTIONS]
       pct rollback <vmid> <snapname> [OPTIONS]
       pct set <vmid> [OPTIONS]
       pct shutdown <vmid> [OPTIONS]
       pct snapshot <vmid> <snapname> [OPTIONS]
       pct start <vmid> [OPTIONS]
       pct status <vmid> [OPTIONS]
       pct stop <vmid> [OPTIONS]
       pct template <vmid>
       pct unlock <vmid>"""
TASKS = {"destroy": ("DELETE", "/{vmid}"), "migrate": ("POST", "/{vmid}/migrate"),
         "start": ("POST", "/{vmid}/status/start"), "stop": ("POST", "/{vmid}/status/stop"),
         "shutdown": ("POST", "/{vmid}/status/shutdown"), "reboot": ("POST", "/{vmid}/status/reboot")}


def print_list(cts: list[dict[str, object]]) -> None:
    """pct list: VMID, Status, Lock, Name."""
    if not cts:
        return
    print(f"{'VMID':<10} {'Status':<12} {'Lock':<11} {'Name':<20}")
    for ct in sorted(cts, key=lambda c: int(str(c["vmid"]))):
        print(f"{ct['vmid']!s:<10} {ct['status']!s:<12} {ct.get('lock', '')!s:<11} {ct.get('name', '')!s:<20}")


def run(command: str, args: list[str], options: dict[str, str]) -> int:
    base = f"/nodes/{nodename()}/lxc"
    if command == "list":
        print_list(direct.call("GET", base, {}))
        return 0
    if command == "exec":  # pct exec VMID -- CMD...
        vmid, *rest = args
        return containers.attach(int(vmid), rest)
    if command in ("create", "restore"):
        vmid, template = args
        extra = {"restore": "1"} if command == "restore" else {}
        return direct.run_task("POST", base, {**options, **extra, "vmid": vmid, "ostemplate": template})
    if command in TASKS:
        return direct.guest_task(base, TASKS, command, args, options)
    if command in ("move-volume", "move_volume"):
        vmid, volume, *rest = args  # [<storage>] [<target-vmid>] [<target-volume>], or as options
        names = ("storage", "target-vmid", "target-volume")[:len(rest)]  # more words than these: the usage
        params = {**options, "volume": volume, **dict(zip(names, rest, strict=True))}
        return direct.run_task("POST", f"{base}/{vmid}/move_volume", params)
    if command == "resize":
        vmid, disk, size = args
        return direct.run_task("PUT", f"{base}/{vmid}/resize", {**options, "disk": disk, "size": size})
    if command in snapshot_cli.TASKS:
        return snapshot_cli.run_task(base, command, args, options)
    if command == "clone":
        vmid, newid = args
        return direct.run_task("POST", f"{base}/{vmid}/clone", {**options, "newid": newid})
    (vmid,) = args
    if command == "config":
        config = direct.call("GET", f"{base}/{vmid}/config", options)
        for key in sorted(config):
            if key != "digest":
                print(f"{key}: {config[key]}")
    elif command == "set":
        direct.call("PUT", f"{base}/{vmid}/config", options)
    elif command == "status":
        print(f"status: {direct.call('GET', f'{base}/{vmid}/status/current', {})['status']}")
    elif command == "listsnapshot":
        snapshot_cli.print_tree(direct.call("GET", f"{base}/{vmid}/snapshot", options))
    elif command == "template":
        direct.call("POST", f"{base}/{vmid}/template", options)
    elif command == "enter":
        return containers.attach(int(vmid), [])
    elif command == "unlock":
        store.set_lock(nodename(), int(vmid), None, "lxc")
    else:
        print(f"unknown command 'pct {command}'\n{USAGE}", file=sys.stderr)
        return direct.ERROR_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if len(words) > 2 and words[0] == "exec" and "--" in words:  # everything after -- is the command
        split = words.index("--")
        return direct.cli_main(USAGE, lambda _c, a, _o: run("exec", a + words[split + 1:], {}), (GuestError,),
                               words[:split])
    return direct.cli_main(USAGE, run, (GuestError,), argv)


if __name__ == "__main__":
    raise SystemExit(main())
