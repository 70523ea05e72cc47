"""Ceph as PVE manages it (pveceph, /nodes/{node}/ceph, /cluster/ceph): its files, CLI, API and daemons."""
