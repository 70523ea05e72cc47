"""A lab node as a machine: power on/off, power state, console log, exec.

`ContainerNode` is systemd-nspawn booting a real systemd on an overlay disk, in the node's own
network namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from enum import StrEnum
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.procfs import running_for
from pvelab.twin import cgroups, disks
from pvelab.twin.host import run
from pvelab.twin.network import NETNS_DIR
from pvelab.twin.node_files import NODE_PACKAGE_DIR, NODE_SHARED_DIR, NODE_THIN_POOL_DIR, NODE_ZFS_POOL_DIR
from pvelab.twin.spec import LINKS, NodeSpec
from pvelab.twin.state import LabPaths

# /proc/sys/net writable in the node (its own network namespace): LXC sets up containers' veth
# devices there, as on a PVE host. The rest of /proc/sys stays read-only.
NSPAWN_ENV = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
NSPAWN_REBOOT_EXIT = 133  # systemd-nspawn's exit code when the container asked for a reboot
CAPABILITIES = "CAP_NET_ADMIN,CAP_IPC_LOCK,CAP_SYS_NICE,CAP_SYS_RESOURCE"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the pvelab package, shared read-only with nodes


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def leader_pid(group: str) -> int | None:
    """The node's PID 1 (its systemd), seen from the host: the process whose namespaced pid is 1.
    `group` is the node's control group (NodeSpec.cgroup)."""
    for pid in cgroups.pids(group):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) >= 2 and ids[-1] == "1":
                            return pid
        except FileNotFoundError:
            continue
    return None


def uptime_of(pid: int) -> float | None:
    try:
        return max(0.0, running_for(pid))
    except (FileNotFoundError, IndexError, ValueError):
        return None


def exec_in(node: NodeSpec, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    leader = leader_pid(node.cgroup)
    if leader is None:
        raise TwinError(f"node '{node.name}' is powered off", f"power it on: pvelab twin power {node.name} on")
    cmd = ["nsenter", "--target", str(leader), "--mount", "--uts", "--ipc", "--net", "--pid", "--", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


class ContainerNode:
    """A node as a systemd-nspawn container on an overlay disk, inside its own network namespace."""

    def __init__(self, spec: NodeSpec, paths: LabPaths, image: Path) -> None:
        self.name = spec.name
        self.spec = spec
        self.paths = paths
        self.image = image
        self.process: subprocess.Popen[bytes] | None = None

    # -- the disk: an overlay over the shared image, kept across power cycles ------------------
    def attach_disk(self) -> None:
        rootfs = self.paths.rootfs(self.name)
        if is_mounted(rootfs):
            return
        for path in (self.paths.disk_upper(self.name), self.paths.disk_work(self.name), rootfs):
            path.mkdir(parents=True, exist_ok=True)
        options = (f"lowerdir={self.image},upperdir={self.paths.disk_upper(self.name)},"
                   f"workdir={self.paths.disk_work(self.name)}")
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(rootfs)])

    def attach_thin_pool(self) -> None:
        """The thin pool's directory; a node made before it had one keeps its volumes (moved out of
        its overlay root, sparse as they were)."""
        pool = self.paths.thin_pool(self.name)
        if pool.is_dir():
            return
        old = self.paths.rootfs(self.name) / NODE_THIN_POOL_DIR.relative_to("/")
        if not (old.is_dir() and any(old.iterdir())):
            pool.mkdir(parents=True)
            return
        moving = pool.with_name(pool.name + ".moving")  # a copy cut short is begun again, the old one kept
        run(["rm", "-rf", str(moving)])
        run(["cp", "-a", "--sparse=always", str(old), str(moving)], timeout=3600)
        moving.rename(pool)
        run(["rm", "-rf", str(old)])

    def attach_zfs_pool(self) -> None:
        if not is_mounted(self.paths.zfs_pool(self.name)):
            disks.mount_zfs_pool(self.paths.zfs_pool_image(self.name), self.paths.zfs_pool(self.name))

    # -- power ---------------------------------------------------------------------------------
    def nspawn_argv(self) -> list[str]:
        return [
            "systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit",
            f"--directory={self.paths.rootfs(self.name)}", f"--machine={self.name}",
            f"--hostname={self.name}", f"--network-namespace-path={NETNS_DIR / self.spec.netns}",
            "--console=pipe", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
            f"--capability={CAPABILITIES}",
            f"--bind={self.paths.watchdog_fifo(self.name)}:/dev/watchdog",
            "--bind=/dev/fuse",  # for the cluster filesystem at /etc/pve
            "--bind=/dev/net/tun",  # guests' NICs are TAP devices on vmbr0, as on PVE
            f"--bind-ro={PACKAGE_DIR}:{NODE_PACKAGE_DIR}",
            f"--bind={self.paths.shared_dir}:{NODE_SHARED_DIR}",  # what an NFS export would be: one tree, all nodes
            # local-lvm's volumes on the host's filesystem, not the overlay root: QEMU opens them with
            # O_DIRECT and io_uring (cache=none), and only guests with disks there ever stalled on I/O in CI
            f"--bind={self.paths.thin_pool(self.name)}:{NODE_THIN_POOL_DIR}",
            f"--bind={self.paths.zfs_pool(self.name)}:{NODE_ZFS_POOL_DIR}",  # rpool: zfspool storages on btrfs
            *disks.binds(self.paths.data_disks(self.name)),  # /dev/sdb, ...: the node's data disks
        ]

    def launcher_argv(self) -> list[str]:
        """nspawn, started inside the node's cgroups."""
        return cgroups.launcher_argv(self.spec.cgroup, "nspawn", self.nspawn_argv())

    def power_on(self) -> None:
        if self.power_state() is PowerState.ON:
            return
        self.attach_disk()
        self.attach_thin_pool()
        self.attach_zfs_pool()
        self._set_links("up")
        console = open(self.paths.console_log(self.name), "ab")  # noqa: SIM115 - handed to the child
        with console:
            console.write(f"\n--- power on {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            console.flush()
            self.process = subprocess.Popen(
                self.launcher_argv(), stdin=subprocess.DEVNULL, stdout=console,
                stderr=subprocess.STDOUT, start_new_session=True, env=NSPAWN_ENV,
            )

    def power_off(self) -> None:
        # SIGKILL to the container's PID 1 ends its whole PID namespace at once; nspawn then
        # reaps it and exits, so no process is orphaned. Anything left is killed by cgroup.
        if cgroups.is_frozen(self.spec.cgroup):
            cgroups.freeze(self.spec.cgroup, False)
        leader = leader_pid(self.spec.cgroup)
        if leader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGKILL)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        cgroups.kill_until_empty(self.spec.cgroup)
        self._set_links("down")  # the namespace outlives the node; a machine without power answers nothing

    def _set_links(self, state: str) -> None:
        for link in LINKS:
            run(["ip", "-n", self.spec.netns, "link", "set", self.spec.node_ifname(link), state], check=False)

    def power_state(self) -> PowerState:
        if self.process is not None and self.process.poll() is None:
            return PowerState.ON
        return PowerState.ON if cgroups.pids(self.spec.cgroup) else PowerState.OFF

    def console_log(self) -> Path:
        return self.paths.console_log(self.name)

    def exec(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return exec_in(self.spec, argv, timeout)
