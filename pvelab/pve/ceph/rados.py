"""Talking to the Ceph cluster as PVE::RADOS does, through the `ceph` command (JSON out), with
PVE's error texts: `rados_connect failed - No such file or directory` when no monitor is configured,
`got timeout` when the monitors do not answer, `mon_command failed - <Ceph's text>` when Ceph refuses."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from pvelab.pve.ceph import conf
from pvelab.pve.ceph.tools import PVE_CONF, CephError

TIMEOUT = 5  # PVE::RADOS's default; workers reconnect with the long timeout
LONG_TIMEOUT = 60


def mon_configured() -> bool:
    try:
        with open(PVE_CONF) as fh:
            config = conf.parse(fh.read())
    except OSError:
        return False
    return bool((config.get("global", {}).get("mon_host") or "").strip())


def ceph(args: list[str], timeout: float = TIMEOUT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `ceph ARGS` against the cluster; the raw result (the caller decides what failure means)."""
    # PVE's RADOS reads /etc/pve/ceph.conf itself: a node without the /etc/ceph link still reaches the cluster
    argv = ["ceph", "--conf", PVE_CONF, "--connect-timeout", str(int(timeout)), *args]
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout + 10, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CephError("got timeout") from exc


def command(args: list[str], timeout: float = TIMEOUT, stdin: str | None = None, fmt: bool = True) -> Any:
    """A mon/mgr command's JSON answer (None when it prints nothing), or CephError in PVE's words."""
    if not mon_configured():
        raise CephError("rados_connect failed - No such file or directory")
    proc = ceph([*args, "--format", "json"] if fmt else args, timeout, stdin)
    if proc.returncode != 0:
        text = proc.stderr.strip()
        if "timed out" in text or proc.returncode == 110:
            raise CephError("got timeout")
        raise CephError(f"mon_command failed - {text.splitlines()[-1] if text else f'exit {proc.returncode}'}")
    out = proc.stdout.strip()
    if not fmt:
        return out
    try:
        return json.loads(out) if out else None
    except ValueError:
        return out


def reachable(timeout: float = TIMEOUT) -> bool:
    try:
        command(["mon", "stat"], timeout)
    except CephError:
        return False
    return True
