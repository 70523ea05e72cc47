"""Calling the API in-process, as PVE's CLI tools do (pvesh, pvesm, ...): the same schema checks and
handlers as over HTTPS, as root@pam, with PVE's CLI error texts and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import version
from pvelab.pve.api import schema, tasks
from pvelab.pve.api.auth import Caller
from pvelab.pve.api.routes import ApiException, Context, WithAttributes, handler_for

ERROR_EXIT = 255  # PVE's CLI tools exit -1 on errors


def call(method: str, path: str, params: dict[str, Any], ha: bool = False) -> Any:
    """The handler's answer for `method path` with `params` (strings, as from a command line);
    `ha` marks the LRM's own calls."""
    found = schema.match(version.major(), method, path)
    if found is None:
        raise ApiException(501, f"No '{method.lower()}' handler defined for '{path}'")
    endpoint, values = found
    typed = schema.verify(endpoint, {**params, **values})
    answer = handler_for(method, endpoint.template, path)(Context(Caller("root@pam"), nodename(), ha), typed)
    return answer.data if isinstance(answer, WithAttributes) else answer


def finish_task(upid: str, echo: bool = True) -> bool:
    """Wait for a worker the call started, print its log as the CLI does; True when it succeeded
    (OK, or WARNINGS: done with warnings)."""
    tasks.wait(upid)
    if echo:
        for line in tasks.read_log(upid, 0, 0)[0]:
            if not line["t"].startswith("TASK "):
                print(line["t"])
    exitstatus = str(tasks.status(upid).get("exitstatus"))
    if not exitstatus.startswith(("OK", "WARNINGS")):
        print(exitstatus, file=sys.stderr)
        return False
    return True


def run_task(method: str, path: str, params: dict[str, Any]) -> int:
    """A CLI subcommand that is one API task: call, wait, print its log; the tool's exit code."""
    return 0 if finish_task(call(method, path, params)) else ERROR_EXIT


def guest_task(base: str, table: dict[str, tuple[str, str]], command: str, args: list[str],
               options: dict[str, str]) -> int:
    """qm's and pct's task subcommands: `VMID` (migrate: `VMID TARGET`) and options, to the table's
    (method, path below `base`); a path-less entry (create) takes the VMID as a parameter."""
    method, path = table[command]
    vmid, *rest = args
    params = dict(options)
    if not path:
        params["vmid"] = vmid
    if command == "migrate":
        (params["target"],) = rest
    elif rest:
        raise ValueError("too many arguments")
    return run_task(method, base + path.format(vmid=vmid), params)


def report(exc: Exception) -> int:
    """Print an error as PVE's CLI tools do; return their exit code."""
    if isinstance(exc, schema.ParamError):
        print("400 Parameter verification failed.", file=sys.stderr)
        for name, message in sorted(exc.errors.items()):
            print(f"{name}: {message}", file=sys.stderr)
    elif isinstance(exc, ApiException) and exc.errors:
        print(f"{exc.status} {exc}", file=sys.stderr)
        for name, message in sorted(exc.errors.items()):
            print(f"{name}: {message}", file=sys.stderr)
    else:
        print(str(exc).rstrip("\n"), file=sys.stderr)
    return ERROR_EXIT


def parse_options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """A PVE command line's words: positional arguments, and `--key value` options (a bare flag is 1)."""
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1 and not arg.lstrip("-").isdigit():
            name = arg.lstrip("-")
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                options[name], i = args[i + 1], i + 2
            else:
                options[name], i = "1", i + 1
        else:
            positional.append(arg)
            i += 1
    return positional, options


Run = Callable[[str, list[str], dict[str, str]], int]


def cli_main(usage: str, run: Run, refusals: tuple[type[Exception], ...], argv: list[str] | None = None) -> int:
    """A PVE command's top level: `help`, the words parsed, a refusal printed as PVE's CLI does."""
    words = sys.argv[1:] if argv is None else argv
    if not words or words[0] in ("help", "-h", "--help"):
        print(usage)
        return 0 if words else ERROR_EXIT
    args, options = parse_options(words[1:])
    refused: tuple[type[Exception], ...] = (schema.ParamError, ApiException, *refusals)
    try:
        return run(words[0], args, options)
    except ValueError:
        print(f"400 wrong number of arguments\n{usage}", file=sys.stderr)
        return ERROR_EXIT
    except refused as exc:
        return report(exc)
