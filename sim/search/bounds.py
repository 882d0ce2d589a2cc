"""Cheap lower bounds on a candidate's cost, so the search can skip what cannot win.

The LLM twin's capacity λ* (``sim.llm.twin``) takes 50–200 ms per configuration; an *upper
bound* on it takes microseconds from the roofline alone. One replica serves at most

* ``1 / prefill(E[P])`` requests/s — every prompt's prefill is compute the GPU must do
  (prefill time is convex in the prompt length, so the mean prompt's is a lower bound on the
  mean), and
* ``S / ((E[O] − 1) · τ(S))`` — at most S sequences decode per iteration, an iteration at
  batch b lasts at least τ(b) (the decode step reading the weights and only the prompts' KV),
  and b/τ(b) grows with b, so S/τ(S) caps the decode tokens per second;

with S ≤ min(max_batch, KV capacity / (E[P] + E[O])) slots. So ⌈λ / bound⌉ replicas are
necessary, and their cost is a lower bound for the candidate (tests/test_search.py checks the
bound against the twin's capacity on a grid of GPUs, precisions and batch sizes).

Usage::

    >>> from components.catalogue import LLMServer
    >>> from designs.model import Workload
    >>> from sim.llm.twin import llm_capacity
    >>> from sim.search.bounds import llm_rate_bound
    >>> comp, wl = LLMServer(id="llm", model="llama-3.1-8b"), Workload(arrival_rps=20)
    >>> llm_rate_bound(comp, wl) >= llm_capacity(comp, wl)[0]
    True
"""

from __future__ import annotations

import math

__all__ = ["llm_rate_bound", "cost_lower_bound"]


def llm_rate_bound(comp, workload) -> float:
    """An upper bound on one replica's max request rate (requests/s); inf when unbounded."""
    from sim.llm.roofline import ServingSpec, token_moments

    spec = ServingSpec.from_component(comp)
    tm = token_moments(workload)
    p, o = tm.prompt_mean, tm.output_mean
    hit = spec.prefix_cache_hit_ratio
    pf = spec.prefill_flops_s(max(1.0, p * (1 - hit)), p - max(1.0, p * (1 - hit)))
    cap = spec.kv_capacity_tokens
    per_seq = max(1.0, spec.kv_tokens_of(p, o))
    slots = max(1, min(spec.max_batch, int(cap // per_seq) if per_seq <= cap else 1))
    tau = spec.decode_step_s(slots, slots * spec.kv_tokens_of(p, 0))
    decode = slots / ((o - 1) * tau) if o > 1 and tau > 0 else math.inf
    prefill = 1 / pf if pf > 0 else math.inf
    return min(prefill, decode)


def cost_lower_bound(ev, cand, sized: dict[str, tuple[str, int, int]], n_minus_1: bool = False) -> tuple[float, dict[str, int]]:
    """(USD/day, counts): the cost at counts every passing design of `cand` needs at least."""
    if not ev.fast:
        return 0.0, {}
    variant = cand.apply(ev.design)
    counts: dict[str, int] = {}
    for cid, (_, lo, hi) in sized.items():
        comp = variant.component(cid)
        if comp.kind == "llm_server":
            lam = ev.rate * ev.visits[cid]
            ub = llm_rate_bound(comp, ev.design.workload)
            r = max(lo, math.floor(lam / ub) + 1 if lam > 0 and math.isfinite(ub) else lo)
        else:
            r = ev.stable_count(cand, cid, lo, hi, {})
        # With one replica down the rest must still be stable: one more than the stable count.
        counts[cid] = min(hi, max(lo, 2 if n_minus_1 else 1, r + (1 if n_minus_1 else 0)))
    sets = dict(cand.settings)
    total = 0.0
    for c in cand.apply(ev.design, counts).components:
        total += ev.cost_of(c, (c.id, sets.get(c.id), counts.get(c.id)))
    return total, counts
