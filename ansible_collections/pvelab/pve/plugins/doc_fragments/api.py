"""The options of every module that talks to a node's API, and their place in the action group
(`module_defaults: {group/pvelab.pve.api: ...}` sets them once for all of them)."""


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
requirements:
  - proxmoxer
attributes:
  action_group:
    description: Use C(group/pvelab.pve.api) in C(module_defaults) to set the connection options once for every
      module that talks to a node's API.
    support: full
    membership:
      - pvelab.pve.api
"""
