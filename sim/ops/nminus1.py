"""N−1 in the twin: each replicated component with one replica (and one zone) down, at peak.

For every replicated component on the request path the twin is re-run on a copy of the design
with that component's replicas reduced — by one, and by the replicas of its largest zone
(replica i lives in zone i mod zones, so zone 0 holds ⌈R/Z⌉) — and reports the utilisation
then and whether the design stays stable with every latency SLO (end-to-end p95/p99, TTFT,
TPOT) still met. When one loss breaks it, the smallest replica count whose N−1 survives is
searched by bisection on [R + 1, 4R + 4] (O(log R) twin runs). The whole analysis has a wall
budget (`max_seconds`, default 2 s): a component it did not reach is reported as not analysed,
never waited for. For a FIFO pool the utilisation scales exactly as ρ·R/(R − k); for an LLM
server the twin's own capacity model gives it. Usage::

    >>> # from sim import n_minus_one
    >>> # n1 = n_minus_one(design)                  # {component id: NMinus1}
    >>> # n1["llm"].utilization_one_down, n1["llm"].replicas_to_survive

`replicas_per_hour(design)` is the twin's autoscaled fleet: for each component with an
``autoscale`` block, the replicas that keep it at its target utilisation in each hour of the
``profile_24h`` (ceil(λ_h / (capacity per replica × target)), within [min, max]).
"""

from __future__ import annotations

import math
import time

from sim.results import NMinus1

__all__ = ["n_minus_one", "replicas_per_hour", "autoscaled_cost", "N1_KINDS", "LATENCY_METRICS"]

N1_KINDS = frozenset({"service", "api_gateway", "cache", "database", "vector_db", "keyword_search", "guardrail",
                      "llm_server", "embedder", "reranker", "load_balancer"})
LATENCY_METRICS = frozenset({"latency_p95_ms", "latency_p99_ms", "ttft_p95_ms", "tpot_p95_ms"})


def _variant(design, idx: int, replicas: int):
    """(utilisation of the component, stable and latency SLOs met) with `replicas` replicas."""
    from sim.twin.analytic import EstimateError, estimate

    d = design.model_copy(deep=True)
    d.components[idx].replicas = replicas
    try:
        est = estimate(d)
    except (EstimateError, ValueError):
        return math.inf, False
    cid = design.components[idx].id
    u = est.stations[cid].utilization
    ok = est.stable and all(c.met is not False for c in est.slo if c.metric in LATENCY_METRICS)
    return u, ok


def _survivor(design, idx: int, r: int):
    """(fewest replicas k whose loss of one keeps the SLOs, its utilisation one down), or (None, None).

    Bisection on k in [max(2, r + 1), 4r + 4]: more replicas never make a pool slower, so "N−1
    survives at k" is monotone in k.
    """
    lo, hi = max(2, r + 1), 4 * r + 4
    u_hi, ok_hi = _variant(design, idx, hi - 1)
    if not ok_hi:
        return None, None
    best = (hi, u_hi)
    while lo < hi:
        mid = (lo + hi) // 2
        u, ok = _variant(design, idx, mid - 1)
        if ok:
            hi, best = mid, (mid, u)
        else:
            lo = mid + 1
    return best


