"""The HA stack: watchdog-mux, the CRM and LRM daemons, ha-manager and /cluster/ha (pve-ha-manager)."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
