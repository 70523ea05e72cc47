"""The modules' own API client for tests, imported the way Ansible imports module_utils (see conftest)."""

from ansible.module_utils.pve_api import PveApi

__all__ = ["PveApi"]
