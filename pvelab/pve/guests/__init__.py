"""The guests subsystem of a twin node: VM configs in /etc/pve/qemu-server, and (coming) `qm`, the
QEMU runtime, migration and backups, with their API routes."""
