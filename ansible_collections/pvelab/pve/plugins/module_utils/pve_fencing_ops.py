"""The fencing a PVE node really has: its watchdog (watchdog-mux's module, /etc/default/pve-ha-manager)
and its BMC, checked from the controller over IPMI (pve_fencing), and deliberate power actions for
drills (pve_bmc_power). PVE's HA fences by watchdog self-reset; the BMC is what a teacher (or the
twin's watchdog) uses to cut power."""

from __future__ import annotations

import re
from typing import Any

from ansible.module_utils.basic import env_fallback

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner

# The BMC options pve_fencing and pve_bmc_power share.
BMC_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "bmc_address": {"type": "str"},
    "bmc_port": {"type": "int", "default": 623},
    "bmc_user": {"type": "str", "default": "admin"},
    "bmc_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PVE_BMC_PASSWORD"])},
}
DEFAULTS_FILE = "/etc/default/pve-ha-manager"
MODULE_LINE = re.compile(r"^#?\s*WATCHDOG_MODULE=.*$", re.M)
CIPHER_SUITE = 3
POWER_ACTIONS = {"on": "chassis_control_power_up", "off": "chassis_control_power_down",
                 "reset": "chassis_control_hard_reset", "cycle": "chassis_control_power_cycle"}


def ipmi_session(address: str, user: str, password: str, port: int = 623) -> Any:
    """An established python-ipmi session over lanplus (its ipmitool interface)."""
    try:
        import pyipmi
        import pyipmi.interfaces
    except ImportError as exc:
        raise PveError(f"the python-ipmi library is required on the controller ({exc}) - pip install "
                       "python-ipmi (and ipmitool)") from exc
    interface = pyipmi.interfaces.create_interface("ipmitool", interface_type="lanplus", cipher=CIPHER_SUITE)
    ipmi = pyipmi.create_connection(interface)
    ipmi.session.set_session_type_rmcp(address, port)
    ipmi.session.set_auth_type_user(user, password)
    try:
        ipmi.session.establish()
    except Exception as exc:  # noqa: BLE001 - pyipmi raises its own and ipmitool's errors
        raise PveError(f"the BMC at {address} did not open an IPMI session for '{user}': {exc} - check its address "
                       "and network, then the user and password (bmc_user, bmc_password)") from exc
    ipmi.target = pyipmi.Target(ipmb_address=0x20)
    return ipmi


def desired_defaults(text: str, module: str | None) -> str:
    """The defaults file with WATCHDOG_MODULE set (or commented out for PVE's default, softdog)."""
    line = f"WATCHDOG_MODULE={module}" if module else "#WATCHDOG_MODULE=ipmi_watchdog"
    if MODULE_LINE.search(text):
        return MODULE_LINE.sub(line, text, count=1)
    return text.rstrip("\n") + ("\n" if text else "") + line + "\n"


def ensure_fencing(p: dict[str, Any], check_mode: bool, session: Any = ipmi_session) -> dict[str, Any]:
    result: dict[str, Any] = {"changed": False}
    if p.get("bmc_address"):
        ipmi = session(p["bmc_address"], p["bmc_user"], p["bmc_password"] or "", p["bmc_port"])
        status = ipmi.get_chassis_status()
        result["bmc"] = {"address": p["bmc_address"], "power_on": bool(status.power_on)}
    if p.get("watchdog_module") is not None:
        ssh = SshRunner.from_params(p, p["host"])
        code, text, err = ssh.run(f"cat {DEFAULTS_FILE}")
        if code != 0:
            raise PveError(f"cannot read {DEFAULTS_FILE} on {p['api_host']}: {err.strip()} - is it a PVE node?")
        module = p["watchdog_module"] if p["watchdog_module"] not in ("", "softdog") else None
        wanted = desired_defaults(text, module)
        result["watchdog_module"] = module or "softdog"
        if wanted != text:
            result.update(changed=True, diff={"before": text, "after": wanted},
                          warnings=["watchdog-mux loads the module only when /dev/watchdog does not exist yet: "
                                    "the new module takes effect after the node's next reboot"])
            if check_mode:
                return {**result, "msg": f"{DEFAULTS_FILE} would set the watchdog module to {module or 'softdog'}"}
            code, _out, err = ssh.run(f"cat > {DEFAULTS_FILE}", stdin=wanted)
            if code != 0:
                raise PveError(f"cannot write {DEFAULTS_FILE} on {p['api_host']}: {err.strip()}")
    return result


def bmc_power(p: dict[str, Any], check_mode: bool, session: Any = ipmi_session) -> dict[str, Any]:
    action = p["action"]
    if action != "status" and not p["confirm"]:
        raise PveError(f"power {action} through the BMC at {p['bmc_address']} cuts the node's power without a "
                       "shutdown: set confirm: true to do it on purpose")
    ipmi = session(p["bmc_address"], p["bmc_user"], p["bmc_password"] or "", p["bmc_port"])
    before = bool(ipmi.get_chassis_status().power_on)
    if action == "status":
        return {"changed": False, "power_on": before}
    after = {"on": True, "off": False}.get(action, True)
    changed = action in ("reset", "cycle") or before != after
    result = {"changed": changed, "power_on": after, "diff": {"before": {"power_on": before},
                                                              "after": {"power_on": after}}}
    if check_mode or not changed:
        return {**result, **({"msg": f"the BMC would power {action}"} if check_mode and changed else {})}
    getattr(ipmi, POWER_ACTIONS[action])()
    return result
