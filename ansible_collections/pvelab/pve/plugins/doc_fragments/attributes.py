"""Check and diff support: of modules that change things (DOCUMENTATION), and of read-only ones (INFO)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Runs in check mode, refusing what a real run would refuse, and says what would change.
    support: full
  diff_mode:
    description: Shows before and after of what changes (or would change, in check mode).
    support: full
  platform:
    description: Runs on the controller and talks to PVE nodes.
    support: N/A
    platforms: all
"""

    INFO = r"""
attributes:
  check_mode:
    description: Runs in check mode; it never changes anything anyway.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: Runs on the controller and talks to PVE nodes.
    support: N/A
    platforms: all
"""
