"""The checks pveceph starts with, with PVE's messages, on a directory standing in for a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.pve.ceph.tools import CephError, CephPaths, parse_version


def installed(root: Path, *binaries: str) -> CephPaths:
    for binary in binaries:
        path = root / binary.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return CephPaths(root)


def test_each_stage_is_refused_in_pves_words_until_it_is_there(tmp_path: Path) -> None:
    node = CephPaths(tmp_path)
    with pytest.raises(CephError, match="^binary not installed: /usr/bin/ceph-mon$"):
        node.check_inited()
    installed(tmp_path, "/usr/bin/ceph", "/usr/bin/ceph-mon")
    with pytest.raises(CephError) as none:
        node.check_inited()
    assert str(none.value) == ("pveceph configuration not initialized - missing '/etc/pve/ceph.conf', "
                               "missing '/etc/pve/ceph'")
    node("/etc/pve/ceph").mkdir(parents=True)
    with pytest.raises(CephError, match="^pveceph configuration not initialized - missing '/etc/pve/ceph.conf'$"):
        node.check_configured()
    node("/etc/pve/ceph.conf").write_text("[global]\n")
    with pytest.raises(CephError, match="^ceph not fully configured - missing "
                                        "'/etc/pve/priv/ceph.client.admin.keyring'$"):
        node.check_configured()
    node("/etc/pve/priv").mkdir()
    node("/etc/pve/priv/ceph.client.admin.keyring").write_text("[client.admin]\n")
    node.check_configured()
    node("/run").mkdir()
    node("/run/pve-ceph-install-flag").write_text("")  # an install under way: not installed yet
    with pytest.raises(CephError, match="^binary not installed: /usr/bin/ceph$"):
        node.check_installed()


def test_etc_ceph_conf_may_only_be_pves_link(tmp_path: Path) -> None:
    node = CephPaths(tmp_path)
    node("/etc/pve").mkdir(parents=True)
    node("/etc/pve/ceph.conf").write_text("[global]\n")
    node("/etc/ceph").mkdir()
    node.check_symlink()  # absent is fine: init makes the link
    node("/etc/ceph/ceph.conf").symlink_to("/etc/pve/ceph.conf")
    node.check_symlink()  # PVE's link
    node("/etc/ceph/ceph.conf").unlink()
    for wrong in ("link", "file"):
        if wrong == "link":
            node("/etc/ceph/ceph.conf").symlink_to("/root/my-ceph.conf")
        else:
            node("/etc/ceph/ceph.conf").unlink()
            node("/etc/ceph/ceph.conf").write_text("[global]\n")
        with pytest.raises(CephError, match="^file '/etc/ceph/ceph.conf' already exists and is not a symlink to "
                                            "/etc/pve/ceph.conf$"):
            node.check_symlink()


def test_ceph_version_lines_of_each_release() -> None:
    assert parse_version("ceph version 19.2.3 (c92aebb279828e9c3c1f5d24613efca272649e62) squid (stable)") == \
        ("19.2.3", "c92aebb279828e9c3c1f5d24613efca272649e62", [19, 2, 3])
    assert parse_version("ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)") == \
        ("16.2.15", "618f440892089921c3e944a991122ddc44e60516", [16, 2, 15])
    assert parse_version("not ceph") is None
