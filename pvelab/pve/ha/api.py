"""/cluster/ha: resources, groups (PVE 8), rules (PVE 9) and status, as pve-ha-manager's API serves them.
Writes only edit the config or queue a CRM command; the daemons do the rest, asynchronously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pvelab.pve import members, version
from pvelab.pve.api.routes import ApiException, Context, refusing, route
from pvelab.pve.guests import ha_hooks, store
from pvelab.pve.ha import config, redirect, status
from pvelab.pve.ha.config import HaConfigError, Section
from pvelab.pve.ha.rules import from_rules

RESOURCE_KEYS = ("state", "max_restart", "max_relocate", "failback", "group", "comment")
INT_KEYS = ("max_restart", "max_relocate", "failback", "strict", "disable", "restricted", "nofailback")
GROUPS_MIGRATED = "ha groups have been migrated to rules"

# Guest commands on HA-managed guests go through HA (qm/pct start, stop, migrate, destroy).
ha_hooks.register(redirect)


ha_call = refusing


def pve9() -> bool:
    return version.major() != "8"


def typed(options: dict[str, str]) -> dict[str, Any]:
    return {k: int(v) if k in INT_KEYS and v.lstrip("-").isdigit() else v for k, v in options.items()}


def flag(value: Any) -> str:
    return "1" if str(value) in ("1", "true", "True") else "0"


# -- sids ---------------------------------------------------------------------------------------
def resolve_sid(text: str, kind: str | None = None) -> str:
    """`100` (with or without --type) to `vm:100`/`ct:100`, as ha-manager accepts it."""
    if ":" in text:
        return text
    if kind:
        return f"{kind}:{text}"
    guest = store.owner(int(text))
    if guest is None:
        raise HaConfigError(f"unable to detect SID from VMID - VM/CT {text} does not exist")
    return f"{'vm' if guest['type'] == 'qemu' else 'ct'}:{text}"


def check_guest(sid: str) -> None:
    kind, vmid = config.parse_sid(sid)
    guest = store.owner(vmid)
    if guest is None:
        raise HaConfigError(f"resource '{sid}' does not exist in cluster")
    wanted = "qemu" if kind == "vm" else "lxc"
    if guest["type"] != wanted:
        what = "a container" if kind == "ct" else "a virtual machine"
        raise HaConfigError(f"resource '{sid}' - guest with ID {vmid} is not {what}")


def crm_state(sid: str) -> str | None:
    return ((config.manager_status().get("service_status") or {}).get(sid) or {}).get("state")


def check_group(name: str) -> None:
    if pve9() and not config.groups():
        raise HaConfigError(f"invalid parameter 'group': {GROUPS_MIGRATED}")
    if name not in config.groups():
        raise HaConfigError(f"HA group '{name}' does not exist")


def resource_options(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in RESOURCE_KEYS:
        if params.get(key) is not None:
            out[key] = flag(params[key]) if key == "failback" else str(params[key])
    return out


# -- resources ----------------------------------------------------------------------------------
@route("GET /cluster/ha")
def ha_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"id": i} for i in ("status", "resources", "groups", *(("rules",) if pve9() else ()))]


def resource_entry(sid: str, options: dict[str, str], digest: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"sid": sid, "type": sid.split(":", maxsplit=1)[0], "digest": digest, **typed(options)}
    groups = config.groups()
    if "group" in options and options["group"] not in groups:
        entry["errors"] = {"group": f"group '{options['group']}' does not exist"}
    return entry


@route("GET /cluster/ha/resources")
def resources_index(ctx: Context, params: dict[str, Any]) -> Any:
    sections, digest = config.read_sections(config.RESOURCES)
    return [resource_entry(s.key, s.options, digest) for s in sections
            if s.type in ("vm", "ct") and (not params.get("type") or s.type == params["type"])]


@route("GET /cluster/ha/resources/{sid}")
def resource_get(ctx: Context, params: dict[str, Any]) -> Any:
    def read() -> Any:
        sid = resolve_sid(params["sid"])
        sections, digest = config.read_sections(config.RESOURCES)
        for section in sections:
            if section.key == sid:
                return resource_entry(sid, section.options, digest)
        raise HaConfigError(f"no such resource '{sid}'")
    return ha_call(read)


@route("POST /cluster/ha/resources")
def resource_create(ctx: Context, params: dict[str, Any]) -> Any:
    def create() -> None:
        sid = resolve_sid(params["sid"], params.get("type"))
        config.parse_sid(sid)
        if not members.quorate():
            raise HaConfigError("cluster not ready - no quorum?")
        check_guest(sid)
        if params.get("group"):
            check_group(params["group"])
        options = resource_options(params)
        with config.domain_lock():
            entries = config.resources()
            if sid in entries:
                raise HaConfigError(f"create resource failed: resource ID '{sid}' already defined")
            entries[sid] = options
            config.write_resources(entries)
    ha_call(create)


@route("PUT /cluster/ha/resources/{sid}")
def resource_update(ctx: Context, params: dict[str, Any]) -> Any:
    def update() -> None:
        sid = resolve_sid(params["sid"])
        if params.get("group"):
            check_group(params["group"])
        state = params.get("state")
        with config.domain_lock():
            sections, digest = config.read_sections(config.RESOURCES)
            entries = config.resources()
            if sid not in entries:
                raise HaConfigError(f"update resources config failed: no such resource '{sid}'")
            if params.get("digest") and params["digest"] != digest:
                raise HaConfigError("update resources config failed: detected modified configuration - "
                                    "file changed by other user? Try again.")
            if state is not None and state != "disabled" and crm_state(sid) == "error":
                raise HaConfigError(f"service '{sid}' in error state, must be disabled and fixed first")
            for key in filter(None, (params.get("delete") or "").split(",")):
                entries[sid].pop(key, None)
            entries[sid].update(resource_options(params))
            config.write_resources(entries)
    ha_call(update)


@route("DELETE /cluster/ha/resources/{sid}")
def resource_delete(ctx: Context, params: dict[str, Any]) -> Any:
    def delete() -> None:
        sid = resolve_sid(params["sid"])
        with config.domain_lock():
            entries = config.resources()
            if sid not in entries:
                raise HaConfigError(f"cannot delete service '{sid}', not HA managed!")
            del entries[sid]
            config.write_resources(entries)
            if pve9() and flag(params.get("purge", 1)) == "1":
                purge_from_rules(sid)
    ha_call(delete)


def purge_from_rules(sid: str) -> None:
    """DELETE's purge: the resource leaves every rule, and a rule left without resources goes."""
    sections, _ = config.read_sections(config.RULES)
    kept, changed = [], False
    for rule in sections:
        listed = [r for r in rule.options.get("resources", "").split(",") if r]
        if sid in listed:
            changed = True
            listed.remove(sid)
            if not listed:
                continue
            rule.options["resources"] = ",".join(sorted(listed))
        kept.append(rule)
    if changed:
        config.write_sections(config.RULES, kept)


