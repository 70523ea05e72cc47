"""The node pages of pve-manager's PVE::API2::Nodes, Services and Subscription: version, services,
syslog, journal, time, dns, hosts and subscription. Each reads or changes the node itself (systemd,
the journal, /etc/resolv.conf, /etc/hosts) as PVE does."""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import os
import re
import subprocess
import syslog
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve import version
from pvelab.pve.access import guard as access
from pvelab.pve.api import schema, tasks
from pvelab.pve.api.routes import ApiException, Context, WithAttributes, param_error, route
from pvelab.pve.system import journal

RESOLV_CONF = Path("/etc/resolv.conf")
ETC_HOSTS = Path("/etc/hosts")
SUBSCRIPTION = Path("/etc/subscription")
SSH_RSA_KEY = Path("/etc/ssh/ssh_host_rsa_key.pub")
PRICING_URL = "https://www.proxmox.com/en/proxmox-virtual-environment/pricing"
ESSENTIAL_SERVICES = ("pveproxy", "pvedaemon", "pve-cluster")
API_SERVICE = "pveproxy"  # the twin's API server is this unit: restarting it must not end the task running it


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ApiException(500, f"command '{' '.join(argv)}' failed: exit code {done.returncode}")
    return done.stdout


# -- version, time --------------------------------------------------------------------------------
@route("GET /nodes/{node}/version")
def node_version(ctx: Context, params: dict[str, Any]) -> Any:
    return version.version_info()


def timezone() -> str:
    return run(["timedatectl", "show", "--property=Timezone", "--value"]).splitlines()[0]


@route("GET /nodes/{node}/time")
def get_time(ctx: Context, params: dict[str, Any]) -> Any:
    now = int(time.time())
    return {"timezone": timezone(), "time": now, "localtime": calendar.timegm(time.localtime(now))}


@route("PUT /nodes/{node}/time")
def set_time(ctx: Context, params: dict[str, Any]) -> Any:
    zone = params["timezone"]
    if zone not in run(["timedatectl", "list-timezones"]).splitlines():
        raise param_error("timezone", "No such timezone")
    run(["timedatectl", "set-timezone", zone])


# -- dns, hosts -----------------------------------------------------------------------------------
def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def read_resolv_conf(text: str) -> dict[str, str]:
    """pve-common's read_etc_resolv_conf: the search domain and the first three name servers."""
    found: dict[str, str] = {}
    servers = 0
    for line in text.splitlines():
        if m := re.match(r"^(search|domain)\s+(\S+)\s*", line):
            found["search"] = m.group(2)
        elif (m := re.match(r"^\s*nameserver\s+(\S+)\s*", line)) and is_ip(m.group(1)):
            servers += 1
            if servers <= 3:
                found[f"dns{servers}"] = m.group(1)
    return found


def update_resolv_conf(text: str, wanted: dict[str, Any]) -> str:
    """pve-common's update_etc_resolv_conf: search and the name servers first, every other line kept."""
    out = f"search {wanted['search']}\n" if wanted.get("search") else ""
    written = set()
    for key in ("dns1", "dns2", "dns3"):
        server = wanted.get(key)
        if server and server != "0.0.0.0" and server not in written:
            written.add(server)
            out += f"nameserver {server}\n"
    return out + "".join(line for line in text.splitlines(keepends=True)
                         if not re.match(r"^(search|domain|nameserver)\s+", line))


@route("GET /nodes/{node}/dns")
def get_dns(ctx: Context, params: dict[str, Any]) -> Any:
    return read_resolv_conf(RESOLV_CONF.read_text() if RESOLV_CONF.exists() else "")


@route("PUT /nodes/{node}/dns")
def set_dns(ctx: Context, params: dict[str, Any]) -> Any:
    current = RESOLV_CONF.read_text() if RESOLV_CONF.exists() else ""
    write_file(RESOLV_CONF, update_resolv_conf(current, params))


def read_hosts(raw: bytes) -> dict[str, str]:
    return {"digest": hashlib.sha1(raw).hexdigest(), "data": raw.decode("utf-8", errors="replace")}  # noqa: S324


def check_hosts(data: str) -> None:
    """pve-common's write_etc_hosts checks: each line's address and names (comments and blanks pass)."""
    for line in data.split("\n"):
        if re.match(r"^\s*#", line) or re.match(r"^\s*$", line):
            continue
        address, *names = re.split(r"\s+", line)
        if not is_ip(address):
            raise param_error("data", f"Invalid IP '{address}'")
        for name in names:
            if not re.fullmatch(r"[.\-a-zA-Z0-9]+", name):
                raise param_error("data", f"Invalid Hostname '{name}'")


@route("GET /nodes/{node}/hosts")
def get_hosts(ctx: Context, params: dict[str, Any]) -> Any:
    return read_hosts(ETC_HOSTS.read_bytes() if ETC_HOSTS.exists() else b"")


@route("POST /nodes/{node}/hosts")
def set_hosts(ctx: Context, params: dict[str, Any]) -> Any:
    if params.get("digest"):
        current = read_hosts(ETC_HOSTS.read_bytes() if ETC_HOSTS.exists() else b"")["digest"]
        if current != params["digest"]:
            raise ApiException(500, "detected modified configuration - file changed by other user? "
                                    "Try again.")
    check_hosts(params["data"])
    write_file(ETC_HOSTS, params["data"])


