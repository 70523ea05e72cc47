"""The PVE API client shared by every module: proxmoxer underneath, PVE's error text on top,
password (ticket) or token auth, certificate checks, and a task waiter."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_poll import poll

try:
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException

    PROXMOXER_ERROR = None
except ImportError as exc:  # reported when a module connects, with the fix
    PROXMOXER_ERROR = exc

API_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "api_host": {"type": "str", "required": True},
    "api_port": {"type": "int", "default": 8006},
    "api_user": {"type": "str", "default": "root@pam", "fallback": (env_fallback, ["PVE_USER"])},
    "api_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PVE_PASSWORD"])},
    "api_token_id": {"type": "str", "no_log": False, "fallback": (env_fallback, ["PVE_TOKEN_ID"])},
    "api_token_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PVE_TOKEN_SECRET"])},
    "validate_certs": {"type": "bool", "default": False},
    "ca_file": {"type": "path"},
    "api_timeout": {"type": "int", "default": 30},
}
API_REQUIRED_TOGETHER = [("api_token_id", "api_token_secret")]
API_REQUIRED_ONE_OF = [("api_password", "api_token_id")]
TASK_POLL = 0.5


class PveApi:
    def __init__(self, host: str, port: int = 8006, user: str = "root@pam", password: str | None = None,
                 token_id: str | None = None, token_secret: str | None = None, validate_certs: bool = False,
                 ca_file: str | None = None, timeout: int = 30) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.token_id, self.token_secret = token_id, token_secret
        self.verify: bool | str = ca_file or validate_certs
        self.timeout = timeout
        self._api: Any = None

    @classmethod
    def from_params(cls, params: dict[str, Any], host: str | None = None) -> PveApi:
        return cls(host or params["api_host"], params["api_port"], params["api_user"], params.get("api_password"),
                   params.get("api_token_id"), params.get("api_token_secret"), params["validate_certs"],
                   params.get("ca_file"), params["api_timeout"])

    def connect(self) -> Any:
        if PROXMOXER_ERROR is not None:
            raise PveError(f"the proxmoxer Python library is required on the controller ({PROXMOXER_ERROR}) — "
                           "pip install proxmoxer")
        auth: dict[str, Any] = {"token_name": self.token_id, "token_value": self.token_secret} if self.token_id \
            else {"password": self.password}
        try:
            self._api = ProxmoxAPI(self.host, port=self.port, user=self.user, verify_ssl=self.verify,
                                   timeout=self.timeout, **auth)
        except AuthenticationError as exc:
            raise PveError(f"Failed to log in to '{self.host}' as '{self.user}': authentication failure — "
                           "check api_password (or the API token)") from exc
        except Exception as exc:  # noqa: BLE001 - requests raises many connection types
            raise PveError(f"Cannot reach the PVE API at https://{self.host}:{self.port}: {exc} — is the node "
                           "up and pveproxy running? (validate_certs/ca_file if the certificate is the issue)") from exc
        return self._api

    @property
    def api(self) -> Any:
        return self._api if self._api is not None else self.connect()

    def call(self, method: str, path: str, /, **params: Any) -> Any:
        """One API call; PVE's error text (and parameter errors) become a PveError."""
        params = {k: (int(v) if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
        try:
            return getattr(self.api(path.strip("/")), method.lower())(**params)
        except ResourceException as exc:
            detail = (exc.content or "").strip()
            errors = f" {exc.errors}" if exc.errors else ""
            raise PveError(f"Failed to {method} '{path}' on node '{self.host}': {exc.status_code} "
                           f"{detail}{errors}".rstrip(), ) from exc
        except PveError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection drops mid-call
            raise PveError(f"Failed to {method} '{path}' on node '{self.host}': {exc}") from exc

    def get(self, path: str, /, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, /, **params: Any) -> Any:
        return self.call("POST", path, **params)

    def put(self, path: str, /, **params: Any) -> Any:
        return self.call("PUT", path, **params)

    def delete(self, path: str, /, **params: Any) -> Any:
        return self.call("DELETE", path, **params)

    def major_version(self) -> int:
        return major_of(self.get("/version"))

    def wait_for_task(self, node: str, upid: str, timeout: float = 300, reconnect: bool = False) -> list[str]:
        """Poll a task until it stops; return its log, or raise with the log's end if it failed.
        `WARNINGS: n` is success with warnings, as PVE's GUI and other clients treat it.
        `reconnect`: the node drops sessions while it works (a cluster join), so log in again.
        The task is asked for on the node that runs it, which its UPID names: not always the node the
        call was for (an upload for another node's storage runs on the node that took the upload)."""
        last_error = [""]
        node = upid_node(upid) or node

        def status() -> dict[str, Any] | None:
            try:
                answer = self.get(f"/nodes/{node}/tasks/{upid}/status")
            except PveError as exc:
                if not reconnect:
                    raise
                last_error[0] = str(exc)
                try:
                    self.connect()
                except PveError as again:
                    last_error[0] = str(again)
                return None
            return answer if answer["status"] == "stopped" else None

        final = poll(status, timeout, TASK_POLL)
        if final is None:
            raise PveError(f"Task {upid} on node '{node}' did not finish within {timeout:.0f} s"
                           + (f" (last error: {last_error[0]})" if last_error[0] else ""))
        log = [entry["t"] for entry in self.get(f"/nodes/{node}/tasks/{upid}/log", limit=0)]
        if not task_succeeded(final.get("exitstatus")):
            tail = "\n".join(log[-10:])
            raise PveError(f"Task {upid} on node '{node}' failed: {final.get('exitstatus')}\n{tail}")
        return log


def upid_node(upid: str) -> str | None:
    """The node a task runs on, from its UPID (UPID:node:pid:pstart:starttime:type:id:user:)."""
    parts = upid.split(":")
    return parts[1] if len(parts) >= 8 and parts[0] == "UPID" and parts[1] else None


def task_succeeded(exitstatus: Any) -> bool:
    """PVE ends a task with "OK", "WARNINGS: n" (done, with warnings in its log) or an error text."""
    return exitstatus == "OK" or str(exitstatus).startswith("WARNINGS")


def major_of(version: dict[str, Any]) -> int:
    """The major of a `GET /version` answer (`release` is "9.1" on PVE 9.1)."""
    return int(str(version["release"]).split(".", maxsplit=1)[0])


def cluster_status(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`GET /cluster/status` split once for every module: {cluster: the cluster entry or None,
    nodes: the node entries, local_node: the answering node's name}."""
    nodes = [e for e in entries if e.get("type") == "node"]
    return {"cluster": next((e for e in entries if e.get("type") == "cluster"), None), "nodes": nodes,
            "local_node": next((e["name"] for e in nodes if e.get("local")), None)}
