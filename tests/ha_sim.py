"""pve-ha-manager's test simulator, rebuilt to drive pvelab's own HA stack: a cluster of simulated
nodes (power, network, shutdown requests), pmxcfs-like locks (120 s), watchdogs (60 s), the HA
status files, and per node pvelab's real `Crm` and `Lrm` with a `DaemonEnv` that keeps
pve-ha-manager's TestEnv clock: each daemon iteration starts at the hardware's time and ends one
second later, the hardware runs rounds of at least 20 s, a command list entry every fifth round.
The resource agent's decisions are pvelab's (`agent.run_request`) on a simulated guest.

What comes out is compared with each scenario's log.expect (tests/ha_scenarios.py): every service's
last state and node, every node's last state, and the sequence of service state changes, all read
from the manager status the CRM master writes."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from pvelab.pve.ha import agent
from pvelab.pve.ha import config as ha_config
from pvelab.pve.ha.crm import Crm
from pvelab.pve.ha.lrm import Lrm
from pvelab.pve.ha.manager import Manager
from pvelab.pve.ha.rules import CompiledRules, from_groups, from_rules, group_nofailback
from tests.ha_scenarios import Expected, Scenario, expected_from

LOCK_TIMEOUT = 120
WATCHDOG_TIMEOUT = 60
MAX_SIM_TIME = 10000
DEFAULT_NODE_MAXCPU, DEFAULT_NODE_MAXMEM = 24.0, 131072 * 1024**2  # Sim::Hardware's, for dynamic figures


class Watchdog:
    def __init__(self, hardware: Hardware, node: str, env: SimEnv) -> None:
        self.hardware, self.env = hardware, env
        hardware.watchdog_counter += 1
        self.id = f"WD:{node}:{hardware.watchdog_counter}"
        hardware.watchdogs[self.id] = {"node": node, "update_time": env.now()}

    def update(self) -> None:
        wd = self.hardware.watchdogs.get(self.id)
        if wd is not None:
            wd["update_time"] = self.env.now()

    def close(self) -> None:
        self.hardware.watchdogs.pop(self.id, None)


class AgentRun:
    """A resource agent's run, done at once (the simulator runs no workers): its exit code."""

    def __init__(self, code: int) -> None:
        self.code = code

    def poll(self) -> int:
        return self.code


class SimGuest:
    """A guest of the simulated cluster, as pve-ha-manager's Sim::Resources keep it: running or not on
    each node, moved by changing its service's node, refusing while locked. A `fa:` guest (VirtFail)
    fails as its ID's digits say: its start, its migration that many times, its stop for good, or
    only on one node."""

    def __init__(self, hardware: Hardware, env: SimEnv, sid: str) -> None:
        self.hardware, self.env, self.sid, self.node = hardware, env, sid, env.node

    def failures(self) -> tuple[int, int, int, int]:
        """(start failures, migrate failures, cannot stop, only on node N) of a `fa:` guest."""
        if not self.sid.startswith("fa:"):
            return 0, 0, 0, 0
        digits = [int(c) for c in self.sid.split(":")[1][1:6]] + [0] * 5
        return digits[0], digits[1], digits[2], digits[4]

    def failing(self, what: str, count: int, only_on: int) -> bool:
        tries = self.hardware.fail_tries.setdefault(what, {})
        if not only_on or self.node == f"node{only_on}":
            tries[self.sid] = tries.get(self.sid, 0) + 1
            if count >= tries[self.sid]:
                return True
        tries[self.sid] = 0
        return False

    def locked(self, action: str) -> bool:
        lock = self.hardware.service_locks.get(self.sid)
        if lock:
            self.env.log("err", f"service '{self.sid}' locked ({lock}), unable to {action}!")
        return bool(lock)

    def running(self) -> bool:
        return bool(self.hardware.service_status.setdefault(self.node, {}).get(self.sid))

    def task(self, action: str, params: dict[str, Any]) -> bool:
        start_failures, _migrate, _stop, only_on = self.failures()
        if self.failing("start", start_failures, only_on) or self.locked("start"):
            return False
        self.env.sleep(2)
        self.hardware.service_status.setdefault(self.node, {})[self.sid] = 1
        return True

    def shutdown(self, timeout: Any) -> None:
        if self.failures()[2] or self.locked("shutdown"):
            return
        self.env.sleep(2)
        self.hardware.service_status.setdefault(self.node, {})[self.sid] = 0

    def migrate(self, target: str, online: bool) -> bool:
        _start, migrate_failures, _stop, only_on = self.failures()
        action = "migrate" if online else "relocate"
        self.env.log("info", f"service {self.sid} - start {action} to node '{target}'")
        if self.failing("migrate", migrate_failures, only_on) or self.locked(action):
            return False
        if not online and self.running():
            self.env.log("info", f"stopping service {self.sid} (relocate)")
            self.shutdown(None)
            self.env.log("info", f"service status {self.sid} stopped")
        else:
            self.env.sleep(2)
        self.hardware.service_config[self.sid]["node"] = target
        self.env.log("info", f"service {self.sid} - end {action} to node '{target}'")
        self.hardware.service_status.setdefault(self.node, {}).pop(self.sid, None)
        return True


