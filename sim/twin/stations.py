"""Per-station queueing figures of the analytic twin: one component at one arrival rate.

``analyse_station(comp, lam, design)`` turns a component into a `StationCalc` — servers, mean
service time and SCV, utilisation, wait moments and p95, capacity, replicas needed — which
``sim.twin.analytic.estimate`` assembles into the design's `Estimate` and the flow walk
(``sim.twin.flow``) turns into end-to-end latency.

Usage::

    >>> from designs.model import Design
    >>> from sim.twin.stations import analyse_station
    >>> d = Design.model_validate({"name": "x", "workload": {}, "entry": "s",
    ...     "components": [{"id": "s", "kind": "service", "replicas": 10}]})
    >>> c = analyse_station(d.components[0], 800.0, d)   # 800 rps on 10 servers of 10 ms (fixed)
    >>> round(c.utilization, 2), c.stable, c.formula
    (0.8, True, 'Allen–Cunneen, M/G/10 (SCV 0)')

Models: Erlang C (M/M/c) for exponential service, Allen–Cunneen (M/G/c; Pollaczek–Khinchine
when c = 1) otherwise, Poisson arrivals at every station (the Jackson-network assumption).
Pure delays have no queue. Batching replicas (embedder, reranker), external LLM APIs (with
``sim.providers.ratelimit``'s limits) and LLM servers (``sim.llm.twin``) have their own models below.
"""

from __future__ import annotations

from components.errors import Refusal

import math
from dataclasses import dataclass, field
from typing import Any

from components.distributions import Exponential, Fixed
from designs.model import Design
from sim.twin import queueing as qt
from sim.twin.flow import Profile
from sim.results import LLMEstimate

__all__ = ["analyse_station", "StationCalc", "EstimateError", "TARGET_UTILIZATION"]

TARGET_UTILIZATION = 0.8
"""Replica counts are sized for ρ ≤ 0.8: queueing delay grows as 1/(1 − ρ), and 80 % leaves room
for the peak-hour variance and a lost replica (the usual planning rule, e.g. Gross & Harris §2.3)."""


class EstimateError(Refusal):
    """A component the twin cannot model (a model that does not fit its GPUs, say)."""



# --- stations ------------------------------------------------------------------------------------


@dataclass
class StationCalc:
    """One station's queueing figures at an arrival rate (seconds); becomes a StationEstimate."""

    kind: str
    lam: float
    servers: int | None
    service_mean_s: float
    service_scv: float
    utilization: float
    wait_mean_s: float
    wait_m2: float
    wait_p95_s: float | None
    response_mean_s: float
    max_tp_rps: float | None
    stable: bool
    replicas_needed: int | None
    formula: str
    outcomes: list[tuple[float, float, float, bool]]  # (prob, service m1 s, m2 s², continues)
    remedy: str = ""  # what to add when unstable: '11 replicas more (…)'
    llm: LLMEstimate | None = None
    notes: list[str] = field(default_factory=list)
    path_wait: tuple[float, float] | None = None  # (m1, m2) of the wait as the flow walk should see it
    tokens: tuple[float, float, float, float] | None = None
    """The one outcome as t + (n − 1)·u, n the request's output tokens: (E[t], E[t²], E[u], E[u²])."""

    def profile(self, is_async: bool) -> Profile:
        if not self.stable:
            nan = math.nan  # unbounded wait: NaN propagates to the end-to-end figures
            return Profile(nan, nan, [(p, nan, nan, c) for p, _, _, c in self.outcomes], is_async)
        w1, w2 = self.path_wait or (self.wait_mean_s, self.wait_m2)
        return Profile(w1, w2, self.outcomes, is_async, self.tokens)


def _moments(dist: Any, scale: float = 1e-3) -> tuple[float, float]:
    """(mean, second moment) of a distribution, scaled (ms → s by default)."""
    m = dist.expected() * scale
    return m, dist.var() * scale * scale + m * m


def _is_exp(dist: Any) -> bool:
    return isinstance(dist, Exponential)


