"""What pveceph does on the node it runs on: init, monitors, managers, OSDs, purge — with Ceph's own
tools (ceph-authtool, monmaptool, ceph-mon/ceph-osd --mkfs, the `ceph` CLI) and Debian's systemd
units, printing what PVE prints. Worker steps take `say` (a task log line).

One difference from PVE, on purpose: OSDs are raw bluestore on the whole disk, made by ceph-osd
--mkfs, since ceph-volume's LVM layout needs device-mapper, which the twin's kernel lacks. What a
user sees — the disk in use, osd.N up on its host, `osd destroy --cleanup` wiping the disk — is PVE's."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve.ceph import conf, mon, rados
from pvelab.pve.ceph.init import init_config
from pvelab.pve.ceph.tools import (
    ADMIN_KEYRING,
    BOOTSTRAP_OSD_KEYRING,
    CEPH_CONF,
    CRASH_KEYRING,
    LOCAL_ADMIN_KEYRING,
    MON_KEYRING,
    PVE_CONF,
    PVE_CONF_DIR,
    CephError,
    CephPaths,
    parse_version,
)

Say = Callable[[str], None]
PATHS = CephPaths()
MON_DIR = "/var/lib/ceph/mon/ceph-{id}"
MGR_DIR = "/var/lib/ceph/mgr/ceph-{id}"
OSD_DIR = "/var/lib/ceph/osd/ceph-{id}"
DISK_PATTERN = re.compile(r"^(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+|cciss!c\d+d\d+)$")
MIN_OSD_BYTES = 5 * 1024 ** 3  # ceph-volume rejects smaller devices ("Insufficient space (<5GB)")
WIPE_BYTES = 200 * 1024 ** 2  # PVE's wipe_blockdev zeroes the first 200 MiB
# The twin's host, not PVE: a lab host's disk may be 70 % full (MON_DISK_LOW would fire at the default
# 30 % free), and file-backed OSDs count as rotational, so recovery would be throttled to a crawl.
TWIN_MON_SETTINGS = (("mon", "mon_data_avail_warn", "5"), ("osd", "osd_recovery_sleep_hdd", "0"))


def run(argv: list[str], say: Say | None = None, stdin: str | None = None, timeout: float = 300) -> str:
    """A command's output (echoed to `say` when given); PVE's run_command error when it fails."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if say is not None:
        for line in (proc.stdout + proc.stderr).splitlines():
            say(line)
    if proc.returncode != 0:
        if say is None and proc.stderr.strip():
            raise CephError(f"command '{' '.join(argv)}' failed: {proc.stderr.strip().splitlines()[-1]}")
        raise CephError(f"command '{' '.join(argv)}' failed: exit code {proc.returncode}")
    return proc.stdout


def systemctl(action: str, unit: str, say: Say | None = None) -> None:
    run(["systemctl", action, unit], say)


def chown_ceph(path: str, recursive: bool = False) -> None:
    run(["chown", *(["-R"] if recursive else []), "ceph:ceph", path])


def read_config() -> conf.Config:
    try:
        return conf.parse(Path(PVE_CONF).read_text())
    except OSError:
        return {}


def write_config(config: conf.Config) -> None:
    Path(PVE_CONF).write_text(conf.dump(config))


