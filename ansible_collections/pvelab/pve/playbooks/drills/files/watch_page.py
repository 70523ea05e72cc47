"""Poll a guest's status page every 0.1 s until STOP_FILE exists (or MAX_SECONDS pass); print a JSON
summary: how many answers, the longest time without one, and the first and last page (key: value lines).
The drills run it in the background on the controller while they move a guest."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path


def page(url: str) -> dict[str, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def main(url: str, stop_file: str, max_seconds: float) -> None:
    start = last_answer = time.monotonic()
    longest, answers, first, last = 0.0, 0, None, None
    while not Path(stop_file).exists() and time.monotonic() - start < max_seconds:
        got = page(url)
        now = time.monotonic()
        if got is not None:
            longest = max(longest, now - last_answer)
            last_answer, answers, last = now, answers + 1, got
            first = first or got
        time.sleep(0.1)
    print(json.dumps({"answers": answers, "longest_gap_s": round(longest, 2), "first": first, "last": last,
                      "seconds": round(time.monotonic() - start, 1)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 300)
