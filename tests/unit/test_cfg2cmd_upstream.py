"""qemu-server's own command-line tests (src/test/cfg2cmd/: a VM config each and the QEMU command line
qemu-server makes of it, or the error it must give; tests/fixtures/qemu-server/SOURCES.md) against
pvelab's qemu_cmd, word for word, before any TCG rewrite. The host they run on is the one
run_config2command_tests.pl mocks (`mocked_host`): its storages, PCI devices and mappings, custom CPU
models, hardware capabilities and bridge MTUs, carried over as data.

Every case matches; tests/unit/cfg2cmd_matching.txt lists them, and this fails if one stops matching.
docs/upstream-suites.md has the count (scripts/upstream_suites.py uses `cases()` and `outcome()`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.guests import qemu_cmd
from pvelab.pve.guests.config import parse
from pvelab.pve.guests.qemu_drive import Volume
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import volname

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qemu-server" / "cfg2cmd"
MATCHING = Path(__file__).resolve().parent / "cfg2cmd_matching.txt"
VMID = 8006
QEMU_VERSION = "10.1.0"  # the QEMU the expectations were generated with (SOURCES.md)
# run_config2command_tests.pl's mocked host, as data: its storage.cfg, PCI devices and mappings,
# custom CPU models, hardware capabilities, bridge MTUs
STORAGES: dict[str, dict[str, Any]] = {
    "local": {"type": "dir", "path": "/var/lib/vz", "content": {"images", "iso"}},
    "localsnapext": {"type": "dir", "path": "/var/lib/vzsnapext", "content": {"images"},
                     "snapshot-as-volume-chain": 1},
    "noimages": {"type": "dir", "path": "/var/lib/vz", "content": {"iso"}},
    "btrfs-store": {"type": "btrfs", "path": "/butter/bread", "content": {"images"}},
    "cifs-store": {"type": "cifs", "path": "/mnt/pve/cifs-store", "content": {"images", "iso"}, "shared": 1},
    "rbd-store": {"type": "rbd", "monhost": "127.0.0.42,127.0.0.21,::1", "pool": "cpool", "username": "admin",
                  "fsid": "fc4181a6-56eb-4f68-b452-8ba1f381ca2a", "content": {"images"}, "shared": 1},
    "krbd-store": {"type": "rbd", "monhost": "127.0.0.42,127.0.0.21,::1", "pool": "cpool", "username": "admin",
                   "fsid": "fc4181a6-56eb-4f68-b452-8ba1f381ca2a", "content": {"images"}, "shared": 1, "krbd": 1},
    "zfs-over-iscsi-store": {"type": "zfs", "iscsiprovider": "comstar", "portal": "127.0.0.1",
                             "target": "iqn.2019-10.org.test:foobar", "pool": "tank", "content": {"images"}},
    "lvm-store": {"type": "lvm", "vgname": "veegee", "content": {"images"}},
    "local-lvm": {"type": "lvmthin", "vgname": "pve", "thinpool": "data", "content": {"images"}},
}
CHAINS = {"localsnapext": {"current": {"file": "var/lib/vzsnapext/images/8006/vm-8006-disk-0.qcow2", "parent": "snap2"},
                           "snap2": {"file": "/var/lib/vzsnapext/images/8006/snap2-vm-8006-disk-0.qcow2",
                                     "parent": "snap1"},
                           "snap1": {"file": "/var/lib/vzsnapext/images/8006/snap1-vm-8006-disk-0.qcow2"}},
          "lvm-store": {"current": {"file": "/dev/veegee/vm-8006-disk-0.qcow2", "parent": "snap2"},
                        "snap2": {"file": "/dev/veegee/snap2-vm-8006-disk-0.qcow2", "parent": "snap1"},
                        "snap1": {"file": "/dev/veegee/snap1-vm-8006-disk-0.qcow2"}}}
PCI_DEVICES = sorted(["0000:00:43.1", "0000:00:f4.0", "0000:00:ff.1", "0000:0f:f2.0", "0000:d0:13.0", "0000:d0:15.1",
                      "0000:d0:15.2", "0000:d0:17.0", "0000:f0:42.0", "0000:f0:43.0", "0000:f0:43.1", "1234:f0:43.1",
                      "0000:01:00.4", "0000:01:00.5", "0000:01:00.6", "0000:07:10.0", "0000:07:10.1", "0000:07:10.4"])
PCI_MAPPINGS = {"someGpu": ["0000:01:00.4", "0000:01:00.5", "0000:01:00.6"],
                "someNic": ["0000:07:10.0", "0000:07:10.1", "0000:07:10.4"]}
CPU_MODELS = {"qemu64": {"reported-model": "athlon", "flags": "+aes;+avx;-kvm_pv_unhalt", "hv-vendor-id": "testvend",
                         "phys-bits": "40"},
              "alldefault": {}}
HW_CAPABILITIES = {"amd-turin-9005": {"amd-sev": {"cbitpos": 51, "reduced-phys-bits": 6, "sev-support": True,
                                                  "sev-support-es": True, "sev-support-snp": True}}}
NO_SEV = {"amd-sev": {"cbitpos": 0, "reduced-phys-bits": 0, "sev-support": False, "sev-support-es": False,
                      "sev-support-snp": False}}


class MockedStorages:
    """The storages run_config2command_tests.pl mocks (PVE::Storage with activate and stat mocked)."""

    def volume(self, volid: str) -> Volume:
        storage, name = volid.split(":", 1)
        options = STORAGES.get(storage)
        if options is None:
            raise GuestError(f"storage '{storage}' does not exist")
        kind = options["type"]
        if kind in ("dir", "cifs", "btrfs"):
            vtype, image, _vmid, *_rest, fmt = volname.parse_volname(name)
            path = volname.filesystem_path({"path": options["path"]}, name)[0]
            if kind == "btrfs" and fmt == "raw":
                path = path.removesuffix(".raw") + "/disk.raw"
            return Volume(storage, options, vtype, image, fmt, path)
        fmt = "qcow2" if name.endswith(".qcow2") else "raw"
        if kind in ("lvm", "lvmthin"):
            return Volume(storage, options, "images", name, fmt, f"/dev/{options['vgname']}/{name}")
        if kind == "rbd":
            path = f"/dev/rbd-pve/{options['fsid']}/{options['pool']}/{name}" if options.get("krbd") \
                else f"rbd:{options['pool']}/{name}"
            return Volume(storage, options, "images", name, "raw", path)
        return Volume(storage, options, "images", name, "raw", f"iscsi://{options['portal']}/{options['target']}/0")

    def is_device(self, path: str) -> bool:
        return path.startswith("/dev/")

    def snapshot_chain(self, volid: str) -> dict[str, dict[str, str]]:
        return CHAINS.get(volid.split(":", maxsplit=1)[0], {})

    def cdrom_path(self) -> str:
        return "/dev/cdrom"

    def has_ceph_keyring(self, storage: str) -> bool:
        return False


def cases() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.conf"))


def header(conf: Path) -> dict[str, str]:
    """The test's settings from the config's description: TEST, QEMU_VERSION, EXPECT_ERROR, ..."""
    description = parse(conf.read_text()).main.description or ""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*([A-Z_]+):\s*(.*)$", description, re.M)}


def lspci(wanted: str) -> list[str]:
    return [dev for dev in PCI_DEVICES if re.match(rf"^(0000:)?{re.escape(wanted)}", dev)]


def mocked_host(settings: dict[str, str]) -> qemu_cmd.Host:
    caps = settings.get("HW_CAPABILITIES")
    return qemu_cmd.Host(kvm_version=settings.get("QEMU_VERSION", QEMU_VERSION), nodename="localhost",
                         storages=MockedStorages(), cpu_models=CPU_MODELS, phys_bits=46,
                         bridge_mtu=lambda bridge: 1450 if bridge == "vxlan_bridge" else 1500,
                         hw_capabilities=HW_CAPABILITIES.get((caps or "").lower(), NO_SEV),
                         lspci=lspci, pci_mapping=lambda name: PCI_MAPPINGS.get(name, []),
                         iscsi_initiator="iqn.1993-08.org.debian:01:aabbccddeeff")


def outcome(conf: Path) -> tuple[bool, str]:
    """(matches, what differs) for one case."""
    settings = header(conf)
    try:
        ours = qemu_cmd.command(VMID, parse(conf.read_text()).main.options, mocked_host(settings))
    except Exception as exc:  # noqa: BLE001 - any error is the case's answer
        if "EXPECT_ERROR" in settings:
            return str(exc).strip() == settings["EXPECT_ERROR"], f"error: {exc}"
        return False, f"error: {exc}"
    if "EXPECT_ERROR" in settings:
        return False, f"no error; expected '{settings['EXPECT_ERROR']}'"
    expected_file = conf.with_name(conf.name + ".cmd")
    theirs = shlex.split(expected_file.read_text().replace("\\\n", " "))
    if ours == theirs:
        return True, ""
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    return False, f"word {first}: ours {ours[first:first + 2]}, qemu-server's {theirs[first:first + 2]}"


def matching() -> list[str]:
    return [line.strip() for line in MATCHING.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_the_fixtures_hold_every_case_of_the_folder() -> None:
    assert len(cases()) == 95  # every .conf of qemu-server's src/test/cfg2cmd at the commit in SOURCES.md
    assert all(c.with_name(c.name + ".cmd").exists() or "EXPECT_ERROR" in header(c) for c in cases())


@pytest.mark.parametrize("name", matching())
def test_a_case_that_matched_still_matches(name: str) -> None:
    matches, differs = outcome(FIXTURES / name)
    assert matches, differs


def test_every_case_is_in_the_matching_list() -> None:
    assert matching() == [c.name for c in cases()]