def write_file(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def new_keyring(name: str, caps: dict[str, str]) -> str:
    """A keyring with a fresh key for `name` (ceph-authtool, in a scratch file: /etc/pve is no place for it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/keyring"
        argv = ["ceph-authtool", "--create-keyring", path, "--gen-key", "-n", name]
        for kind, cap in caps.items():
            argv += ["--cap", kind, cap]
        run(argv)
        return Path(path).read_text()


def ceph_version() -> list[int]:
    parsed = parse_version(run(["ceph", "--version"]))
    return parsed[2] if parsed else [0]


# -- install / init ------------------------------------------------------------------------------
RELEASES = {16: "16.2 Pacific", 17: "17.2 Quincy", 18: "18.2 Reef", 19: "19.2 Squid"}


def install(say: Say, repository: str = "enterprise", confirm: Callable[[str], bool] | None = None) -> None:
    """`pveceph install`: the node image carries Debian's Ceph already, so nothing is downloaded.
    `confirm` asks as PVE asks on a terminal when no --version is given."""
    release = RELEASES.get(ceph_version()[0], "")
    if confirm is not None and not confirm(f"This will install Ceph {release} - continue (y/N)? "):
        raise CephError("Aborting installation as requested")
    if repository == "enterprise":
        say("WARN: Enterprise repository selected, but no active subscription!")
    elif repository == "no-subscription":
        say("HINT: The no-subscription repository is not the best choice for production setups.")
        say("Proxmox recommends using the enterprise repository with a valid subscription.")
    say("update available package list")
    say("start installation")
    say("ceph, ceph-common, ceph-mon, ceph-mgr and ceph-osd are already the newest version (Debian's, in the image).")
    say("")
    say(f"installed Ceph {release} successfully!")


def init(network: str | None, cluster_network: str | None, size: int, min_size: int, disable_cephx: bool) -> None:
    """`pveceph init` (POST /nodes/{node}/ceph/init)."""
    if not (os.access("/usr/bin/ceph-mon", os.X_OK) and ceph_version()[0] >= 14):
        raise CephError("Ceph Nautilus required - please run 'pveceph install'")
    PATHS.check_symlink()
    Path(PVE_CONF_DIR).mkdir(exist_ok=True)
    config = init_config(read_config(), network, cluster_network, size, min_size, disable_cephx)
    write_config(config)
    if config["global"].get("auth_client_required") != "none":
        if not Path(ADMIN_KEYRING).exists():
            caps = {"mon": "allow *", "osd": "allow *", "mds": "allow *", "mgr": "allow *"}
            write_file(ADMIN_KEYRING, new_keyring("client.admin", caps))
        if not Path(LOCAL_ADMIN_KEYRING).exists():
            write_file(LOCAL_ADMIN_KEYRING, Path(ADMIN_KEYRING).read_text())
            chown_ceph(LOCAL_ADMIN_KEYRING)
    setup_pve_symlinks()


def setup_pve_symlinks() -> None:
    """/etc/ceph/ceph.conf as PVE's link to /etc/pve/ceph.conf (every node's Ceph reads it there)."""
    PATHS.check_symlink()
    link = Path(CEPH_CONF)
    link.parent.mkdir(exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(PVE_CONF)
    chown_ceph(str(link.parent))


# -- monitors ------------------------------------------------------------------------------------
def mon_map() -> dict[str, str]:
    """{monitor id: its public address} from the cluster (empty when no monitor is configured)."""
    if not rados.mon_configured():
        return {}
    try:
        dump = rados.command(["mon", "dump"])
    except CephError as exc:
        raise CephError("Could not connect to ceph cluster despite configured monitors") from exc
    return {m["name"]: m.get("public_addr") or m.get("addr", "") for m in dump.get("mons", [])}


def mon_prepare(node: str, monid: str, mon_address: list[str], local_ips: list[str], cluster_ip: str) -> list[str]:
    """The checks before the worker starts; the addresses the monitor will listen on."""
    PATHS.check_inited()
    setup_pve_symlinks()
    config = read_config()
    ips = mon.select_ips(config, node, local_ips, cluster_ip, mon_address)
    mon.check_new(config, monid, ips, mon_map())
    return ips


def mon_create(node: str, monid: str, ips: list[str], say: Say) -> None:
    mon_dir = MON_DIR.format(id=monid)
    if Path(mon_dir).exists():
        raise CephError(f"monitor filesystem '{mon_dir}' already exist")
    existing = mon_map()
    first = not existing
    vector = " ".join(f"[v2:{ip}:3300,v1:{ip}:6789]" for ip in ips)
    with tempfile.TemporaryDirectory() as tmp:
        monmap = f"{tmp}/monmap"
        if first:
            if not Path(MON_KEYRING).exists():
                say("creating new monitor keyring")
                keyring = new_keyring("mon.", {"mon": "allow *"}) + Path(ADMIN_KEYRING).read_text()
                write_file(MON_KEYRING, keyring)
            run(["monmaptool", "--create", "--clobber", "--addv", monid, vector, "--print", monmap], say)
        else:
            rados.command(["mon", "getmap", "-o", monmap], rados.LONG_TIMEOUT, fmt=False)
            run(["monmaptool", monmap, "--addv", monid, vector], say)
        Path(mon_dir).mkdir(parents=True)
        chown_ceph(mon_dir)
        run(["ceph-mon", "--mkfs", "-i", monid, "--monmap", monmap, "--keyring", MON_KEYRING], say)
        chown_ceph(mon_dir, recursive=True)
    write_config(mon.add_mon(read_config(), monid, ips, first))
    systemctl("start", f"ceph-mon@{monid}")
    systemctl("enable", f"ceph-mon@{monid}", say)
    wait_for_quorum(monid)
    if first:
        say("created the first monitor, assume it's safe to disable insecure global ID reclaim for new setup")
        rados.command(["config", "set", "mon", "auth_allow_insecure_global_id_reclaim", "false"], rados.LONG_TIMEOUT)
        for who, key, value in TWIN_MON_SETTINGS:
            rados.command(["config", "set", who, key, value], rados.LONG_TIMEOUT)
        say("Configuring keyring for ceph-crash.service")
        crash = rados.command(["auth", "get-or-create", "client.crash", "mon", "profile crash", "mgr",
                               "profile crash"], rados.LONG_TIMEOUT, fmt=False)
        write_file(CRASH_KEYRING, crash + "\n")
        config = read_config()
        config["client.crash"] = {"keyring": "/etc/pve/ceph/$cluster.$name.keyring"}
        write_config(config)
        if not Path(MGR_DIR.format(id=node)).exists():
            mgr_create(node, say)


def wait_for_quorum(monid: str, timeout: float = 120) -> None:
    """A new monitor counts once it is in the quorum (pveceph's later steps talk to the cluster)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if monid in rados.command(["quorum_status"], 10).get("quorum_names", []):
                return
        except CephError:
            pass
        time.sleep(1)
    raise CephError(f"monitor '{monid}' did not join the quorum within {timeout:.0f} s")


def mon_destroy(monid: str, say: Say) -> None:
    existing = mon_map()
    if monid not in existing:
        raise CephError(f"no such monitor id '{monid}'")
    mon_dir = MON_DIR.format(id=monid)
    if not Path(mon_dir).is_dir():
        raise CephError(f"monitor filesystem '{mon_dir}' does not exist on this node")
    if len(existing) <= 1:
        raise CephError("can't remove last monitor")
    rados.command(["mon", "remove", monid], rados.LONG_TIMEOUT)
    systemctl("stop", f"ceph-mon@{monid}")
    systemctl("disable", f"ceph-mon@{monid}", say)
    write_config(mon.remove_mon(read_config(), monid, mon.mon_host_ips(existing[monid])))
    shutil.rmtree(mon_dir, ignore_errors=True)


# -- managers ------------------------------------------------------------------------------------
def mgr_create(mgrid: str, say: Say) -> None:
    mgr_dir = MGR_DIR.format(id=mgrid)
    if Path(mgr_dir).exists():
        raise CephError(f"ceph manager directory '{mgr_dir}' already exists")
    say(f"creating manager directory '{mgr_dir}'")
    Path(mgr_dir).mkdir(parents=True)
    say(f"creating keys for 'mgr.{mgrid}'")
    keyring = rados.command(["auth", "get-or-create", f"mgr.{mgrid}", "mon", "allow profile mgr", "osd", "allow *",
                             "mds", "allow *"], rados.LONG_TIMEOUT, fmt=False)
    write_file(f"{mgr_dir}/keyring", keyring + "\n")
    say("setting owner for directory")
    chown_ceph(mgr_dir, recursive=True)
    say(f"enabling service 'ceph-mgr@{mgrid}.service'")
    systemctl("enable", f"ceph-mgr@{mgrid}", say)
    say(f"starting service 'ceph-mgr@{mgrid}.service'")
    systemctl("start", f"ceph-mgr@{mgrid}")
    if ceph_version()[0] == 18:
        # Debian 13's Reef MGR cannot load its PyO3 modules (pg_autoscaler, progress, ...): a lasting
        # HEALTH_WARN no PVE cluster shows. Muted, visibly: `ceph -s` says "(muted: MGR_MODULE_DEPENDENCY)".
        rados.command(["health", "mute", "MGR_MODULE_DEPENDENCY", "--sticky"], rados.LONG_TIMEOUT)


def mgr_destroy(mgrid: str, say: Say) -> None:
    mgr_dir = MGR_DIR.format(id=mgrid)
    if not Path(mgr_dir).is_dir():
        raise CephError(f"ceph manager directory '{mgr_dir}' not found")
    say(f"disabling service 'ceph-mgr@{mgrid}.service'")
    systemctl("disable", f"ceph-mgr@{mgrid}", say)
    say(f"stopping service 'ceph-mgr@{mgrid}.service'")
    systemctl("stop", f"ceph-mgr@{mgrid}")
    say(f"removing manager directory '{mgr_dir}'")
    shutil.rmtree(mgr_dir, ignore_errors=True)
    say(f"removing authkeys for mgr.{mgrid}")
    rados.command(["auth", "del", f"mgr.{mgrid}"], rados.LONG_TIMEOUT)


# -- disks ---------------------------------------------------------------------------------------
def block_size(dev: str) -> int:
    return int(run(["blockdev", "--getsize64", dev]).strip())


def local_osds() -> dict[str, int]:
    """{device path: OSD id} for this node's OSDs (their `block` links)."""
    found = {}
    for block in Path("/var/lib/ceph/osd").glob("ceph-*/block"):
        try:
            found[os.path.realpath(block)] = int(block.parent.name.removeprefix("ceph-"))
        except ValueError:
            continue
    return found


def disk_usage(dev: str) -> str | None:
    """What a disk is used for, as PVE's Diskmanage names it: a filesystem's type (blkid), `mounted`."""
    out = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if "PTTYPE" in fields:
        return "partitions"
    if "TYPE" in fields:
        return fields["TYPE"]
    with open("/proc/self/mounts") as fh:
        if any(line.split()[0] == dev for line in fh):
            return "mounted"
    return None


def disks() -> dict[str, dict[str, Any]]:
    """This node's disks as /nodes/{node}/disks/list shows them, by device name."""
    osds = local_osds()
    found = {}
    for dev in sorted(Path("/dev").iterdir()):
        if not DISK_PATTERN.match(dev.name) or not dev.is_block_device():
            continue
        path = str(dev)
        osdid = osds.get(path, -1)
        entry: dict[str, Any] = {"devpath": path, "size": block_size(path), "type": "hdd", "gpt": 0,
                                 "health": "UNKNOWN", "model": "QEMU_HARDDISK", "serial": f"drive-scsi{dev.name}",
                                 "vendor": "QEMU", "wwn": "unknown", "wearout": "N/A", "rpm": -1,
                                 "osdid": osdid, "osdid-list": [osdid] if osdid >= 0 else None}
        used = disk_usage(path)
        if used:
            entry["used"] = used
        if osdid >= 0:
            entry["bluestore"] = 1
            entry["osdencrypted"] = 0
        found[dev.name] = entry
    return found


# -- OSDs ----------------------------------------------------------------------------------------
def osd_prepare(node: str, dev: str, local_ips: list[str]) -> str:
    """pveceph osd create's checks before the worker; the device's path."""
    PATHS.check_inited()
    setup_pve_symlinks()
    config = read_config().get("global", {})
    network = config.get("cluster_network") or config.get("public_network")
    if network:
        net = ipaddress.ip_network(network.split(",")[0].strip(), strict=False)
        if not any(ipaddress.ip_address(ip) in net for ip in local_ips):
            raise CephError(f"No address from ceph cluster network ({net}) found on node '{node}'. "
                            "Check your network config.")
    path = os.path.realpath(dev if dev.startswith("/") else f"/dev/{dev}")
    if not path.startswith("/dev/"):
        raise CephError(f"got unusual device path '{dev}'")
    if not (os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode)):
        raise CephError("not a valid block device")
    info = disks().get(path.removeprefix("/dev/"))
    if info is None:
        raise CephError(f"unable to get device info for '{path}'")
    if info.get("used"):
        raise CephError(f"device '{path}' is already in use")
    return path


