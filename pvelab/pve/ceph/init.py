"""What `pveceph init` (POST /nodes/{node}/ceph/init) makes of /etc/pve/ceph.conf.

As PVE: a first call writes [global] (a new fsid, cephx or no auth on all three sides, the pool
defaults, pool deletion allowed) and, with cephx, the [client] keyring line; a later call keeps
fsid, auth and pool defaults and only sets the networks again (`--network` for both the public and
the cluster network, `--cluster-network` for the latter alone)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable

from pvelab.pve.ceph.conf import Config

CLIENT_KEYRING = "/etc/pve/priv/$cluster.$name.keyring"


def init_config(config: Config, network: str | None = None, cluster_network: str | None = None, size: int = 3,
                min_size: int = 2, disable_cephx: bool = False,
                new_fsid: Callable[[], str] = lambda: str(uuid.uuid4())) -> Config:
    """The ceph.conf sections after init (a new dict: `config` is left as it was)."""
    auth = "none" if disable_cephx else "cephx"
    out = copy.deepcopy(config)
    if "global" not in out:
        out["global"] = {"fsid": new_fsid(), "auth_cluster_required": auth, "auth_service_required": auth,
                         "auth_client_required": auth, "osd_pool_default_size": str(size),
                         "osd_pool_default_min_size": str(min_size), "mon_allow_pool_delete": "true"}
    if auth == "cephx":
        out.setdefault("client", {})["keyring"] = CLIENT_KEYRING
    if network:
        out["global"]["public_network"] = network
        out["global"]["cluster_network"] = network
    if cluster_network:
        out["global"]["cluster_network"] = cluster_network
    return out