class ManagerEnv:
    """The Env the CRM master's Manager sees, on the simulated cluster."""

    def __init__(self, hardware: Hardware, env: SimEnv) -> None:
        self.hardware, self.env, self.nodename = hardware, env, env.node

    def now(self) -> float:
        return self.env.now()

    def log(self, level: str, message: str) -> None:
        self.env.log(level, message)

    def node_info(self) -> dict[str, bool]:
        return self.hardware.node_info()[0]

    def lrm_status(self, node: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.hardware.lrm_status.get(node))

    def service_config(self) -> dict[str, dict[str, str]]:
        return self.hardware.read_service_config()

    def compiled_rules(self, service_config: dict[str, dict[str, str]], nodes: list[str]) -> CompiledRules:
        return self.hardware.compiled_rules(nodes)

    def crm_commands(self) -> list[str]:
        commands, self.hardware.crm_commands = self.hardware.crm_commands, []
        return commands

    def set_requested_state(self, sid: str, state: str) -> None:
        self.hardware.service_config[sid]["state"] = state

    def get_agent_lock(self, node: str) -> bool:
        return self.env.get_lock(f"ha_agent_{node}_lock")

    def steal_service(self, sid: str, source: str, target: str) -> None:
        self.hardware.service_config[sid]["node"] = target

    def remove_locks(self, sid: str, node: str, locks: tuple[str, ...]) -> str | None:
        lock = self.hardware.service_locks.get(sid)
        if lock in locks:
            del self.hardware.service_locks[sid]
            return lock
        return None

    def write_manager_status(self, status: dict[str, Any]) -> None:
        self.hardware.manager_status = copy.deepcopy(status)

    def crs_settings(self) -> dict[str, str]:
        return self.env.datacenter_option("crs")

    def node_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        return self.hardware.node_stats(mode, self.service_stats("dynamic") if mode == "dynamic" else {})

    def service_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        return self.hardware.service_stats(mode, self.env)


