"""pvelab: Proxmox VE teaching labs (Ansible content, the lab twin, the grader)."""

__version__ = "0.1.0"
