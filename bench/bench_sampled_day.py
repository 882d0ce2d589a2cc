"""A sampled day against the full whole-day timeline it stands for (issue 13).

Run with ``uv run python bench/bench_sampled_day.py`` (``--scale 0.5`` for half the traffic).
One autoscaled service (exponential 100 ms, 1 slot, target 0.8, 1–8 replicas) on a day of
691,200 requests: 12 hours at 4/s, 12 at 12/s — the twin's count is 1 by night, 2 by day. The
same seed is run two ways, in the same process:

(a) the full whole-day timeline (`simulate(whole_day=True)`): every request of the day;
(b) `sample_day`: a 120 s window per hour plus a 330 s transition window where the count changes.

Printed: requests simulated, CPU seconds and their ratio, replica-hours, the autoscaled cost and
availability of each, and the twin's replica-hours. Expect (b) a few percent of (a)'s CPU and
replica-hours within a quarter of a replica-hour: the full run starts at midnight at the
design's 4 replicas, and its 3 extra replicas stay through the 315 s stabilisation window
(3 × 315 / 3,600 = 0.26 replica-hours) — a sampled day is a day among days, whose midnight
starts at hour 23's count. No target is set: this is the method's check, not a speed goal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.model import Design  # noqa: E402


def day_design(scale: float) -> Design:
    return Design.model_validate({
        "name": "day", "workload": {"requests_per_day": 691_200 * scale, "profile_24h": [1] * 12 + [3] * 12},
        "components": [{"id": "svc", "kind": "service", "replicas": 4, "concurrency": 1,
                        "service_time": {"dist": "exponential", "mean_ms": 100},
                        "autoscale": {"min_replicas": 1, "max_replicas": 8, "target": 0.8}}],
        "entry": "svc"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="traffic multiplier (default 1)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    from sim import replicas_per_hour, sample_day, simulate

    d = day_design(args.scale)
    t = time.process_time()
    full = simulate(d, seed=args.seed, whole_day=True, max_requests=5_000_000, max_seconds=3600)
    cpu_full = time.process_time() - t
    t = time.process_time()
    day = sample_day(d, seed=args.seed)
    cpu_day = time.process_time() - t
    o = full.ops
    print(f"twin: {sum(replicas_per_hour(d)['svc'])} replica-hours")
    print(f"(a) full day:    {o.fates.offered:>9,} requests, {cpu_full:6.2f} s CPU, {o.replica_hours['svc']:.2f} replica-hours, "
          f"${o.autoscaled_cost_per_day_usd:,.3f}/day, availability {o.availability:.5f}")
    print(f"(b) sampled day: {day.simulated_requests:>9,} requests, {cpu_day:6.2f} s CPU, {day.replica_hours['svc']:.2f} replica-hours, "
          f"${day.autoscaled_cost_per_day_usd:,.3f}/day, availability {day.availability:.5f}")
    print(f"CPU (b)/(a) = {cpu_day / cpu_full:.3f}; replica-hours (a) − (b) = "
          f"{o.replica_hours['svc'] - day.replica_hours['svc']:+.2f} (the full day's midnight start at 4 replicas: +0.26)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