def osd_create(dev: str, say: Say, crush_device_class: str | None = None) -> None:
    config = read_config().get("global", {})
    rados.command(["quorum_status"], rados.LONG_TIMEOUT)
    say(f"create OSD on {dev} (bluestore)")
    size = block_size(dev)
    if size < MIN_OSD_BYTES:  # before anything is written: the refusal changes nothing
        raise CephError(f"Device {dev} is not available for an OSD: Insufficient space (<5GB)")
    if not Path(BOOTSTRAP_OSD_KEYRING).exists() and config.get("auth_client_required", "cephx") != "none":
        key = rados.command(["auth", "get-or-create", "client.bootstrap-osd", "mon", "allow profile bootstrap-osd"],
                            rados.LONG_TIMEOUT, fmt=False)
        write_file(BOOTSTRAP_OSD_KEYRING, key + "\n")
    say(f"wiping block device {dev}")
    run(["wipefs", "--all", dev], say)
    run(["dd", "if=/dev/zero", f"of={dev}", "bs=1M", f"count={min(size, WIPE_BYTES) // 1024 ** 2}",
         "conv=fdatasync"], say)
    make_osd(dev, say, crush_device_class)


def logged(argv: list[str], say: Say, stdin: str | None = None) -> str:
    """A step of OSD creation, shown as ceph-volume shows its steps."""
    say("Running command: " + " ".join(argv))
    return run(argv, stdin=stdin)


