"""The lab's storage server `nas` as a machine: its own network namespace on link0, a BMC, and power.

Not a PVE node and no full system: powered on it is Debian's tgtd (the Linux SCSI target framework,
user space: this kernel has no target module and needs none) serving one iSCSI target with the lab's
LUNs, sparse files on the host, and Debian's nfs-ganesha (an NFS v3/v4 server in user space, the
kernel's nfsd is not here) with rpcbind serving one export; powered off its wire goes dead first and
then every process of it is killed, as a power cut leaves the nodes' sessions hanging until their
timeouts. What the servers are given (target, LUNs, export, who may use them) is their configuration,
applied at each power on as a real box reads its targets.conf and ganesha.conf at boot. docs/twin.md
says what it is and how it differs from a real NAS.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.poll import poll
from pvelab.twin import cgroups
from pvelab.twin.host import run
from pvelab.twin.node import PowerState
from pvelab.twin.spec import ISCSI_LUN_SIZE, ISCSI_LUNS, ISCSI_PORT, NFS_EXPORT, NFS_MOUNTD_PORT, StorageServerSpec
from pvelab.twin.state import LabPaths

START_WAIT = 10.0  # seconds for tgtd to take requests on its management channel
TGTD_SOCKETS = Path("/var/run/tgtd")
NFS_PORT = 2049
# rpcbind's socket (/run/rpcbind.sock) and ganesha's pid file are host-wide paths: the server's NFS
# side runs in a mount namespace of its own with a private /run, so a lab's rpcbind is not the host's.
NFS_LAUNCH = """mount -t tmpfs -o mode=0755 nas-run /run && mkdir -p /run/rpcbind || exit 1
rpcbind -f &
i=0; while [ ! -S /run/rpcbind.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
exec ganesha.nfsd -F -L STDERR -N NIV_EVENT -f "$1" -p /run/ganesha.pid"""


def ganesha_config(export_dir: Path, recovery_dir: Path) -> str:
    """One export, as a NAS serves VM storage to PVE: read-write, root not squashed (PVE writes as
    root), v3 and v4 over TCP. v3 mounts use the pseudo path, so PVE's `export` is NFS_EXPORT for both;
    no NLM (locks are local to each node's FUSE client) and no grace period after a power on."""
    return f"""NFS_CORE_PARAM {{
    Protocols = 3, 4;
    NFS_Port = {NFS_PORT};
    MNT_Port = {NFS_MOUNTD_PORT};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}}
NFSv4 {{
    Graceless = true;
    RecoveryRoot = "{recovery_dir}";
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = "{export_dir}";
    Pseudo = "{NFS_EXPORT}";
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
"""


def lun_files(paths: LabPaths) -> list[Path]:
    return [paths.node_dir("nas") / "luns" / f"lun{n}.img" for n in range(1, ISCSI_LUNS + 1)]


def create_luns(paths: LabPaths) -> None:
    """The LUNs' backing files (sparse), once: they keep what the nodes wrote across power cycles."""
    for path in lun_files(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with open(path, "wb") as fh:
                fh.truncate(ISCSI_LUN_SIZE)


def export_dir(paths: LabPaths) -> Path:
    return paths.node_dir("nas") / "nfs" / NFS_EXPORT.strip("/")


class StorageServer:
    """Power for the storage server, as ContainerNode gives it to a node (the supervisor holds both)."""

    def __init__(self, spec: StorageServerSpec, paths: LabPaths) -> None:
        self.spec, self.paths, self.name = spec, paths, spec.name
        self.process: subprocess.Popen[bytes] | None = None
        self.nfs_process: subprocess.Popen[bytes] | None = None

    def tgtadm(self, *args: str) -> str:
        return run(["tgtadm", "-C", str(self.spec.control_port), "--lld", "iscsi", *args])

    def launcher_argv(self) -> list[str]:
        """tgtd in the server's namespace, started inside its control group."""
        tgtd = ["ip", "netns", "exec", self.spec.netns, "tgtd", "-f", "--iscsi",
                f"portal={self.spec.link_addr(0)}:{ISCSI_PORT}", "-C", str(self.spec.control_port)]
        return cgroups.launcher_argv(self.spec.cgroup, "tgtd", tgtd)

    def nfs_launcher_argv(self, config: Path) -> list[str]:
        """rpcbind and ganesha in the server's namespace and control group, with a /run of their own."""
        nfs = ["ip", "netns", "exec", self.spec.netns, "unshare", "--mount", "--propagation", "private",
               "sh", "-c", NFS_LAUNCH, "nas-nfs", str(config)]
        return cgroups.launcher_argv(self.spec.cgroup, "nas-nfs", nfs)

    def power_on(self) -> None:
        if self.power_state() is PowerState.ON:
            return
        run(["ip", "link", "set", self.spec.host_veth(0), "up"])
        TGTD_SOCKETS.mkdir(parents=True, exist_ok=True)
        log = open(self.paths.console_log(self.name), "ab")  # noqa: SIM115 - handed to the child
        with log:
            log.write(f"\n--- power on {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(self.launcher_argv(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
            self.nfs_process = subprocess.Popen(self.nfs_launcher_argv(self.write_nfs_config()),
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        self._wait_ready("tgtd", self.process, self._tgtd_answers)
        self.configure()
        self._wait_ready("NFS server", self.nfs_process, self._nfs_answers)

    def _wait_ready(self, what: str, process: subprocess.Popen[bytes], answers: Callable[[], bool]) -> None:
        """Until a server of this machine answers; its exit, or no answer in START_WAIT, is an error."""
        see = f"see {self.paths.console_log(self.name)}"

        def ready() -> bool | None:
            if process.poll() is not None:
                raise TwinError(f"the storage server's {what} exited ({process.returncode})", see)
            return True if answers() else None

        if poll(ready, START_WAIT, 0.1) is None:
            raise TwinError(f"the storage server's {what} did not start within {START_WAIT:.0f} s", see)

    def write_nfs_config(self) -> Path:
        base = self.paths.node_dir(self.name)
        export, recovery = export_dir(self.paths), base / "nfs-recovery"
        export.mkdir(parents=True, exist_ok=True)
        recovery.mkdir(parents=True, exist_ok=True)
        config = base / "ganesha.conf"
        config.write_text(ganesha_config(export, recovery))
        return config

    def _nfs_answers(self) -> bool:
        """ganesha takes NFS connections and its MOUNT service is on its port (registered last)."""
        listening = self._netns_ss("-Htln")
        return all(f":{port} " in listening for port in (NFS_PORT, NFS_MOUNTD_PORT))

    def _netns_ss(self, *args: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.spec.netns, "ss", *args], capture_output=True,
                              text=True, check=False)
        return done.stdout

    def _tgtd_answers(self) -> bool:
        """tgtd takes requests on its management channel."""
        done = subprocess.run(["tgtadm", "-C", str(self.spec.control_port), "--op", "show", "--mode", "sys"],
                              capture_output=True, check=False)
        return done.returncode == 0

    def configure(self) -> None:
        """The target, its LUNs, and every initiator allowed (a lab's storage network is its own)."""
        self.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", self.spec.iqn)
        for lun, path in enumerate(lun_files(self.paths), start=1):
            self.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun), "-b", str(path))
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    def power_off(self) -> None:
        """A power cut: the wire dies first (no FIN or RST reaches a node), then every process."""
        run(["ip", "link", "set", self.spec.host_veth(0), "down"], check=False)
        cgroups.kill_until_empty(self.spec.cgroup)  # kill_all thaws a frozen server first
        for process in (self.process, self.nfs_process):
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
        self.process = self.nfs_process = None

    def power_state(self) -> PowerState:
        return PowerState.ON if cgroups.pids(self.spec.cgroup) else PowerState.OFF

    def describe(self) -> list[str]:
        """What the server serves and who uses it, for `pvelab twin storage-server`."""
        lines = [f"storage server {self.name}: power {self.power_state().value}, address {self.spec.link_addr(0)}, "
                 f"BMC {self.spec.bmc_addr}",
                 f"iSCSI target {self.spec.iqn} on portal {self.spec.portal()}"]
        lines += [f"  LUN {n}: {path.stat().st_size // 1024 ** 2} MiB, {path}"
                  for n, path in enumerate(lun_files(self.paths), start=1)]
        powered = self.power_state() is PowerState.ON
        if powered:
            sessions = self.sessions()
            lines.append(f"sessions: {', '.join(sessions) if sessions else 'none'}")
        lines.append(f"NFS export {self.spec.link_addr(0)}:{NFS_EXPORT} (v3 and v4), {export_dir(self.paths)}")
        if powered:
            clients = self.nfs_clients()
            lines.append(f"NFS clients: {', '.join(clients) if clients else 'none'}")
        return lines

    def nfs_clients(self) -> list[str]:
        """The addresses with an NFS connection to the server now (each node's mount, each QEMU's disk)."""
        out = self._netns_ss("-Htn", "state", "established", "( sport = :2049 )")
        peers = (line.split()[-1].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if line.strip())
        return sorted({peer.removeprefix("::ffff:") for peer in peers})  # ganesha's socket is IPv6

    def sessions(self) -> list[str]:
        """The initiators' addresses with a connection to the target now (tgtadm's I_T nexus list)."""
        out = self.tgtadm("--op", "show", "--mode", "conn", "--tid", "1")
        return [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("IP Address:")]
