"""`qm`: PVE's VM manager command. Each subcommand calls the VM API in-process (as PVE's qm calls
PVE::API2::Qemu), waits for the task and prints as qm prints."""

from __future__ import annotations

import os
import re
import select
import socket
import sys
import termios
import tty
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.api import direct, schema
from pvelab.pve.guests import clone, qmp, runtime, snapshot_cli, store
from pvelab.pve.guests.config import boolean, encode_text
from pvelab.pve.guests.qemu_cmd import RUN
from pvelab.pve.guests.store import GuestError

USAGE = """USAGE: qm <COMMAND> [ARGS] [OPTIONS]
       qm cleanup <vmid> <clean-shutdown> <guest-requested> [OPTIONS]
       qm clone <vmid> <newid> [OPTIONS]
       qm config <vmid> [OPTIONS]
       qm create <vmid> [OPTIONS]
       qm delsnapshot <vmid> <snapname> [OPTIONS]
       qm disk import <vmid> <source> <storage> [OPTIONS]
       qm disk move <vmid> <disk> [<storage>] [OPTIONS]
       qm disk resize <vmid> <disk> <size> [OPTIONS]
       qm destroy <vmid> [OPTIONS]
       qm list  [OPTIONS]
       qm listsnapshot <vmid>
       qm migrate <vmid> <target> [OPTIONS]
       qm pending <vmid>
       qm reboot <vmid> [OPTIONS]
       qm reset <vmid> [OPTIONS]
       qm resize <vmid> <disk> <size> [OPTIONS]
       qm resume <vmid> [OPTIONS]
       qm rollback <vmid> <snapname> [OPTIONS]
       qm set <vmid> [OPTIONS]
       qm showcmd <vmid> [OPTIONS]
       qm shutdown <vmid> [OPTIONS]
       qm snapshot <vmid> <snapname> [OPTIONS]
       qm start <vmid> [OPTIONS]
       qm status <vmid> [OPTIONS]
       qm stop <vmid> [OPTIONS]
       qm suspend <vmid> [OPTIONS]
       qm template <vmid> [OPTIONS]
       qm terminal <vmid> [OPTIONS]
       qm unlock <vmid>"""
# Subcommands that are an API call starting a task: (method, path below /nodes/NODE/qemu).
TASKS = {"create": ("POST", ""), "destroy": ("DELETE", "/{vmid}"), "migrate": ("POST", "/{vmid}/migrate"),
         "start": ("POST", "/{vmid}/status/start"), "stop": ("POST", "/{vmid}/status/stop"),
         "shutdown": ("POST", "/{vmid}/status/shutdown"), "reboot": ("POST", "/{vmid}/status/reboot"),
         "reset": ("POST", "/{vmid}/status/reset"), "suspend": ("POST", "/{vmid}/status/suspend"),
         "resume": ("POST", "/{vmid}/status/resume")}
SAFE_ARG = re.compile(r"^[\w\-/.:,+@%]+$")


def shellquote(arg: str) -> str:
    """PVE::Tools::cmd2string's quoting: single quotes only where the shell needs them."""
    return arg if SAFE_ARG.match(arg) else "'" + arg.replace("'", "'\"'\"'") + "'"


def print_list(vms: list[dict[str, Any]]) -> None:
    if not vms:
        return
    print(f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} {'BOOTDISK(GB)':>12} {'PID':<10}")
    for vm in sorted(vms, key=lambda v: v["vmid"]):
        print(f"{vm['vmid']:>10} {vm.get('name', ''):<20} {vm.get('qmpstatus') or vm['status']:<10} "
              f"{vm.get('maxmem', 0) // (1024 * 1024):<10} {vm.get('maxdisk', 0) / 1024 ** 3:>12.2f} "
              f"{vm.get('pid', 0):<10}")


def print_pending(items: list[dict[str, Any]]) -> None:
    """PVE::GuestHelpers::format_pending."""
    for item in sorted(items, key=lambda i: i["key"]):
        key, value, pending = item["key"], item.get("value"), item.get("pending")
        if item.get("delete"):
            print(f"del {key}: {value if value is not None else ''}")
        elif pending is not None:
            if value is not None:
                print(f"cur {key}: {value}")
            print(f"new {key}: {pending}")
        else:
            print(f"cur {key}: {value}")


def print_recursive(prefix: str, value: Any, key: str | None) -> None:
    if isinstance(value, dict):
        if key is not None:
            print(f"{prefix}{key}:")
        for name in sorted(value):
            print_recursive("\t" + prefix, value[name], name)
    elif value is not None:
        print(f"{prefix}{key}: {value}" if key is not None else f"{prefix}{value}")


def terminal(vmid: int, iface: str) -> int:
    """The serial console through its socket; Ctrl+O leaves, as qm terminal's default escape."""
    conf = store.load(nodename(), vmid)
    if iface not in conf.main.options:
        raise GuestError(f"unable to find a serial interface '{iface}' - use 'qm set {vmid} --{iface} socket'")
    if runtime.pid_of(vmid) is None:
        raise GuestError(f"VM {vmid} not running")
    print(f"starting serial terminal on interface {iface} (press Ctrl+O to exit)")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(f"{RUN}/{vmid}.{iface}")
        interactive = os.isatty(0)
        saved = termios.tcgetattr(0) if interactive else None
        try:
            if interactive:
                tty.setraw(0)
            while True:
                ready, _, _ = select.select([0, sock.fileno()], [], [])
                if sock.fileno() in ready:
                    data = sock.recv(4096)
                    if not data:
                        return 0
                    os.write(1, data)
                if 0 in ready:
                    data = os.read(0, 1024)
                    if not data or b"\x0f" in data:
                        return 0
                    sock.sendall(data)
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)