def make_osd(dev: str, say: Say, crush_device_class: str | None) -> None:
    """A raw bluestore OSD on `dev` (what ceph-volume raw prepare + activate do, without LVM)."""
    osd_uuid = str(uuid.uuid4())
    secret = run(["ceph-authtool", "--gen-print-key"]).strip()
    osdid = logged(["/usr/bin/ceph", "--cluster", "ceph", "--name", "client.bootstrap-osd", "--keyring",
                    BOOTSTRAP_OSD_KEYRING, "-i", "-", "osd", "new", osd_uuid], say,
                   stdin=json.dumps({"cephx_secret": secret})).strip()
    osd_dir = OSD_DIR.format(id=osdid)
    Path(osd_dir).mkdir(parents=True, exist_ok=True)
    os.symlink(dev, f"{osd_dir}/block")
    logged(["/usr/bin/chown", "-h", "ceph:ceph", f"{osd_dir}/block"], say)
    logged(["/usr/bin/chown", "-R", "ceph:ceph", dev], say)
    logged(["/usr/bin/ceph-authtool", f"{osd_dir}/keyring", "--create-keyring", "--name", f"osd.{osdid}",
            "--add-key", secret], say)
    write_file(f"{osd_dir}/type", "bluestore\n")
    chown_ceph(osd_dir, recursive=True)
    logged(["/usr/bin/ceph-osd", "--cluster", "ceph", "--osd-objectstore", "bluestore", "--mkfs", "-i", osdid,
            "--osd-data", f"{osd_dir}/", "--osd-uuid", osd_uuid, "--setuser", "ceph", "--setgroup", "ceph"], say)
    if crush_device_class:
        logged(["/usr/bin/ceph", "osd", "crush", "set-device-class", crush_device_class, f"osd.{osdid}"], say)
    logged(["/usr/bin/systemctl", "enable", f"ceph-osd@{osdid}"], say)
    logged(["/usr/bin/systemctl", "start", f"ceph-osd@{osdid}"], say)
    say(f"--> ceph-volume raw activate successful for osd ID: {osdid}")
    say(f"--> ceph-volume raw create successful for: {dev}")


