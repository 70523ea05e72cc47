"""A storage definition in /etc/pve/storage.cfg, through the API (/storage): what pve_storage
compares, creates, updates and removes. Every refusal comes before check mode returns."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

# What each type needs to be created; PVE fixes these there (SectionConfig `fixed`), so changing one
# means remove and add.
FIXED = {"dir": ("path",), "lvmthin": ("thinpool", "vgname"), "rbd": ("pool",), "iscsidirect": ("portal", "target"),
         "nfs": ("server", "export"), "zfspool": ("pool",)}
# Fixed too, but PVE chooses it when not given (an nfs storage is mounted at /mnt/pve/<storage>).
FIXED_WITH_DEFAULT = {"nfs": ("path",)}
# The options each type takes (PVE answers "unexpected property" for the others).
TYPE_OPTIONS = {"dir": {"path", "content", "shared", "nodes", "disable"},
                "lvmthin": {"thinpool", "vgname", "content", "nodes", "disable"},
                "rbd": {"pool", "content", "krbd", "monhost", "nodes", "disable"},
                "iscsidirect": {"portal", "target", "content", "nodes", "disable"},
                "nfs": {"server", "export", "path", "options", "content", "nodes", "disable"},
                "zfspool": {"pool", "sparse", "content", "nodes", "disable"}}
# The options this module manages, named as in storage.cfg.
OPTIONS = ("path", "content", "shared", "nodes", "disable", "vgname", "thinpool", "pool", "krbd", "monhost", "portal",
           "target", "server", "export", "options", "sparse")
# storage.cfg's names the module spells otherwise (`options` would read as the module's own options).
PARAMETER = {"options": "mount_options"}


def wanted_options(p: dict[str, Any]) -> dict[str, str]:
    """The asked options as storage.cfg spells them (lists joined, booleans 0/1); unset ones left out."""
    out: dict[str, str] = {}
    for option in OPTIONS:
        value = p.get(PARAMETER.get(option, option))
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, list):
            value = ",".join(sorted(value)) if option == "content" else ",".join(value)
        out[option] = str(value)
    return out


def current_options(entry: dict[str, Any]) -> dict[str, str]:
    """A GET /storage/{storage} answer in the same spelling as wanted_options (content sorted)."""
    out = {k: str(v) for k, v in entry.items() if k in OPTIONS}
    if "content" in out:
        out["content"] = ",".join(sorted(out["content"].split(",")))
    return out


def read(api: PveApi, storage: str) -> dict[str, Any] | None:
    """The storage's config with the file's digest, or None; PVE's index lists the same entries."""
    return next((e for e in api.get("/storage") if e.get("storage") == storage), None)


def ensure(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    sid = p["storage"]
    entry = read(api, sid)
    if p["state"] == "absent":
        if entry is None:
            return {"changed": False, "storage": sid}
        result = {"changed": True, "storage": sid, "diff": {"before": current_options(entry), "after": {}}}
        if check_mode:
            return {**result, "msg": f"storage '{sid}' would be removed"}
        api.delete(f"/storage/{sid}")
        return result
    want = wanted_options(p)
    kind = entry["type"] if entry is not None else p["type"]
    foreign = sorted(k for k in want if kind in TYPE_OPTIONS and k not in TYPE_OPTIONS[kind])
    if foreign:
        raise PveError(f"{', '.join(foreign)} does not apply to a '{kind}' storage ('{sid}'); it takes "
                       f"{', '.join(sorted(TYPE_OPTIONS[kind]))}")
    if entry is None:
        return create(api, p, want, check_mode)
    return update(api, p, entry, want, check_mode)


def create(api: PveApi, p: dict[str, Any], want: dict[str, str], check_mode: bool) -> dict[str, Any]:
    sid, kind = p["storage"], p["type"]
    if kind is None:
        raise PveError(f"storage '{sid}' does not exist yet: give its type ({', '.join(FIXED)}) to create it")
    missing = [o for o in FIXED.get(kind, ()) if o not in want]
    if missing:
        raise PveError(f"a '{kind}' storage needs {', '.join(missing)} to be created (storage '{sid}')")
    result = {"changed": True, "storage": sid, "config": {"type": kind, **want},
              "diff": {"before": {}, "after": {"type": kind, **want}}}
    if check_mode:
        return {**result, "msg": f"storage '{sid}' would be created"}
    api.post("/storage", storage=sid, type=kind, **want)
    return result


def update(api: PveApi, p: dict[str, Any], entry: dict[str, Any], want: dict[str, str],
           check_mode: bool) -> dict[str, Any]:
    sid, kind = p["storage"], entry["type"]
    if p["type"] is not None and p["type"] != kind:
        raise PveError(f"storage '{sid}' is a '{kind}' storage, not '{p['type']}': remove it first "
                       "(state: absent) to make it another type")
    have = current_options(entry)
    changes = {k: v for k, v in want.items() if have.get(k) != v}
    fixed = [k for k in changes if k in (*FIXED.get(kind, ()), *FIXED_WITH_DEFAULT.get(kind, ()))]
    if fixed:
        raise PveError(f"{', '.join(PARAMETER.get(k, k) for k in fixed)} of storage '{sid}' cannot change once it "
                       "exists (PVE fixes it): "
                       "remove the storage and add it again")
    if not changes:
        return {"changed": False, "storage": sid, "config": {"type": kind, **have}}
    after = {**have, **changes}
    result = {"changed": True, "storage": sid, "config": {"type": kind, **after},
              "diff": {"before": {"type": kind, **have}, "after": {"type": kind, **after}}}
    if check_mode:
        return {**result, "msg": f"storage '{sid}' would be updated ({', '.join(sorted(changes))})"}
    api.put(f"/storage/{sid}", digest=entry.get("digest"), **changes)
    return result
