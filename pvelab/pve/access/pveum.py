"""`pveum`: PVE's user manager, each subcommand a call of the /access (or /pools) API in-process as
root@pam (as PVE's pveum runs its API handlers), lists printed as PVE's CLI formatter prints them:
the return schema's required columns, then the optional ones, sorted; integers right-aligned."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

from pvelab.pve import version
from pvelab.pve.api import direct, schema
from pvelab.pve.api.pvesh import cell, table
from pvelab.pve.api.routes import ApiException

USAGE = """USAGE: pveum <COMMAND> [ARGS] [OPTIONS]

       pveum acl delete <path> --roles <string> [OPTIONS]
       pveum acl list  [FORMAT_OPTIONS]
       pveum acl modify <path> --roles <string> [OPTIONS]

       pveum group add <groupid> [OPTIONS]
       pveum group delete <groupid>
       pveum group list  [FORMAT_OPTIONS]
       pveum group modify <groupid> [OPTIONS]

       pveum pool add <poolid> [OPTIONS]
       pveum pool delete <poolid>
       pveum pool list  [OPTIONS] [FORMAT_OPTIONS]
       pveum pool modify <poolid> [OPTIONS]

       pveum realm add <realm> --type <string> [OPTIONS]
       pveum realm delete <realm>
       pveum realm list  [FORMAT_OPTIONS]
       pveum realm modify <realm> [OPTIONS]

       pveum role add <roleid> [OPTIONS]
       pveum role delete <roleid>
       pveum role list  [FORMAT_OPTIONS]
       pveum role modify <roleid> [OPTIONS]

       pveum user token add <userid> <tokenid> [OPTIONS] [FORMAT_OPTIONS]
       pveum user token delete <userid> <tokenid> [FORMAT_OPTIONS]
       pveum user token list <userid> [FORMAT_OPTIONS]
       pveum user token modify <userid> <tokenid> [OPTIONS] [FORMAT_OPTIONS]
       pveum user token permissions <userid> <tokenid> [OPTIONS] [FORMAT_OPTIONS]

       pveum user add <userid> [OPTIONS]
       pveum user delete <userid>
       pveum user list  [OPTIONS] [FORMAT_OPTIONS]
       pveum user modify <userid> [OPTIONS]
       pveum user permissions [<userid>] [OPTIONS] [FORMAT_OPTIONS]

       pveum passwd <userid> [OPTIONS]

       pveum help [<extra-args>] [OPTIONS]"""

FORMAT_OPTIONS = ("output-format", "noborder", "noheader", "quiet", "human-readable")
ALIASES = {"useradd": ("user", "add"), "usermod": ("user", "modify"), "userdel": ("user", "delete"),
           "groupadd": ("group", "add"), "groupmod": ("group", "modify"), "groupdel": ("group", "delete"),
           "roleadd": ("role", "add"), "rolemod": ("role", "modify"), "roledel": ("role", "delete"),
           "aclmod": ("acl", "modify"), "acldel": ("acl", "delete")}


def columns_of(method: str, path: str) -> dict[str, dict[str, Any]]:
    found = schema.match(version.major(), method, path)
    assert found is not None
    returns = found[0].info.get("returns", {})
    return dict((returns.get("items") or {}).get("properties") or {})


def text_table(rows: list[dict[str, Any]], props: dict[str, dict[str, Any]], border: bool, header: bool) -> str:
    """PVE's CLIFormatter print_text_table: required columns sorted, then optional ones sorted;
    rows sorted by the first column; integers right-aligned; box borders under a UTF-8 locale."""
    required = sorted(k for k, p in props.items() if not p.get("optional"))
    columns = required + sorted(k for k, p in props.items() if p.get("optional"))
    right = frozenset(i for i, c in enumerate(columns) if props[c].get("type") == "integer")
    cells = [[cell(r.get(c)) for c in columns] for r in sorted(rows, key=lambda r: str(r.get(columns[0], "")))]
    return table(columns, cells, border, header, right)


def show(data: Any, method: str, path: str, formats: dict[str, str]) -> None:
    if formats.get("quiet"):
        return
    kind = formats.get("output-format", "text")
    if kind == "json":
        print(json.dumps(data, sort_keys=True, separators=(",", ":")))
    elif kind == "json-pretty":
        print(json.dumps(data, sort_keys=True, indent=4))
    elif isinstance(data, list):
        print(text_table(data, columns_of(method, path) or {"value": {}}, not formats.get("noborder"),
                         not formats.get("noheader")))
    elif isinstance(data, dict):
        rows = [{"key": k, "value": cell(v)} for k, v in sorted(data.items())]
        print(text_table(rows, {"key": {}, "value": {}}, not formats.get("noborder"), not formats.get("noheader")))


def show_permissions(data: dict[str, dict[str, int]], formats: dict[str, str]) -> None:
    """pveum's own permissions table: a privilege per line, `(*)` where it propagates."""
    if formats.get("output-format", "text") != "text":
        show(data, "GET", "/access/permissions", formats)
        return
    rows = [{"ACL path": path, "Permissions": "\n".join(f"{p}{' (*)' if data[path][p] else ''}"
                                                        for p in sorted(data[path]))} for path in sorted(data)]
    lines = []
    for row in rows:
        privs = row["Permissions"].split("\n")
        lines.append([row["ACL path"], privs[0]])
        lines += [["", p] for p in privs[1:]]
    widths = [max([len("ACL path"), *(len(r[0]) for r in lines)]),
              max([len("Permissions"), *(len(r[1]) for r in lines)])]
    border = "─"
    print("┌" + border * (widths[0] + 2) + "┬" + border * (widths[1] + 2) + "┐")
    print(f"│ {'ACL path'.ljust(widths[0])} │ {'Permissions'.ljust(widths[1])} │")
    print("╞" + "═" * (widths[0] + 2) + "╪" + "═" * (widths[1] + 2) + "╡")
    for i, row in enumerate(rows):
        if i:
            print("├" + border * (widths[0] + 2) + "┼" + border * (widths[1] + 2) + "┤")
        privs = row["Permissions"].split("\n")
        for j, priv in enumerate(privs):
            print(f"│ {(row['ACL path'] if j == 0 else '').ljust(widths[0])} │ {priv.ljust(widths[1])} │")
    print("└" + border * (widths[0] + 2) + "┴" + border * (widths[1] + 2) + "┘")
    print("Permissions marked with '(*)' have the 'propagate' flag set.")


