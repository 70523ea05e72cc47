"""One SSH runner over paramiko, for what only a PVE node's shell can do (pvecm, corosync tools,
/etc/pve edits). Host keys are checked against a known_hosts file unless told otherwise."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

try:
    import paramiko

    PARAMIKO_ERROR = None
except ImportError as exc:
    PARAMIKO_ERROR = exc

SSH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "ssh_user": {"type": "str", "default": "root"},
    "ssh_port": {"type": "int", "default": 22},
    "ssh_key_file": {"type": "path", "fallback": (env_fallback, ["PVE_SSH_KEY_FILE"])},
    "ssh_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PVE_SSH_PASSWORD"])},
    "ssh_known_hosts_file": {"type": "path"},
    "ssh_host_key_policy": {"type": "str", "default": "reject", "choices": ["reject", "accept-new", "ignore"]},
}


class SshRunner:
    def __init__(self, host: str, user: str = "root", port: int = 22, key_file: str | None = None,
                 password: str | None = None, known_hosts_file: str | None = None,
                 host_key_policy: str = "reject", timeout: float = 30) -> None:
        self.host, self.user, self.port = host, user, port
        self.key_file, self.password = key_file, password
        self.known_hosts_file, self.host_key_policy = known_hosts_file, host_key_policy
        self.timeout = timeout
        self._client: Any = None

    @classmethod
    def from_params(cls, params: dict[str, Any], host: str) -> SshRunner:
        return cls(host, params["ssh_user"], params["ssh_port"], params.get("ssh_key_file"),
                   params.get("ssh_password"), params.get("ssh_known_hosts_file"), params["ssh_host_key_policy"])

    def connect(self) -> Any:
        if PARAMIKO_ERROR is not None:
            raise PveError(f"the paramiko Python library is required on the controller ({PARAMIKO_ERROR}) — "
                           "pip install paramiko")
        client = paramiko.SSHClient()
        if self.known_hosts_file:
            client.load_host_keys(self.known_hosts_file)
        else:
            client.load_system_host_keys()
        policy = {"reject": paramiko.RejectPolicy, "accept-new": paramiko.AutoAddPolicy,
                  "ignore": paramiko.WarningPolicy}[self.host_key_policy]
        client.set_missing_host_key_policy(policy())
        try:
            client.connect(self.host, port=self.port, username=self.user, key_filename=self.key_file,
                           password=self.password, timeout=self.timeout, allow_agent=False,
                           look_for_keys=self.key_file is None and self.password is None)
        except paramiko.AuthenticationException as exc:
            raise PveError(f"SSH login to {self.user}@{self.host} failed: {exc} — check ssh_key_file or "
                           "ssh_password") from exc
        except paramiko.SSHException as exc:
            raise PveError(f"SSH to {self.host} failed: {exc} — if the host key is unknown, add it to "
                           "ssh_known_hosts_file or set ssh_host_key_policy") from exc
        except OSError as exc:
            raise PveError(f"Cannot reach {self.host}:{self.port} over SSH: {exc} — is the node up?") from exc
        self._client = client
        return client

    def run(self, command: str, stdin: str | None = None, timeout: float = 300) -> tuple[int, str, str]:
        client = self._client or self.connect()
        chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
        if stdin is not None:
            chan_in.write(stdin)
            chan_in.channel.shutdown_write()
        out = chan_out.read().decode(errors="replace")
        err = chan_err.read().decode(errors="replace")
        return chan_out.channel.recv_exit_status(), out, err

    def check(self, command: str, stdin: str | None = None, timeout: float = 300) -> str:
        rc, out, err = self.run(command, stdin, timeout)
        if rc != 0:
            raise PveError(f"'{command}' failed on node '{self.host}' (exit {rc}): {(err or out).strip()}")
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
