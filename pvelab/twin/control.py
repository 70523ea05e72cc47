"""Talking to a lab's supervisor: one JSON request per line over its unix socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from pvelab.errors import TwinError


def request(socket_path: Path, op: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
    message = json.dumps({"op": op, **params}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(message)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise TwinError("the lab is not running (no supervisor answers)", "start it: pvelab twin up") from exc
    except TimeoutError as exc:
        raise TwinError(f"the lab supervisor did not answer '{op}' within {timeout:.0f} s") from exc
    except (ConnectionResetError, BrokenPipeError) as exc:  # a supervisor ending (its lab going down) meanwhile
        raise TwinError(f"the lab supervisor closed the connection during '{op}'") from exc
    if not reply:
        raise TwinError(f"the lab supervisor closed the connection during '{op}'")
    answer: dict[str, Any] = json.loads(reply)
    if not answer.get("ok"):
        raise TwinError(answer.get("error", f"'{op}' failed"), answer.get("fix", ""))
    return answer
