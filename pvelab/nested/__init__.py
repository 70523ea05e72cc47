"""Nested PVE labs on a real PVE host: what is checked and built on the controller before and while the
host makes the lab's VMs (the answer files of PVE's automated installer, first)."""

from pathlib import Path


def first_boot_hook() -> bytes:
    """pvelab's first-boot hook, for `prepare-iso --on-first-boot` (first-boot.sh says what it does)."""
    return (Path(__file__).parent / "first-boot.sh").read_bytes()
