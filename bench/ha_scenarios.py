"""Benchmark of the HA harness: prints figures, asserts nothing.

  .venv/bin/python -m bench.ha_scenarios [--rounds 3]

Runs every pve-ha-manager scenario the unit tier runs (PVE 9's 144 and PVE 8's 9 group-based ones)
through tests/ha_sim.py against pvelab's CRM, LRM and Manager, and prints the wall time of the
whole suite (the issue's aim: under a minute here, so it runs on every change) and of the slowest
scenarios.
"""

from __future__ import annotations

import argparse
import time

from tests.ha_scenarios import PVE8_GROUP_SCENARIOS, Scenario, all_scenarios
from tests.ha_sim import simulate


def timed(scenarios: list[Scenario]) -> list[tuple[float, str]]:
    out = []
    for scenario in scenarios:
        started = time.perf_counter()
        simulate(scenario)
        out.append((time.perf_counter() - started, scenario.name))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenarios = all_scenarios() + all_scenarios(PVE8_GROUP_SCENARIOS)
    totals = []
    for _ in range(args.rounds):
        times = timed(scenarios)
        totals.append(sum(t for t, _ in times))
    print(f"{len(scenarios)} scenarios, whole suite: best {min(totals):.2f} s, worst {max(totals):.2f} s"
          f" ({args.rounds} rounds)")
    for seconds, name in sorted(times, reverse=True)[:3]:
        print(f"  slowest: {name} {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