def osd_check_destroy(node: str, osdid: int) -> None:
    PATHS.check_inited()
    tree = rados.command(["osd", "tree"])
    host = next((n for n in tree.get("nodes", []) if n.get("type") == "host" and osdid in n.get("children", [])), None)
    if host is None or host["name"] != node:
        raise CephError(f"OSD osd.{osdid} does not belong to node {node}!")
    stat_: dict[str, Any] = next((o for o in rados.command(["osd", "dump"]).get("osds", []) if o["osd"] == osdid), {})
    if stat_.get("in"):
        raise CephError("osd is in use (in == 1)")
    if stat_.get("up"):
        raise CephError("osd is still running (up == 1)")


def osd_destroy(osdid: int, cleanup: bool, say: Say) -> None:
    say(f"destroy OSD osd.{osdid}")
    osd_dir = OSD_DIR.format(id=osdid)
    dev = os.path.realpath(f"{osd_dir}/block") if os.path.lexists(f"{osd_dir}/block") else None
    systemctl("stop", f"ceph-osd@{osdid}")
    subprocess.run(["systemctl", "disable", f"ceph-osd@{osdid}"], capture_output=True, check=False)
    say(f"Remove osd.{osdid} from the CRUSH map")
    rados.command(["osd", "crush", "remove", f"osd.{osdid}"], rados.LONG_TIMEOUT)
    say(f"Remove the osd.{osdid} authentication key.")
    rados.command(["auth", "del", f"osd.{osdid}"], rados.LONG_TIMEOUT)
    say(f"Remove OSD osd.{osdid}")
    rados.command(["osd", "rm", str(osdid)], rados.LONG_TIMEOUT)
    say(f"Remove osd.{osdid} mclock max capacity iops settings from config")
    for key in ("osd_mclock_max_capacity_iops_hdd", "osd_mclock_max_capacity_iops_ssd"):
        subprocess.run(["ceph", "config", "rm", f"osd.{osdid}", key], capture_output=True, check=False)
    shutil.rmtree(osd_dir, ignore_errors=True)
    if cleanup and dev:
        say(f"wipe disk/partition: {dev}")
        run(["wipefs", "--all", dev], say)
        run(["dd", "if=/dev/zero", f"of={dev}", "bs=1M", f"count={WIPE_BYTES // 1024 ** 2}", "conv=fdatasync"], say)


