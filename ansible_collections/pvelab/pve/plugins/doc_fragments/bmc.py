"""The options that reach a node's BMC (IPMI over lanplus, from the controller)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bmc_address:
    description: Address of the node's BMC.
    type: str
  bmc_port:
    description: The BMC's RMCP port.
    type: int
    default: 623
  bmc_user:
    description: BMC user.
    type: str
    default: admin
  bmc_password:
    description: BMC password. Env C(PVE_BMC_PASSWORD).
    type: str
requirements:
  - python-ipmi
  - ipmitool
"""
