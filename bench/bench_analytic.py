"""Analytic-twin benchmark: `estimate(design)` wall time per station, against validation.

Run with ``uv run python bench/bench_analytic.py``. The reference measured in the same run is
``Design.model_validate`` of the same data (the least any command does with a design), so the
ratios travel between machines. Designs:

(a) the library designs (LLM servers dominate: their roofline runs per estimate);
(b) synthetic designs of 50 and 500 service stations: chains of branch, fan-out and loop
    blocks, exercising every part of the flow walk.

Target (issue 3): "well under a second per station" — here, milliseconds per station.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.io import load_design  # noqa: E402
from designs.model import Design  # noqa: E402
from sim.twin.analytic import estimate  # noqa: E402


def synthetic(n_blocks: int) -> dict:
    """n_blocks × 5 services: a → (b ∥ c) → d → e, e loops back to a (p 0.3, twice), e branches on."""
    comps, flow = [], []

    def svc(cid: str, ms: float = 10.0) -> dict:
        return {"id": cid, "kind": "service", "replicas": 4, "concurrency": 8,
                "service_time": {"dist": "exponential", "mean_ms": ms}}

    prev = None
    for i in range(n_blocks):
        a, b, c, d, e = (f"{x}{i}" for x in "abcde")
        comps += [svc(a), svc(b, 20), svc(c, 30), svc(d), svc(e, 5)]
        flow += [
            {"from": a, "to": b, "parallel": True}, {"from": a, "to": c, "parallel": True},
            {"from": b, "to": d}, {"from": c, "to": d}, {"from": d, "to": e},
            {"from": e, "to": a, "p": 0.3, "max_repeats": 2},
        ]
        if prev is not None:
            flow.append({"from": prev, "to": a, "p": 0.9})
        prev = e
    return {"name": f"synthetic-{len(comps)}", "workload": {"arrival_rps": 50}, "components": comps,
            "entry": comps[0]["id"], "flow": flow}


def timed(fn, repeat: int) -> float:
    fn()  # warm caches and imports
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    print(f"{'design':28s} {'stations':>8s} {'estimate ms':>12s} {'ms/station':>11s} {'validate ms':>12s} {'ratio':>7s}")
    rows = []
    for path in sorted(Path(__file__).resolve().parents[1].glob("designs/library/*.yaml")):
        d = load_design(path)
        rows.append((path.stem, d, d.model_dump(mode="json", by_alias=True, exclude_none=True)))
    for blocks in (10, 100):
        data = synthetic(blocks)
        rows.append((data["name"], Design.model_validate(data), data))
    for name, d, data in rows:
        repeat = 3 if len(d.components) > 100 else 10
        t_est = timed(lambda d=d: estimate(d), repeat)
        t_val = timed(lambda data=data: Design.model_validate(data), repeat)
        n = len(d.components)
        print(f"{name:28s} {n:8d} {t_est * 1e3:12.2f} {t_est * 1e3 / n:11.3f} {t_val * 1e3:12.2f} {t_est / t_val:7.1f}×")


if __name__ == "__main__":
    main()