# -- purge ---------------------------------------------------------------------------------------
def purge(node: str, logs: bool, crash: bool, say: Say) -> None:
    """`pveceph purge`: refuses while pools, this node's OSDs or other monitors remain (PVE's list)."""
    PATHS.check_inited()
    todo = []
    foreign_mon = False
    try:
        pools = [p["pool_name"] for p in rados.command(["osd", "dump"]).get("pools", [])]
        tree = rados.command(["osd", "tree"])
        host = next((n for n in tree.get("nodes", []) if n.get("type") == "host" and n["name"] == node), None)
        mons = mon_map()
        if pools:
            todo.append("- remove pools, this will !!DESTROY DATA!!")
        if host and host.get("children"):
            todo.append(f"- remove active OSD on {node}")
        if len(mons) > 1 or (mons and node not in mons):
            todo.append(f"- remove other MONs, {node} is not the last MON")
        foreign_mon = any(name != node for name in mons)
    except CephError as exc:
        say(f"Error gathering ceph info, already purged? Message: {exc}")
    if todo:
        raise CephError("Unable to purge Ceph!\n\nTo continue:\n" + "\n".join(todo))
    for unit in ("ceph-mon.target", "ceph-mgr.target", "ceph-osd.target", "ceph-mds.target"):
        subprocess.run(["systemctl", "stop", unit], capture_output=True, check=False)
    for kind in ("mon", "mgr", "osd", "mds"):
        for directory in Path(f"/var/lib/ceph/{kind}").glob("ceph-*"):
            subprocess.run(["systemctl", "disable", f"ceph-{kind}@{directory.name.removeprefix('ceph-')}"],
                           capture_output=True, check=False)
            shutil.rmtree(directory, ignore_errors=True)
    for kind, wanted in (("log/ceph", logs), ("lib/ceph/crash", crash)):
        if wanted:
            for item in Path(f"/var/{kind}").glob("*"):
                shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
    if foreign_mon:
        say("Foreign MON address in ceph.conf. Keeping config & keyrings")
        return
    say("Removing config & keyring files")
    for path in (PVE_CONF, CEPH_CONF, ADMIN_KEYRING, LOCAL_ADMIN_KEYRING, MON_KEYRING, CRASH_KEYRING,
                 BOOTSTRAP_OSD_KEYRING, "/var/lib/ceph/bootstrap-mds/ceph.keyring"):
        Path(path).unlink(missing_ok=True)
