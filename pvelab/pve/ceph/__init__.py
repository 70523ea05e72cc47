"""Ceph as PVE manages it (pveceph, /nodes/{node}/ceph, /cluster/ceph): its files, CLI, API and daemons."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
