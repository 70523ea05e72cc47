"""The node's own pages, as pve-manager serves them: its version, its services (list, state, start,
stop, restart, reload through systemd), its system log and journal, time and time zone, DNS
resolvers, /etc/hosts and its subscription status."""

API_MODULES = ("api",)  # its API routes (pvelab.pve.api.routes finds them here)