def _pool(lam: float, c: int, m1: float, m2: float, exponential: bool) -> dict[str, Any]:
    """M/M/c (Erlang C) or M/G/c (Allen–Cunneen) figures for one multi-server FIFO queue."""
    scv = (m2 - m1 * m1) / (m1 * m1) if m1 > 0 else 0.0
    scv = 0.0 if scv < 1e-9 else scv  # rounding noise of fixed times
    rho = lam * m1 / c if c else math.inf
    exact = exponential or abs(scv - 1) < 1e-9
    if c == 1 and not exact:
        formula = f"Pollaczek–Khinchine, M/G/1 (SCV {scv:.2g})"
    elif exact:
        formula = f"Erlang C, M/M/{c}"
    else:
        formula = f"Allen–Cunneen, M/G/{c} (SCV {scv:.2g})"
    max_tp = c / m1 if m1 > 0 else None
    if m1 <= 0 or lam <= 0:
        return dict(scv=scv, rho=0.0 if m1 <= 0 else rho, w1=0.0, w2=0.0, p95=0.0, max_tp=max_tp, formula=formula)
    if rho >= 1:
        return dict(scv=scv, rho=rho, w1=math.inf, w2=math.inf, p95=None, max_tp=max_tp, formula=formula)
    pw = qt.erlang_c(c, lam * m1)
    if exact:
        w1 = qt.mmc_mean_wait(lam, 1 / m1, c)
        p95 = qt.mmc_wait_quantile(0.95, lam, 1 / m1, c)
    else:
        w1 = qt.allen_cunneen_wait(lam, m1, scv, c)
        p95 = qt.wait_quantile_approx(0.95, w1, pw)
    # Wait = 0 w.p. 1 − P(wait), else exponential with mean w1 / P(wait): E[W²] = 2·w1² / P(wait).
    w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0
    return dict(scv=scv, rho=rho, w1=w1, w2=w2, p95=p95, max_tp=max_tp, formula=formula)


def _more(needed: int, current: int, unit: str = "replicas") -> str:
    """'11 replicas more (38 in all for ρ ≤ 0.8)'."""
    extra = max(0, needed - current)
    word = unit[:-1] if extra == 1 and unit.endswith("s") else unit
    return f"{extra} {word} more ({needed} in all for ρ ≤ {TARGET_UTILIZATION:g})"


def _needed(lam: float, per_replica_rps: float) -> int:
    return max(1, math.ceil(lam / (TARGET_UTILIZATION * per_replica_rps) - 1e-9)) if per_replica_rps > 0 else 1


def _class_moments(design: Design, attr: str) -> tuple[float, float]:
    """(mean, second moment) of the request classes' prompt or output tokens (a share mixture)."""
    m1 = m2 = 0.0
    for c in design.workload.request_classes():
        d = getattr(c, attr)
        m1 += c.share * d.expected()
        m2 += c.share * (d.var() + d.expected() ** 2)
    return m1, m2


def _delay(comp: Any, lam: float, m1: float, m2: float, outcomes=None, formula: str = "pure delay (no queue)") -> StationCalc:
    scv = (m2 - m1 * m1) / (m1 * m1) if m1 > 0 else 0.0
    return StationCalc(
        comp.kind, lam, None, m1, max(0.0, scv), 0.0, 0.0, 0.0, 0.0, m1, None, True, None, formula,
        outcomes or [(1.0, m1, m2, True)])


def _from_pool(comp: Any, lam: float, c: int, m1: float, m2: float, exponential: bool, outcomes=None,
               per_replica: int | None = None, unit: str = "replicas", current: int | None = None) -> StationCalc:
    r = _pool(lam, c, m1, m2, exponential)
    stable = r["rho"] < 1
    needed = None
    remedy = ""
    if per_replica:
        needed = _needed(lam, per_replica / m1) if m1 > 0 else 1
        if current is not None and not stable:
            remedy = _more(needed, current, unit)
    return StationCalc(
        comp.kind, lam, c, m1, r["scv"], r["rho"], r["w1"], r["w2"], r["p95"],
        (r["w1"] + m1) if stable else math.inf, r["max_tp"], stable, needed, r["formula"],
        outcomes or [(1.0, m1, m2, True)], remedy)


