"""`pveceph init`'s ceph.conf: the first call writes PVE's [global] and [client]; a second keeps
fsid, auth and pool defaults and only sets the networks again."""

from __future__ import annotations

from pvelab.pve.ceph.conf import dump, parse
from pvelab.pve.ceph.init import init_config

FSID = "0c5b3a4e-7d1f-4c2a-9a8e-3b6f1d2c4e5f"


def test_a_first_init_writes_pves_global_and_client_sections() -> None:
    text = dump(init_config({}, network="10.10.10.0/24", new_fsid=lambda: FSID))
    assert text == (
        "[global]\n\tauth_client_required = cephx\n\tauth_cluster_required = cephx\n"
        "\tauth_service_required = cephx\n\tcluster_network = 10.10.10.0/24\n"
        f"\tfsid = {FSID}\n\tmon_allow_pool_delete = true\n\tosd_pool_default_min_size = 2\n"
        "\tosd_pool_default_size = 3\n\tpublic_network = 10.10.10.0/24\n\n"
        "[client]\n\tkeyring = /etc/pve/priv/$cluster.$name.keyring\n\n")


def test_without_cephx_there_is_no_client_keyring_and_auth_is_none() -> None:
    config = init_config({}, disable_cephx=True, size=2, min_size=1, new_fsid=lambda: FSID)
    assert "client" not in config and "public_network" not in config["global"]
    assert {config["global"][k] for k in ("auth_client_required", "auth_cluster_required",
                                           "auth_service_required")} == {"none"}
    assert (config["global"]["osd_pool_default_size"], config["global"]["osd_pool_default_min_size"]) == ("2", "1")


def test_a_second_init_keeps_the_cluster_and_sets_only_the_networks() -> None:
    first = parse(dump(init_config({}, network="10.10.10.0/24", new_fsid=lambda: FSID)))
    first["mon.pve1"] = {"public_addr": "10.10.10.1"}
    second = init_config(first, network="10.20.0.0/24", cluster_network="10.30.0.0/24", size=5,
                         new_fsid=lambda: "another")
    assert second["global"]["fsid"] == FSID and second["global"]["osd_pool_default_size"] == "3"
    assert (second["global"]["public_network"], second["global"]["cluster_network"]) == ("10.20.0.0/24",
                                                                                          "10.30.0.0/24")
    assert second["mon.pve1"] == {"public_addr": "10.10.10.1"} and first["global"]["public_network"] == "10.10.10.0/24"
