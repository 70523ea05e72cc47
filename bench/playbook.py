"""A playbook of this repository run as a bench times it: its seconds, or the run stopped with its
output's tail when it failed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed_playbook(inventory: Path, playbook: str, variables: dict[str, Any], what: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), playbook, "-e", json.dumps(variables)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{what} failed after {took:.1f} s")
    return took
