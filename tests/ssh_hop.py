"""This host as a second lab server, reached over a real SSH hop: an sshd of the tests' own (not the
host's service), on a bridge and lab address of its own, with its own host key and one authorized
client key. class.yml's test and bench use it to spread a class over two "servers" on one machine.

The address is outside every lab slot's /24s (docs/twin.md): 198.19.250.1, port 2222."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
BRIDGE = "labsrv0"
ADDRESS = "198.19.250.1"
PORT = 2222
SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel ERROR
"""


@dataclass(frozen=True)
class SshHop:
    address: str
    port: int
    key_file: Path
    known_hosts: Path

    def inventory_vars(self) -> dict[str, object]:
        """How Ansible reaches this "server" (host vars of an inventory's lab server)."""
        return {"ansible_host": self.address, "ansible_port": self.port, "ansible_user": "root",
                "ansible_connection": "ssh", "ansible_ssh_private_key_file": str(self.key_file),
                # one connection per run, as Ansible keeps it, but let go 5 s after the run (not 60):
                # it holds a session of this sshd open
                "ansible_ssh_args": (f"-o ControlMaster=auto -o ControlPersist=5s "
                                     f"-o ControlPath={self.key_file.parent}/cm-%C"),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"}


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _answers(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1) as conn:
        return conn.recv(8).startswith(b"SSH-")
    return False


@contextlib.contextmanager
def ssh_hop() -> Iterator[SshHop]:
    """Start the tests' sshd; stop it (by its PID) and remove its bridge afterwards, even on failure."""
    if not SSHD.exists():
        raise RuntimeError(f"{SSHD} is missing: run sudo ./scripts/setup.sh (it installs openssh-server)")
    workdir = Path(tempfile.mkdtemp(prefix="pvelab-ssh-hop-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{ADDRESS}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key"))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "client_key"))
        shutil.copy(workdir / "client_key.pub", workdir / "authorized_keys")
        host_key = (workdir / "host_key.pub").read_text().split()
        (workdir / "known_hosts").write_text(f"[{ADDRESS}]:{PORT} {host_key[0]} {host_key[1]}\n")
        (workdir / "sshd_config").write_text(SSHD_CONFIG.format(port=PORT, address=ADDRESS, dir=workdir))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(workdir / "sshd_config")])
        deadline = time.monotonic() + 10
        while not _answers(ADDRESS, PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the tests' sshd did not answer on {ADDRESS}:{PORT} (exit {proc.poll()})")
            time.sleep(0.1)
        yield SshHop(ADDRESS, PORT, workdir / "client_key", workdir / "known_hosts")
    finally:
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
