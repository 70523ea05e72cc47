"""The REST API of nodes outside any cluster, with proxmoxer, on nodes that present PVE 8 (the
other lab tests mostly use 9): version, logins, PVE's answers outside a cluster, parameter checks.
Nothing here changes a node, so the tests hold in any order."""

from __future__ import annotations

from typing import Any

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from pvelab.twin.drive import ssh
from pvelab.twin.lab import Lab

pytestmark = pytest.mark.lab
PVE_VERSION = "8"


def api(lab: Lab, node: str, password: str | None = None) -> Any:
    spec = lab.require_record().spec.node(node)
    return ProxmoxAPI(spec.link_addr(0), user="root@pam", password=password or lab.require_record().root_password,
                      verify_ssl=False, timeout=30)


def test_version_reports_the_chosen_pve_major(lab: Lab) -> None:
    assert lab.require_record().spec.pve_version == PVE_VERSION
    data = api(lab, "pve1").version.get()
    assert data["release"].startswith(PVE_VERSION + ".")
    assert ssh(lab, "pve1", "pveversion").stdout.startswith(f"pve-manager/{PVE_VERSION}.")


def test_wrong_password_gets_401(lab: Lab) -> None:
    with pytest.raises(AuthenticationError):
        api(lab, "pve1", password="not-the-password")


def test_join_info_outside_a_cluster_is_424(lab: Lab) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.join.get()
    assert err.value.status_code == 424
    assert "node is not in a cluster, no join info available!" in err.value.content


@pytest.mark.parametrize("params,field,message", [
    ({"clustername": "c", "bogus": "1"}, "bogus",
     "property is not defined in schema and the schema does not allow additional properties"),
    ({"clustername": "c", "votes": "0"}, "votes", "value must have a minimum value of 1"),
    ({"clustername": "name-longer-than-15"}, "clustername", "value may only be 15 characters long"),
    ({}, "clustername", "property is missing and it is not optional"),
])
def test_bad_parameters_get_pves_verification_error(lab: Lab, params: dict[str, str], field: str,
                                                    message: str) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.post(**params)
    assert err.value.status_code == 400
    assert err.value.errors == {field: message}


def test_cluster_config_outside_a_cluster_answers_like_pve(lab: Lab) -> None:
    """PVE answers null for totem and [] for nodes there (community.proxmox's proxmox_cluster reads totem
    before it creates a cluster)."""
    assert api(lab, "pve1").cluster.config.totem.get() is None
    assert api(lab, "pve1").cluster.config.nodes.get() == []
