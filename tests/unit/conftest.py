"""Fixtures the unit tier shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pvelab.pve.guests import store
from pvelab.pve.storage import config, volumes


@pytest.fixture
def node_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """A node's storages and guest configs in a temporary directory: a storage.cfg of the text given
    (`{root}` in it is that directory), the emulated thin pool and its /dev links, the nodes' config
    folders, the config locks and the cluster's VMID list. Call it with the storage.cfg text; it
    returns the directory. (The `local` storage PVE always has stays /var/lib/vz: name yours otherwise.)"""
    def make(storage_cfg: str) -> Path:
        cfg = tmp_path / "storage.cfg"
        cfg.write_text(storage_cfg.format(root=tmp_path))
        monkeypatch.setattr(config, "STORAGE_CFG", cfg)
        monkeypatch.setattr(volumes, "LVM_BACKING", tmp_path / "lvm")
        monkeypatch.setattr(volumes, "DEV", tmp_path / "dev")
        monkeypatch.setattr(store, "NODES_DIR", tmp_path / "nodes")
        monkeypatch.setattr(store, "LOCK_DIR", tmp_path / "locks")
        monkeypatch.setattr(store, "LXC_LOCK_DIR", tmp_path / "locks")
        monkeypatch.setattr(store, "VMLIST", tmp_path / "vmlist")
        return tmp_path
    return make
