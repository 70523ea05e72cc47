"""Long operations as PVE tasks: UPIDs, task logs under /var/log/pve/tasks, status and log reads."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.procfs import start_ticks

TASK_DIR = Path("/var/log/pve/tasks")
UPID_RE = re.compile(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
                     r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$")
RUNNING: dict[str, threading.Thread] = {}
# Told of every task's start and end (the cluster log registers here: PVE logs both there); the
# framework names no subsystem. Each gets (priority, user, message).
TASK_LOGGERS: list[Callable[[str, str, str], None]] = []


def log_task_event(priority: str, user: str, message: str) -> None:
    for logger in TASK_LOGGERS:
        with contextlib.suppress(Exception):  # a log that cannot be written never fails the task
            logger(priority, user, message)


class TaskError(Exception):
    pass


def _pstart() -> int:
    return start_ticks("self")


def make_upid(node: str, pid: int, kind: str, ident: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{_pstart():08X}:{int(time.time()):08X}:{kind}:{ident}:{user}:"


def parse_upid(upid: str) -> dict[str, Any]:
    m = UPID_RE.match(upid)
    if not m:
        raise TaskError(f"unable to parse worker upid '{upid}'")
    return {"node": m.group(1), "pid": int(m.group(3), 16), "pstart": int(m.group(4), 16),
            "starttime": int(m.group(5), 16), "type": m.group(6), "id": m.group(7), "user": m.group(8),
            "upid": upid}


def log_path(upid: str) -> Path:
    info = parse_upid(upid)
    return TASK_DIR / f"{info['starttime']:08X}"[-1] / upid


class TaskLog:
    def __init__(self, upid: str) -> None:
        self.path = log_path(upid)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()  # a task exists from its start, as PVE's worker log does (its status is read at once)
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock, open(self.path, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")


def start(node: str, kind: str, ident: str, user: str, work: Callable[[Callable[[str], None]], None],
          echo: Callable[[str], None] | None = None) -> str:
    """Run `work(log)` in a worker thread; the task log ends with TASK OK or TASK ERROR: <msg>."""
    ready = threading.Event()
    holder: dict[str, str] = {}

    def run() -> None:
        upid = make_upid(node, threading.get_native_id(), kind, ident, user)
        holder["upid"] = upid
        log = TaskLog(upid)

        def both(line: str) -> None:
            log(line)
            if echo is not None:
                echo(line)

        RUNNING[upid] = threading.current_thread()
        ready.set()
        log_task_event("info", user, f"starting task {upid}")
        try:
            work(both)
        except Exception as exc:  # noqa: BLE001 - any failure becomes the task's exit status
            message = str(exc).strip() or type(exc).__name__
            if echo is not None:
                echo(message)
            log(f"TASK ERROR: {message}")
            log_task_event("err", user, f"end task {upid} {message}")
        else:
            log("TASK OK")
            log_task_event("info", user, f"end task {upid} OK")
        finally:
            RUNNING.pop(upid, None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    return holder["upid"]


def current_upid() -> str | None:
    """The UPID of the task the calling worker thread runs (None outside a worker)."""
    me = threading.current_thread()
    return next((upid for upid, thread in RUNNING.items() if thread is me), None)


def worker_alive(tid: int, pstart: int) -> bool:
    """Whether a task's worker still runs, in whichever process started it (the API server, a CLI
    tool, pvescheduler): its thread exists and belongs to the process that started at `pstart`."""
    try:
        status = Path(f"/proc/{tid}/status").read_text()
        tgid = next(line.split()[1] for line in status.splitlines() if line.startswith("Tgid:"))
        return start_ticks(int(tgid)) == pstart
    except (OSError, StopIteration, ValueError):
        return False


def wait(upid: str) -> None:
    thread = RUNNING.get(upid)
    if thread is not None:
        thread.join()


def status(upid: str) -> dict[str, Any]:
    info = parse_upid(upid)
    path = log_path(upid)
    if not path.exists():
        raise TaskError(f"no such task '{upid}'")
    lines = path.read_text().splitlines()
    last = lines[-1] if lines else ""
    if upid in RUNNING or (not last.startswith("TASK ") and worker_alive(info["pid"], info["pstart"])):
        return {**info, "status": "running"}
    if last == "TASK OK":
        exitstatus = "OK"
    elif last.startswith("TASK ERROR: "):
        exitstatus = last[len("TASK ERROR: "):]
    elif last.startswith("TASK WARNINGS: "):
        exitstatus = last[len("TASK "):]
    else:
        exitstatus = "unexpected status"
    return {**info, "status": "stopped", "exitstatus": exitstatus}


def read_log(upid: str, start_at: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    path = log_path(upid)
    if not path.exists():
        raise TaskError(f"no such task '{upid}'")
    lines = path.read_text().splitlines()
    chosen = lines[start_at:start_at + limit] if limit else lines[start_at:]
    return [{"n": start_at + i + 1, "t": line} for i, line in enumerate(chosen)], len(lines)


def recent(node: str, limit: int | None = 50) -> list[dict[str, Any]]:
    found = []
    for path in TASK_DIR.glob("?/UPID:*"):
        try:
            found.append(status(path.name))
        except TaskError:
            continue
    found.sort(key=lambda t: t["starttime"], reverse=True)
    return [t for t in found if t["node"] == node][:limit]


def status_type(task: dict[str, Any]) -> str:
    """PVE::Tools::upid_normalize_status_type: running, ok, warning, error or unknown."""
    if task.get("status") == "running":
        return "running"
    exitstatus = str(task.get("exitstatus", ""))
    if exitstatus == "OK":
        return "ok"
    if re.fullmatch(r"WARNINGS: \d+", exitstatus):
        return "warning"
    return "unknown" if exitstatus == "unexpected status" else "error"