def write_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


# -- logs -----------------------------------------------------------------------------------------
SERVICE_ALIASES = {"postfix": "postfix@-", "sshd": "ssh"}


@route("GET /nodes/{node}/syslog")
def get_syslog(ctx: Context, params: dict[str, Any]) -> Any:
    service = params.get("service")
    total, lines = journal.dump(params.get("start"), params.get("limit"), params.get("since"), params.get("until"),
                                SERVICE_ALIASES.get(service, service) if service else None)
    return WithAttributes(lines, {"total": total})


@route("GET /nodes/{node}/journal")
def get_journal(ctx: Context, params: dict[str, Any]) -> Any:
    return journal.read_range(params.get("lastentries"), params.get("since"), params.get("until"),
                              params.get("startcursor"), params.get("endcursor"))


# -- services -------------------------------------------------------------------------------------
def service_names(ctx: Context) -> list[str]:
    """The services PVE lists (its schema's enum: PVE 8's list differs from 9's)."""
    found = schema.match(version.major(), "GET", f"/nodes/{ctx.node}/services/pveproxy/state")
    assert found is not None
    return list(found[0].properties["service"]["enum"])


def unit_properties(service: str) -> dict[str, str]:
    """`systemctl show SERVICE` as PVE reads it: {Key: value}."""
    done = subprocess.run(["systemctl", "show", service], capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def service_state(service: str, props: dict[str, str] | None = None) -> dict[str, str]:
    props = unit_properties(service) if props is None else props
    if not props:
        return {"state": "unknown"}
    state = props.get("SubState") or "unknown"
    if state == "dead" and props.get("Type") == "oneshot" and props.get("Result"):
        state = props["Result"]
    unit_state = "not-found" if props.get("LoadState") == "not-found" else (props.get("UnitFileState") or "unknown")
    return {"state": state, "unit-state": unit_state, "active-state": props.get("ActiveState") or "unknown"}


def service_entry(service: str) -> dict[str, Any]:
    """A service as PVE answers it, from one `systemctl show`: name and description where systemd
    knows the unit, and its state."""
    props = unit_properties(service)
    named = {"name": service, "desc": props["Description"]} if "Description" in props else {}
    return {"service": service, **named, **service_state(service, props)}


@route("GET /nodes/{node}/services")
def services_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [entry for name in sorted(service_names(ctx)) if "desc" in (entry := service_entry(name))]


@route("GET /nodes/{node}/services/{service}")
def service_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"subdir": name} for name in ("state", "start", "stop", "restart", "reload")]


@route("GET /nodes/{node}/services/{service}/state")
def get_service_state(ctx: Context, params: dict[str, Any]) -> Any:
    return service_entry(params["service"])


def service_task(ctx: Context, params: dict[str, Any], kind: str, verb: str, command: str) -> str:
    service = params["service"]

    def work(log: Callable[[str], None]) -> None:
        syslog.syslog(syslog.LOG_INFO, f"{verb} service {service}: {tasks.current_upid()}")
        if service in ESSENTIAL_SERVICES and command == "stop":
            raise RuntimeError(f"invalid service cmd '{service} {command}': refusing to stop essential service!")
        argv = ["systemctl", command, service]
        if service == API_SERVICE:
            argv.insert(1, "--no-block")  # PVE's pvedaemon runs this; here the API server itself does
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"command '{' '.join(['systemctl', command, service])}' failed: exit code "
                               f"{done.returncode}")

    return tasks.start(ctx.node, kind, service, ctx.caller.name, work)


@route("POST /nodes/{node}/services/{service}/start")
def service_start(ctx: Context, params: dict[str, Any]) -> Any:
    return service_task(ctx, params, "srvstart", "starting", "start")


@route("POST /nodes/{node}/services/{service}/stop")
def service_stop(ctx: Context, params: dict[str, Any]) -> Any:
    return service_task(ctx, params, "srvstop", "stopping", "stop")


@route("POST /nodes/{node}/services/{service}/restart")
def service_restart(ctx: Context, params: dict[str, Any]) -> Any:
    return service_task(ctx, params, "srvrestart", "re-starting", "restart")


@route("POST /nodes/{node}/services/{service}/reload")
def service_reload(ctx: Context, params: dict[str, Any]) -> Any:
    return service_task(ctx, params, "srvreload", "reloading", "try-reload-or-restart")


# -- subscription ---------------------------------------------------------------------------------
def server_id() -> str:
    """The node's server ID as PVE 8 and 9 derive it: the MD5 of its SSH RSA host key, upper case."""
    return hashlib.md5(SSH_RSA_KEY.read_bytes()).hexdigest().upper()  # noqa: S324 - PVE's own choice


@route("GET /nodes/{node}/subscription")
def get_subscription(ctx: Context, params: dict[str, Any]) -> Any:
    """A lab node has no subscription: PVE's answer for that, with the server ID for those with Sys.Audit."""
    answer: dict[str, Any] = {"status": "notfound", "message": "There is no subscription key", "url": PRICING_URL}
    if access.allowed(ctx.caller.name, f"/nodes/{params['node']}", ["Sys.Audit"]):
        answer["serverid"] = server_id()
    return answer


@route("DELETE /nodes/{node}/subscription")
def delete_subscription(ctx: Context, params: dict[str, Any]) -> Any:
    SUBSCRIPTION.unlink(missing_ok=True)