def _inverse_moments(dist: Any) -> tuple[float, float]:
    """(E[1/S], E[1/S²]) of a speed S (tokens/s), exact for the distributions that have them.

    Fixed v: 1/v, 1/v². Lognormal (mean m, SCV c): E[S⁻ᵏ] = exp(−kμ + k²σ²/2), so
    E[1/S] = (1 + c)/m and E[1/S²] = (1 + c)³/m². Uniform on [a, b], a > 0: ln(b/a)/(b − a)
    and 1/(ab). Empirical: the average over its values. Otherwise (an exponential, a uniform
    from 0, where E[1/S] diverges and only the simulation's 10⁻⁶ floor bounds it) the
    second-order delta method, 1/m and (1 + 3c)/m², as before.
    """
    m, c = dist.expected(), dist.scv()
    kind = getattr(dist, "dist", "")  # durations (Fixed, …) and counts (FixedCount, …) alike
    if c <= 0:
        return 1 / m, 1 / (m * m)
    if kind == "lognormal":
        return (1 + c) / m, (1 + c) ** 3 / (m * m)
    if kind == "uniform":
        a, b = sorted((getattr(dist, "low_ms", None) or getattr(dist, "low", 0.0),
                       getattr(dist, "high_ms", None) or getattr(dist, "high", 0.0)))
        if a > 0:
            return math.log(b / a) / (b - a), 1 / (a * b)
    if kind == "empirical":
        xs = getattr(dist, "values_ms", None) or getattr(dist, "values", None) or []
        if xs and min(xs) > 0:
            return sum(1 / x for x in xs) / len(xs), sum(1 / (x * x) for x in xs) / len(xs)
    return 1 / m, (1 + 3 * c) / (m * m)


def _api(comp: Any, lam: float, design: Design) -> StationCalc:
    """llm_api / judge: TTFT + (output − 1) / speed, bounded by max_concurrency and rate limits.

    As ``sim.providers.api_station`` draws it: a TTFT, then the output tokens after the first
    at a speed S drawn per call, independent of the token count n, so E[(n − 1)/S] =
    E[n − 1]·E[1/S] and E[((n − 1)/S)²] = E[(n − 1)²]·E[1/S²] (`_inverse_moments`; E[1/S] is
    (1 + SCV)/E[S] for a lognormal speed, not 1/E[S]). The station's `tokens` split (TTFT and
    1/S moments) lets the flow walk condition an llm_api's time on the request's output tokens.
    """
    if comp.kind == "judge":
        o1, o2 = comp.output_tokens.expected(), comp.output_tokens.var() + comp.output_tokens.expected() ** 2
    else:
        o1, o2 = _class_moments(design, "output_tokens")
    k1, k2 = max(0.0, o1 - 1), max(0.0, o2 - 2 * o1 + 1)  # E[n − 1], E[(n − 1)²]
    r1, r2 = _inverse_moments(comp.output_tokens_per_s)
    g1, g2 = k1 * r1, k2 * r2
    t1, t2 = _moments(comp.ttft)
    m1, m2 = t1 + g1, t2 + 2 * t1 * g1 + g2
    if comp.max_concurrency:
        calc = _from_pool(comp, lam, comp.max_concurrency, m1, m2, False)
    else:
        calc = _delay(comp, lam, m1, m2)
    if comp.kind == "llm_api":  # a judge draws its own tokens: not the request's
        calc.tokens = (t1, t2, r1, r2)
    try:
        from sim.providers.ratelimit import api_limits
    except ImportError:  # pragma: no cover - sim.providers.ratelimit ships with the engine
        return calc
    lim = api_limits(comp, design.workload, arrival_rps=lam)
    cap = lim["max_sustainable_rps"]
    if cap:
        # The provider's token bucket holds a minute of refill (sim.providers.ratelimit.DEFAULT_BURST_S), so
        # Poisson bursts below the limit pass without waiting; at or above it the backlog grows.
        util = lam / cap
        calc.utilization = max(calc.utilization, util)
        calc.max_tp_rps = min(x for x in (cap, calc.max_tp_rps) if x is not None)
        calc.formula += f"; {lim['binding']} limit {cap:,.3g} calls/s, {util:.0%} used (bucket of 60 s: no wait below it)"
        if util >= 1:
            calc.stable = False
            calc.wait_mean_s = calc.response_mean_s = math.inf
            calc.wait_p95_s = None
    if not calc.stable:
        fixes = []
        if cap and lam >= cap:
            if lim["binding"] == "rpm":
                fixes.append(f"rpm_limit to {math.ceil(lam * 60 / TARGET_UTILIZATION):,}")
            else:
                fixes.append(f"tpm_limit to {math.ceil(lam * 60 * lim['mean_tokens_per_request'] / TARGET_UTILIZATION):,}")
        if comp.max_concurrency and lam * m1 >= comp.max_concurrency:
            fixes.append(f"max_concurrency to {math.ceil(lam * m1 / TARGET_UTILIZATION)}")
        calc.remedy = "raise " + " and ".join(fixes) if fixes else ""
    return calc


