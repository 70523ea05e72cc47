"""QEMU's machine protocol (QMP) over the VM's socket /var/run/qemu-server/VMID.qmp, as qemu-server
talks to its QEMUs: one connection per command, capabilities negotiated first."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

RUN_DIR = Path("/var/run/qemu-server")


class QmpError(Exception):
    pass


def socket_path(vmid: int) -> Path:
    return RUN_DIR / f"{vmid}.qmp"


def command(vmid: int, execute: str, timeout: float = 5.0, **arguments: Any) -> Any:
    """Run one QMP command; its `return` value. Events that arrive meanwhile are skipped."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path(vmid)))
            reader = sock.makefile("r")
            json.loads(reader.readline())  # the greeting
            for request in ({"execute": "qmp_capabilities"},
                            {"execute": execute, **({"arguments": arguments} if arguments else {})}):
                sock.sendall(json.dumps(request).encode() + b"\n")
                while True:
                    answer = json.loads(reader.readline() or "null")
                    if answer is None:
                        raise QmpError(f"VM {vmid} qmp command '{execute}' failed - connection closed")
                    if "event" not in answer:
                        break
                if "error" in answer:
                    raise QmpError(f"VM {vmid} qmp command '{execute}' failed - {answer['error'].get('desc')}")
            return answer.get("return")
    except (OSError, ValueError) as exc:
        raise QmpError(f"VM {vmid} qmp command '{execute}' failed - unable to connect to VM {vmid} qmp socket "
                       f"- {exc}") from exc


def block_node(vmid: int, key: str) -> dict[str, Any]:
    """How QMP names a drive's block node: by its device (`-drive`, before machine 10.0) or by its
    top node's name (`-blockdev`: the device's block backend has no name)."""
    if any(b.get("device") == f"drive-{key}" for b in command(vmid, "query-block")):
        return {"device": f"drive-{key}"}
    return {"node-name": f"drive-{key}"}
