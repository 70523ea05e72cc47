"""Files the twin installs into every node so it presents itself as a PVE node: commands,
systemd units for the cluster filesystem and the API, and the PVE version it presents.

The pvelab package itself is bind-mounted read-only into each node (see ContainerNode)."""

from __future__ import annotations

from pathlib import Path

from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import LVM_BACKING

NODE_PACKAGE_DIR = "/usr/lib/python3/dist-packages/pvelab"
NODE_THIN_POOL_DIR = LVM_BACKING  # where local-lvm's volumes live (the twin mounts a directory of its own there)
NODE_ZFS_POOL_DIR = "/rpool"  # the node's ZFS pool, where ZFS mounts rpool (a btrfs filesystem here)
NODE_SHARED_DIR = "/mnt/lab-shared"  # the lab-wide directory every node mounts (a shared `dir` storage's path)
QEMU_SERVER_DATA = Path(__file__).resolve().parent / "qemu_server"  # qemu-server's data files (SOURCES.md there)
COMMANDS = {"pvecm": "pvelab.pve.cluster.pvecm", "pvesh": "pvelab.pve.api.pvesh", "pveversion": "pvelab.pve.version",
            "pveceph": "pvelab.pve.ceph.pveceph", "pveum": "pvelab.pve.access.pveum",
            "pvesr": "pvelab.pve.replication.pvesr"}
# where qemu-server and libpve-storage-perl install them (qmeventd runs /usr/sbin/qm, an upload for
# another node /usr/sbin/pvesm there)
SBIN_COMMANDS = {"qm": "pvelab.pve.guests.qm", "pvesm": "pvelab.pve.storage.pvesm"}
# QEMU's -netdev scripts, where each PVE major version keeps them.
BRIDGE_SCRIPTS = ("var/lib/qemu-server", "usr/libexec/qemu-server")

PVE_CLUSTER_UNIT = """[Unit]
Description=The Proxmox VE cluster filesystem
Wants=corosync.service
Before=corosync.service
After=network.target

[Service]
ExecStart=/usr/bin/python3 -m pvelab.pve.cluster.cfs_fuse
ExecStartPost=/bin/sh -c 'for i in $(seq 100); do mountpoint -q /etc/pve && exit 0; sleep 0.1; done; exit 1'
KillMode=mixed
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""



def daemon_unit(description: str, module: str) -> str:
    """A PVE daemon of the twin: a module of the PVE layer, started once /etc/pve is there."""
    return f"""[Unit]
Description={description}
Wants=pve-cluster.service
After=pve-cluster.service

[Service]
ExecStart=/usr/bin/python3 -m {module}
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


PVEPROXY_UNIT = daemon_unit("PVE API Proxy Server", "pvelab.pve.api.server")
PVESCHEDULER_UNIT = daemon_unit("Proxmox VE scheduler", "pvelab.pve.guests.jobs")

# qemu-server's unit, as it is: QEMU's event socket, so a guest that powers itself off stops its VM.
QMEVENTD_UNIT = """[Unit]
Description=PVE Qemu Event Daemon
RequiresMountsFor=/var/run
Before=pve-ha-lrm.service
Before=pve-guests.service

[Service]
ExecStart=/usr/sbin/qmeventd /var/run/qmeventd.sock
Type=forking

[Install]
WantedBy=multi-user.target
"""

# pve-container's unit: each CT's lxc-start in the foreground, under systemd (pct start runs it).
PVE_CONTAINER_UNIT = """[Unit]
Description=PVE LXC Container: %i
DefaultDependencies=No
Documentation=man:lxc-start man:lxc man:pct

[Service]
Type=simple
Delegate=yes
KillMode=mixed
TimeoutStopSec=120s
ExecStart=/usr/bin/lxc-start -F -n %i
ExecStop=/usr/bin/lxc-stop -n %i --kill
"""

# pve-ha-manager's units. Nice=-10 is the twin's addition: on two shared cores, guests under TCG must not
# delay the HA daemons' rounds (corosync itself runs SCHED_RR, as on PVE).
WATCHDOG_MUX_UNIT = """[Unit]
Description=Proxmox VE watchdog multiplexer

[Service]
EnvironmentFile=-/etc/default/pve-ha-manager
ExecStart=/usr/sbin/watchdog-mux
OOMScoreAdjust=-1000
Nice=-10
Restart=no
"""

PVE_HA_CRM_UNIT = """[Unit]
Description=PVE Cluster HA Resource Manager Daemon
ConditionPathExists=/usr/sbin/pve-ha-crm
Wants=pve-cluster.service
Wants=watchdog-mux.service
Wants=pveproxy.service
After=corosync.service watchdog-mux.service pve-cluster.service pveproxy.service

[Service]
ExecStart=/usr/sbin/pve-ha-crm
Nice=-10
TimeoutStopSec=65

[Install]
WantedBy=multi-user.target
"""

PVE_HA_LRM_UNIT = """[Unit]
Description=PVE Local HA Resource Manager Daemon
ConditionPathExists=/usr/sbin/pve-ha-lrm
Wants=pve-cluster.service
Wants=watchdog-mux.service
After=corosync.service watchdog-mux.service pve-cluster.service pve-ha-crm.service pveproxy.service ssh.service

[Service]
ExecStart=/usr/sbin/pve-ha-lrm
Nice=-10
TimeoutStopSec=infinity
KillMode=process

[Install]
WantedBy=multi-user.target
"""

