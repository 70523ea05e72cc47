"""A fake PVE API and a fake SSH runner for testing module decisions without a lab. Each answers
from a small in-memory cluster and records every call, so tests can assert what was (not) done.
Shapes follow the PVE API schema's `returns` and the sample outputs in tests/fixtures/pve/."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

FIXTURES = Path(__file__).parents[1] / "fixtures"
NODE_ADDRESSES = {"pve1": "198.18.0.11", "pve2": "198.18.0.12", "pve3": "198.18.0.13"}
HOSTS = {address: name for name, address in NODE_ADDRESSES.items()}


def module_params(spec: dict[str, dict[str, Any]], **given: Any) -> dict[str, Any]:
    """Module parameters as AnsibleModule hands them over: every option, defaults filled in."""
    unknown = set(given) - set(spec)
    assert not unknown, f"not options of the module: {unknown}"
    return {name: given.get(name, option.get("default")) for name, option in spec.items()}


@dataclass
class FakeCluster:
    """What the fake nodes share: which cluster each is in, and which are online."""

    cluster_of: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(NODE_ADDRESSES))
    online: set[str] = field(default_factory=lambda: set(NODE_ADDRESSES))
    quorate: bool = True
    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    task_exitstatus: str = "OK"
    # storage.cfg as the API shows it: the installer's two storages
    storages: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "local": {"type": "dir", "path": "/var/lib/vz", "content": "iso,vztmpl,backup"},
        "local-lvm": {"type": "lvmthin", "thinpool": "data", "vgname": "pve", "content": "rootdir,images"}})

    major: int = 9
    # guests: type, node, status, config (as GET .../config shows it), HA-managed or not
    guests: dict[int, dict[str, Any]] = field(default_factory=lambda: {
        110: {"type": "qemu", "node": "pve1", "status": "running", "config": {"name": "web110", "memory": 256}},
        111: {"type": "qemu", "node": "pve1", "status": "stopped", "config": {"name": "web111", "memory": 256}},
        200: {"type": "lxc", "node": "pve2", "status": "running", "config": {"hostname": "ct200", "memory": 128}}})
    # HA: resources as GET /cluster/ha/resources lists them (explicit keys), rules (PVE 9), groups (PVE 8),
    # and the state `ha-manager status` shows each resource in (the HA daemons are not faked: tests set it)
    ha_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    ha_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    ha_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    ha_shown: dict[str, str] = field(default_factory=dict)
    ha_node_status: dict[str, str] = field(default_factory=lambda: dict.fromkeys(NODE_ADDRESSES, "online"))
    backup_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # backup archives: {storage: [{volid, vmid, ctime}]}, as GET .../storage/{storage}/content lists them
    archives: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    task_log: list[str] = field(default_factory=lambda: ["...", "TASK OK"])
    # snapshots: {vmid: {name: {description, vmstate}}}, as GET .../snapshot lists them (with `current` last)
    snapshots: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # replication jobs as GET /cluster/replication lists them (id, guest, jobnum, target, ...), and each
    # job's state as GET /nodes/{node}/replication/{id}/status shows it
    replication: dict[str, dict[str, Any]] = field(default_factory=dict)
    replication_status: dict[str, dict[str, Any]] = field(default_factory=dict)

    def form(self, name: str, *nodes: str) -> FakeCluster:
        for node in nodes:
            self.cluster_of[node] = name
        return self

    def changes(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        return [call for call in self.calls if call[1] != "GET"]

    def status(self, node: str) -> list[dict[str, Any]]:
        cluster = self.cluster_of[node]
        if cluster is None:
            return [{"type": "node", "id": f"node/{node}", "name": node, "nodeid": 0, "ip": NODE_ADDRESSES[node],
                     "local": 1, "online": 1, "level": ""}]
        members = sorted(n for n, c in self.cluster_of.items() if c == cluster)
        entries: list[dict[str, Any]] = [{"type": "cluster", "id": "cluster", "name": cluster, "nodes": len(members),
                                          "quorate": int(self.quorate), "version": len(members)}]
        entries += [{"type": "node", "id": f"node/{n}", "name": n, "nodeid": int(n[3:]), "ip": NODE_ADDRESSES[n],
                     "local": int(n == node), "online": int(n in self.online), "level": ""} for n in members]
        return entries


class FakeApi:
    """Stands in for PveApi: `from_params` picks the node by api_host; calls go to the FakeCluster."""

    world: FakeCluster

    def __init__(self, host: str, password: str | None = None) -> None:
        self.host, self.password = host, password
        self.node = HOSTS[host]

    @classmethod
    def from_params(cls, params: dict[str, Any], host: str | None = None) -> FakeApi:
        return cls(host or params["api_host"], params.get("api_password"))

    def get(self, path: str, /, **params: Any) -> Any:
        self.world.calls.append((self.node, "GET", path, params))
        if path == "/cluster/status":
            return self.world.status(self.node)
        if path == "/storage":
            return [{"storage": sid, **opts, "digest": "d" * 40} for sid, opts in self.world.storages.items()]
        if path.startswith("/storage/"):
            return {"storage": path[9:], **self.world.storages[path[9:]], "digest": "d" * 40}
        if path == "/version":
            return {"version": f"{self.world.major}.1.1", "release": f"{self.world.major}.1", "repoid": "0" * 8}
        if path == "/cluster/resources":
            return [{"vmid": v, "id": f"{g['type']}/{v}", **{k: g[k] for k in ("type", "node", "status")},
                     **({"hastate": "started"} if g.get("ha") else {})} for v, g in self.world.guests.items()]
        if path.startswith("/nodes/") and path.endswith("/snapshot"):
            taken = self.world.snapshots.get(int(path.split("/")[4]), {})
            return [*({"name": n, **s} for n, s in taken.items()), {"name": "current", "description": "You are here!"}]
        if path.startswith("/nodes/") and ("/qemu/" in path or "/lxc/" in path):
            guest = self.world.guests[int(path.split("/")[4])]
            if path.endswith("/config"):
                return {**guest["config"], "digest": "c" * 40}
            if path.endswith("/status/current"):
                return {"status": guest["status"], "ha": {"managed": int(bool(guest.get("ha")))}}
        if path.startswith("/cluster/ha/"):
            return self.ha_get(path)
        if path.startswith("/nodes/") and path.endswith("/content"):
            return [a for a in self.world.archives.get(path.split("/")[4], [])
                    if params.get("vmid") is None or a["vmid"] == params["vmid"]]
        if path == "/cluster/backup":
            return [{"id": i, "type": "vzdump", **opts} for i, opts in self.world.backup_jobs.items()]
        if path == "/nodes":
            return [{"node": n, "status": "online" if n in self.world.online else "offline"}
                    for n, c in self.world.cluster_of.items() if c == self.world.cluster_of[self.node]]
        if path == "/cluster/replication":
            return [{"id": i, **job} for i, job in self.world.replication.items()]
        if path.startswith("/nodes/") and "/replication/" in path and path.endswith("/status"):
            return self.world.replication_status.get(path.split("/")[2], {})
        if path == "/cluster/config/join":
            return {"preferred_node": self.node, "nodelist": [
                {"name": self.node, "pve_addr": self.host, "pve_fp": "AB:" * 31 + "AB"}]}
        raise AssertionError(f"the fake API has no GET {path}")

    def post(self, path: str, /, **params: Any) -> Any:
        self.world.calls.append((self.node, "POST", path, params))
        if path == "/cluster/config":
            self.world.cluster_of[self.node] = params["clustername"]
        elif path == "/cluster/config/join":
            self.world.cluster_of[self.node] = self.world.cluster_of[HOSTS[params["hostname"]]]
        elif path == "/storage":
            self.world.storages[params["storage"]] = {k: v for k, v in params.items() if k != "storage"}
            return {"storage": params["storage"], "type": params["type"]}
        elif path.count("/") == 3 and path.split("/")[3] in ("qemu", "lxc"):  # create
            node, kind = path.split("/")[2], path.split("/")[3]
            self.world.guests[int(params["vmid"])] = {"type": kind, "node": node, "status": "stopped", "config": {
                k: v for k, v in params.items() if k != "vmid"}}
        elif path.endswith("/snapshot"):
            self.world.snapshots.setdefault(int(path.split("/")[4]), {})[params["snapname"]] = {
                "description": params.get("description", ""), "vmstate": int(params.get("vmstate", 0))}
        elif path.endswith("/rollback"):
            pass
        elif path.endswith(("/clone", "/template", "/move_disk")):
            self.disk_task(path, params)
        elif "/status/" in path:
            action = path.rsplit("/", 1)[1]
            self.world.guests[int(path.split("/")[4])]["status"] = "running" if action == "start" else "stopped"
        elif path == "/cluster/backup":
            self.world.backup_jobs[params["id"]] = {k: v for k, v in params.items() if k != "id"}
            return None
        elif path == "/cluster/replication":
            guest, jobnum = params["id"].split("-")
            self.world.replication[params["id"]] = {"guest": int(guest), "jobnum": int(jobnum), **{
                k: v for k, v in params.items() if k != "id"}}
            return None
        elif path == "/cluster/ha/resources":
            self.world.ha_resources[params["sid"]] = {k: v for k, v in params.items() if k != "sid"}
            self.world.ha_shown[params["sid"]] = params.get("state", "started")
            return None
        elif path == "/cluster/ha/rules":
            self.world.ha_rules[params["rule"]] = {k: v for k, v in params.items() if k != "rule"}
            return None
        elif path == "/cluster/ha/groups":
            self.world.ha_groups[params["group"]] = {k: v for k, v in params.items() if k != "group"}
            return None
        return f"UPID:{self.node}:0000AAAA:0000BBBB:6740A000:task::root@pam:"

    def disk_task(self, path: str, params: dict[str, Any]) -> None:
        """What clone, template and move_disk leave in the configs (the volume names PVE would give)."""
        vmid = int(path.split("/")[4])
        guest = self.world.guests[vmid]
        config = guest["config"]
        if path.endswith("/template"):
            config["template"] = 1
        elif path.endswith("/clone"):
            newid = int(params["newid"])
            copied = {k: v for k, v in config.items() if k != "template"}
            copied["name"] = params.get("name", f"Copy-of-VM-{config.get('name', vmid)}")
            self.world.guests[newid] = {"type": "qemu", "node": params.get("target", guest["node"]),
                                        "status": "stopped", "config": copied}
        else:
            volid, rest = str(config[params["disk"]]).split(",", 1)
            config[params["disk"]] = f"{params['storage']}:vm-{vmid}-disk-0,{rest}"
            if not params.get("delete"):
                config["unused0"] = volid

    def put(self, path: str, /, **params: Any) -> Any:
        self.world.calls.append((self.node, "PUT", path, params))
        if path.endswith("/resize"):
            config = self.world.guests[int(path.split("/")[4])]["config"]
            volid = str(config[params["disk"]]).split(",", 1)[0]
            config[params["disk"]] = f"{volid},size={params['size']}"
            return f"UPID:{self.node}:0000AAAA:0000BBBB:6740A000:resize::root@pam:"
        changes = {k: v for k, v in params.items() if k not in ("digest", "delete", "type")}
        if "/snapshot/" in path:
            self.world.snapshots[int(path.split("/")[4])][path.split("/")[6]].update(changes)
            return
        if path.endswith("/config"):
            config = self.world.guests[int(path.split("/")[4])]["config"]
            config.update(changes)
            for key in filter(None, str(params.get("delete") or "").split(",")):
                config.pop(key, None)
            return
        if path.startswith("/cluster/backup/"):
            self.world.backup_jobs[path.rsplit("/", 1)[1]].update(changes)
            return
        if path.startswith("/cluster/replication/"):
            self.world.replication[path.rsplit("/", 1)[1]].update(changes)
            return
        if path.startswith("/cluster/ha/"):
            table = self.ha_table(path)
            entry = table[path.rsplit("/", 1)[1]]
            for key in filter(None, str(params.get("delete", "")).split(",")):
                entry.pop(key, None)
            entry.update(changes)
            if path.startswith("/cluster/ha/resources/") and "state" in changes:
                self.world.ha_shown[path.rsplit("/", 1)[1]] = changes["state"]
            return
        self.world.storages[path[9:]].update(changes)

    def delete(self, path: str, /, **params: Any) -> Any:
        self.world.calls.append((self.node, "DELETE", path, params))
        if path.startswith("/cluster/ha/"):
            del self.ha_table(path)[path.rsplit("/", 1)[1]]
            return
        if path.startswith("/cluster/backup/"):
            del self.world.backup_jobs[path.rsplit("/", 1)[1]]
            return
        if path.startswith("/cluster/replication/"):
            del self.world.replication[path.rsplit("/", 1)[1]]
            return
        if path.startswith("/nodes/") and "/snapshot/" in path:
            del self.world.snapshots[int(path.split("/")[4])][path.rsplit("/", 1)[1]]
            return f"UPID:{self.node}:0000AAAA:0000BBBB:6740A000:qmdelsnapshot::root@pam:"
        if path.startswith("/nodes/"):
            del self.world.guests[int(path.rsplit("/", 1)[1])]
            return f"UPID:{self.node}:0000AAAA:0000BBBB:6740A000:qmdestroy::root@pam:"
        if path.startswith("/storage/"):
            del self.world.storages[path[9:]]
            return
        self.world.cluster_of[path.rsplit("/", 1)[1]] = None

    def major_version(self) -> int:
        return self.world.major

    def ha_table(self, path: str) -> dict[str, dict[str, Any]]:
        kind = path.split("/")[3]
        return {"resources": self.world.ha_resources, "rules": self.world.ha_rules,
                "groups": self.world.ha_groups}[kind]

    def ha_get(self, path: str) -> Any:
        if path == "/cluster/ha/resources":
            return [{"sid": sid, "type": sid[:2], "digest": "h" * 40, **opts}
                    for sid, opts in self.world.ha_resources.items()]
        if path == "/cluster/ha/rules":
            if self.world.major < 9:
                raise AssertionError("PVE 8 has no /cluster/ha/rules")
            return [{"rule": name, "digest": "r" * 40, **opts} for name, opts in self.world.ha_rules.items()]
        if path == "/cluster/ha/groups":
            if self.world.major >= 9:
                raise PveError("Failed to GET '/cluster/ha/groups': 500 cannot index groups: ha groups have been "
                               "migrated to rules")
            return [{"group": name, "type": "group", "digest": "g" * 40, **opts}
                    for name, opts in self.world.ha_groups.items()]
        if path == "/cluster/ha/status/current":
            return [{"id": "quorum", "type": "quorum", "node": self.node, "status": "OK", "quorate": 1},
                    *({"id": f"service:{sid}", "type": "service", "sid": sid, "node": "pve1", "state": shown}
                      for sid, shown in self.world.ha_shown.items())]
        if path == "/cluster/ha/status/manager_status":
            return {"manager_status": {"master_node": "pve1", "node_status": self.world.ha_node_status},
                    "quorum": {"node": self.node, "quorate": 1}}
        raise AssertionError(f"the fake API has no GET {path}")

    def wait_for_task(self, node: str, upid: str, timeout: float = 300, reconnect: bool = False) -> list[str]:
        if self.world.task_exitstatus != "OK":
            raise PveError(f"Task {upid} on node '{node}' failed: {self.world.task_exitstatus}")
        return list(self.world.task_log)


class FakeSsh:
    """Stands in for SshRunner: answers `pvecm status`, `cat corosync.conf`, `corosync-cmapctl`, and
    records every command; writes to corosync.conf change what `cat` answers next."""

    def __init__(self, status: str = "pvecm-status-3nodes.txt", conf: str = "corosync-pve9-3nodes-2links.conf",
                 corosync_takes_new_config: bool = True) -> None:
        self.status_text = (FIXTURES / status).read_text()
        self.conf = (FIXTURES / conf).read_text()
        self.takes_new = corosync_takes_new_config
        self.commands: list[str] = []
        self.host = "198.18.0.11"
        self._pending = ""
        self.expected: int | None = None

    def run(self, command: str, stdin: str | None = None, timeout: float = 300) -> tuple[int, str, str]:
        self.commands.append(command)
        if command == "pvecm status":
            return 0, self.status_text, ""
        if command == "cat > /etc/pve/corosync.conf.new":
            self._pending = stdin or ""
            return 0, "", ""
        if command == "cat /etc/pve/corosync.conf":
            return 0, self.conf, ""
        if command.startswith("cp ") and "mv " in command:
            self.conf = self._pending
            return 0, "", ""
        if command == "corosync-cmapctl -g totem.config_version":
            version = self.conf.split("config_version: ")[1].split()[0] if self.takes_new else "0"
            return 0, f"totem.config_version (u64) = {version}\n", ""
        if command.startswith("pvecm expected "):
            self.expected = int(command.rsplit(maxsplit=1)[-1])
            return 0, "", ""
        raise AssertionError(f"the fake SSH runner does not know '{command}'")

    def check(self, command: str, stdin: str | None = None, timeout: float = 300) -> str:
        rc, out, err = self.run(command, stdin, timeout)
        assert rc == 0, err
        return out

    def writes(self) -> list[str]:
        return [c for c in self.commands if c.startswith(("cp ", "cat >", "pvecm expected"))]

    def close(self) -> None:
        pass
