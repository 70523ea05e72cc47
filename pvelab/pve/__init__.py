"""The twin's Proxmox layer, run inside each node with Debian's python3 (no third-party imports
beyond Debian packages): the cluster filesystem, pvecm, the REST API, pvesh."""