def _batching(comp: Any, lam: float, design: Design) -> StationCalc:
    """Embedder / reranker: replicas that each serve every waiting request (up to B) per pass.

    A pass over b requests takes S(b) = o + b·w (o = overhead, w = work per request / rate), as
    in ``sim.des.stations.BatchStation``; capacity = R·B / S(B) for R replicas. Greedy batching:
    the next pass takes the arrivals during the current one, N ~ Poisson(λᵣ·S(b)) (λᵣ = λ/R),
    or one request after an idle spell, so the mean batch solves b = λᵣ·S(b) + e^(−λᵣ·S(b))
    (E[max(1, N)]), capped at B. Wait = P(all R passes busy, Erlang C with load λ·S(b)/b)
    × the residual of a pass E[S²]/(2·E[S]) / R, plus a heavy-traffic term for full batches,
    ρ_B/(1 − ρ_B) · S(B)/(2B) · √(b/B) (Kingman with Erlang-B arrivals of a batch, faded in as
    batches fill). A request's own pass holds max(b, λᵣ·(W + S(b))) requests (the queue it
    finds); because that pass grows with the wait, the flow walk sees the wait amplified by the
    per-request share of a pass. Checked against the engine's BatchStation (reranker: 50 pairs,
    1–3 replicas, ρ 0.28–0.92; embedder: ρ 0.77, batches of ~14): mean response within ±16 %,
    p95 within −28 % … +32 % — the tail is the weak part of this model.
    """
    if comp.kind == "embedder":
        if comp.tokens_per_request is not None:
            d = comp.tokens_per_request
            n1, n2 = d.expected(), d.var() + d.expected() ** 2
        else:
            n1, n2 = _class_moments(design, "prompt_tokens")
        rate, unit = comp.tokens_per_s_per_replica, "tokens"
    else:
        d = comp.pairs_per_request
        n1, n2 = d.expected(), d.var() + d.expected() ** 2
        rate, unit = comp.pairs_per_s_per_replica, "pairs"
    o, w, B, R = comp.overhead_ms / 1000.0, n1 / rate, comp.max_batch, comp.replicas
    wvar = max(0.0, n2 - n1 * n1) / (rate * rate)  # variance of one request's work, s²
    full_pass = o + B * w
    max_tp = R * B / full_pass
    rho = lam / max_tp
    lam_r = lam / R
    needed = _needed(lam, B / full_pass)
    if rho >= 1 or lam <= 0:
        s1 = o + w
        calc = StationCalc(comp.kind, lam, R, s1, 0.0, rho, 0.0 if lam <= 0 else math.inf,
                           0.0 if lam <= 0 else math.inf, 0.0 if lam <= 0 else None, s1 if lam <= 0 else math.inf,
                           max_tp, lam <= 0, needed, f"batching: {n1:,.0f} {unit} per request / {rate:,.0f}/s, "
                           f"up to {B} per pass + {o * 1000:g} ms", [(1.0, s1, s1 * s1 + wvar, True)])
        if not calc.stable:
            calc.remedy = _more(needed, R)
        return calc
    b = 1.0
    for _ in range(1000):
        m = lam_r * (o + b * w)
        nb = min(float(B), m + math.exp(-m))
        if abs(nb - b) < 1e-12:
            break
        b = nb
    m = lam_r * (o + b * w)
    var_b = max(0.0, m + m * m + math.exp(-m) - (m + math.exp(-m)) ** 2) * (1 - b / B)
    es = o + b * w
    es2 = es * es + w * w * var_b + b * wvar
    load = lam * es / b  # busy passes, in Erlangs
    pw = qt.erlang_c(R, load) if load < R else 1.0
    rho_b = lam_r * full_pass / B
    heavy = rho_b / (1 - rho_b) * full_pass / (2 * B) * math.sqrt(b / B)
    resid = pw * es2 / (2 * es) / R
    w1 = resid + heavy
    w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0  # exponential given a wait, as for M/G/c
    b_own = min(float(B), max(b, lam_r * (w1 + es)))
    s1 = o + w * (b_own + var_b / b)
    s2 = s1 * s1 + w * w * var_b + b_own * wvar
    scv = (s2 - s1 * s1) / (s1 * s1)
    outcomes = [(1.0, s1, s2, True)]
    path_wait = None
    if b < b_own < B:
        # The own pass grows with the wait (λᵣ·W more requests joined), so response =
        # (1 + λᵣw)·W + o + w·λᵣ·E[S]: the walk sees the wait amplified by (1 + λᵣw) — without
        # this the response variance, hence the p95, comes out far too small near saturation.
        k = lam_r * w * (b * w) / es  # only the per-request share of a pass stretches it
        own0 = o + w * (lam_r * es + var_b / b)
        outcomes = [(1.0, own0, own0 * own0 + w * w * var_b + b_own * wvar, True)]
        path_wait = ((1 + k) * w1, (1 + k) ** 2 * w2)
    formula = (f"greedy batching: mean batch {b:.3g} of {B} (own pass {b_own:.3g}), pass = {o * 1000:g} ms + "
               f"batch × {n1:,.0f} {unit} / {rate:,.0f}/s")
    calc = StationCalc(comp.kind, lam, R, s1, scv, rho, w1, w2, qt.wait_quantile_approx(0.95, w1, pw),
                       w1 + s1, max_tp, True, needed, formula, outcomes)
    calc.path_wait = path_wait
    return calc