def motion(task: str) -> Callable[[Context, dict[str, Any]], Any]:
    def handler(ctx: Context, params: dict[str, Any]) -> Any:
        def queue() -> Any:
            sid = resolve_sid(params["sid"])
            entry = config.resources().get(sid)
            if entry is None or config.with_defaults(entry)["state"] == "ignored":
                raise HaConfigError(f"resource '{sid}' is not HA managed")
            if crm_state(sid) == "error":
                raise HaConfigError(f"service '{sid}' in error state, must be disabled and fixed first")
            target = params["node"]
            result = motion_result(sid, target)
            config.queue_crm_command(f"{task} {sid} {target}")
            return result if pve9() else None
        return ha_call(queue)
    return handler


def motion_result(sid: str, target: str) -> dict[str, Any]:
    """PVE 9's answer: the resources moved along (positive affinity) and those in the way (negative)."""
    compiled = from_rules(config.rules(), sorted(members.read().get("nodelist") or {}))
    ss = config.manager_status().get("service_status") or {}
    result: dict[str, Any] = {"sid": sid, "requested-node": target}
    along = sorted(s for s in compiled.together.get(sid, set()) if (ss.get(s) or {}).get("node") != target)
    blocking = sorted(s for s in compiled.apart.get(sid, set())
                      if target in ((ss.get(s) or {}).get("node"), (ss.get(s) or {}).get("target")))
    if along:
        result["comigrated-resources"] = along
    if blocking:
        result["blocking-resources"] = [{"sid": s, "cause": "resource-affinity"} for s in blocking]
    return result


route("POST /cluster/ha/resources/{sid}/migrate")(motion("migrate"))
route("POST /cluster/ha/resources/{sid}/relocate")(motion("relocate"))


# -- groups (PVE 8; on PVE 9 they have been migrated to rules) ------------------------------------
def groups_or_refuse(action: str) -> dict[str, dict[str, str]]:
    groups = config.groups()
    if pve9() and not groups:
        raise HaConfigError(f"cannot {action}: {GROUPS_MIGRATED}")
    return groups


