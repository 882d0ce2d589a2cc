"""N−1 in the twin: each replicated component with one replica (and one zone) down, at peak.

For every replicated component on the request path the twin is re-run on a copy of the design
with that component's replicas reduced — by one, and by the replicas of its largest zone
(replica i lives in zone i mod zones, so zone 0 holds ⌈R/Z⌉) — and reports the utilisation
then and whether the design stays stable with every latency SLO (end-to-end p95/p99, TTFT,
TPOT) still met. When one loss breaks it, the smallest replica count whose N−1 survives is
searched (≤ 4R + 4). For a FIFO pool the utilisation scales exactly as ρ·R/(R − k); for an LLM
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


def _survivors(design, idx: int, r: int, u: float, deadline: float):
    """Fewest replicas k > r whose N−1 (k − 1 up) is stable with the SLOs met, and its
    utilisation: from the linear lower bound (k − 1 > ρ·r), doubling then bisecting — a handful
    of twin runs whatever r is. (None, None) past the cap 4r + 4 or the time budget."""
    import time

    lo = max(r + 1, math.floor(u * r) + 2) if math.isfinite(u) else r + 1
    cap = 4 * r + 4
    found = None
    k = lo
    while k <= cap and time.perf_counter() < deadline:
        uk, okk = _variant(design, idx, k - 1)
        if okk:
            found = (k, uk)
            break
        lo = k + 1
        k = min(cap, 2 * k) if k < cap else cap + 1
    if found is None:
        return None, None
    hi = found[0]
    while lo < hi and time.perf_counter() < deadline:  # the smallest k in [lo, hi] that survives
        mid = (lo + hi) // 2
        um, okm = _variant(design, idx, mid - 1)
        if okm:
            hi, found = mid, (mid, um)
        else:
            lo = mid + 1
    return found


def n_minus_one(design, est=None, budget_s: float = 2.0) -> dict[str, NMinus1]:
    """Per replicated request-path component: the twin with one replica and one zone down.

    Each component costs a few twin runs; past `budget_s` of wall time the remaining
    components get the linear figures (ρ·R/(R − k)) with the SLO not re-checked (None).
    """
    import time

    from sim.twin.analytic import estimate

    if design.workload.batch is not None and design.workload.arrival_rps is None:
        return {}
    est = est if est is not None else estimate(design)
    deadline = time.perf_counter() + budget_s
    reach = design.reachable()
    out: dict[str, NMinus1] = {}
    for idx, c in enumerate(design.components):
        st = est.stations.get(c.id)
        if c.kind not in N1_KINDS or c.id not in reach or st is None or st.arrival_rps <= 0:
            continue
        r = int(getattr(c, "replicas", 1))
        z = int(getattr(c, "zones", 1))
        u = st.utilization
        in_budget = time.perf_counter() < deadline
        linear = lambda k: u * r / (r - k) if r > k else math.inf  # noqa: E731
        u1 = ok1 = None
        if r > 1:
            u1, ok1 = _variant(design, idx, r - 1) if in_budget else (linear(1), None)
        uz = okz = None
        if z > 1 and r > 1:
            lost = math.ceil(r / z)
            if lost >= r:
                uz, okz = None, False
            elif lost == 1:
                uz, okz = u1, ok1
            else:
                uz, okz = _variant(design, idx, r - lost) if in_budget else (linear(lost), None)
        survive = us = None
        if (r == 1 or ok1 is False) and in_budget:
            survive, us = _survivors(design, idx, r, u, deadline)
        parts = [f"{r} replica{'s' if r != 1 else ''} at {u:.0%}"]
        if r == 1:
            parts.append("down if it fails")
        else:
            verdict = ("SLOs not re-checked (time budget)" if ok1 is None else "SLOs hold" if ok1
                       else "SLOs break" if u1 is not None and math.isfinite(u1) and u1 < 1 else "unstable")
            parts.append(f"{_pct(u1)} if one fails ({verdict})")
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