def _llm_server(comp: Any, lam: float, design: Design) -> StationCalc:
    """An M/G/c view of continuous batching: c = sequence slots, TTFT/TPOT from sim.llm.twin."""
    from sim.llm.twin import llm_estimate, llm_service_moments  # local: only LLM designs pay for it

    try:
        mean_s, scv, servers = llm_service_moments(comp, design.workload)
        est = llm_estimate(comp, design.workload, arrival_rps=lam)
    except ValueError as e:
        raise EstimateError(f"llm_server '{comp.id}': {e}") from None
    servers = max(1, int(servers))
    m2 = mean_s * mean_s * (1 + scv)
    per_replica = max(1, servers // comp.replicas)
    calc = _from_pool(comp, lam, servers, mean_s, m2, False, per_replica=per_replica, current=comp.replicas)
    calc.formula += f"; {servers} sequence slots = {comp.replicas} replicas × {per_replica}"
    calc.llm = est
    calc.replicas_needed = est.replicas_needed
    # What a request sees once it holds a slot is the load-dependent TTFT + (output − 1) × TPOT
    # of the LLM model, not the slot time at saturation that sets the capacity (ρ) above.
    # That TTFT already contains the wait for a slot — the same M/G/c wait (same slot moments,
    # Allen–Cunneen) as calc.wait_mean_s. Count it once: the station keeps its wait (the table's
    # wait column, and the wait the flow walk adds — the MVA one in a closed loop) and the
    # outcome is the rest, TTFT − slot wait + (O − 1) × TPOT.
    o1, o2 = _class_moments(design, "output_tokens")
    tpot_s, ttft_s = est.tpot_ms_estimate / 1000, est.ttft_ms_estimate / 1000
    slot_wait_s = calc.wait_mean_s if calc.stable else 0.0
    head_s = max(0.0, ttft_s - slot_wait_s)
    lat1 = head_s + max(0.0, o1 - 1) * tpot_s
    lat2 = lat1 * lat1 + max(0.0, o2 - o1 * o1) * tpot_s * tpot_s
    calc.outcomes = [(1.0, lat1, lat2, True)]
    # The time is driven by the request's output tokens (drawn once at arrival, shared by its
    # LLM calls): the flow walk conditions it on them (sim.twin.flow, TOKEN_BINS).
    calc.tokens = (head_s, head_s * head_s, tpot_s, tpot_s * tpot_s)
    calc.formula += (f"; slot held {mean_s * 1000:,.0f} ms at saturation; a request takes TTFT "
                     f"{est.ttft_ms_estimate:.3g} ms + {max(0.0, o1 - 1):.0f} × TPOT {est.tpot_ms_estimate:.3g} ms "
                     f"at this load (TTFT includes the slot wait, counted once)")
    calc.service_mean_s = lat1
    calc.service_scv = (lat2 - lat1 * lat1) / (lat1 * lat1) if lat1 > 0 else 0.0
    if calc.stable:
        calc.response_mean_s = calc.wait_mean_s + lat1
    if not calc.stable:
        calc.remedy = _more(est.replicas_needed, comp.replicas)
    return calc


def analyse_station(comp: Any, lam: float, design: Design) -> StationCalc:
    """Queueing figures of one component at arrival rate `lam` (requests/s reaching it)."""
    kind = comp.kind
    if kind in ("service", "load_balancer", "api_gateway", "database", "vector_db", "keyword_search", "guardrail"):
        dist = comp.service_time if kind in ("service", "guardrail") else (
            comp.latency if kind in ("load_balancer", "api_gateway") else comp.query_time)
        if kind == "vector_db":
            from sim.quality.retrieval import query_time_of

            try:
                dist = query_time_of(comp, design)
            except ValueError as e:
                raise EstimateError(str(e)) from None
        m1, m2 = _moments(dist)
        outcomes = None
        if kind == "guardrail":
            b = comp.block_ratio
            outcomes = [(b, m1, m2, False), (1 - b, m1, m2, True)]
        return _from_pool(comp, lam, comp.servers, m1, m2, _is_exp(dist), outcomes,
                          per_replica=comp.concurrency, current=comp.replicas)
    if kind == "cache":
        h = comp.hit_ratio
        h1, h2 = _moments(comp.hit_latency)
        s1, s2 = _moments(comp.miss_latency)
        m1, m2 = h * h1 + (1 - h) * s1, h * h2 + (1 - h) * s2
        exp = _is_exp(comp.hit_latency) and _is_exp(comp.miss_latency) and h1 == s1
        return _from_pool(comp, lam, comp.servers, m1, m2, exp, [(h, h1, h2, False), (1 - h, s1, s2, True)],
                          per_replica=comp.concurrency, current=comp.replicas)
    if kind == "batch_stage":
        dist = comp.service_time or Fixed(value_ms=1000.0 / comp.items_per_s_per_worker)
        m1, m2 = _moments(dist)
        return _from_pool(comp, lam, comp.workers, m1, m2, _is_exp(dist), per_replica=1, unit="workers",
                          current=comp.workers)
    if kind == "tool":
        m1, m2 = _moments(comp.latency)
        if comp.max_concurrency:
            calc = _from_pool(comp, lam, comp.max_concurrency, m1, m2, _is_exp(comp.latency))
            if not calc.stable:
                calc.remedy = f"raise max_concurrency to {math.ceil(lam * m1 / TARGET_UTILIZATION)}"
            return calc
        return _delay(comp, lam, m1, m2)
    if kind in ("object_storage", "monitoring"):
        m1, m2 = _moments(comp.latency)
        return _delay(comp, lam, m1, m2)
    if kind == "queue":
        m1, m2 = _moments(comp.enqueue_latency)
        return _delay(comp, lam, m1, m2, [(1.0, m1, m2, False)], "pure delay (enqueue; consumers run asynchronously)")
    if kind == "training_job":
        calc = _delay(comp, lam, 0.0, 0.0, formula="no request latency (a training run; see the pipeline figures)")
        if lam > 0 and design.workload.batch is None:
            calc.notes.append(f"training_job '{comp.id}' sits on a request path; it adds no latency there")
        return calc
    if kind in ("embedder", "reranker"):
        return _batching(comp, lam, design)
    if kind in ("llm_api", "judge"):
        return _api(comp, lam, design)
    if kind == "llm_server":
        return _llm_server(comp, lam, design)
    raise EstimateError(f"component '{comp.id}': the analytic twin has no model for kind '{kind}'")

