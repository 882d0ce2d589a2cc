"""Operations benchmark: what a timeline run costs against the engine's own fast path.

Run with ``uv run python bench/bench_ops.py`` (``--quick`` for shorter runs). The same
3-station tandem M/M/c network as bench_engine (λ = 90/s) is simulated for the same simulated
time three ways, in the same process, best of 3 each:

(a) the engine's own whole-day machinery on a flat day cut to the horizon — the reference:
    `FifoStation`'s inlined exponential path, no operations;
(b) a timeline with operations on every station (`ReplicaPool`: replicas that can fail,
    per-window recording) but nothing failing — the price of the ops path itself;
(c) the same timeline with random failures (MTBF 1 h, MTTR 1 min per replica) and one
    scheduled replica_down — what faults add on top.

Printed: requests/s of each and the ratios (b)/(a), (c)/(a). No target is set (issue 13): the
ops path trades the hand-inlined FIFO for per-replica bookkeeping; the ratio says how much.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.model import Design  # noqa: E402

LAM = 90.0
STATIONS = [(4, 30.0), (2, 60.0), (8, 20.0)]


def design(horizon_s: float, ops: str) -> Design:
    comps = []
    for i, (c, mu) in enumerate(STATIONS):
        comp = {"id": f"s{i}", "kind": "service", "replicas": c, "concurrency": 1,
                "service_time": {"dist": "exponential", "mean_ms": 1000.0 / mu}}
        if ops == "faults":
            comp["failures"] = {"mtbf_hours": 1.0, "mttr_minutes": 1.0}
        comps.append(comp)
    data = {"name": f"tandem-{ops}", "workload": {"arrival_rps": LAM, "timeline_s": horizon_s},
            "components": comps, "entry": "s0",
            "flow": [{"from": "s0", "to": "s1"}, {"from": "s1", "to": "s2"}]}
    if ops != "none":
        # A fault far past the horizon puts every station on the ops path without changing it.
        data["faults"] = [{"at_s": horizon_s * 0.5 if ops == "faults" else horizon_s - 1e-3, "component": f"s{i}",
                           "what": "replica_down", "duration_s": 30} for i in range(3)]
    return Design.model_validate(data)


def _best(fn, n=3) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    horizon = 300.0 if args.quick else 1200.0
    from sim.des.run import Run
    from sim.ops.timeline import run_timeline

    n_req = LAM * horizon

    def reference():
        # The engine's fast path over the same simulated time: one batch of n_req arrivals.
        d = design(horizon, "none").model_copy(update={"workload": design(horizon, "none").workload.model_copy(update={"timeline_s": None})})
        run = Run(d, 1, 0, int(n_req), whole_day=False, deadline=time.perf_counter() + 600, cancel=None)
        while run.advance() == "boundary" and len(run.segs) < 2:
            run.refresh()
        run.finish()

    t_ref = _best(reference)
    t_ops = _best(lambda: run_timeline(design(horizon, "quiet"), seed=1, max_seconds=600))
    t_flt = _best(lambda: run_timeline(design(horizon, "faults"), seed=1, max_seconds=600))
    print(f"tandem M/M/c, λ = {LAM:g}/s, {horizon:g} s simulated ({n_req:,.0f} requests)")
    for name, t in (("(a) engine fast path", t_ref), ("(b) timeline, ops path, nothing failing", t_ops),
                    ("(c) timeline with random failures + a fault", t_flt)):
        print(f"  {name:<45} {n_req / t:>10,.0f} requests/s")
    print(f"  ratio (b)/(a) = {t_ref / t_ops:.2f}   ratio (c)/(a) = {t_ref / t_flt:.2f}")


if __name__ == "__main__":
    main()
