"""The cluster subsystem of a twin node: the cluster filesystem at /etc/pve (cfs, its database and
replication over corosync CPG), corosync.conf, cluster operations (create, join, addnode, delnode),
the `pvecm` command, QDevice setup, and the cluster's API routes (cluster.api)."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