def n_minus_one(design, est=None, max_seconds: float = 2.0) -> dict[str, NMinus1]:
    """Per replicated request-path component: the twin with one replica and one zone down.

    Components not reached within `max_seconds` are reported with ``detail`` "not analysed".
    """
    from sim.twin.analytic import estimate

    deadline = time.perf_counter() + max_seconds

    if design.workload.batch is not None and design.workload.arrival_rps is None:
        return {}
    est = est if est is not None else estimate(design)
    reach = design.reachable()
    out: dict[str, NMinus1] = {}
    for idx, c in enumerate(design.components):
        st = est.stations.get(c.id)
        if c.kind not in N1_KINDS or c.id not in reach or st is None or st.arrival_rps <= 0:
            continue
        r = int(getattr(c, "replicas", 1))
        z = int(getattr(c, "zones", 1))
        u = st.utilization
        if time.perf_counter() > deadline:
            out[c.id] = NMinus1(component=c.id, replicas=r, zones=z, utilization=u, utilization_one_down=None,
                                slo_ok_one_down=None,
                                detail=f"not analysed: the N−1 budget of {max_seconds:g} s ran out")
            continue
        u1 = ok1 = None
        if r > 1:
            u1, ok1 = _variant(design, idx, r - 1)
        uz = okz = None
        if z > 1 and r > 1:
            lost = math.ceil(r / z)
            if lost >= r:
                uz, okz = None, False
            elif lost == 1:
                uz, okz = u1, ok1
            else:
                uz, okz = _variant(design, idx, r - lost)
        survive = us = None
        if r == 1 or not ok1:
            survive, us = _survivor(design, idx, r)
        parts = [f"{r} replica{'s' if r != 1 else ''} at {u:.0%}"]
        if r == 1:
            parts.append("down if it fails")
        else:
            parts.append(f"{_pct(u1)} if one fails ({'SLOs hold' if ok1 else 'SLOs break' if math.isfinite(u1 or 0) and u1 < 1 else 'unstable'})")
        if uz is not None or okz is not None:
            parts.append(f"{_pct(uz) if uz is not None else 'down'} if zone 0 of {z} fails")
        if survive is not None:
            parts.append(f"{survive} replicas survive one loss at {_pct(us)}")
        out[c.id] = NMinus1(
            component=c.id, replicas=r, zones=z, utilization=u,
            utilization_one_down=_fin(u1), slo_ok_one_down=ok1 if r > 1 else False,
            utilization_zone_down=_fin(uz), slo_ok_zone_down=okz,
            replicas_to_survive=survive, utilization_survivor=_fin(us), detail="; ".join(parts),
        )
    return out


def _fin(x):
    return None if x is None or not math.isfinite(x) else x


def _pct(x) -> str:
    return "∞" if x is None or not math.isfinite(x) else f"{x:.0%}"


def replicas_per_hour(design, est=None) -> dict[str, list[int]]:
    """The twin's autoscaled replica count per hour of the profile, per autoscaled component."""
    from sim.des.workload import hourly_rates  # plain arithmetic (no SimPy): the day's hourly rates
    from sim.twin.analytic import estimate

    scaled = [c for c in design.components if getattr(c, "autoscale", None) is not None]
    if not scaled:
        return {}
    est = est if est is not None else estimate(design)
    peak = est.arrival_rps or design.workload.peak_rps
    out: dict[str, list[int]] = {}
    rates = hourly_rates(design.workload)
    for c in scaled:
        st = est.stations.get(c.id)
        if st is None or not st.max_throughput_rps or peak <= 0:
            continue
        per_replica = st.max_throughput_rps / max(1, c.replicas)  # component arrivals/s one replica carries
        visits = st.arrival_rps / peak
        a = c.autoscale
        out[c.id] = [min(a.max_replicas, max(a.min_replicas, math.ceil(rate * visits / (per_replica * a.target) - 1e-9)))
                     for rate in rates]
    return out


def autoscaled_cost(design, est=None) -> tuple[float, float] | None:
    """(autoscaled, fixed) cost per day from the twin: each autoscaled component billed for its
    `replicas_per_hour` instead of its fixed `replicas` × 24 h; None without an autoscaler."""
    from sim.twin.analytic import estimate

    est = est if est is not None else estimate(design)
    hourly = replicas_per_hour(design, est)
    if not hourly:
        return None
    lines = {ln.id: ln.usd_per_day for ln in est.cost_breakdown}
    auto = est.cost_per_day_usd
    for cid, hours in hourly.items():
        line = lines.get(cid, 0.0)
        per_replica_hour = line / (24.0 * max(1, design.component(cid).replicas))
        auto += per_replica_hour * sum(hours) - line
    return auto, est.cost_per_day_usd
