"""The twin's Proxmox layer, run inside each node with Debian's python3 (no third-party imports
beyond Debian packages): one package per PVE subsystem (cluster, storage, guests, ha, ceph), each
holding its files, CLI, API routes and daemons; `api` is the framework they register with.

The layering rule (tests/unit/test_layering.py reads the imports and keeps it true):
- `api/` is a leaf framework (server, routes, auth, tasks, schema, pvesh): it imports no subsystem.
  A package serves routes by naming its API modules in `API_MODULES`; the framework finds them.
- The modules at this level (members, remote, version, certs, refusal, apiclient) are foundations
  every subsystem may use; they import no subsystem either.
- Subsystems build on each other in one direction: `guests` never imports `ha` (HA hooks itself into
  guest commands through guests/ha_hooks.py), `cluster` never imports `storage` (the installer's
  storage.cfg comes from the twin's installer files). Views over several subsystems live in a
  package above them (`resources`: /cluster/resources).
- No two modules import each other, directly or through others (lazy imports count too).
"""