class SimEnv:
    """One daemon's DaemonEnv: pve-ha-manager's TestEnv clock and the simulated cluster's state."""

    def __init__(self, hardware: Hardware, node: str, daemon: str) -> None:
        self.hardware, self.node, self.daemon = hardware, node, daemon
        self.cur_time = hardware.time
        self.loop_delay = 0.0

    # the TestEnv clock
    def loop_start(self) -> None:
        self.loop_delay = 0.0
        self.cur_time = max(self.cur_time, self.hardware.time)

    def loop_end(self) -> None:
        self.loop_delay = 0.0
        self.cur_time += 1

    def now(self) -> float:
        return self.cur_time

    def sleep(self, seconds: float) -> None:
        self.loop_delay += seconds

    def sleep_until(self, deadline: float, stop: Any) -> None:
        self.loop_delay += max(0.0, deadline - (self.cur_time + self.loop_delay))

    def log(self, level: str, message: str) -> None:
        self.hardware.log(level[:4], int(self.cur_time), f"{self.node}/{self.daemon}", message)

    # the cluster
    def quorate(self) -> bool:
        info, quorate = self.hardware.node_info()
        return bool(info.get(self.node)) and quorate

    def manager_status(self) -> dict[str, Any]:
        return copy.deepcopy(self.hardware.manager_status)

    def write_lrm_status(self, status: dict[str, Any]) -> None:
        self.hardware.lrm_status[self.node] = copy.deepcopy(status)

    def resources(self) -> dict[str, dict[str, str]]:
        return copy.deepcopy(self.hardware.service_config)

    def crm_commands_queued(self) -> bool:
        return bool(self.hardware.crm_commands)

    def service_config(self) -> dict[str, dict[str, str]]:
        return self.hardware.read_service_config()

    def datacenter_option(self, name: str) -> dict[str, str]:
        value = self.hardware.datacenter.get(name)
        if isinstance(value, dict):
            return {k: str(v) for k, v in value.items()}
        return {"_": str(value)} if value is not None else {}

    def get_lock(self, name: str) -> bool:
        self.loop_delay += 1
        return self.hardware.get_lock(self, name)

    def release_lock(self, name: str) -> bool:
        return self.hardware.release_lock(self, name)

    def open_watchdog(self) -> Watchdog:
        return Watchdog(self.hardware, self.node, self)

    def manager(self, status: dict[str, Any]) -> Manager:
        return Manager(ManagerEnv(self.hardware, self), status)

    def start_agent(self, command: list[str]) -> AgentRun:
        sid, request = command[3], command[4]
        params = dict(arg[2:].split("=", 1) for arg in command[5:] if arg.startswith("--") and "=" in arg)
        conf = self.hardware.read_service_config().get(sid)
        code = agent.run_request(sid, request, params.get("target"), params.get("timeout"), self.node, conf,
                                 SimGuest(self.hardware, self, sid), self.log)
        return AgentRun(code)

    def shutdown_jobs(self) -> tuple[bool, bool]:
        shutdown = self.hardware.hw[self.node].get("shutdown")
        return bool(shutdown), shutdown == "reboot"


@dataclass
class NodeDaemons:
    crm_env: SimEnv
    lrm_env: SimEnv
    crm: Crm | None = None
    lrm: Lrm | None = None
    crm_stop: bool = False
    lrm_restart: bool = False