PVE_HA_MANAGER_DEFAULT = """# select watchdog module (default is softdog)
#WATCHDOG_MODULE=ipmi_watchdog
"""

# As PVE's corosync unit: a node outside any cluster has no config and corosync stays down.
COROSYNC_DROPIN = """[Unit]
ConditionPathExists=/etc/corosync/corosync.conf
"""

# PVE's drop-ins for Ceph's units: /etc/pve/ceph.conf is there only once pmxcfs runs.
CEPH_AFTER_PVE_CLUSTER = """[Unit]
After=pve-cluster.service
"""
CEPH_UNITS = ("ceph-mon@", "ceph-mgr@", "ceph-osd@", "ceph-mds@")
# What udev's Ceph rules do on a real node, for the twin's raw bluestore OSDs: the OSD's disk belongs
# to ceph (the twin shows a node its disks as /dev/sdX, made anew at every boot).
CEPH_OSD_DISK_OWNER = """[Service]
ExecStartPre=+/bin/sh -c 'dev=$(readlink -f /var/lib/ceph/osd/ceph-%i/block) && chown ceph:ceph "$dev"'
"""


def command_script(module: str, function: str = "main") -> str:
    return f"#!/usr/bin/python3\nfrom {module} import {function}\n\nraise SystemExit({function}())\n"


def node_files(pve_version: str) -> dict[str, tuple[str, int]]:
    files = {f"usr/bin/{name}": (command_script(module), 0o755) for name, module in COMMANDS.items()}
    files.update({f"usr/sbin/{name}": (command_script(module), 0o755) for name, module in SBIN_COMMANDS.items()})
    files["usr/bin/vzdump"] = (command_script("pvelab.pve.guests.qm", "vzdump_main"), 0o755)
    files["usr/sbin/qmrestore"] = (command_script("pvelab.pve.guests.qm", "qmrestore_main"), 0o755)
    for directory in BRIDGE_SCRIPTS:
        for name in ("pve-bridge", "pve-bridgedown"):
            files[f"{directory}/{name}"] = (command_script("pvelab.pve.guests.bridge"), 0o755)
    files["etc/systemd/system/pve-cluster.service"] = (PVE_CLUSTER_UNIT, 0o644)
    files["etc/systemd/system/pveproxy.service"] = (PVEPROXY_UNIT, 0o644)
    files["etc/systemd/system/pvescheduler.service"] = (PVESCHEDULER_UNIT, 0o644)
    files["etc/systemd/system/pve-container@.service"] = (PVE_CONTAINER_UNIT, 0o644)
    files["usr/sbin/qmeventd"] = (command_script("pvelab.pve.guests.qmeventd"), 0o755)
    files["etc/systemd/system/qmeventd.service"] = (QMEVENTD_UNIT, 0o644)
    files["usr/sbin/pct"] = (command_script("pvelab.pve.guests.pct"), 0o755)
    for name, module in (("ha-manager", "pvelab.pve.ha.cli"), ("watchdog-mux", "pvelab.pve.ha.watchdog_mux"),
                         ("pve-ha-crm", "pvelab.pve.ha.crm"), ("pve-ha-lrm", "pvelab.pve.ha.lrm")):
        files[f"usr/sbin/{name}"] = (command_script(module), 0o755)
    files["etc/systemd/system/watchdog-mux.service"] = (WATCHDOG_MUX_UNIT, 0o644)
    files["etc/systemd/system/pve-ha-crm.service"] = (PVE_HA_CRM_UNIT, 0o644)
    files["etc/systemd/system/pve-ha-lrm.service"] = (PVE_HA_LRM_UNIT, 0o644)
    files["etc/default/pve-ha-manager"] = (PVE_HA_MANAGER_DEFAULT, 0o644)
    files["etc/systemd/system/corosync.service.d/pvelab.conf"] = (COROSYNC_DROPIN, 0o644)
    for unit in CEPH_UNITS:
        files[f"etc/systemd/system/{unit}.service.d/ceph-after-pve-cluster.conf"] = (CEPH_AFTER_PVE_CLUSTER, 0o644)
    files["etc/systemd/system/ceph-osd@.service.d/pvelab-disk-owner.conf"] = (CEPH_OSD_DISK_OWNER, 0o644)
    files["usr/share/pvelab/pve-major"] = (pve_version + "\n", 0o644)
    # qemu-server's -readconfig files (q35's USB controllers): a q35 VM does not start without them
    for data in sorted(QEMU_SERVER_DATA.glob("*.cfg")):
        files[f"usr/share/qemu-server/{data.name}"] = (data.read_text(), 0o644)
    # as PVE's installer: the new node's storage.cfg, taken into /etc/pve when pmxcfs first starts
    files["usr/share/pvelab/installer/etc-pve/storage.cfg"] = (storage_config.INSTALLER_DEFAULT, 0o644)
    return files


ENABLED_UNITS = ("pve-cluster.service", "pveproxy.service", "pvescheduler.service", "pve-ha-crm.service",
                 "pve-ha-lrm.service", "qmeventd.service")


def install(root: Path, pve_version: str) -> None:
    for rel, (content, mode) in node_files(pve_version).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ENABLED_UNITS:
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{unit}")
