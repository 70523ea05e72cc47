"""Access control of a twin node, as pve-access-control: user.cfg (users, groups, roles, ACLs, pools,
tokens), domains.cfg, the pve realm's shadow.cfg and token secrets, permission checks on every API
call (the Guard), the /access API and the pveum command."""

API_MODULES = ("api",)  # its API routes and the Guard (pvelab.pve.api.routes finds them here)
