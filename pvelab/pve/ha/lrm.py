"""pve-ha-lrm: the Local Resource Manager daemon. It holds its node's agent lock and a watchdog
connection while the node has active HA services, runs the CRM's requests for them (start, stop,
migrate, relocate) as worker processes, and reports the results in its lrm_status every 10 s.
Losing the lock (quorum) means no more watchdog updates: the node is reset 60 s later."""

from __future__ import annotations

import sys
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.ha.env import DaemonEnv, WatchdogClient, run_daemon
from pvelab.pve.ha.manager import ERROR, ETRY_AGAIN, SUCCESS, count_active_services, count_fenced_services

ROUND = 10.0
IDLE_WAIT = 5.0
MAX_IDLE_ROUNDS = 60  # ~10 min without services: release the lock and the watchdog
WORKER_WAIT = 8.0  # a round waits this long for its workers before reporting


class Worker:
    def __init__(self, sid: str, uid: str | None, state: str, params: dict[str, Any] | None = None) -> None:
        self.sid, self.state, self.params = sid, state, params or {}
        self.uid = uid  # None: a stop job of a node shutdown
        self.proc: Any = None  # the running agent: poll() answers its exit code once it ended
        self.start_tries = 0


class Lrm:
    def __init__(self, node: str, env: DaemonEnv | None = None) -> None:
        self.node = node
        self.env = env or DaemonEnv(node)  # the node it runs on, or a simulated one
        self.lock_name = f"ha_agent_{node}_lock"
        self.state = "wait_for_agent_lock"
        self.state_since = self.env.now()
        self.mode = "active"
        self.results: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, Worker] = {}
        self.restart_tries: dict[str, int] = {}
        self.service_status: dict[str, dict[str, Any]] = {}
        self.node_status = "unknown"
        self.watchdog: WatchdogClient | None = None
        self.idle_rounds = 0
        self.shutdown_requested = 0.0
        self.shutdown_errors = 0
        self.wrote_status = False

    # -- status ------------------------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        if state != self.state:
            self.env.log("info", f"status change {self.state} => {state}")
            self.state, self.state_since = state, self.env.now()

    def write_status(self) -> bool:
        if not self.env.quorate():
            return False
        try:
            self.env.write_lrm_status({"state": self.state, "mode": self.mode, "results": self.results,
                                       "timestamp": int(self.env.now())})
        except OSError as exc:
            self.env.log("err", f"unable to write lrm status file - {exc}")
            return False
        return True

    def read_manager_status(self) -> bool:
        status = self.env.manager_status()
        self.service_status = status.get("service_status") or {}
        self.node_status = (status.get("node_status") or {}).get(self.node, "unknown")
        if not self.shutdown_requested:
            if ((status.get("node_request") or {}).get(self.node) or {}).get("maintenance"):
                self.mode = "maintenance"
            elif status.get("disarm"):
                self.mode = "disarm"
            elif self.mode in ("maintenance", "disarm"):
                self.mode = "active"
        return True

    def fence_requested(self) -> bool:
        return bool(count_fenced_services(self.service_status, self.node)) or self.node_status == "fence"

    def active_count(self) -> int:
        return count_active_services(self.service_status, self.node)

    def has_local_services(self) -> bool:
        return any(sd.get("node") == self.node for sd in self.service_status.values())

    # -- lock and watchdog ---------------------------------------------------------------------------
    def get_agent_lock(self) -> bool:
        if not self.env.get_lock(self.lock_name):
            return False
        if self.watchdog is not None:
            self.watchdog.update()
        else:
            self.watchdog = self.env.open_watchdog()
        return True

    def give_up_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
            self.watchdog = None

    def release(self) -> None:
        self.env.release_lock(self.lock_name)
        self.give_up_watchdog()

    # -- the daemon loop -----------------------------------------------------------------------------
    def transition(self) -> None:
        fence = self.fence_requested()
        if self.state in ("wait_for_agent_lock", "lost_agent_lock"):
            wanted = self.state == "lost_agent_lock" or (self.mode != "disarm" and self.active_count())
            if wanted and not fence and self.env.quorate() and self.get_agent_lock():
                self.set_state("active")
        elif self.state == "active":
            if fence:
                self.env.log("err", "node needs to be fenced - releasing agent_lock")
                self.set_state("lost_agent_lock")
            elif not self.get_agent_lock():
                self.set_state("lost_agent_lock")
            elif self.mode == "maintenance":
                self.set_state("maintenance")
            elif self.mode == "disarm" and not self.run_workers():
                self.env.log("info", "HA disarm requested, releasing agent lock and watchdog")
                self.release()
                self.set_state("wait_for_agent_lock")
            elif not self.has_local_services() and not self.run_workers():
                self.idle_rounds += 1
                if self.idle_rounds > MAX_IDLE_ROUNDS:
                    self.env.log("info", f"node had no service configured for {MAX_IDLE_ROUNDS} rounds, going idle.")
                    self.release()
                    self.set_state("wait_for_agent_lock")
                    self.idle_rounds = 0
            else:
                self.idle_rounds = 0
        elif self.state == "maintenance":
            if fence:
                self.env.log("err", "node needs to be fenced during maintenance mode - releasing agent_lock")
                self.set_state("lost_agent_lock")
            elif self.active_count() or self.run_workers():
                if not self.get_agent_lock():
                    self.set_state("lost_agent_lock")
            elif self.mode != "maintenance":
                self.set_state("active" if self.get_agent_lock() else "lost_agent_lock")

    def iteration(self) -> bool:
        if not self.wrote_status:
            if not self.write_status():
                self.env.sleep(IDLE_WAIT)
                return not self.shutdown_requested
            self.wrote_status = True
        self.read_manager_status()
        self.transition()
        if self.state == "wait_for_agent_lock":
            if self.shutdown_requested:
                return False
            self.write_status()
            self.env.sleep(IDLE_WAIT)
        elif self.state == "active":
            return self.active_round()
        elif self.state == "lost_agent_lock":
            return self.lost_lock_round()
        elif self.state == "maintenance":
            start = self.env.now()
            leave = False
            if not self.active_count() and not self.run_workers():
                self.give_up_watchdog()
                leave = bool(self.shutdown_requested)
                self.env.release_lock(self.lock_name)
            if not leave:
                self.manage_resources()
            self.write_status()
            if leave:
                return False
            self.env.sleep_until(start + IDLE_WAIT, lambda: False)
        return True

    def active_round(self) -> bool:
        start = self.env.now()
        leave = False
        try:
            if self.shutdown_requested:
                if self.mode == "restart":
                    if not self.active_count() and not self.run_workers():
                        self.give_up_watchdog()
                        self.env.release_lock(self.lock_name)
                        leave = True
                elif not self.run_workers():
                    if not self.shutdown_errors:
                        self.release()
                    leave = True
            else:
                self.manage_resources()
        except Exception as exc:  # noqa: BLE001 - a bad round is logged; the next one tries again
            self.env.log("err", f"got unexpected error - {exc}")
        self.write_status()
        if leave:
            return False
        self.env.sleep_until(start + ROUND, lambda: False)
        return True

    def lost_lock_round(self) -> bool:
        if self.shutdown_requested:
            count = self.active_count()
            if not count:
                self.give_up_watchdog()
                return False
            self.env.log("err", f"got shutdown request in state 'lost_agent_lock' - detected {count} running "
                         "services")
            if self.mode == "restart" and self.env.now() - self.state_since > 90:
                self.env.log("err", "lost agent lock and restart request for over 90 seconds - giving up!")
                return False
        self.env.sleep(IDLE_WAIT)
        return True

    # -- jobs ----------------------------------------------------------------------------------------
    def manage_resources(self) -> int:
        for sid in list(self.restart_tries):
            if sid not in self.service_status:
                del self.restart_tries[sid]
        for sid, sd in self.service_status.items():
            if sd.get("node") != self.node or not sd.get("uid"):
                continue
            if sd.get("state") in (None, "recovery", "freeze", "request_start"):
                continue
            self.queue(sid, sd["uid"], sd["state"], {"target": sd.get("target"), "timeout": sd.get("timeout")})
        return self.run_workers()

    def queue(self, sid: str, uid: str | None, state: str, params: dict[str, Any] | None = None) -> None:
        if state != "stopped" and uid and uid in self.results:
            return  # each request runs once; `stopped` is re-checked every round
        worker = self.workers.get(sid)
        if worker is not None and worker.proc is not None:
            return
        self.workers[sid] = Worker(sid, uid, state, params or {})

    def run_workers(self) -> int:
        """Start queued jobs (at most max_workers at once) and wait up to 8 s for them; jobs left."""
        start = self.env.now()
        limit = int(self.env.datacenter_option("max_workers").get("_", "4") or 4)
        while self.env.now() - start <= WORKER_WAIT:
            running = self.check_workers()
            waiting = sorted((w for w in self.workers.values() if w.proc is None),
                             key=lambda w: (-w.start_tries, w.sid))
            for worker in waiting:
                worker.start_tries += 1
                if running >= limit:
                    continue
                worker.proc = self.env.start_agent(agent_command(worker))
                running += 1
            if not running:
                break
            self.env.sleep(1)
        return len(self.workers)

    def check_workers(self) -> int:
        running = 0
        for sid, worker in list(self.workers.items()):
            if worker.proc is None:
                continue
            code = worker.proc.poll()
            if code is None:
                running += 1
                continue
            del self.workers[sid]
            if code < 0:
                self.env.log("err", f"resource agent {sid} finished - got signal {-code}")
                code = -1
            if worker.uid is None:
                self.shutdown_errors += code != 0
            else:
                self.finished(worker, code)
        return running

    def finished(self, worker: Worker, code: int) -> None:
        code = self.exit_code_policy(worker.sid, worker.state, code)
        if code == ETRY_AGAIN:
            return
        assert worker.uid is not None
        self.results[worker.uid] = {"sid": worker.sid, "state": worker.state, "exit_code": code}
        valid = {sd.get("uid") for sd in self.service_status.values()}
        self.results = {uid: r for uid, r in self.results.items() if uid in valid}

    def exit_code_policy(self, sid: str, state: str, code: int) -> int:
        """max_restart: a failed start is retried locally before the CRM hears of it."""
        if state != "started":
            return code
        if code == SUCCESS:
            self.restart_tries[sid] = 0
            return code
        if code != ERROR:
            return code
        tries = self.restart_tries.get(sid, 0)
        max_restart = int(self.env.service_config().get(sid, {}).get("max_restart", "0"))
        if tries >= max_restart:
            self.env.log("err", f"unable to start service {sid} on local node after {tries} retries")
            self.restart_tries[sid] = 0
            return ERROR
        self.restart_tries[sid] = tries + 1
        self.env.log("warning", f"restart policy: retry number {tries + 1} for service '{sid}'")
        return ETRY_AGAIN

    # -- shutdown ------------------------------------------------------------------------------------
    def request_shutdown(self, *_: Any) -> None:
        if self.shutdown_requested:
            return
        shutdown, reboot = self.env.shutdown_jobs()
        policy = self.env.datacenter_option("ha").get("shutdown_policy", "conditional")
        if shutdown:
            self.env.log("info", f"got shutdown request with shutdown policy '{policy}'")
        freeze = {"conditional": reboot, "freeze": True, "failover": False}.get(policy, reboot)
        maintenance = policy == "migrate"
        if shutdown and not maintenance:  # stop every local service, whatever the policy
            for sid, sd in self.service_status.items():
                if sd.get("node") == self.node:
                    self.queue(sid, None, "request_stop")
        kind = "reboot" if reboot else "shutdown"
        if shutdown and self.mode == "maintenance":
            self.env.log("info", f"{kind} LRM, ignore maintenance policy, already in maintenance mode" if maintenance
                         else f"{kind} LRM, ignore {policy} policy as manual maintenance mode is enabled")
        elif shutdown and maintenance:
            self.env.log("info", f"{kind} LRM, doing maintenance, removing this node from active list")
            self.mode = "maintenance"
        elif shutdown and freeze:
            self.env.log("info", f"{kind} LRM, stop and freeze all services")
            self.mode = "restart"
        elif shutdown:
            self.env.log("info", "shutdown LRM, stop all services")
            self.mode = "shutdown"
        elif self.mode == "maintenance":
            self.env.log("info", "Restarting LRM in maintenance mode may be delayed until all services are moved")
        else:
            self.env.log("info", "restart LRM, freeze all services")
            self.mode = "restart"
        self.shutdown_requested = self.env.now()
        if not self.write_status():
            self.env.log("err", "unable to update lrm status file - not quorate?")


def agent_command(worker: Worker) -> list[str]:
    params = [f"--{k}={v}" for k, v in sorted(worker.params.items()) if v is not None]
    return [sys.executable, "-m", "pvelab.pve.ha.agent", worker.sid, worker.state, *params]


def main() -> int:
    return run_daemon(Lrm(nodename()))


if __name__ == "__main__":
    raise SystemExit(main())
