"""ipmi_sim's chassis_control program: `chassis SOCKET NODE get power | set power 0|1 | set reset 1`.

ipmi_sim runs it for every chassis request it gets over IPMI; the answer format is ipmi_sim's
("power:1" for a get, nothing for a set; errors on stdout with a non-zero exit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.twin.control import request


def handle(socket_path: Path, node: str, op: str, args: list[str]) -> str:
    if op == "get":
        answers = []
        for parm in args:
            if parm == "power":
                state = request(socket_path, "power", node=node, action="status")["state"]
                answers.append(f"power:{1 if state == 'on' else 0}")
            elif parm == "boot":
                answers.append("boot:default")
            else:
                raise TwinError(f"Invalid parameter: {parm}")
        return "\n".join(answers)
    if op == "set":
        pairs = list(zip(args[::2], args[1::2], strict=False))
        for parm, value in pairs:
            if parm == "power":
                action = "on" if value == "1" else "off"
                request(socket_path, "power", node=node, action=action, cause="ipmi")
            elif parm == "reset" and value == "1":
                request(socket_path, "power", node=node, action="reset", cause="ipmi")
            elif parm in ("boot", "identify", "reset"):
                continue
            else:
                raise TwinError(f"Invalid parameter: {parm}")
        return ""
    raise TwinError(f"Unknown operation: {op}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: chassis SOCKET NODE get|set PARM [VALUE]...")
        return 1
    try:
        out = handle(Path(args[0]), args[1], args[2], args[3:])
    except TwinError as exc:
        print(exc)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
