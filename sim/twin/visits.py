"""Expected visits from the flow's visit equations, for designs with many back edges.

The flow walk (``sim.twin.flow``) is exact for one back edge per component and nested loops;
a component with several back edges (an agent that may return to any earlier step) it
follows along one. The engine (``sim.des.routing``) tries a component's back edges in file
order — edge *i* taken with probability ``p_i`` while it has been taken fewer than its
``max_repeats`` times in this request — then the forward edges. Here that routing is the
matrix P of the visit equations

    v = e + v·P        (e: one arrival at the entry)

solved by one linear solve (numpy), with each back edge either *free* (taken with ``p`` of
what reaches its coin) or *at its cap* (taken exactly ``max_repeats`` times per request, a
constant flow): a back edge is at its cap when the flow reaching its coin would take it more
often than that. Which edges are at their caps is found by an active-set iteration (start with
every back edge capped — the system is then acyclic and always solvable — and free the ones
that cannot fill their cap, re-capping any that then overflow).

Exact for the routing chain when no cap binds (the visits of a Markov chain) and when a cap
binds every time (``p = 1``: ``max_repeats + 1`` passes); in between it is the fluid (mean)
value, within a few percent of the truncated geometric the flow walk computes for one loop.

Usage::

    >>> from designs.model import Design
    >>> from sim.twin.visits import visit_equations
    >>> d = Design.model_validate({"name": "x", "workload": {}, "entry": "a",
    ...     "components": [{"id": i, "kind": "service"} for i in "abc"],
    ...     "flow": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"},
    ...              {"from": "c", "to": "a", "p": 0.5, "max_repeats": 1000},
    ...              {"from": "c", "to": "b", "p": 0.5, "max_repeats": 1000}]})
    >>> {k: round(x, 6) for k, x in visit_equations(d).items()}   # c: 1 + ¾ of its visits return
    {'a': 3.0, 'b': 4.0, 'c': 4.0}
"""

from __future__ import annotations

from typing import Any

from designs.model import Design

__all__ = ["visit_equations", "needs_visit_equations", "MAX_COMPONENTS"]

MAX_COMPONENTS = 2_000
"""Components the dense solve accepts (2,000² doubles = 32 MB; designs are capped at 500)."""


def needs_visit_equations(design: Design) -> bool:
    """True when some component has more than one back edge (the flow walk follows one)."""
    seen: set[str] = set()
    for e in design.flow:
        if e.is_loop and not e.fallback:
            if e.from_ in seen:
                return True
            seen.add(e.from_)
    return False


def _continues(comp: Any) -> float:
    """Fraction of a component's visits that go on along its edges (a cache hit or a guardrail
    block answers there)."""
    if comp.kind == "cache":
        return 1.0 - comp.hit_ratio
    if comp.kind == "guardrail":
        return 1.0 - comp.block_ratio
    return 1.0


