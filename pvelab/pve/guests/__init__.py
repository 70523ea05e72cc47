"""The guests subsystem of a twin node: VM configs in /etc/pve/qemu-server, and (coming) `qm`, the
QEMU runtime, migration and backups, with their API routes."""

# its API routes (pvelab.pve.api.routes finds them here)
API_MODULES = ("api", "lxc_api", "jobs", "snapshot_api", "disk_api", "clone", "ct_clone")
