"""The network subsystem of a twin node: /etc/network/interfaces as PVE reads and writes it, the
pending /etc/network/interfaces.new, applying it to the node's links, and the /nodes/{node}/network API."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
