"""Benchmark of a class hosted on one server: prints figures, asserts nothing.

  sudo .venv/bin/python -m bench.class_labs [--max 16] [--idle 20] [--grade-at 1 4 8] [--course]

With --course every lab is the whole course lab, as a student gets it from the README's first
command (`site.yml`: cluster, two links, Ceph HEALTH_OK, three TCG guests, two under HA, backups,
fencing), and after each one the bench also prints the idle CPU per process kind (corosync, the
TCG guests, the PVE layer's daemons, Ceph, the twin's BMCs and watchdogs), the quorum flaps seen in
every lab's corosync journal over the idle window, and whether every lab's Ceph is HEALTH_OK; it
stops at the first flap or a Ceph that is not HEALTH_OK.

Brings up named 3-node labs (`pvelab twin up --lab`) one after another, each a formed, quorate
cluster, and after each one measures the host: memory per idle lab (PSS of its nodes, BMCs and
watchdogs), host CPU busy over an idle window, and whether every lab up so far is still quorate with
all three nodes (a flapping cluster is the limit, not just memory). At the counts in --grade-at it
times one `pvelab grade` run over all labs up (the cluster part of the course rubric). It stops at
--max (16: the issue's bound) or at the first sign the machine is full: a lab that does not come up
or form its cluster, a lab that lost quorum or a node, or less than 2 GiB of memory left.
Aims (issue 12): grading 8 labs takes at most 3x grading one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.twin_up import MIB, pss_bytes
from pvelab.cli import main as pvelab
from pvelab.twin import cgroups
from pvelab.twin.drive import form_cluster, quorum_view, ssh
from pvelab.twin.inventory import class_roster
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

RUBRIC = """\
rubric: cluster part of the course lab
defaults: {timeout_s: 10}
checks:
  - {id: access.api, title: the grader reaches every node's API, points: 0}
  - {id: cluster.name, title: the planned name, points: 2, requires: [access.api]}
  - {id: cluster.nodes_online, title: three nodes online, points: 6, requires: [access.api]}
  - {id: cluster.quorate, title: quorate without override, points: 4, requires: [cluster.nodes_online]}
  - {id: corosync.links, title: "two links per node, connected", points: 6, requires: [cluster.name]}
  - {id: fencing.bmc, title: every BMC answers, points: 3}
"""
MEMORY_FLOOR = 2 * 1024 * MIB


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_busy(seconds: float) -> float:
    """Share of all CPUs busy over `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def lab_memory(lab: Lab) -> float:
    """MiB (PSS) of a lab's nodes, plus its supervisor and the BMCs and watchdogs it runs."""
    return pss_bytes(lab_pids(lab)) / MIB


def healthy(lab: Lab) -> bool:
    view = quorum_view(lab, "pve1")
    return view.get("quorate") is True and view.get("nodes") == 3


# -- the whole course lab (--course) -----------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent
KINDS = (("corosync", "corosync"), ("qemu-system", "TCG guests"), ("ceph-", "Ceph"), ("pvelab.pve", "PVE layer"),
         ("pve-ha-", "PVE layer"), ("watchdog-mux", "PVE layer"), ("pvelab.twin", "twin BMC/watchdog"),
         ("ipmi_sim", "twin BMC/watchdog"))


def build_course_lab(lab: Lab) -> None:
    """The README's first command after `twin up`, on this lab: site.yml through the twin's inventory."""
    env = dict(os.environ, PVELAB_LAB=lab.name, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/site.yml"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError("site.yml failed: " + done.stdout[-1500:])


def lab_pids(lab: Lab) -> list[int]:
    spec = lab.require_record().spec
    pids = [p for node in spec.nodes for p in cgroups.pids(node.cgroup)]
    supervisor = int(lab.paths.supervisor_pid.read_text().split()[0])
    pids.append(supervisor)
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def kind_of(pid: int) -> str:
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return next((kind for mark, kind in KINDS if mark in comm or mark in cmdline), "other (systemd, sshd, ...)")


def cpu_ticks(pids: list[int]) -> dict[int, tuple[str, int]]:
    """{pid: (kind, utime + stime)} of the processes still there."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (kind_of(pid), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def idle_window(labs: list[Lab], seconds: float) -> tuple[float, dict[str, float]]:
    """Host CPU busy (share of all CPUs) and each process kind's CPU (% of one core, per lab) over `seconds`."""
    pids = [p for lab in labs for p in lab_pids(lab)]
    before = cpu_ticks(pids)
    busy = cpu_busy(seconds)
    after = cpu_ticks(pids)
    per_kind: dict[str, float] = {}
    for pid, (kind, ticks) in after.items():
        if pid in before:
            per_kind[kind] = per_kind.get(kind, 0.0) + (ticks - before[pid][1])
    hz = os.sysconf("SC_CLK_TCK")
    return busy, {k: 100 * v / hz / seconds / len(labs) for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1])}


def flaps(lab: Lab, since: float) -> int:
    """Membership changes corosync logged on every node since `since` (a quiet lab logs none)."""
    total = 0
    for node in lab.require_record().spec.nodes:
        out = ssh(lab, node.name, f"journalctl -u corosync --since @{int(since)} -o cat --no-pager").stdout
        total += out.count("A new membership")
    return total


def ceph_ok(lab: Lab) -> bool:
    return ssh(lab, "pve1", "ceph health", timeout=30).stdout.startswith("HEALTH_OK")


def grade(labs: list[Lab]) -> float:
    data = class_roster([(lab.name, lab.require_record(), lab.paths) for lab in labs], {"cluster_name": "edu-cloud"})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rubric.yml").write_text(RUBRIC)
        (Path(tmp) / "class.yml").write_text(yaml.safe_dump(data))
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            code = pvelab(["grade", "--rubric", f"{tmp}/rubric.yml", "--roster", f"{tmp}/class.yml", "--out",
                           f"{tmp}/out"])
        took = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"pvelab grade exited {code}")
    return took


def run(limit: int, idle: float, grade_at: list[int], pve_version: str, course: bool) -> None:
    labs: list[Lab] = []
    rows: list[str] = []
    graded: dict[int, float] = {}
    stop = ""
    whole = 0  # labs up at once with every lab healthy
    try:
        for k in range(1, limit + 1):
            lab = Lab.named(f"bench{k:02d}", log=lambda _msg: None)
            if lab.paths.root.exists():
                raise SystemExit(f"lab {lab.name} exists: take it down first (pvelab twin down --lab {lab.name})")
            started = time.monotonic()
            try:
                lab.up(LabSpec(node_count=3, pve_version=pve_version))
                labs.append(lab)
                if course:
                    build_course_lab(lab)
                else:
                    form_cluster(lab, "edu-cloud")
            except Exception as exc:  # noqa: BLE001 - the machine's limit is a figure, not a crash
                stop = f"lab {k} did not come up as a {'course lab' if course else 'cluster'}: {exc}"
                break
            ready = time.monotonic() - started
            window_start = time.time()
            busy, per_kind = idle_window(labs, idle)
            unhealthy = [each.name for each in labs if not healthy(each)]
            if course:
                unhealthy += [f"{each.name} (flapped {n}x)" for each in labs if (n := flaps(each, window_start))]
                unhealthy += [f"{each.name} (Ceph not HEALTH_OK)" for each in labs if not ceph_ok(each)]
            memory = lab_memory(lab)
            if k in grade_at:
                graded[k] = grade(labs)
            rows.append(f"{k:>4}  {ready:8.1f}  {memory:9.1f}  {busy * 100:8.1f}  {mem_available() / MIB:9.0f}  "
                        f"{', '.join(unhealthy) or 'all quorate'}" + (f"  graded in {graded[k]:.1f} s" if k in graded
                                                                       else ""))
            print(rows[-1], flush=True)
            print("      idle CPU per lab, % of one core: " + ", ".join(f"{kind} {pct:.1f}"
                                                                      for kind, pct in per_kind.items()), flush=True)
            if unhealthy:
                stop = f"with {k} labs, {', '.join(unhealthy)} over {idle:.0f} s idle"
                break
            whole = k
            if mem_available() < MEMORY_FLOOR:
                stop = f"with {k} labs, less than {MEMORY_FLOOR // MIB} MiB of memory is left"
                break
        else:
            stop = f"reached --max {limit}"
    finally:
        for lab in labs:
            lab.down(quiet=True)
    print(f"\nstopped: {stop}")
    print(f"largest number of {'whole course labs' if course else 'labs'} that ran at once with no quorum flap"
          + (" and Ceph HEALTH_OK in every lab" if course else "") + f": {whole}")
    if 1 in graded:
        for k, took in sorted(graded.items()):
            print(f"grading {k} lab(s): {took:.1f} s ({took / graded[1]:.2f}x one lab)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=16, help="labs to stop at (default 16)")
    parser.add_argument("--idle", type=float, default=20, help="seconds of idle CPU measured after each lab")
    parser.add_argument("--grade-at", type=int, nargs="*", default=[1, 4, 8], help="lab counts to grade at")
    parser.add_argument("--pve-version", default="9", choices=["8", "9"])
    parser.add_argument("--course", action="store_true", help="each lab the whole course lab (site.yml)")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    print(" LAB  READY(s)  PSS(MiB)  CPU(%)  FREE(MiB)  HEALTH")
    run(args.max, args.idle, sorted(args.grade_at), args.pve_version, args.course)
