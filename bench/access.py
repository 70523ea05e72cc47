"""Benchmark of access control's cost: prints figures, asserts nothing.

  .venv/bin/python -m bench.access                 # in-process: a class of 100 students in user.cfg
  .venv/bin/python -m bench.access --lab NAME      # and over HTTPS on a course lab (site.yml has run)

In-process (no lab): a 1,000-line user.cfg (100 students, each a user, 3 tokens, a pool of 3 guests and
6 ACL entries) - its parse, a pve realm login (SHA-256 crypt as PVE hashes), and the permission check of
a guest start for a pool student and for a privsep token. On a lab: the latency of a GET
(/nodes/pve1/qemu, filtered per caller) and of a guest start (a VM without disks, in pool `course`) as
root@pam, as the lab's student (pool rights) and as a token of the student, side by side in one run.
Aims (issue 21): checks add < 10 % to a GET; a login with a 1,000-line user.cfg < 100 ms.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STUDENTS = 100


def class_user_cfg(students: int = STUDENTS) -> str:
    """user.cfg of a class: per student a user, three tokens, a pool of three guests, six ACL entries."""
    users, groups, pools, acls = [], [], [], []
    for n in range(1, students + 1):
        users.append(f"user:student{n}@pve:1:0:Student:{n}:s{n}@school.example:class::")
        users += [f"token:student{n}@pve!t{k}:0:1::" for k in range(3)]
        vms = [1000 + 3 * n + k for k in range(3)]
        pools.append(f"pool:lab{n}:student {n}:{','.join(map(str, vms))}::")
        acls.append(f"acl:1:/pool/lab{n}:student{n}@pve:PVEVMUser:")
        acls += [f"acl:1:/vms/{vm}:student{n}@pve!t0:PVEVMUser:" for vm in vms]
        acls += [f"acl:0:/storage/local:student{n}@pve:PVEDatastoreUser:",
                 f"acl:1:/pool/lab{n}:student{n}@pve!t1:PVEAuditor:"]
    groups.append(f"group:class:{','.join(f'student{n}@pve' for n in range(1, students + 1))}::")
    return "\n".join(["user:root@pam:1:0::::::", *users, "", *groups, "", *pools, "", "", *acls]) + "\n"


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of one call."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def in_process() -> None:
    from pvelab.pve import version
    from pvelab.pve.access import guard, store, usercfg
    from pvelab.pve.access.perms import Permissions
    from pvelab.pve.api import schema
    from pvelab.pve.api.routes import Caller
    from pvelab.pve.cluster import locks

    text = class_user_cfg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "priv" / "lock").mkdir(parents=True)
        store.USER_CFG, store.SHADOW_CFG, store.DOMAINS_CFG = root / "user.cfg", root / "shadow.cfg", root / "d.cfg"
        locks.LOCK_DIR = root / "priv" / "lock"
        store.USER_CFG.write_text(text)
        store.SHADOW_CFG.write_text(f"student42:{store.hash_password('student-pass')}:\n")
        parse = timed(lambda: usercfg.parse(text, version.major()), 20)
        login = timed(lambda: guard.AccessGuard().login("student42@pve", "student-pass"), 20)
        endpoint = schema.match(version.major(), "POST", "/nodes/pve1/qemu/1127/status/start")
        assert endpoint is not None
        params = {"node": "pve1", "vmid": "1127"}
        check_user = timed(lambda: guard.AccessGuard().check(Caller("student42@pve"), endpoint[0].permissions,
                                                             params), 200)
        check_token = timed(lambda: guard.AccessGuard().check(Caller("student42@pve", "t0"),
                                                              endpoint[0].permissions, params), 200)
        cold = timed(lambda: Permissions(usercfg.parse(text)).permissions("student42@pve", "/vms/1127"), 10)
    print(f"user.cfg of {STUDENTS} students: {len(text.splitlines())} lines, {len(text) / 1024:.0f} KiB")
    print(f"  parse: {parse * 1000:.1f} ms (once per change of the file: every later call reads the parsed copy)")
    print(f"  login of a pve realm user (user.cfg cached, SHA-256 crypt): {login * 1000:.1f} ms")
    print(f"  permission check of a guest start: pool student {check_user * 1e6:.0f} us, privsep token "
          f"{check_token * 1e6:.0f} us; from a cold parse {cold * 1000:.1f} ms")


def over_http(lab_name: str, repeat: int) -> None:
    from proxmoxer import ProxmoxAPI

    from pvelab.twin.lab import Lab

    lab = Lab.named(lab_name, log=lambda _msg: None)
    record = lab.require_record()
    address = record.spec.node("pve1").link_addr(0)

    def client(**login: Any) -> Any:
        return ProxmoxAPI(address, verify_ssl=False, timeout=30, **login)

    root = client(user="root@pam", password=record.root_password)
    if not record.student_password:
        raise SystemExit("this lab has no student account: run site.yml on a lab made by this version")
    tokens = {t["tokenid"] for t in root.access.users("student@pve").token.get()}
    if "bench" in tokens:
        root.access.users("student@pve").token("bench").delete()
    secret = root.access.users("student@pve").token("bench").post(privsep=0)["value"]
    callers = {"root@pam": root, "student@pve (pool)": client(user="student@pve", password=record.student_password),
               "student@pve!bench (token)": client(user="student@pve", token_name="bench", token_value=secret)}
    vmid = 190
    if vmid not in {vm["vmid"] for vm in root.nodes("pve1").qemu.get()}:
        wait(root, root.nodes("pve1").qemu.post(vmid=vmid, memory=64, pool="course"))
    try:
        print(f"over HTTPS on lab '{lab_name}' (median of {repeat}):")
        for name, api in callers.items():
            get = timed(functools.partial(api.nodes("pve1").qemu.get), repeat)
            starts = []
            for _ in range(max(3, repeat // 10)):
                started = time.perf_counter()
                wait(api, api.nodes("pve1").qemu(vmid).status.start.post())
                starts.append(time.perf_counter() - started)
                wait(api, api.nodes("pve1").qemu(vmid).status.stop.post())
            print(f"  {name:<28} GET /nodes/pve1/qemu {get * 1000:6.1f} ms   guest start (task done) "
                  f"{statistics.median(starts) * 1000:6.0f} ms")
    finally:
        wait(root, root.nodes("pve1").qemu(vmid).delete(purge=1))
        root.access.users("student@pve").token("bench").delete()


def wait(api: Any, upid: str) -> None:
    while api.nodes("pve1").tasks(upid).status.get()["status"] != "stopped":
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", help="a course lab (pvelab twin up --lab NAME, then site.yml) to measure over HTTPS")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    in_process()
    if args.lab:
        over_http(args.lab, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
