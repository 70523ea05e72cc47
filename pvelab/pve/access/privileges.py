"""PVE's privileges and its 17 built-in roles, per major version (pve-access-control's $privgroups:
each category's root, admin, user and audit privileges make PVE<Cat>Admin, PVE<Cat>User, PVEAuditor,
PVEAdmin; Administrator holds every privilege, NoAccess none)."""

from __future__ import annotations

import functools

# category -> (root, admin, user, audit), PVE 9 (libpve-access-control 9.1)
GROUPS_9: dict[str, tuple[tuple[str, ...], ...]] = {
    "VM": ((), ("VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
                "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate",
                "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback"),
           ("VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"),
           ("VM.Audit", "VM.GuestAgent.Audit")),
    "Sys": (("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"), ("Sys.Console", "Sys.Syslog"),
            (), ("Sys.Audit",)),
    "Datastore": ((), ("Datastore.Allocate", "Datastore.AllocateTemplate"), ("Datastore.AllocateSpace",),
                  ("Datastore.Audit",)),
    "SDN": ((), ("SDN.Allocate", "SDN.Audit"), ("SDN.Use",), ("SDN.Audit",)),
    "User": (("Realm.Allocate",), ("User.Modify", "Group.Allocate", "Realm.AllocateUser"), (), ()),
    "Pool": ((), ("Pool.Allocate",), ("Pool.Audit",), ("Pool.Audit",)),
    "Mapping": ((), ("Mapping.Modify",), ("Mapping.Use",), ("Mapping.Audit",)),
}
# PVE 8 (8.2.2): VM.Monitor where 9 has the guest agent privileges, and no VM.Replicate
GROUPS_8 = {**GROUPS_9, "VM": (
    (), ("VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
         "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.Migrate", "VM.Monitor", "VM.Snapshot",
         "VM.Snapshot.Rollback"),
    ("VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt"),
    ("VM.Audit",))}


@functools.cache
def valid_privileges(major: str) -> frozenset[str]:
    groups = GROUPS_8 if major == "8" else GROUPS_9
    return frozenset({"Permissions.Modify"} | {p for lists in groups.values() for tier in lists for p in tier})


@functools.cache
def builtin_roles(major: str) -> dict[str, frozenset[str]]:
    """The special roles: never written to user.cfg, never changed, `special: 1` in /access/roles."""
    roles: dict[str, set[str]] = {"NoAccess": set(), "Administrator": set(valid_privileges(major)),
                                  "PVEAdmin": set(), "PVEAuditor": set()}
    for category, (_root, admin, user, audit) in (GROUPS_8 if major == "8" else GROUPS_9).items():
        roles.setdefault(f"PVE{category}Admin", set()).update(admin, user, audit)
        roles["PVEAdmin"].update(admin, user, audit)
        if user:
            roles.setdefault(f"PVE{category}User", set()).update(user, audit)
        roles["PVEAuditor"].update(audit)
    roles["PVEAdmin"].discard("Mapping.Modify")  # only Administrator and PVEMappingAdmin have it
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    return {name: frozenset(privs) for name, privs in roles.items()}
