"""What a student sees first on a node: /nodes/{node}/status's CPU (PVE's read_cpuinfo over the
host's /proc/cpuinfo) and `pveversion -v` (PVE's package list, in its order)."""

from __future__ import annotations

import pytest

from pvelab.procfs import cpuinfo
from pvelab.pve import version

# Two sockets of two cores each, with hyper-threading (8 logical CPUs), Intel VT.
CPUINFO = "".join(
    f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz\n"
    f"cpu MHz\t\t: {2400.000 + cpu:.3f}\nphysical id\t: {cpu // 4}\nsiblings\t: 4\ncore id\t\t: {cpu % 2}\n"
    f"cpu cores\t: 2\nflags\t\t: fpu vme de pse tsc msr vmx ssse3 sse4_1\n\n"
    for cpu in range(8))


def test_cpuinfo_is_summed_up_as_pve_does() -> None:
    info = cpuinfo(CPUINFO)
    assert (info["model"], info["mhz"], info["cpus"], info["sockets"], info["cores"], info["hvm"]) == (
        "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz", "2400.000", 8, 2, 4, "1")
    assert info["flags"] == "fpu vme de pse tsc msr vmx ssse3 sse4_1" and info["user_hz"] == 100


def test_cpuinfo_of_this_host_names_its_real_model() -> None:
    info = cpuinfo()
    assert info["model"] not in ("unknown", "lab twin") and int(str(info["cpus"])) >= 1


def test_a_cpu_without_vt_is_not_hvm() -> None:
    assert cpuinfo(CPUINFO.replace(" vmx ", " "))["hvm"] == ""


def test_pveversion_verbose_lists_pves_packages_in_pves_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "major", lambda: "9")
    lines = version.package_lines({"corosync": "3.1.9-2", "libknet1t64": "1.30-1", "qemu-system-x86": "1:10.0.2",
                                   "lxc": "1:6.0.4-4", "ceph-common": "18.2.7+ds-1", "smartmontools": "7.4-3"})
    assert lines[0].startswith("proxmox-ve: 9.1.0 (running kernel: ")
    assert lines[1] == "pve-manager: 9.1.1 (running version: 9.1.1/42db4a6cf33dac83)"
    names = [line.split(":")[0] for line in lines[2:]]
    assert names == sorted(names)
    assert "ceph: 18.2.7+ds-1" in lines and "corosync: 3.1.9-2" in lines and "libknet1: 1.30-1" in lines
    assert "pve-qemu-kvm: 1:10.0.2" in lines and "lxc-pve: 1:6.0.4-4" in lines
    assert "qemu-server: 9.1.1+pvelab" in lines and "pve-ha-manager: 9.1.1+pvelab" in lines
    # what the node does not have is left out (zfsutils-linux is optional; pve-docs is not there at all)
    assert not {"zfsutils-linux", "pve-docs", "ceph-fuse"} & set(names)


def test_pveversion_takes_only_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    assert version.main(["--bogus"]) == 255
    assert capsys.readouterr().err == "USAGE: pveversion [--verbose]\n"
