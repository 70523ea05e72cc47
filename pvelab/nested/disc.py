"""A nested node's answer disc: an ISO 9660 image labelled `proxmox-ais` holding `answer.toml`, as PVE's
automated installer finds its answer with `proxmox-fetch-answer partition` (the label, as given or
upper-case, under /dev/disk/by-label) - a second CD beside the unmodified installer ISO."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

LABEL = "proxmox-ais"  # proxmox-fetch-answer's default partition label
FIXED_DATE = "2000010100000000"  # YYYYMMDDhhmmsscc


def write_answer_disc(answer_toml: str, target: Path) -> Path:
    """The disc with this answer at its root (Rock Ridge and Joliet names, so `answer.toml` keeps its
    case and dash on every reader)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "answer.toml").write_text(answer_toml, encoding="utf-8")
        # fixed dates: the same answer makes the same bytes, so a second run uploads nothing
        done = subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(target), "-V", LABEL, "-r", "-J",
                               f"--modification-date={FIXED_DATE}", "--set_all_file_dates", FIXED_DATE, tmp],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"xorriso could not write {target}: {done.stderr.strip()} (is xorriso installed?)")
    return target