def cleanup(base: str, vmid: str, clean: str, guest: str) -> int:
    """`qm cleanup VMID CLEAN GUEST`; the VM started again when a reboot asked for it."""
    flags = {"clean-shutdown": clean, "guest-requested": guest}
    bad = {k: f"type check ('boolean') failed - got '{v}'" for k, v in flags.items() if boolean(v) is None}
    if bad:
        raise schema.ParamError(bad)

    def warn(line: str) -> None:
        print(line, file=sys.stderr)

    if runtime.cleanup_after_exit(nodename(), int(vmid), bool(boolean(clean)), bool(boolean(guest)), warn):
        warn(f"Restarting VM {vmid}")
        return direct.run_task("POST", f"{base}/{vmid}/status/start", {})
    return 0


def run(command: str, args: list[str], options: dict[str, str]) -> int:
    base = f"/nodes/{nodename()}/qemu"
    if command == "list":
        print_list(direct.call("GET", base, options))
        return 0
    if command in TASKS:
        return direct.guest_task(base, TASKS, command, args, options)
    if command == "disk" and args[:1] in (["resize"], ["move"], ["import"]):  # `qm disk resize` = `qm resize`
        command, args = args[0], args[1:]
    if command in ("import", "importdisk"):  # qm disk import runs in qm itself (no API call), as on PVE
        vmid, source, target_storage = args
        clone.import_disk(nodename(), int(vmid), source, target_storage, options.get("format"),
                          options.get("target-disk"), print)
        return 0
    if command in ("move", "move-disk", "move_disk"):  # qm disk move and its aliases
        vmid, disk, *storage = args
        params = {**options, "disk": disk, **({"storage": storage[0]} if storage else {})}
        return direct.run_task("POST", f"{base}/{vmid}/move_disk", params)
    if command == "cleanup":  # what qmeventd runs once a QEMU ended
        vmid, clean, guest = args
        return cleanup(base, vmid, clean, guest)
    if command == "clone":
        vmid, newid = args
        return direct.run_task("POST", f"{base}/{vmid}/clone", {**options, "newid": newid})
    if command == "template":
        (vmid,) = args
        return direct.run_task("POST", f"{base}/{vmid}/template", options)
    if command == "resize":
        vmid, disk, size = args
        return direct.run_task("PUT", f"{base}/{vmid}/resize", {**options, "disk": disk, "size": size})
    if command in snapshot_cli.TASKS:
        return snapshot_cli.run_task(base, command, args, options)
    (vmid,) = args
    if command == "set":
        direct.call("PUT", f"{base}/{vmid}/config", options)
    elif command == "config":
        config = direct.call("GET", f"{base}/{vmid}/config", options)
        for key in sorted(config):
            if key != "digest":
                print(f"{key}: {encode_text(config[key]) if key == 'description' else config[key]}")
    elif command == "listsnapshot":
        snapshot_cli.print_tree(direct.call("GET", f"{base}/{vmid}/snapshot", options))
    elif command == "pending":
        print_pending(direct.call("GET", f"{base}/{vmid}/pending", options))
    elif command == "status":
        current = direct.call("GET", f"{base}/{vmid}/status/current", {})
        if options.get("verbose"):
            for key in sorted(k for k in current if k != "cpu"):
                print_recursive("", current[key], key)
        else:
            print(f"status: {current.get('qmpstatus') or 'unknown'}")
    elif command == "showcmd":
        conf = store.load(nodename(), int(vmid))
        line = " ".join(shellquote(a) for a in runtime.command(int(vmid), conf))
        print(line.replace(" -", " \\\n  -") if options.get("pretty") else line)
    elif command == "unlock":
        store.set_lock(nodename(), int(vmid), None)
    elif command == "terminal":
        return terminal(int(vmid), options.get("iface", "serial0"))
    else:
        print(f"unknown command 'qm {command}'\n{USAGE}", file=sys.stderr)
        return direct.ERROR_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run, (GuestError, qmp.QmpError), argv)


def run_vzdump(_command: str, args: list[str], options: dict[str, str]) -> int:
    """`vzdump VMID... [OPTIONS]`: the node's backup API, its log printed as it goes."""
    params = {**options, **({"vmid": ",".join(args)} if args else {})}
    return direct.run_task("POST", f"/nodes/{nodename()}/vzdump", params)


def vzdump_main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    return direct.cli_main("USAGE: vzdump {<vmid>} [OPTIONS]", run_vzdump, (GuestError,), ["vzdump", *words])


def run_qmrestore(_command: str, args: list[str], options: dict[str, str]) -> int:
    """`qmrestore ARCHIVE VMID [OPTIONS]`: create_vm with `archive`, as PVE's qmrestore."""
    archive, vmid = args
    return direct.run_task("POST", f"/nodes/{nodename()}/qemu", {**options, "vmid": vmid, "archive": archive})


def qmrestore_main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    return direct.cli_main("USAGE: qmrestore <archive> <vmid> [OPTIONS]", run_qmrestore, (GuestError,),
                           ["qmrestore", *words])


if __name__ == "__main__":
    raise SystemExit(main())
