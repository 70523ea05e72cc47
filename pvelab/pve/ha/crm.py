"""pve-ha-crm: the Cluster Resource Manager daemon. Every node runs one; the one holding the cluster's
`ha_manager_lock` is master and runs the Manager every 10 s, with a watchdog connection that resets
the node if the daemon hangs. No resources configured, no master."""

from __future__ import annotations

from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.ha.env import DaemonEnv, WatchdogClient, run_daemon
from pvelab.pve.ha.manager import Manager, count_fenced_services

ROUND = 10.0
IDLE_WAIT = 5.0
MAX_IDLE_ROUNDS = 90  # ~15 min without resources: release the lock and the watchdog
LOCK_NAME = "ha_manager_lock"


class Crm:
    def __init__(self, node: str, env: DaemonEnv | None = None) -> None:
        self.node = node
        self.env = env or DaemonEnv(node)  # the node it runs on, or a simulated one
        self.state = "wait_for_quorum"
        self.manager: Manager | None = None
        self.watchdog: WatchdogClient | None = None
        self.idle_rounds = 0
        self.shutdown_requested = False
        self.disarmed = False  # the HA stack is fully disarmed: no watchdog for the master

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.env.log("info", f"status change {self.state} => {state}")
        self.state = state
        self.manager = self.env.manager(self.env.manager_status()) if state == "master" else None

    def get_manager_lock(self) -> bool:
        if not self.env.get_lock(LOCK_NAME):
            return False
        if self.watchdog is not None:
            self.watchdog.update()
        elif not self.disarmed:
            status = self.env.manager_status()
            if (status.get("disarm") or {}).get("state") == "disarmed":
                self.env.log("info", "taking over as disarmed master, skipping watchdog")
                self.disarmed = True
            else:
                self.watchdog = self.env.open_watchdog()
        return True

    def release_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
            self.watchdog = None

    def healthy(self, status: dict[str, Any]) -> bool:
        return self.env.quorate() and not count_fenced_services(status.get("service_status") or {}, self.node)

    def can_get_active(self, allow_no_service: bool = False) -> bool:
        status = self.env.manager_status()
        if not self.healthy(status):
            return False
        if allow_no_service or self.env.resources():
            return True
        master = status.get("master_node")
        if master and (status.get("node_status") or {}).get(master) == "online" and master != self.node:
            return False
        requests = status.get("node_request") or {}
        in_maintenance = [n for n, s in (status.get("node_status") or {}).items() if s == "maintenance"]
        return bool(any(not (requests.get(n) or {}).get("maintenance") for n in in_maintenance)
                    or self.env.crm_commands_queued() or status.get("service_status")
                    or status.get("disarm"))

    def allowed_to_get_idle(self) -> bool:
        status = self.env.manager_status()
        if not self.healthy(status) or status.get("disarm"):
            return False
        return not self.env.resources() and not status.get("service_status")

    def transition(self) -> None:
        if self.state in ("wait_for_quorum", "slave"):
            if self.can_get_active():
                self.set_state("master" if self.get_manager_lock() else "slave")
            elif self.state == "slave":
                self.set_state("wait_for_quorum")
        elif self.state == "lost_manager_lock":
            if self.can_get_active(True) and self.get_manager_lock():
                self.set_state("master")
        elif self.state == "master":
            if not self.get_manager_lock():
                self.set_state("lost_manager_lock")
            elif self.allowed_to_get_idle():
                self.idle_rounds += 1
                if self.idle_rounds > MAX_IDLE_ROUNDS:
                    self.idle_rounds = 0
                    self.env.log("info", f"cluster had no service configured for {MAX_IDLE_ROUNDS} rounds, going "
                                 "idle.")
                    self.env.release_lock(LOCK_NAME)
                    self.release_watchdog()
                    self.set_state("wait_for_quorum")
            else:
                self.idle_rounds = 0

    def iteration(self) -> bool:
        """One pass of the daemon loop; False when it should exit."""
        self.transition()
        if self.state == "wait_for_quorum":
            if self.shutdown_requested:
                return False
            self.env.sleep(IDLE_WAIT)
        elif self.state == "master":
            start = self.env.now()
            if self.shutdown_requested:
                self.release_watchdog()
                self.env.log("info", "voluntary release CRM lock")
                if not self.env.release_lock(LOCK_NAME):
                    self.env.log("notice", "CRM lock release failed, let the lock timeout")
                return False
            try:
                assert self.manager is not None
                self.manager.manage()
                if self.manager.all_lrms_disarmed:
                    if not self.disarmed:
                        self.env.log("info", "HA stack fully disarmed, releasing CRM watchdog")
                        self.release_watchdog()
                        self.disarmed = True
                elif self.disarmed:
                    self.env.log("info", "re-arming HA stack")
                    self.disarmed = False  # the next lock renewal opens the watchdog again
            except Exception as exc:  # noqa: BLE001 - a bad round is logged; the next one tries again
                self.env.log("err", f"got unexpected error - {exc}")
            self.env.sleep_until(start + ROUND, lambda: self.shutdown_requested)
        elif self.state == "lost_manager_lock":
            self.release_watchdog()
            if self.shutdown_requested:
                return False
            self.set_state("wait_for_quorum")
        elif self.shutdown_requested:  # slave
            return False
        return True

    def request_shutdown(self, *_: Any) -> None:
        if not self.shutdown_requested:
            self.env.log("info", "server received shutdown request")
        self.shutdown_requested = True


def main() -> int:
    return run_daemon(Crm(nodename()))


if __name__ == "__main__":
    raise SystemExit(main())
