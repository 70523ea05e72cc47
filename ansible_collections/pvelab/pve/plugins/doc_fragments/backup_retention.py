"""What a backup keeps beside it: notes, protection, and the retention that prunes older backups."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  prune_backups:
    description:
      - The retention that prunes the guest's older backups on the storage after each backup (vzdump's
        C(prune-backups)), instead of the storage's own.
      - Each count covers its own period, shortest first; a period already covered is not counted again; protected
        backups and backups not named by vzdump are never pruned.
      - Counts of 0 only, or none, mean keep everything (PVE stores V(keep-all=1)).
    type: dict
    version_added: "0.6.0"
    suboptions:
      keep_all:
        description: Keep every backup; not together with a count.
        type: bool
      keep_last:
        description: Keep the last N backups.
        type: int
      keep_hourly:
        description: Keep one backup for each of the last N hours that have one.
        type: int
      keep_daily:
        description: Keep one backup for each of the last N days that have one.
        type: int
      keep_weekly:
        description: Keep one backup for each of the last N ISO weeks that have one.
        type: int
      keep_monthly:
        description: Keep one backup for each of the last N months that have one.
        type: int
      keep_yearly:
        description: Keep one backup for each of the last N years that have one.
        type: int
  protected:
    description: Mark each new backup protected (never pruned, not removable until unprotected).
    type: bool
    version_added: "0.6.0"
  notes_template:
    description:
      - Notes for each new backup; C({{cluster}}), C({{guestname}}), C({{node}}) and C({{vmid}}) are replaced, C(\n)
        makes a new line.
      - Give it with C(!unsafe) or C({% raw %}) so Ansible leaves the braces alone.
    type: str
    version_added: "0.6.0"
"""
