"""pmxcfs's cluster-wide locks: a directory under /etc/pve/priv/lock, made by one node at a time
(the cluster filesystem refuses a second mkdir anywhere in the cluster) - cfs_lock_domain('ha'),
cfs_lock_file('user.cfg'). Kept import-free beyond the refusal: the HA daemons use it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pvelab.pve.refusal import Refusal

LOCK_DIR = Path("/etc/pve/priv/lock")


@contextlib.contextmanager
def cfs_lock(name: str, timeout: float = 10.0, error: type[Refusal] = Refusal) -> Iterator[None]:
    """Hold the lock `name` (PVE's `domain-ha`, `file-user_cfg`, ...): PVE's texts on a timeout and
    without quorum (a read-only /etc/pve)."""
    path = LOCK_DIR / name
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                os.utime(path, (0, 0))  # an unlock request: pmxcfs drops the lock if it is stale
            if time.monotonic() > deadline:
                raise error(f"cfs-lock '{name}' error: got lock request timeout") from None
            time.sleep(0.2)
        except PermissionError:
            raise error("cluster not ready - no quorum?") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.rmdir()