def group_options(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    if params.get("nodes") is not None:
        out["nodes"] = params["nodes"]
    for key in ("restricted", "nofailback"):
        if params.get(key) is not None:
            out[key] = flag(params[key])
    if params.get("comment") is not None:
        out["comment"] = params["comment"]
    return out


@route("GET /cluster/ha/groups")
def groups_index(ctx: Context, params: dict[str, Any]) -> Any:
    def index() -> Any:
        groups = groups_or_refuse("index groups")
        digest = config.read_sections(config.GROUPS)[1]
        return [{"group": g, "type": "group", "digest": digest, **typed(o)} for g, o in groups.items()]
    return ha_call(index)


@route("GET /cluster/ha/groups/{group}")
def group_get(ctx: Context, params: dict[str, Any]) -> Any:
    def read() -> Any:
        groups = groups_or_refuse("read group")
        if params["group"] not in groups:
            raise HaConfigError(f"no such ha group '{params['group']}'")
        digest = config.read_sections(config.GROUPS)[1]
        return {"group": params["group"], "type": "group", "digest": digest, **typed(groups[params["group"]])}
    return ha_call(read)


def write_groups(groups: dict[str, dict[str, str]]) -> None:
    config.write_sections(config.GROUPS, [Section("group", g, o) for g, o in groups.items()])


@route("POST /cluster/ha/groups")
def group_create(ctx: Context, params: dict[str, Any]) -> Any:
    def create() -> None:
        groups_or_refuse("create group")
        with config.domain_lock():
            groups = config.groups()
            if params["group"] in groups:
                raise HaConfigError(f"create ha group failed: ha group ID '{params['group']}' already defined")
            groups[params["group"]] = group_options(params)
            write_groups(groups)
    ha_call(create)


@route("PUT /cluster/ha/groups/{group}")
def group_update(ctx: Context, params: dict[str, Any]) -> Any:
    def update() -> None:
        groups_or_refuse("update group")
        with config.domain_lock():
            groups = config.groups()
            if params["group"] not in groups:
                raise HaConfigError(f"update ha group failed: no such ha group '{params['group']}'")
            for key in filter(None, (params.get("delete") or "").split(",")):
                groups[params["group"]].pop(key, None)
            groups[params["group"]].update(group_options(params))
            write_groups(groups)
    ha_call(update)


@route("DELETE /cluster/ha/groups/{group}")
def group_delete(ctx: Context, params: dict[str, Any]) -> Any:
    def delete() -> None:
        groups_or_refuse("delete group")
        with config.domain_lock():
            for sid, options in config.resources().items():
                if options.get("group") == params["group"]:
                    raise HaConfigError(f"delete ha group failed: ha group is used by service '{sid}'")
            groups = config.groups()
            if groups.pop(params["group"], None) is not None:
                write_groups(groups)
    ha_call(delete)


# -- rules (PVE 9) --------------------------------------------------------------------------------
def rule_entry(rule: Section, order: int, digest: str, errors: dict[str, list[str]] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"rule": rule.id, "type": rule.type, "digest": digest, "order": order,
                             **typed(rule.options)}
    if errors:
        entry["errors"] = {field: ", ".join(msgs) for field, msgs in errors.items()}
    return entry


def cluster_nodes() -> list[str]:
    return sorted(members.read().get("nodelist") or {})


@route("GET /cluster/ha/rules")
def rules_index(ctx: Context, params: dict[str, Any]) -> Any:
    sections, digest = config.read_sections(config.RULES)
    errors = from_rules(sections, cluster_nodes()).errors
    out = []
    for order, rule in enumerate(sections, 1):
        if params.get("type") and rule.type != params["type"]:
            continue
        if params.get("resource") and params["resource"] not in rule.options.get("resources", "").split(","):
            continue
        out.append(rule_entry(rule, order, digest, errors.get(rule.id)))
    return out


@route("GET /cluster/ha/rules/{rule}")
def rule_get(ctx: Context, params: dict[str, Any]) -> Any:
    sections, digest = config.read_sections(config.RULES)
    errors = from_rules(sections, cluster_nodes()).errors
    for order, rule in enumerate(sections, 1):
        if rule.id == params["rule"]:
            return rule_entry(rule, order, digest, errors.get(rule.id))
    raise ApiException(500, f"HA rule '{params['rule']}' does not exist")


def rule_options(params: dict[str, Any], kind: str, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if params.get("resources") is not None:
        resources = sorted(set(filter(None, params["resources"].split(","))))
        if not resources:
            raise HaConfigError(f"{prefix}no resources were specified")
        unmanaged = [r for r in resources if r not in config.resources()]
        if unmanaged:
            raise HaConfigError(f"{prefix}cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
        out["resources"] = ",".join(resources)
    if kind == "node-affinity" and params.get("nodes") is not None:
        nodes = config.parse_node_list(params["nodes"])
        if not nodes:
            raise HaConfigError(f"{prefix}no nodes were specified")
        missing = sorted(set(nodes) - set(cluster_nodes() or [members_local()]))
        if missing:
            raise HaConfigError(f"{prefix}cannot use non-existent node(s) {', '.join(missing)}.")
        out["nodes"] = config.print_node_list(nodes)
    if kind == "node-affinity" and params.get("strict") is not None:
        out["strict"] = flag(params["strict"])
    if kind == "resource-affinity" and params.get("affinity") is not None:
        out["affinity"] = params["affinity"]
    if params.get("disable") is not None:
        out["disable"] = flag(params["disable"])
    if params.get("comment") is not None:
        out["comment"] = params["comment"]
    return out


def members_local() -> str:
    return str(members.read().get("nodename", ""))


def check_feasible(rule: Section, sections: list[Section], prefix: str) -> None:
    errors = from_rules(sections, cluster_nodes()).errors.get(rule.id)
    if errors:
        lines = "".join(f"\n{field}: {', '.join(msgs)}" for field, msgs in errors.items())
        raise HaConfigError(f"{prefix}400 Rule '{rule.id}' is invalid.{lines}")


@route("POST /cluster/ha/rules")
def rule_create(ctx: Context, params: dict[str, Any]) -> Any:
    prefix = "create ha rule failed: "

    def create() -> None:
        kind = params["type"]
        if kind == "node-affinity" and not params.get("nodes"):
            raise HaConfigError(f"{prefix}no nodes were specified")
        with config.domain_lock():
            sections, _ = config.read_sections(config.RULES)
            if any(s.id == params["rule"] for s in sections):
                raise HaConfigError(f"{prefix}HA rule '{params['rule']}' already defined")
            rule = Section(kind, params["rule"], rule_options(params, kind, prefix))
            check_feasible(rule, [*sections, rule], prefix)
            config.write_sections(config.RULES, [*sections, rule])
    ha_call(create)


@route("PUT /cluster/ha/rules/{rule}")
def rule_update(ctx: Context, params: dict[str, Any]) -> Any:
    prefix = "update HA rules failed: "

    def update() -> None:
        with config.domain_lock():
            sections, digest = config.read_sections(config.RULES)
            rule = next((s for s in sections if s.id == params["rule"]), None)
            if rule is None:
                raise HaConfigError(f"{prefix}HA rule '{params['rule']}' does not exist")
            if params.get("digest") and params["digest"] != digest:
                raise HaConfigError(f"{prefix}detected modified configuration - file changed by other user? "
                                    "Try again.")
            for key in filter(None, (params.get("delete") or "").split(",")):
                rule.options.pop(key, None)
            rule.options.update(rule_options(params, rule.type, prefix))
            check_feasible(rule, sections, prefix)
            config.write_sections(config.RULES, sections)
    ha_call(update)


@route("DELETE /cluster/ha/rules/{rule}")
def rule_delete(ctx: Context, params: dict[str, Any]) -> Any:
    def delete() -> None:
        with config.domain_lock():
            sections, _ = config.read_sections(config.RULES)
            kept = [s for s in sections if s.id != params["rule"]]
            if kept != sections:
                config.write_sections(config.RULES, kept)
    ha_call(delete)


# -- status ---------------------------------------------------------------------------------------
@route("GET /cluster/ha/status")
def status_index(ctx: Context, params: dict[str, Any]) -> Any:
    names = ("current", "manager_status", *(("disarm-ha", "arm-ha") if pve9() else ()))
    return [{"name": n} for n in names]


@route("GET /cluster/ha/status/current")
def status_current(ctx: Context, params: dict[str, Any]) -> Any:
    return status.current()


@route("GET /cluster/ha/status/manager_status")
def status_manager(ctx: Context, params: dict[str, Any]) -> Any:
    return status.manager_status_view()


@route("POST /cluster/ha/status/disarm-ha")
def disarm(ctx: Context, params: dict[str, Any]) -> Any:
    ha_call(lambda: config.queue_crm_command(f"disarm-ha {params['resource-mode']}"))


@route("POST /cluster/ha/status/arm-ha")
def arm(ctx: Context, params: dict[str, Any]) -> Any:
    ha_call(lambda: config.queue_crm_command("arm-ha"))