def visit_equations(design: Design, *, cancel=None) -> dict[str, float]:
    """Expected visits of every component per request, from v = e + v·P with back edges free
    or at their caps (see the module docstring). Unreachable components get 0."""
    import numpy as np

    ids = [c.id for c in design.components]
    if len(ids) > MAX_COMPONENTS:
        raise ValueError(f"{len(ids)} components: the visit equations take at most {MAX_COMPONENTS}")
    ix = {c: i for i, c in enumerate(ids)}
    n = len(ids)
    by_id = design.by_id()
    backs: dict[str, list[tuple[int, Any]]] = {}
    outs: dict[str, list[Any]] = {c: [] for c in ids}
    loop_edges = []
    for e in design.flow:
        if e.fallback:
            continue  # taken only on a failure (sim.ops): no traffic in the healthy flow
        if e.is_loop:
            k = len(loop_edges)
            loop_edges.append(e)
            backs.setdefault(e.from_, []).append((k, e))
        else:
            outs[e.from_].append(e)
    # Fan-outs: every branch gets the flow, the join is visited once after them; a branch's
    # arrival at the join ends the branch (the engine's `bound`), not a visit.
    joins: dict[str, str | None] = {}
    bound: set[tuple[str, str]] = set()
    for c in ids:
        if outs[c] and all(e.parallel for e in outs[c]):
            j = design.join_of(c)
            joins[c] = j
            if j is not None:
                body, stack = set(), [e.to for e in outs[c]]
                while stack:
                    x = stack.pop()
                    if x == j or x in body:
                        continue
                    body.add(x)
                    stack.extend(o.to for o in outs[x])
                bound |= {(x, j) for x in body}

    def solve(capped: set[int]):
        """(v, flow reaching each back edge's coin as (a, b): a·v_u + b) for this capped set."""
        m = np.zeros((n, n))
        const = np.zeros(n)
        coin: dict[int, tuple[str, float, float]] = {}
        for c in ids:
            u = ix[c]
            a, b = _continues(by_id[c]), 0.0  # flow going on: a·v_u + b
            for k, e in backs.get(c, []):
                coin[k] = (c, a, b)
                t = ix[e.to]
                if k in capped:
                    const[t] += e.max_repeats
                    b -= e.max_repeats
                else:
                    m[u, t] += e.p * a
                    const[t] += e.p * b
                    a, b = a * (1 - e.p), b * (1 - e.p)
            fan = c in joins
            for e in outs[c]:
                if (c, e.to) in bound:
                    continue
                w = 1.0 if fan else e.p
                m[u, ix[e.to]] += w * a
                const[ix[e.to]] += w * b
            if fan and joins[c] is not None:
                m[u, ix[joins[c]]] += a
                const[ix[joins[c]]] += b
        rhs = const.copy()
        rhs[ix[design.entry]] += 1.0
        lhs = np.eye(n) - m.T
        try:
            v = np.linalg.solve(lhs, rhs)
            unit = np.linalg.solve(lhs, np.eye(n)[ix[design.entry]])
        except np.linalg.LinAlgError:
            return None, coin
        # A free cycle that returns with probability 1 (or more) has no finite solution: the
        # unit response (visits per arrival, no caps) then comes out negative or huge. The
        # solution itself may be negative where the capped set is infeasible (more caps than
        # visits): that is what the iteration below reads to free them.
        if not (np.all(np.isfinite(v)) and np.all(unit >= -1e-9) and float(unit.max()) < 1e15):
            return None, coin
        return v, coin

    def reach(v, coin, k) -> float:
        c, a, b = coin[k]
        return a * v[ix[c]] + b

    capped = set(range(len(loop_edges)))
    v, coin = solve(capped)
    best = v
    for _ in range(4 * len(loop_edges) + 8):
        if cancel is not None and cancel.is_set():
            break
        # Capped edges whose coin sees too little flow to be taken max_repeats times: free them.
        free = [k for k in capped if loop_edges[k].p * reach(v, coin, k) < loop_edges[k].max_repeats * (1 - 1e-9)]
        if free:
            # The most starved first (the edges tried last at a component see the least flow).
            # All of them at once when that stays solvable (one solve), else the most starved
            # first (the edges tried last at a component see the least flow).
            free.sort(key=lambda k: loop_edges[k].p * reach(v, coin, k) - loop_edges[k].max_repeats)
            for trial in ((capped - set(free)), (capped - {free[0]})) if len(free) > 1 else ((capped - {free[0]}),):
                tv, tcoin = solve(trial)
                if tv is not None:
                    break
            if tv is not None:
                capped, v, coin = trial, tv, tcoin
                best = v
                continue
        # Free edges that would now be taken more than max_repeats times: back to their caps.
        over = [k for k in range(len(loop_edges)) if k not in capped
                and loop_edges[k].p * reach(v, coin, k) > loop_edges[k].max_repeats * (1 + 1e-9)]
        if over:
            tv, tcoin = solve(capped | set(over))
            if tv is None:
                break
            capped, v, coin = capped | set(over), tv, tcoin
            best = v
            continue
        break
    if best is None:
        raise ValueError("the visit equations have no finite solution")
    return {c: max(0.0, float(best[ix[c]])) for c in ids}