def split_format(options: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    formats = {k: v for k, v in options.items() if k in FORMAT_OPTIONS}
    return {k: v for k, v in options.items() if k not in FORMAT_OPTIONS}, formats


def ask_password(prompt: str = "Enter new password: ") -> str:
    if not sys.stdin.isatty():  # piped, as a script gives it: the first line, then the confirmation
        lines = sys.stdin.read().splitlines()
        if not lines:
            raise ValueError("no password given")
        if len(lines) > 1 and lines[1] != lines[0]:
            raise ApiException(500, "Passwords do not match.")
        return lines[0]
    first, second = getpass.getpass(prompt), getpass.getpass("Retype new password: ")
    if first != second:
        raise ApiException(500, "Passwords do not match.")
    return first


CRUD = {  # noun: (collection path, id parameter)
    "user": ("/access/users", "userid"), "group": ("/access/groups", "groupid"),
    "role": ("/access/roles", "roleid"), "realm": ("/access/domains", "realm"),
}


def run(command: str, args: list[str], options: dict[str, str]) -> int:  # noqa: PLR0911, PLR0912
    if command in ALIASES:
        noun, verb = ALIASES[command]
    elif command == "passwd":
        (userid,) = args
        direct.call("PUT", "/access/password", {**options, "userid": userid, "password": ask_password()})
        return 0
    else:
        if not args:
            raise ValueError("missing subcommand")
        noun, verb, args = command, args[0], args[1:]
    options, formats = split_format(options)
    if noun == "user" and verb == "token":
        return token_command(args, options, formats)
    if noun == "user" and verb == "permissions":
        params = {**options, **({"userid": args[0]} if args else {})}
        show_permissions(direct.call("GET", "/access/permissions", params), formats)
        return 0
    if noun == "acl":
        if verb == "list":
            show(direct.call("GET", "/access/acl", options), "GET", "/access/acl", formats)
            return 0
        (path,) = args
        delete = {"delete": 1} if verb == "delete" else {}
        direct.call("PUT", "/access/acl", {**options, "path": path, **delete})
        return 0
    if noun == "pool":
        return pool_command(verb, args, options, formats)
    if noun not in CRUD:
        raise ValueError(f"unknown command '{noun}'")
    base, key = CRUD[noun]
    if verb == "list":
        show(direct.call("GET", base, options), "GET", base, formats)
    elif verb == "add":
        (ident,) = args
        direct.call("POST", base, {**options, key: ident})
    elif verb == "modify":
        (ident,) = args
        direct.call("PUT", f"{base}/{ident}", options)
    elif verb == "delete":
        (ident,) = args
        direct.call("DELETE", f"{base}/{ident}", options)
    else:
        raise ValueError(f"unknown command '{noun} {verb}'")
    return 0


def token_command(args: list[str], options: dict[str, str], formats: dict[str, str]) -> int:
    verb, rest = args[0], args[1:]
    if verb == "list":
        (userid,) = rest
        path = f"/access/users/{userid}/token"
        show(direct.call("GET", path, options), "GET", "/access/users/{userid}/token", formats)
        return 0
    userid, tokenid = rest
    path = f"/access/users/{userid}/token/{tokenid}"
    if verb == "add":
        show(direct.call("POST", path, options), "POST", path, formats)
    elif verb == "modify":
        show(direct.call("PUT", path, options), "PUT", path, formats)
    elif verb in ("delete", "remove"):
        direct.call("DELETE", path, options)
    elif verb == "permissions":
        show_permissions(direct.call("GET", "/access/permissions", {**options, "userid": f"{userid}!{tokenid}"}),
                         formats)
    else:
        raise ValueError(f"unknown command 'user token {verb}'")
    return 0


def pool_command(verb: str, args: list[str], options: dict[str, str], formats: dict[str, str]) -> int:
    nine = version.major() != "8"
    if verb == "list":
        show(direct.call("GET", "/pools", options), "GET", "/pools", formats)
        return 0
    (poolid,) = args
    if verb == "add":
        direct.call("POST", "/pools", {**options, "poolid": poolid})
    elif verb == "modify":
        direct.call("PUT", "/pools" if nine else f"/pools/{poolid}", {**options, "poolid": poolid})
    elif verb == "delete":
        direct.call("DELETE", "/pools" if nine else f"/pools/{poolid}", {"poolid": poolid})
    else:
        raise ValueError(f"unknown command 'pool {verb}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run, (), argv)


if __name__ == "__main__":
    sys.exit(main())
