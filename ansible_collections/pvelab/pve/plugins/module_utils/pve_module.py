"""The end every pvelab module shares: run its work, turn PveError into fail_json (with the partial
result it carries and the traceback), pass warnings on, keep the diff only under --diff, exit."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

Work = Callable[[dict[str, Any], bool], dict[str, Any]]


def run_module(module: Any, work: Work) -> None:
    try:
        result = work(module.params, module.check_mode)
    except PveError as exc:
        partial = dict(exc.result)
        for warning in partial.pop("warnings", []):
            module.warn(warning)
        if not module._diff:
            partial.pop("diff", None)
        module.fail_json(msg=str(exc), exception=traceback.format_exc(), **partial)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
