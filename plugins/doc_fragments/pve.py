"""Options every pvelab module shares: the API connection (DOCUMENTATION) and SSH (SSH); the check and
diff support of modules that change things (ATTRIBUTES) and of read-only ones (INFO_ATTRIBUTES)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_host:
    description: Address of the PVE node whose API (port O(api_port)) the module talks to.
    type: str
    required: true
  api_port:
    description: Port of the PVE API.
    type: int
    default: 8006
  api_user:
    description: User to log in as, with realm. Env C(PVE_USER).
    type: str
    default: root@pam
  api_password:
    description: Password of O(api_user). Env C(PVE_PASSWORD). Either this or an API token is required.
    type: str
  api_token_id:
    description: API token id (the part after C(!)). Env C(PVE_TOKEN_ID). Needs O(api_token_secret).
    type: str
  api_token_secret:
    description: API token secret. Env C(PVE_TOKEN_SECRET). Needs O(api_token_id).
    type: str
  validate_certs:
    description: Check the node's TLS certificate against the system's CA store.
    type: bool
    default: false
  ca_file:
    description: CA certificate to check the node's certificate with (e.g. a copy of C(/etc/pve/pve-root-ca.pem)).
    type: path
  api_timeout:
    description: Seconds to wait for one API answer.
    type: int
    default: 30
"""

    SSH = r"""
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
"""

    ATTRIBUTES = r"""
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

    INFO_ATTRIBUTES = r"""
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
