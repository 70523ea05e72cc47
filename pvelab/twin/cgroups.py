"""Per-node control groups: they hold every process of a powered node, so the twin can freeze
it (a hung node) or cut its power (SIGKILL everything) without ever looking processes up by name.

Works with cgroup v1 hierarchies (freezer + name=systemd, as on this CI's hosts) and with the
unified v2 hierarchy of a stock Debian 12 host.
"""

from __future__ import annotations

import contextlib
import os
import signal
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


def remove(node: str) -> None:
    for path in _dirs(node):
        if not path.is_dir():
            continue
        for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()


def remove_all() -> None:
    roots = [CGROUP_ROOT / GROUP] if _is_v2_only() else [
        CGROUP_ROOT / h / GROUP for h in ("freezer", "systemd", "unified")
    ]
    for root in roots:
        if root.is_dir():
            for node_dir in root.iterdir():
                if node_dir.is_dir():
                    remove(node_dir.name)
            with contextlib.suppress(OSError):
                root.rmdir()


def any_pids() -> list[int]:
    roots = [CGROUP_ROOT / GROUP] if _is_v2_only() else [CGROUP_ROOT / "freezer" / GROUP]
    found: set[int] = set()
    for root in roots:
        found |= _read_procs(root)
    return sorted(found)
