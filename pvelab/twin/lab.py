"""A whole lab: bring it up, tear it down, report on it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.poll import poll
from pvelab.twin import bmc, cgroups, disks, events, node_files
from pvelab.twin.control import request
from pvelab.twin.host import pid_alive, require_root, require_tools, run, udp_wildcard_bound
from pvelab.twin.image import ensure_image
from pvelab.twin.inventory import write_inventory
from pvelab.twin.latency import parse_delay
from pvelab.twin.nas import StorageServer, create_luns, lun_files
from pvelab.twin.network import (
    LabNetwork,
    existing_links,
    existing_netns,
    named_prefixes_in_use,
    nft_table_exists,
    require_netns_support,
)
from pvelab.twin.node import ContainerNode, exec_in, leader_pid, uptime_of
from pvelab.twin.spec import BMC_PORT, LINKS, MAX_SLOT, NFS_EXPORT, PREFIX, LabSpec, NodeSpec, prefix_of
from pvelab.twin.state import LAB_NAME, LabPaths, LabRecord, labs_dir

Log = Callable[[str], None]
HOST_TOOLS = ("ip", "nft", "mount", "systemd-nspawn", "nsenter", "ipmi_sim", "ipmitool", "ssh", "ssh-keygen",
              "chroot", "losetup", "mkfs.btrfs")
SSH_WAIT = 180.0
API_PORT = 8006


@dataclass(frozen=True)
class NodeStatus:
    name: str
    power: str
    frozen: bool
    addresses: list[str]
    bmc: str
    uptime: float | None
    watchdog: str


class Lab:
    """One lab: the default one (name "", today's addresses) or a named one beside it."""

    def __init__(self, paths: LabPaths | None = None, log: Log = print, name: str = "") -> None:
        self.paths = paths or LabPaths.of(name)
        self.log = log
        self.name = name

    @classmethod
    def named(cls, name: str, log: Log = print) -> Lab:
        return cls(LabPaths.of(name), log, name)

    @property
    def record(self) -> LabRecord | None:
        return LabRecord.load(self.paths)

    def require_record(self) -> LabRecord:
        record = self.record
        if record is None:
            if self.name:
                raise TwinError(f"no lab '{self.name}' is up", f"start it: pvelab twin up --lab {self.name}")
            raise TwinError("no lab is up", "start one: pvelab twin up")
        return record

    # -- slots: where a named lab's addresses and names come from ----------------------------------
    @property
    def slot_file(self) -> Path:
        """A named lab's reservation of its slot, written before anything else it makes."""
        return self.paths.root / "slot"

    def reserved_slot(self) -> int | None:
        if not self.name:
            return 0
        try:
            return int(self.slot_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def prefix(self) -> str | None:
        """Prefix of the lab's kernel objects; None for a named lab that never reserved a slot."""
        slot = self.reserved_slot()
        return None if slot is None else prefix_of(slot)

    def reserve_slot(self, wanted: int | None = None) -> int:
        """The lab's slot: the one it holds, else `wanted` (a class over several servers gives each lab
        its own, so their addresses never meet), else the lowest one no named lab holds; under a lock,
        so two `up`s at once never take the same one."""
        held = self.reserved_slot()
        if held is not None and wanted not in (None, held):
            raise TwinError(f"lab '{self.name}' holds slot {held}, not {wanted}",
                            f"keep its slot, or take it down first: pvelab twin down --lab {self.name}")
        if held is not None:
            return held
        if wanted is not None and not 1 <= wanted <= MAX_SLOT:
            raise TwinError(f"slot {wanted} is not a named lab's slot", f"give a slot from 1 to {MAX_SLOT}")
        labs_dir().mkdir(parents=True, exist_ok=True)
        with open(labs_dir() / ".slots.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = {Lab.named(n).reserved_slot(): n for n in lab_dirs()}
            busy = prefixes_in_use()
            if wanted is not None and (wanted in taken or prefix_of(wanted) in busy):
                holder = f"lab '{taken[wanted]}'" if wanted in taken else f"links named {prefix_of(wanted)}*"
                raise TwinError(f"slot {wanted} is taken on this host (by {holder})",
                                "give another slot, or take that lab down first")
            free = [wanted] if wanted is not None else [
                k for k in range(1, MAX_SLOT + 1) if k not in taken and prefix_of(k) not in busy]
            if not free:
                raise TwinError(f"all {MAX_SLOT} lab slots are taken", "take a lab down: pvelab twin down --lab NAME")
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self.paths.root.chmod(0o700)
            self.slot_file.write_text(f"{free[0]}\n")
            return free[0]

    # -- up --------------------------------------------------------------------------------------
    def up(self, spec: LabSpec, slot: int | None = None) -> LabRecord:
        """Bring the lab up as `spec` asks (its name and slot are this lab's: they are filled in here;
        `slot` asks for a given one)."""
        require_root()
        down = f"pvelab twin down{f' --lab {self.name}' if self.name else ''}"
        if slot is not None and not self.name:
            raise TwinError("only a named lab takes a slot (the default lab has slot 0)", "add --lab NAME")
        existing = self.record
        if existing is not None and slot not in (None, existing.spec.slot):
            raise TwinError(f"lab '{self.name}' is up in slot {existing.spec.slot}, not {slot}",
                            f"keep its slot, or take it down first: {down}")
        if existing is not None and self.supervisor_alive():
            if not existing.spec.same_build(dataclasses.replace(spec, name=self.name, slot=existing.spec.slot)):
                server = "a storage server" if existing.spec.storage_server else "no storage server"
                raise TwinError(
                    f"a lab of {existing.spec.node_count} nodes (PVE {existing.spec.pve_version}, "
                    f"{existing.spec.osd_disks} OSD disk(s), {server}) is already up"
                    + (f" as '{self.name}'" if self.name else ""),
                    f"ask for it as it is, or tear it down first: {down}")
            self.log("the lab is already up; nothing changed")
            return existing
        if self.name:
            spec = dataclasses.replace(spec, name=self.name, slot=self.reserve_slot(slot))
        self.preflight(spec)
        try:
            return self._build(spec)
        except BaseException:
            self.log("up failed; removing what it made...")
            self.down(quiet=True)
            raise

    def preflight(self, spec: LabSpec) -> None:
        require_tools(*HOST_TOOLS, *(("tgtd", "tgtadm") if spec.storage_server else ()))
        leftovers = self.leftovers()
        if leftovers:
            raise TwinError(
                "a previous lab was not fully torn down (found: " + ", ".join(leftovers[:4]) +
                (", ..." if len(leftovers) > 4 else "") + ")",
                f"remove it with: pvelab twin down{f' --lab {self.name}' if self.name else ''}")
        require_netns_support(spec.prefix)
        require_inotify_room(spec.node_count + sum(len(lab.require_record().spec.nodes) for lab in all_labs()
                                                   if lab.name != self.name and lab.record is not None))
        require_ipmi_port()

    def leftovers(self) -> list[str]:
        """What this lab made that is still there (other labs' objects have other prefixes)."""
        prefix = self.prefix
        found = []
        if prefix is not None:
            found += [f"netns {n}" for n in existing_netns(prefix)] + [f"link {n}" for n in existing_links(prefix)]
            if nft_table_exists(prefix):
                found.append("nft table")
            found += [f"process {p}" for p in cgroups.any_pids(prefix)]
        found += [f"mount {m}" for m in self.mounts()]
        found += [f"loop device {dev}" for dev, _ in disks.loops_under(self.paths.root)]
        if self.paths.record.exists():
            found.append(f"lab record {self.paths.record}")
        return found

    def _build(self, spec: LabSpec) -> LabRecord:
        started = time.monotonic()
        image = ensure_image(spec.pve_version, log=self.log)
        record = LabRecord.new(spec, str(image))
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.root.chmod(0o700)
        record.save(self.paths)
        self.paths.grader_token.unlink(missing_ok=True)  # a token of the lab that was here before
        self.make_ssh_key()
        self.paths.shared_dir.mkdir(exist_ok=True)
        self.log(f"wiring {spec.node_count} nodes on {spec.subnet(0)}, {spec.subnet(1)} and BMCs on "
                 f"{spec.subnet(None)}...")
        LabNetwork(spec).create()
        for node in spec.nodes:
            self.prepare_node(record, node, image)
        if spec.nas is not None:
            self.prepare_storage_server(record, spec.nas)
        self.start_supervisor()
        self.log("starting BMCs and watchdogs, powering nodes on...")
        request(self.paths.supervisor_socket, "start", timeout=120)
        self.wait_for_ssh(spec)
        write_inventory(record, self.paths)
        self.log(f"lab up in {time.monotonic() - started:.1f} s; inventory: {self.paths.inventory}")
        return record

    def make_ssh_key(self) -> None:
        key = self.paths.ssh_key
        key.parent.mkdir(parents=True, exist_ok=True)
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pvelab-lab", "-f", str(key)])

    def prepare_node(self, record: LabRecord, node: NodeSpec, image: Path) -> None:
        """Give a node its identity before first boot: hostname, hosts, keys, password, machine-id."""
        paths = self.paths
        node_dir = paths.node_dir(node.name)
        node_dir.mkdir(parents=True, exist_ok=True)
        if not paths.watchdog_fifo(node.name).exists():
            os.mkfifo(paths.watchdog_fifo(node.name), 0o600)
        ContainerNode(node, paths, image).attach_disk()
        disks.create(paths.data_disks(node.name), record.spec.osd_disks, record.spec.osd_size)
        root = paths.rootfs(node.name)
        (root / "etc" / "hostname").write_text(f"{node.name}\n")
        (root / "etc" / "hosts").write_text(record.spec.etc_hosts())
        (root / "etc" / "network").mkdir(exist_ok=True)
        (root / "etc" / "network" / "interfaces").write_text(record.spec.etc_network_interfaces(node))
        (root / "etc" / "machine-id").write_text(os.urandom(16).hex() + "\n")
        ssh_dir = root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # authorized_keys2 (read by Debian's sshd too) so the host keeps access whatever a cluster
        # does to authorized_keys, which PVE turns into a link to /etc/pve/priv/authorized_keys.
        (ssh_dir / "authorized_keys2").write_text(paths.ssh_key.with_suffix(".pub").read_text())
        (ssh_dir / "authorized_keys2").chmod(0o600)
        node_files.install(root, record.spec.pve_version)
        run(["ssh-keygen", "-A", "-f", str(root)])
        # The node's own chpasswd and PAM (the host's PAM cannot load a newer Debian's modules).
        run(["chroot", str(root), "chpasswd"], input=f"root:{record.root_password}\n")
        host_key = (root / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        with open(paths.known_hosts, "a") as fh:
            fh.write(f"{node.name},{node.link_addr(0)},{node.link_addr(1)} {host_key[0]} {host_key[1]}\n")
        self.prepare_bmc(record, node)

    def prepare_bmc(self, record: LabRecord, machine: NodeSpec) -> None:
        """A machine's BMC: ipmi_sim's configuration and the password its watchdog and clients read."""
        bmc_dir = self.paths.bmc_dir(machine.name)
        bmc.write_config(bmc_dir, machine, record.bmc_password, self.paths.supervisor_socket)
        (bmc_dir / "password").write_text(record.bmc_password + "\n")
        (bmc_dir / "password").chmod(0o600)

    def prepare_storage_server(self, record: LabRecord, nas: NodeSpec) -> None:
        """The storage server's LUN files and its BMC (it has no system of its own to prepare)."""
        self.paths.node_dir(nas.name).mkdir(parents=True, exist_ok=True)
        create_luns(self.paths)
        self.prepare_bmc(record, nas)
        self.log(f"storage server {nas.name}: iSCSI target at {nas.link_addr(0)}, {len(lun_files(self.paths))} LUNs; "
                 f"NFS export {nas.link_addr(0)}:{NFS_EXPORT}; BMC {nas.bmc_addr}")

    def start_supervisor(self) -> None:
        log = open(self.paths.supervisor_log, "ab")  # noqa: SIM115 - handed to the child
        with log:
            subprocess.Popen(
                [sys.executable, "-m", "pvelab.twin.supervisor", "--state", str(self.paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.paths.supervisor_socket.exists() and self.supervisor_alive():
                return
            time.sleep(0.05)
        raise TwinError("the lab supervisor did not start", f"see {self.paths.supervisor_log}")

    def supervisor_alive(self) -> bool:
        try:
            request(self.paths.supervisor_socket, "ping", timeout=5)
        except TwinError:
            return False
        return True

    def wait_for_ssh(self, spec: LabSpec, timeout: float = SSH_WAIT) -> None:
        pending = {n.name: n for n in spec.nodes}

        def all_ready() -> bool:
            for name, node in list(pending.items()):
                if self.node_ready(node):
                    self.log(f"  {name} answers SSH and the API at {node.link_addr(0)}")
                    del pending[name]
            return not pending

        if poll(lambda: True if all_ready() else None, timeout) is None:
            raise TwinError(f"{', '.join(pending)} did not answer SSH and the API (8006) within {timeout:.0f} s",
                            "see the console log in " + str(self.paths.node_dir(next(iter(pending)))))

    def ssh_argv(self, node: NodeSpec, *command: str, connect_timeout: int = 5) -> list[str]:
        return ["ssh", "-i", str(self.paths.ssh_key), "-o", f"UserKnownHostsFile={self.paths.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "LogLevel=ERROR",
                f"root@{node.link_addr(0)}", *command]

    def node_ready(self, node: NodeSpec) -> bool:
        # A node is ready when its API listens too, as a booted PVE node is. SSH is asked by logging in,
        # never by a bare connect: OpenSSH 9.8+ (PVE 9's) counts each connection that never authenticates
        # against its source (PerSourcePenalties noauth:1s, enforced from 15 s), and a poll of port 22
        # got the host itself refused ("kex_exchange_identification: Connection closed by remote host").
        if not port_open(node.link_addr(0), API_PORT):
            return False
        proc = subprocess.run(self.ssh_argv(node, "true", connect_timeout=2), capture_output=True, check=False,
                              timeout=15)
        return proc.returncode == 0

    # -- down ------------------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> list[str]:
        require_root()
        removed: list[str] = []
        if self.paths.supervisor_socket.exists():
            try:
                request(self.paths.supervisor_socket, "shutdown", timeout=60)
                removed.append("supervisor")
            except TwinError:
                pass
        prefix = self.prefix
        removed += self._kill_leftover_processes(prefix)
        for mount in self.mounts():
            run(["umount", "--lazy", mount], check=False)
            removed.append(f"mount {mount}")
        removed += disks.detach_under(self.paths.root)
        if prefix is not None:
            removed += LabNetwork.destroy_all(prefix)
            cgroups.remove_all(prefix)
        if self.paths.root.exists():
            shutil.rmtree(self.paths.root, ignore_errors=True)
            removed.append(f"state {self.paths.root}")
        if not quiet:
            self.log("removed: " + ", ".join(removed) if removed else "nothing to remove: no lab is up")
        return removed

    def _kill_leftover_processes(self, prefix: str | None) -> list[str]:
        """Processes the twin started, found by PID: the supervisor's pid file and the node cgroups."""
        killed = []
        pid_file = self.paths.supervisor_pid
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            deadline = time.monotonic() + 5  # after "shutdown" it exits by itself
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid) and _is_our_supervisor(pid):
                os.kill(pid, 9)
                killed.append(f"supervisor {pid}")
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if this process started it (tests do)
        if prefix is None:
            return killed
        for group in cgroups.groups(prefix):
            cgroups.kill_all(group)
        for pid in cgroups.any_pids(prefix):
            try:
                os.kill(pid, 9)
                killed.append(f"process {pid}")
            except ProcessLookupError:
                pass
        return killed

    def mounts(self) -> list[str]:
        root = str(self.paths.root) + "/"
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
        return sorted({p for p in points if p.startswith(root)}, key=len, reverse=True)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> list[NodeStatus]:
        record = self.require_record()
        rows = []
        for node in record.spec.nodes:
            leader = leader_pid(node.cgroup)
            rows.append(NodeStatus(
                name=node.name,
                power="on" if leader is not None else "off",
                frozen=leader is not None and cgroups.is_frozen(node.cgroup),
                addresses=[node.link_addr(link) for link in LINKS],
                bmc=node.bmc_addr,
                uptime=uptime_of(leader) if leader is not None else None,
                watchdog=watchdog_summary(self.paths.watchdog_state(node.name)),
            ))
        if record.spec.nas is not None:
            nas = record.spec.nas
            power = StorageServer(nas, self.paths).power_state().value
            rows.append(NodeStatus(name=nas.name, power=power, frozen=power == "on" and cgroups.is_frozen(nas.cgroup),
                                   addresses=[nas.link_addr(0), "-"], bmc=nas.bmc_addr, uptime=None, watchdog="-"))
        return rows

    def storage_server(self) -> StorageServer:
        """The lab's storage server, for what it serves and who is logged in to it."""
        nas = self.require_record().spec.nas
        if nas is None:
            down = f"pvelab twin down{f' --lab {self.name}' if self.name else ''}"
            up = f"pvelab twin up{f' --lab {self.name}' if self.name else ''}"
            raise TwinError("this lab has no storage server (it was brought up with --no-storage-server)",
                            f"bring the lab up with one: {down}, then {up}")
        return StorageServer(nas, self.paths)

    # -- faults and power: the one door the CLI, the tests and the benchmarks use -----------------
    def power(self, name: str, action: str, cause: str = "cli") -> str:
        """Press the node's power button (on, off, reset, status) through the supervisor, as its BMC does."""
        self.require_record().spec.node(name)
        return str(request(self.paths.supervisor_socket, "power", node=name, action=action, cause=cause)["state"])

    def latency(self, name: str, delay: str) -> str:
        """Delay every packet the node sends by `delay` (e.g. "5ms"); "0" removes it."""
        try:
            seconds = parse_delay(delay)
        except ValueError as exc:
            raise TwinError(str(exc)) from None
        self.require_record().spec.node(name)
        request(self.paths.supervisor_socket, "latency", node=name, delay_ms=seconds * 1000)
        return f"{name}: {seconds * 1000:g} ms added on every link" if seconds else f"{name}: latency removed"

    def freeze(self, name: str, frozen: bool = True) -> str:
        """Hang the node (processes stopped, links up), or let it run again."""
        self.require_record().spec.node(name)
        request(self.paths.supervisor_socket, "freeze", node=name, frozen=frozen)
        return f"{name}: {'frozen' if frozen else 'running'}"

    def partition(self, names: list[str], others: list[str] | None, link: str) -> str:
        """Cut `names` off from `others` (default: every other node) on one link or all of them."""
        spec = self.require_record().spec
        cut = spec.nodes_named(names)
        peers = spec.nodes_named(others) if others else [n for n in spec.nodes if n not in cut]
        if not peers or set(peers) <= set(cut):
            raise TwinError("nothing to cut these nodes from", "name other nodes with --from")
        LabNetwork(spec).partition(cut, peers, list(LINKS) if link == "all" else [int(link)])
        message = f"cut from {', '.join(n.name for n in peers)} on {'all links' if link == 'all' else f'link{link}'}"
        for node in cut:
            events.record(self.paths.events, node.name, message)
        return f"{', '.join(n.name for n in cut)}: {message}"

    def heal(self) -> str:
        LabNetwork(self.require_record().spec).heal()
        events.record(self.paths.events, "lab", "healed: every partition removed")
        return "healed: every partition removed"

    def boot_id(self, name: str) -> str:
        """The node's boot id (new on every power-on), read without going through its network."""
        proc = exec_in(self.require_record().spec.node(name), ["cat", "/proc/sys/kernel/random/boot_id"])
        return proc.stdout.strip()

    def events(self, node: str | None = None) -> list[str]:
        return events.read(self.paths.events, node)


def lab_dirs() -> list[str]:
    """Named labs that hold a directory (a slot, a record, or both)."""
    root = labs_dir()
    return sorted(d.name for d in root.iterdir() if d.is_dir() and LAB_NAME.fullmatch(d.name)) if root.is_dir() else []


def prefixes_in_use() -> set[str]:
    """Prefixes of named labs that have a namespace, a link or a node cgroup on this host (read once)."""
    return {p for p in named_prefixes_in_use() | {cgroups.lab_of(g) for g in cgroups.groups(None)} if p != PREFIX}


def all_labs() -> list[Lab]:
    """The default lab and every named one that holds a directory, for `list` and `down --all`."""
    return [Lab(), *(Lab.named(n) for n in lab_dirs())]


def stray_prefixes() -> list[str]:
    """Prefixes of named labs' kernel objects that no lab directory claims (a lab whose state was
    deleted by hand): `down --all` removes them too."""
    claimed = {lab.prefix for lab in all_labs()}
    return sorted(p for p in prefixes_in_use() if p not in claimed)


def sweep_prefix(prefix: str) -> list[str]:
    """Remove a stray named lab's processes, cgroups and network (its directory is already gone)."""
    removed = []
    for group in cgroups.groups(prefix):
        cgroups.kill_all(group)
    removed += [f"process {p}" for p in cgroups.any_pids(prefix)]
    removed += LabNetwork.destroy_all(prefix)
    cgroups.remove_all(prefix)
    return removed


def watchdog_summary(state_file: Path) -> str:
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return "-"
    if not state.get("armed"):
        return "disarmed"
    left = max(0.0, float(state["deadline"]) - time.time())
    return f"armed {state['timeout']:.0f}s ({left:.0f}s left)"


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


INOTIFY_PER_NODE = 10  # a booted node's systemd, journald, logind and dbus hold ~9 (measured)
INOTIFY_SYSCTL = Path("/proc/sys/fs/inotify/max_user_instances")


def require_inotify_room(nodes: int) -> None:
    """Every node runs as the host's root and its systemd takes inotify instances from root's allowance;
    past it, a node's systemd cannot start and the node never answers. Refuse before booting."""
    try:
        limit = int(INOTIFY_SYSCTL.read_text())
    except (OSError, ValueError):
        return
    if nodes * INOTIFY_PER_NODE > limit:
        raise TwinError(f"{nodes} lab nodes need about {nodes * INOTIFY_PER_NODE} inotify instances, and this host "
                        f"allows {limit} (fs.inotify.max_user_instances)",
                        "run scripts/setup.sh (it raises the limit to 2048), or take a lab down")


def require_ipmi_port(port: int = BMC_PORT) -> None:
    """BMC addresses are ours (made by up); fail early if something owns UDP 623 on all addresses. Read
    from the kernel's table, not by binding a probe, which other labs' BMCs (on their own addresses)
    would refuse, and which two `up`s at once would race for."""
    if udp_wildcard_bound(port):
        raise TwinError(
            f"UDP port {port} (IPMI) is already in use on this host, so the BMCs cannot listen",
            f"stop the other IPMI service (see: ss -lunp | grep {port}), then run up again")


def _is_our_supervisor(pid: int) -> bool:
    try:
        return b"pvelab.twin.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False

