"""Nested PVE labs on a real PVE host: what is checked and built on the controller before and while the
host makes the lab's VMs (the answer files of PVE's automated installer, first)."""