class Hardware:
    def __init__(self, scenario: Scenario) -> None:
        self.time = 0
        self.nodes = sorted(scenario.hardware)
        self.hw = {n: {"power": s.get("power", "off"), "network": s.get("network", "off"), "shutdown": None}
                   for n, s in scenario.hardware.items()}
        self.locks: dict[str, dict[str, Any]] = {}
        self.manager_status = copy.deepcopy(scenario.manager_status)
        self.lrm_status: dict[str, dict[str, Any]] = {}
        self.service_config = copy.deepcopy(scenario.services)
        self.initial_services = copy.deepcopy(scenario.services)
        self.service_status: dict[str, dict[str, int]] = {}
        self.crm_commands: list[str] = []
        self.watchdogs: dict[str, dict[str, Any]] = {}
        self.watchdog_counter = 0
        self.service_locks: dict[str, str] = {}
        self.fail_tries: dict[str, dict[str, int]] = {}
        self.files = scenario.files
        self.hardware_status = scenario.hardware
        self.static_stats = json.loads(scenario.files.get("static_service_stats") or "{}")
        self.dynamic_stats = json.loads(scenario.files.get("dynamic_service_stats") or "{}")
        self.datacenter = json.loads(scenario.files.get("datacenter.cfg") or "{}")
        self.lines: list[tuple[str, int, str, str]] = []
        self.daemons = {n: NodeDaemons(SimEnv(self, n, "crm"), SimEnv(self, n, "lrm")) for n in self.nodes}

    # -- the cluster's state -----------------------------------------------------------------------
    def log(self, level: str, when: int, who: str, message: str) -> None:
        self.lines.append((level, when, who, message))

    def node_info(self) -> tuple[dict[str, bool], bool]:
        online = {n: self.hw[n]["power"] == "on" and self.hw[n]["network"] == "on" for n in self.nodes}
        quorate = sum(online.values()) > len(self.nodes) // 2
        return ({n: v and quorate for n, v in online.items()}, quorate)

    def read_service_config(self) -> dict[str, dict[str, str]]:
        out = {}
        for sid, conf in self.service_config.items():
            entry = {k: str(v) for k, v in conf.items()}
            entry["type"], entry["name"] = sid.split(":")
            entry["state"] = entry.get("state") or "disabled"
            if entry["state"] == "enabled":
                entry["state"] = "started"
            for key in ("failback", "max_restart", "max_relocate"):
                entry.setdefault(key, "1")
            if group_nofailback(entry, self.groups()):
                entry["failback"] = "0"
            out[sid] = entry
        return out

    def service_stats(self, mode: str, env: SimEnv) -> dict[str, dict[str, Any]]:
        """Sim::Hardware's get_*_service_stats: every configured service with its node and state, and
        its usage from the scenario's static_service_stats (and dynamic_service_stats)."""
        usage: dict[str, dict[str, Any]] = {}
        for stats in (self.static_stats, self.dynamic_stats)[:2 if mode == "dynamic" else 1]:
            for sid, given in stats.items():
                usage.setdefault(sid, {}).update(given)
        out: dict[str, dict[str, Any]] = {}
        for sid, conf in self.read_service_config().items():
            state = conf["state"]
            figures: dict[str, Any] = usage.get(sid, {}) if mode != "basic" else {}
            out[sid] = {"node": conf["node"], "state": state, "running": state == "started", "usage": figures}
            if mode == "dynamic" and figures.get("cpu", 0) > figures.get("maxcpu", 0):
                env.log("warning", f"overcommitted cpu on '{sid}'")
            if mode == "dynamic" and figures.get("mem", 0) > figures.get("maxmem", 0):
                env.log("warning", f"overcommitted mem on '{sid}'")
        return out

    def node_stats(self, mode: str, dynamic: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Sim::Hardware's get_static_node_stats (hardware_status's maxcpu and maxmem) and
        get_dynamic_node_stats (plus the load of the services each node's LRM reports running)."""
        # PVE 8's simulator names a node's figures `cpus` and `memory`
        renamed = {"cpus": "maxcpu", "memory": "maxmem"}
        out: dict[str, dict[str, Any]] = {
            n: {renamed.get(k, k): v for k, v in self.hardware_status[n].items()
                if renamed.get(k, k) in ("maxcpu", "maxmem", "cpu", "mem")} for n in self.nodes}
        if mode != "dynamic":
            return {n: {k: v for k, v in s.items() if k in ("maxcpu", "maxmem")} for n, s in out.items()}
        for figures in out.values():
            figures.setdefault("maxcpu", DEFAULT_NODE_MAXCPU)
            figures.setdefault("cpu", 0.0)
            figures.setdefault("maxmem", DEFAULT_NODE_MAXMEM)
            figures.setdefault("mem", 0)
        for sid, conf in self.service_config.items():
            node = conf["node"]
            if node in out and self.service_status.get(node, {}).get(sid):
                out[node]["cpu"] += dynamic[sid]["usage"]["cpu"]
                out[node]["mem"] += dynamic[sid]["usage"]["mem"]
        return out

    def compiled_rules(self, nodes: list[str]) -> CompiledRules:
        if "rules_config" in self.files:
            sections = [s for s in ha_config.parse_sections(self.files["rules_config"])
                        if s.type in ("node-affinity", "resource-affinity")]
            return from_rules(sections, nodes)
        return from_groups(self.service_config, self.groups())

    def groups(self) -> dict[str, dict[str, str]]:
        return {s.id: dict(s.options) for s in ha_config.parse_sections(self.files.get("groups", ""))
                if s.type == "group"}

    def get_lock(self, env: SimEnv, name: str) -> bool:
        """Sim::Env's sim_get_lock: renewed by its holder within 120 s, taken by anyone after."""
        if not env.quorate():
            return False
        held, now = self.locks.get(name), env.now()
        if held is not None and now - held["time"] <= LOCK_TIMEOUT:
            if held["node"] != env.node:
                return False
            held["time"] = now
            return True
        env.log("info", f"got lock '{name}'")
        self.locks[name] = {"node": env.node, "time": now}
        return True

    def release_lock(self, env: SimEnv, name: str) -> bool:
        if not env.quorate():
            return False
        held = self.locks.get(name)
        if held is None:
            return False
        if env.now() - held["time"] > LOCK_TIMEOUT:
            return True
        if held["node"] == env.node:
            del self.locks[name]
            return True
        return False

    def watchdog_ok(self, node: str) -> bool:
        expired = [i for i, wd in self.watchdogs.items()
                   if wd["node"] == node and self.time - wd["update_time"] > WATCHDOG_TIMEOUT]
        for i in expired:
            del self.watchdogs[i]
        return not expired

    # -- commands ------------------------------------------------------------------------------------
    def power(self, node: str, action: str, logid: str) -> None:
        self.log("info", self.time, logid, f"execute power {node} {action}")
        d = self.daemons[node]
        if self.hw[node]["power"] != action:
            if action == "on":
                d.crm_env, d.lrm_env = SimEnv(self, node, "crm"), SimEnv(self, node, "lrm")
                d.crm = d.crm or Crm(node, d.crm_env)  # type: ignore[arg-type]
                d.lrm = d.lrm or Lrm(node, d.lrm_env)  # type: ignore[arg-type]
                d.lrm_restart = False
            else:
                if d.crm is not None:
                    d.crm_env.log("info", "killed by poweroff")
                    d.crm = None
                if d.lrm is not None:
                    d.lrm_env.log("info", "killed by poweroff")
                    d.lrm = None
                    d.lrm_restart = False
                self.watchdogs = {i: wd for i, wd in self.watchdogs.items() if wd["node"] != node}
                self.service_status[node] = {}
        self.hw[node].update(power=action, network=action, shutdown=None)

    def command(self, text: str, logid: str = "cmdlist") -> None:
        words = text.split()
        cmd, obj, action, params = words[0], words[1], words[2] if len(words) > 2 else "", words[3:]
        if cmd == "power":
            self.power(obj, action, logid)
            return
        self.log("info", self.time, logid, f"execute {text}")
        if cmd == "network":
            self.hw[obj]["network"] = action
        elif cmd in ("reboot", "shutdown"):
            self.hw[obj]["shutdown"] = cmd
            if (lrm := self.daemons[obj].lrm) is not None:
                lrm.request_shutdown()
        elif cmd == "restart-lrm":
            if (lrm := self.daemons[obj].lrm) is not None:
                self.daemons[obj].lrm_restart = True
                lrm.request_shutdown()
        elif cmd == "crm":
            d = self.daemons.get(obj)
            if action == "stop" and d is not None and d.crm is not None:
                d.crm_stop = True
                d.crm.request_shutdown()
            elif action == "start" and d is not None and d.crm is None:
                d.crm = Crm(obj, d.crm_env)  # type: ignore[arg-type]
            elif action in ("enable-node-maintenance", "disable-node-maintenance"):
                self.crm_commands.append(f"{action} {obj}")
            elif action == "disarm-ha":
                self.crm_commands.append(f"disarm-ha {params[0] if params else ''}".strip())
            elif action == "arm-ha":
                self.crm_commands.append("arm-ha")
        elif cmd == "service":
            self.service_command(obj, action, params)

    def service_command(self, sid: str, action: str, params: list[str]) -> None:
        if action in ("started", "disabled", "stopped", "ignored"):
            self.service_config.setdefault(sid, {"node": self.nodes[0]})["state"] = action
        elif action in ("migrate", "relocate"):
            self.crm_commands.append(f"{action} {sid} {params[0]}")
        elif action == "stop":
            self.crm_commands.append(f"stop {sid} {params[0]}")
        elif action == "add":
            self.service_config[sid] = {"node": params[0], "state": params[1] if len(params) > 1 else "started"}
            if len(params) > 2 and params[2] == "1":
                self.service_status.setdefault(params[0], {})[sid] = 1
        elif action == "delete":
            self.service_config.pop(sid, None)
            self.static_stats.pop(sid, None)
        elif action in ("set-static-stats", "set-dynamic-stats"):  # cores, and MiB turned into bytes
            stats = self.static_stats if action == "set-static-stats" else self.dynamic_stats
            for name, value in zip(params[::2], params[1::2], strict=True):
                stats.setdefault(sid, {})[name] = float(value) if "cpu" in name else int(value) * 1024**2
        elif action == "manual-migrate":
            self.service_config[sid]["node"] = params[0]
        elif action == "lock":
            self.service_locks[sid] = params[0] if params else "backup"
        elif action == "unlock":
            self.service_locks.pop(sid, None)

    # -- the run -------------------------------------------------------------------------------------
    def iterate(self, node: str, daemon: str) -> None:
        d = self.daemons[node]
        env = d.crm_env if daemon == "crm" else d.lrm_env
        instance = d.crm if daemon == "crm" else d.lrm
        if instance is None:
            return
        env.loop_start()
        alive = instance.iteration()
        env.loop_end()
        self.time = max(self.time, int(env.cur_time))
        if alive:
            return
        env.log("info", "exit (loop end)")
        shutdown = self.hw[node].get("shutdown")
        if daemon == "crm":
            d.crm = None
            if shutdown == "reboot":
                self.power(node, "off", "reboot")
                self.power(node, "on", "reboot")
            elif shutdown == "shutdown":
                self.power(node, "off", "shutdown")
            d.crm_stop = False
        else:
            d.lrm = None
            if d.lrm_restart:
                d.lrm_restart = False
                d.lrm = Lrm(node, d.lrm_env)  # type: ignore[arg-type]
            elif shutdown in ("reboot", "shutdown") and d.crm is not None:
                d.crm_stop = True
                d.crm.request_shutdown()

    def run(self, commands: list[list[str]]) -> Expected:
        self.log("info", 0, "hardware", "starting simulation")
        pending = list(commands)
        last_command, next_command_at, loop_count = 0, 0, 0
        while True:
            start = self.time
            looptime = max(20, len(self.nodes) * 2)
            for node in self.nodes:
                self.iterate(node, "crm")
                self.iterate(node, "lrm")
                for other in self.nodes:
                    if not self.watchdog_ok(other):
                        self.power(other, "off", "watchdog")
                        self.log("info", self.time, "hardware", f"server '{other}' stopped by poweroff (watchdog)")
            self.time = max(self.time, start + looptime)
            if self.time > MAX_SIM_TIME:
                break
            for node in self.nodes:
                for env in (self.daemons[node].crm_env, self.daemons[node].lrm_env):
                    env.cur_time = max(env.cur_time, self.time)
            if self.time < next_command_at:
                continue
            if loop_count % 5 == 0:
                entry = pending.pop(0) if pending else None
                if entry is None and self.time - last_command > 500:
                    break
                for text in entry or []:
                    last_command = self.time
                    words = text.split()
                    if words[0] == "delay":
                        self.log("info", self.time, "cmdlist", f"execute {text}")
                        next_command_at = self.time + int(words[1])
                    elif words[0] == "skip-round":
                        self.log("info", self.time, "cmdlist", f"execute {text}")
                    else:
                        self.command(text)
            loop_count += 1
        self.log("info", self.time, "hardware", "exit simulation - done")
        # read back as log.expect is read: pvelab's CRM logs pve-ha-manager's lines
        text = "\n".join(f"{level:<5} {when:5d} {who:>12}: {message}" for level, when, who, message in self.lines)
        return expected_from(text, self.initial_services)


def simulate(scenario: Scenario) -> Expected:
    return Hardware(scenario).run(scenario.commands)
