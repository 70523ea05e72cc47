"""The options of modules that do what PVE does over SSH (pvecm qdevice, watchdog config, corosync.conf)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ssh_user:
    description: User for SSH to the node.
    type: str
    default: root
  ssh_port:
    description: SSH port of the node.
    type: int
    default: 22
  ssh_key_file:
    description: Private key for SSH. Env C(PVE_SSH_KEY_FILE).
    type: path
  ssh_password:
    description: Password for SSH. Env C(PVE_SSH_PASSWORD).
    type: str
  ssh_known_hosts_file:
    description: known_hosts file to check the node's host key against (the system's when omitted).
    type: path
  ssh_host_key_policy:
    description: What to do with a host key that is not known - refuse (V(reject)), add it (V(accept-new)),
      or warn and go on (V(ignore)).
    type: str
    choices: [reject, accept-new, ignore]
    default: reject
requirements:
  - paramiko
"""
