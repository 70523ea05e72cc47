"""The HA stack: watchdog-mux, the CRM and LRM daemons, ha-manager and /cluster/ha (pve-ha-manager)."""
