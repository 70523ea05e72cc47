"""How the grader reads one student's cluster: API GETs and read-only SSH commands, each with a
timeout, each saved as evidence (request, answer, time; secrets never). A node that does not
answer makes the probe `Unreachable` - a different result from a wrong answer."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvelab.grade.roster import Student
from pvelab.pve.apiclient import ApiError, PinnedClient

READ_ONLY_COMMANDS = ("pvecm status", "pvecm nodes", "corosync-cfgtool -s", "cat /etc/default/pve-ha-manager",
                      "cat /etc/pve/corosync.conf", "ha-manager status", "hostname", "true")
UNREACHABLE_STATUSES = (595, 596)  # no connection / not the certificate first seen (PinnedClient)


class Unreachable(Exception):
    """The cluster (or the node a probe needs) did not answer within the timeout."""


@dataclass
class Evidence:
    kind: str  # api | ssh | ipmi
    target: str
    request: str
    started: float
    seconds: float
    ok: bool
    answer: Any

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "request": self.request,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "seconds": round(self.seconds, 3), "ok": self.ok, "answer": self.answer}


@dataclass
class ClusterAccess:
    """One student's cluster as the grader sees it. `api_client` and `ssh_runner` are injectable
    (tests give fakes); by default HTTPS to port 8006 and the ssh binary, both with `timeout`."""

    student: Student
    timeout: float = 10.0
    api_client: Callable[[str], Any] | None = None
    ssh_runner: Callable[[str, str, float], tuple[int, str, str]] | None = None
    ipmi_runner: Callable[[list[str], str, float], tuple[int, str, str]] | None = None
    drills: bool = False  # power actions allowed (pvelab grade --drills); otherwise status only
    evidence: list[Evidence] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)  # node -> certificate fingerprint seen
    identities: dict[str, str] = field(default_factory=dict)  # what probes saw that names a cluster: kind -> value
    _clients: dict[str, Any] = field(default_factory=dict)
    # (channel, node) that did not connect once: later requests skip it at once, so a node that is off
    # costs one timeout per channel, not one per check
    _silent: set[tuple[str, str]] = field(default_factory=set)
    _major: list[int | None] = field(default_factory=list)  # the PVE major, once read
    # one SSH connection per node for the whole run (ssh's ControlMaster): each login costs the node a
    # key exchange and a logind session, and a class's clusters may share the grader's CPUs
    _ssh_control: list[str] = field(default_factory=list)

    def node_names(self) -> list[str]:
        return [n.name for n in self.student.nodes]

    def address(self, node: str) -> str:
        return next(n.address for n in self.student.nodes if n.name == node)

    # -- API ---------------------------------------------------------------------------------------
    def api(self, path: str, node: str | None = None, **params: Any) -> Any:
        """GET `path` through `node` (default: the first node that answers)."""
        nodes = [node] if node else self.node_names()
        last: Exception | None = None
        for name in nodes:
            if ("api", name) in self._silent:
                last = Unreachable(f"{name} did not answer the API earlier in this run")
                continue
            started = time.time()
            try:
                client = self._client(name)
                if hasattr(client, "timeout"):
                    client.timeout = self.timeout  # the current check's
                answer = client.request("GET", path, params or None)
            except (ApiError, OSError, TimeoutError) as exc:
                status = getattr(exc, "status", 595)
                self.evidence.append(Evidence("api", name, f"GET {path}", started, time.time() - started, False,
                                              str(exc)))
                if status in UNREACHABLE_STATUSES or isinstance(exc, OSError | TimeoutError):
                    if isinstance(exc, OSError | TimeoutError) or isinstance(exc.__cause__, OSError | TimeoutError):
                        self._silent.add(("api", name))  # no connection (a proxied 595 is the node answering)
                    last = exc
                    continue
                raise
            self.evidence.append(Evidence("api", name, f"GET {path}", started, time.time() - started, True, answer))
            return answer
        raise Unreachable(f"no node answered GET {path}: {last}")

    def write_refused(self, path: str, node: str | None = None) -> tuple[bool, str]:
        """Whether the grader's own credentials are refused a write (PVE's 403), and what was answered.
        The one non-GET call the grader makes, and only on a path whose handler changes nothing had it
        been allowed (a guest that does not exist): it proves the grader cannot change a student's lab."""
        name = node or self.node_names()[0]
        try:
            self._client(name).request("POST", path)
        except ApiError as exc:
            return exc.status == 403, f"{exc.status} {exc}"
        return False, "allowed"

    def pve_major(self) -> int | None:
        """The PVE major the cluster reports (GET /version once per run); None if it names none."""
        if not self._major:
            major = str(self.api("/version").get("version", "")).partition(".")[0]
            self._major.append(int(major) if major.isdigit() else None)
        return self._major[0]

    def _client(self, node: str) -> Any:
        if node not in self._clients:
            if self.api_client is not None:
                self._clients[node] = self.api_client(node)
            else:
                self._clients[node] = self._login(node)
        return self._clients[node]

    def _login(self, node: str) -> PinnedClient:
        access = self.student.access
        client = PinnedClient(self.address(node), None, int(access.get("api_port", 8006)), self.timeout)
        try:
            if access.get("api_token_secret"):
                client.token = f"{access['api_token_id']}={access['api_token_secret']}"
                client.request("GET", "/version")
            else:
                client.login(str(access.get("api_user", "root@pam")), str(access["api_password"]))
        except ApiError as exc:
            if exc.status in UNREACHABLE_STATUSES:
                raise
            raise ApiError(exc.status, f"the grader cannot log in to {node}: {exc}") from exc
        self.fingerprints[node] = client.seen_fingerprint
        return client

    # -- SSH (read-only commands only) -------------------------------------------------------------
    def ssh(self, node: str, command: str) -> tuple[int, str, str]:
        if command not in READ_ONLY_COMMANDS:
            raise ValueError(f"the grader runs only read-only commands, not {command!r}")
        if ("ssh", node) in self._silent:
            raise Unreachable(f"{node} did not answer SSH earlier in this run")
        started = time.time()
        try:
            code, out, err = (self.ssh_runner or self._ssh)(self.address(node), command, self.timeout)
        except (subprocess.TimeoutExpired, OSError) as exc:
            self.evidence.append(Evidence("ssh", node, command, started, time.time() - started, False, str(exc)))
            self._silent.add(("ssh", node))
            raise Unreachable(f"{node} did not answer SSH ({command}) within {self.timeout:.0f} s") from exc
        self.evidence.append(Evidence("ssh", node, command, started, time.time() - started, code == 0,
                                      {"rc": code, "stdout": out, "stderr": err}))
        if code == 255:  # ssh's own failure: no connection, or the key was refused
            self._silent.add(("ssh", node))
            raise Unreachable(f"SSH to {node} failed: {err.strip()}")
        return code, out, err

    def ssh_any(self, command: str) -> tuple[int, str, str]:
        """`command` on the first node that answers SSH (a cluster-wide view such as pvecm status)."""
        last: Unreachable | None = None
        for node in self.node_names():
            try:
                return self.ssh(node, command)
            except Unreachable as exc:
                last = exc
        raise Unreachable(f"no node answered SSH ({command}): {last}")

    def _ssh(self, address: str, command: str, timeout: float) -> tuple[int, str, str]:
        access = self.student.access
        if not self._ssh_control:
            self._ssh_control.append(tempfile.mkdtemp(prefix="pvelab-grade-ssh-"))
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(timeout)}", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self._ssh_control[0]}/%C", "-o", "ControlPersist=60"]
        if access.get("ssh_key_file"):
            argv += ["-i", str(access["ssh_key_file"])]
        if access.get("ssh_known_hosts_file"):
            argv += ["-o", f"UserKnownHostsFile={access['ssh_known_hosts_file']}", "-o", "StrictHostKeyChecking=yes"]
        argv += [f"{access.get('ssh_user', 'root')}@{address}", command]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 2, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        """End the SSH connections this run opened (each master by its control socket) and remove them."""
        if not self._ssh_control:
            return
        control = self._ssh_control.pop()
        for node in self.student.nodes:
            subprocess.run(["ssh", "-o", f"ControlPath={control}/%C", "-O", "exit",
                            f"{self.student.access.get('ssh_user', 'root')}@{node.address}"],
                           capture_output=True, timeout=10, check=False)
        shutil.rmtree(control, ignore_errors=True)

    # -- IPMI (status queries only) ---------------------------------------------------------------------
    def ipmi(self, node: str, command: str, cipher_suite: int = 3) -> tuple[int, str, str]:
        """ipmitool over lanplus to the node's BMC; the password goes through the environment, never argv."""
        allowed = ("chassis status", "power status", *(("power off", "power on") if self.drills else ()))
        if command not in allowed:
            raise ValueError(f"the grader asks BMCs only for status, not {command!r} (drills need --drills)")
        bmc = next(n.bmc for n in self.student.nodes if n.name == node)
        access = self.student.access
        argv = ["ipmitool", "-I", "lanplus", "-C", str(cipher_suite), "-H", str(bmc), "-p",
                str(access.get("bmc_port", 623)), "-U", str(access.get("bmc_user", "admin")), "-E", *command.split()]
        started = time.time()
        try:
            proc = (self.ipmi_runner or run_ipmitool)(argv, str(access.get("bmc_password", "")), self.timeout)
        except (subprocess.TimeoutExpired, OSError) as exc:
            self.evidence.append(Evidence("ipmi", node, command, started, time.time() - started, False, str(exc)))
            return 1, "", f"no answer within {self.timeout:.0f} s"
        self.evidence.append(Evidence("ipmi", node, command, started, time.time() - started, proc[0] == 0,
                                      {"rc": proc[0], "stdout": proc[1], "stderr": proc[2]}))
        return proc


def run_ipmitool(argv: list[str], password: str, timeout: float) -> tuple[int, str, str]:
    proc = subprocess.run(argv, env={"IPMI_PASSWORD": password, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr
