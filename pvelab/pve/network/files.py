"""The node's network files as PVE keeps them: edits go to /etc/network/interfaces.new (the pending
config, read back by every later edit and listing), `changes` is `diff -b -N -u` of the two, and
applying moves the new file over the old (pve-common's INotify shadow file for 'interfaces')."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pvelab.pve.lockfile import lock_file
from pvelab.pve.network import interfaces
from pvelab.pve.network.interfaces import Config

INTERFACES = Path("/etc/network/interfaces")
PENDING = Path("/etc/network/interfaces.new")
LOCK = Path("/etc/network/.pve-interfaces.lock")
LOCK_TIMEOUT = 10.0


def ip_links() -> dict[str, dict[str, Any]]:
    """The node's links as `ip -details -json link show` gives them, by name (PVE::IPRoute2)."""
    out = subprocess.run(["ip", "-details", "-json", "link", "show"], capture_output=True, text=True, check=True)
    return {link["ifname"]: link for link in json.loads(out.stdout or "[]")}


def active_links(links: dict[str, dict[str, Any]]) -> list[str]:
    """The links that are up (IFF_UP), as PVE reads them for `active`."""
    return [name for name, link in links.items() if "UP" in (link.get("flags") or ())]


def parse_file(path: Path, links: dict[str, dict[str, Any]]) -> Config:
    """One interfaces file as PVE reads it, against the node's links (an absent file is an empty one)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return interfaces.parse(text, links, active_links(links))


def read(links: dict[str, dict[str, Any]], with_changes: bool = False) -> tuple[Config, str | None]:
    """The config as PVE reads it: the pending file if there is one; with the diff against the running file."""
    source = PENDING if PENDING.exists() else INTERFACES
    return parse_file(source, links), (changes() if with_changes and source == PENDING else None)


def changes() -> str | None:
    """`diff -b -N -u interfaces interfaces.new`, one line each, as PVE gathers it (None when equal)."""
    out = subprocess.run(["diff", "-b", "-N", "-u", str(INTERFACES), str(PENDING)], capture_output=True,
                         text=True, check=False)
    text = "".join(line + "\n" for line in out.stdout.splitlines())
    return text or None


def write(config: Config) -> None:
    """The config into the pending file (the running one changes only when the network is reloaded)."""
    text = interfaces.render(config, ifupdown2=True)
    tmp = PENDING.with_name(f"{PENDING.name}.tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(PENDING)


def revert() -> None:
    PENDING.unlink(missing_ok=True)


def take_pending() -> bool:
    """Make the pending config the running one (the first step of a reload); False if none was pending."""
    if not PENDING.exists():
        return False
    PENDING.replace(INTERFACES)
    return True


@contextlib.contextmanager
def locked(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """PVE's lock on the interfaces file around each edit; its error when it cannot be had in time."""
    with lock_file(LOCK, timeout):
        yield
