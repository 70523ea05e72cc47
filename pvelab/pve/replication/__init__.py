"""Storage replication (pvesr): jobs in /etc/pve/replication.cfg, run on the guest's node by
`pvescheduler` on their schedule (or `pvesr run`), sending zfspool volumes' snapshots to the target
node incrementally; the /cluster/replication and /nodes/{node}/replication API."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
