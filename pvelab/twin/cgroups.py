"""Per-node control groups: they hold every process of a powered node, so the twin can freeze
it (a hung node) or cut its power (SIGKILL everything) without ever looking processes up by name.

Works with cgroup v1 hierarchies (freezer + name=systemd, as on this CI's hosts) and with the
unified v2 hierarchy of a stock Debian 12 host.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "pvelab"


def _is_v2_only() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def _dirs(node: str) -> list[Path]:
    """Every hierarchy the node's processes are placed in; the first one is used for control."""
    if _is_v2_only():
        return [CGROUP_ROOT / GROUP / node]
    dirs = [CGROUP_ROOT / "freezer" / GROUP / node]
    # systemd-nspawn needs its own subtree in the systemd hierarchies, or containers collide.
    for hierarchy in ("systemd", "unified"):
        if (CGROUP_ROOT / hierarchy).is_dir():
            dirs.append(CGROUP_ROOT / hierarchy / GROUP / node)
    return dirs


def create(node: str) -> None:
    for path in _dirs(node):
        path.mkdir(parents=True, exist_ok=True)


def _read_procs(root: Path) -> set[int]:
    """Every pid below a cgroup; the node's systemd adds and removes groups (SSH sessions) meanwhile,
    so a group that vanishes while the tree is walked or read (ENOENT, ENODEV) is skipped: os.walk
    ignores a directory it cannot list, where Path.rglob raises."""
    found: set[int] = set()
    for directory, _subdirs, files in os.walk(root, onerror=lambda _error: None):
        if "cgroup.procs" in files:
            try:
                found.update(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
            except OSError:
                continue
    return found


def pids(node: str) -> list[int]:
    found: set[int] = set()
    for path in _dirs(node):
        found |= _read_procs(path)
    return sorted(found)


def freeze(node: str, frozen: bool) -> None:
    control = _dirs(node)[0]
    if _is_v2_only():
        (control / "cgroup.freeze").write_text("1" if frozen else "0")
    else:
        (control / "freezer.state").write_text("FROZEN" if frozen else "THAWED")


def is_frozen(node: str) -> bool:
    control = _dirs(node)[0]
    try:
        if _is_v2_only():
            return (control / "cgroup.freeze").read_text().strip() == "1"
        return (control / "freezer.state").read_text().strip() != "THAWED"
    except FileNotFoundError:
        return False


def kill_all(node: str) -> None:
    """Hard power cut: thaw (frozen tasks cannot die) and SIGKILL every process of the node."""
    if is_frozen(node):
        freeze(node, False)
    for pid in pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_until_empty(node: str, timeout: float = 10.0) -> None:
    """kill_all until no process of the node is left (a dying process may fork first), or timeout."""
    deadline = time.monotonic() + timeout
    while pids(node) and time.monotonic() < deadline:
        kill_all(node)
        time.sleep(0.05)


def launcher_argv(node: str, name: str, argv: list[str]) -> list[str]:
    """`argv` wrapped so it starts inside the node's cgroups: a shell enters them, then execs it (no
    preexec_fn: the supervisor that starts machines is threaded). `name` is the shell's $0."""
    create(node)
    procs = " ".join(shlex.quote(str(d / "cgroup.procs")) for d in _dirs(node))
    return ["sh", "-c", f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"', name, *argv]


def remove(node: str) -> None:
    for path in _dirs(node):
        if not path.is_dir():
            continue
        for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()


def lab_of(group: str) -> str:
    """The prefix of the lab a node group belongs to: the default lab's groups are bare node names
    (pve1), a named lab's carry its prefix (pvl03-pve1); see NodeSpec.cgroup."""
    return group.split("-", 1)[0] if "-" in group else "pvlab"


def groups(lab: str | None) -> list[str]:
    """Node groups of one lab (by prefix), or of every lab when lab is None."""
    names = {d.name for root in _roots() if root.is_dir() for d in root.iterdir() if d.is_dir()}
    return sorted(n for n in names if lab is None or lab_of(n) == lab)


def _roots() -> list[Path]:
    if _is_v2_only():
        return [CGROUP_ROOT / GROUP]
    return [CGROUP_ROOT / h / GROUP for h in ("freezer", "systemd", "unified")]


def remove_all(lab: str | None = None) -> None:
    """Remove the node groups of one lab (or of all); the shared parent goes once it is empty."""
    for group in groups(lab):
        remove(group)
    for root in _roots():
        with contextlib.suppress(OSError):
            root.rmdir()  # fails while another lab still has groups there


def any_pids(lab: str | None = None) -> list[int]:
    """Every process in one lab's node groups (or in any lab's)."""
    found: set[int] = set()
    for group in groups(lab):
        found |= set(pids(group))
    return sorted(found)
