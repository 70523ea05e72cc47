"""The BMC of each node: OpenIPMI's ipmi_sim on the node's management address (IPMI over LAN).

ipmi_sim answers RMCP+ (lanplus) and keeps the System Event Log; power requests go to its
chassis_control program, which is `python -m pvelab.twin.chassis`, which asks the supervisor
to act on the node. ipmi_sim here does not implement Get Channel Cipher Suites, so clients
should name cipher suite 3 (`ipmitool -C 3`); without it ipmitool waits ~10 s before falling back.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvelab.twin.spec import BMC_PORT, BMC_USER, NodeSpec

CIPHER_SUITE = 3
WATCHDOG_SENSOR = 0  # sensor 0 of the BMC is its watchdog (type 0x23, "Watchdog 2")
SENSOR_TYPE_WATCHDOG2 = 0x23
WATCHDOG_HARD_RESET = 0x01  # event offset "Hard Reset" of the Watchdog 2 sensor


def lan_conf(node: NodeSpec, password: str, socket_path: Path) -> str:
    chassis = shlex.join([sys.executable, "-m", "pvelab.twin.chassis", str(socket_path), node.name])
    auths = "none md2 md5 straight"
    return f"""# BMC of {node.name}, written by pvelab
name "{node.name}"
set_working_mc 0x20
  startlan 1
    addr {node.bmc_addr} {BMC_PORT}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid "pvelab-{node.name}-bmc"
  endlan
  chassis_control "{chassis}"
  user 1 false "" "" user 10 none
  user 2 true "{BMC_USER}" "{password}" admin 10 {auths}
"""


SIM_EMU = f"""# Emulated BMC: device, SEL, watchdog sensor (written by pvelab)
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 0x09 0x08 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
sensor_add 0x20 0 {WATCHDOG_SENSOR} {SENSOR_TYPE_WATCHDOG2:#x} 0x6f event-only
sensor_set_event_support 0x20 0 {WATCHDOG_SENSOR} enable scanning per-state \\
    000000000001111 000000000000000 000000000001111 000000000000000
mc_enable 0x20
"""


def write_config(bmc_dir: Path, node: NodeSpec, password: str, socket_path: Path) -> None:
    (bmc_dir / "state").mkdir(parents=True, exist_ok=True)
    (bmc_dir / "lan.conf").write_text(lan_conf(node, password, socket_path))
    (bmc_dir / "lan.conf").chmod(0o600)
    (bmc_dir / "sim.emu").write_text(SIM_EMU)


def ipmi_sim_argv(bmc_dir: Path) -> list[str]:
    return ["ipmi_sim", "-n", "-c", str(bmc_dir / "lan.conf"), "-f", str(bmc_dir / "sim.emu"),
            "-s", str(bmc_dir / "state")]


def ipmitool_argv(node: NodeSpec, password: str) -> list[str]:
    """How a user reaches this BMC with ipmitool (the lab tests use it; the README shows the same command)."""
    return ["ipmitool", "-I", "lanplus", "-C", str(CIPHER_SUITE), "-H", node.bmc_addr,
            "-U", BMC_USER, "-P", password]


def watchdog_sel_record(timestamp: int | None = None) -> list[int]:
    """An 'Add SEL Entry' body: system event, Watchdog 2 sensor, Hard Reset asserted."""
    ts = int(time.time()) if timestamp is None else timestamp
    return [
        0x00, 0x00,  # record id (assigned by the BMC)
        0x02,  # system event record
        ts & 0xFF, (ts >> 8) & 0xFF, (ts >> 16) & 0xFF, (ts >> 24) & 0xFF,
        0x20, 0x00,  # generator: the BMC itself
        0x04,  # event message format revision (IPMI 1.5+)
        SENSOR_TYPE_WATCHDOG2, WATCHDOG_SENSOR,
        0x6F,  # assertion, sensor-specific event type
        WATCHDOG_HARD_RESET, 0xFF, 0xFF,
    ]


@dataclass(frozen=True)
class BmcClient:
    """A python-ipmi (pyipmi) session to one BMC over lanplus."""

    address: str
    password: str
    user: str = BMC_USER
    port: int = BMC_PORT

    def connect(self) -> Any:
        """An established pyipmi.Ipmi session (pyipmi has no type hints)."""
        import pyipmi
        import pyipmi.interfaces

        interface = pyipmi.interfaces.create_interface(
            "ipmitool", interface_type="lanplus", cipher=CIPHER_SUITE
        )
        ipmi = pyipmi.create_connection(interface)
        ipmi.session.set_session_type_rmcp(self.address, self.port)
        ipmi.session.set_auth_type_user(self.user, self.password)
        ipmi.session.establish()
        ipmi.target = pyipmi.Target(ipmb_address=0x20)
        return ipmi

    def hard_reset(self) -> None:
        self.connect().chassis_control_hard_reset()

    def set_sel_time(self, timestamp: int | None = None) -> None:
        """NetFn Storage (0x0a), Set SEL Time (0x49): ipmi_sim's clock starts at 0 otherwise, and
        events would read 'Pre-Init' instead of when they happened."""
        ts = int(time.time()) if timestamp is None else timestamp
        self.connect().raw_command(0, 0x0A, bytes([0x49, *ts.to_bytes(4, "little")]))

    def add_sel_entry(self, record: list[int]) -> None:
        """NetFn Storage (0x0a), Add SEL Entry (0x44)."""
        self.connect().raw_command(0, 0x0A, bytes([0x44, *record]))
