"""Shared test setup: modules and module_utils are imported the way Ansible imports them."""

import sys
from pathlib import Path

import ansible.module_utils

REPO = Path(__file__).resolve().parent.parent
ansible.module_utils.__path__.append(str(REPO / "plugins" / "module_utils"))  # type: ignore[attr-defined]
sys.path.insert(0, str(REPO / "library"))
