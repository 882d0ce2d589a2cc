"""Expected visits from the flow's visit equations, for designs with many back edges.

The flow walk (``sim.twin.flow``) is exact for one back edge per component in loops that do
not nest; a component with several back edges (an agent that may return to any earlier step)
it follows along one, and a loop inside another it restarts on every outer pass where the
engine counts ``max_repeats`` per request. Both cases are solved here instead. The engine (``sim.des.routing``) tries a component's back edges in file
order — edge *i* taken with probability ``p_i`` while it has been taken fewer than its
``max_repeats`` times in this request — then the forward edges. Here that routing is the
matrix P of the visit equations

    v = e + v·P        (e: one arrival at the entry)

solved with numpy, with each back edge either *free* (taken with ``p`` of
what reaches its coin) or *at its cap* (taken exactly ``max_repeats`` times per request, a
constant flow): a back edge is at its cap when the flow reaching its coin would take it more
often than that. Which edges are at their caps is found by an active-set iteration (start with
every back edge capped — the system is then acyclic and always solvable — and free the ones
that cannot fill their cap one at a time, re-capping any that then overflow); one edge changes
one component's row of P, a rank-1 (Sherman–Morrison) update of the inverse, O(n²), and the
final set is solved directly (500 components with 100 back edges: under a second).

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
    """True when some component has more than one back edge (the flow walk follows one), or
    when one loop lies inside another: the walk restarts the inner loop's `max_repeats` on
    each outer pass, while the engine counts it per request (two nested p = 1 loops of 1,000:
    the walk says 2,006,004 visits, the engine and the visit equations 6,004)."""
    seen: set[str] = set()
    backs = []
    for e in design.flow:
        if e.is_loop and not e.fallback:
            if e.from_ in seen:
                return True
            seen.add(e.from_)
            backs.append(e)
    if len(backs) < 2:
        return False
    fwd: dict[str, list[str]] = {}
    rev: dict[str, list[str]] = {}
    for e in design.flow:
        if not e.is_loop and not e.fallback:
            fwd.setdefault(e.from_, []).append(e.to)
            rev.setdefault(e.to, []).append(e.from_)

    def reach(start: str, adj: dict[str, list[str]]) -> set[str]:
        out, todo = {start}, [start]
        while todo:
            for m in adj.get(todo.pop(), ()):
                if m not in out:
                    out.add(m)
                    todo.append(m)
        return out

    # The body of loop u → v: the components on forward paths from v to u.
    bodies = [reach(e.to, fwd) & reach(e.from_, rev) for e in backs]
    return any(i != j and inner.from_ in body and inner.to in body
               for i, body in enumerate(bodies) for j, inner in enumerate(backs))


def _continues(comp: Any) -> float:
    """Fraction of a component's visits that go on along its edges (a cache hit or a guardrail
    block answers there)."""
    if comp.kind == "cache":
        return 1.0 - comp.hit_ratio
    if comp.kind == "guardrail":
        return 1.0 - comp.block_ratio
    return 1.0


_LAST: list = [None, None]  # (routing key, visits): the twin and the run's limits ask for the same design


def visit_equations(design: Design, *, cancel=None) -> dict[str, float]:
    """Expected visits of every component per request, from v = e + v·P with back edges free
    or at their caps (see the module docstring). Unreachable components get 0."""
    key = (design.entry, tuple((e.from_, e.to, e.p, e.max_repeats, e.parallel, e.fallback) for e in design.flow),
           tuple((c.id, c.kind, getattr(c, "hit_ratio", None), getattr(c, "block_ratio", None)) for c in design.components))
    if _LAST[0] == key:
        return dict(_LAST[1])
    out = _solve_visits(design, cancel)
    if cancel is None or not cancel.is_set():  # a cancelled solve is not the answer
        _LAST[:] = [key, out]
    return dict(out)


def _solve_visits(design: Design, cancel) -> dict[str, float]:
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

    def row(c: str, capped: set[int]):
        """Component c's routing for this capped set: (coefficients on v_c by target index,
        constants by target index, coin of each of its back edges as (a, b): a·v_c + b)."""
        coef: dict[int, float] = {}
        const: dict[int, float] = {}
        coins: dict[int, tuple[float, float]] = {}
        a, b = _continues(by_id[c]), 0.0  # the flow going on from c: a·v_c + b
        for k, e in backs.get(c, []):
            coins[k] = (a, b)
            t = ix[e.to]
            if k in capped:  # taken exactly max_repeats times per request
                const[t] = const.get(t, 0.0) + e.max_repeats
                b -= e.max_repeats
            else:  # taken with p of what reaches its coin
                coef[t] = coef.get(t, 0.0) + e.p * a
                const[t] = const.get(t, 0.0) + e.p * b
                a, b = a * (1 - e.p), b * (1 - e.p)
        fan = c in joins
        for e in outs[c]:
            if (c, e.to) in bound:
                continue
            w = 1.0 if fan else e.p
            t = ix[e.to]
            coef[t] = coef.get(t, 0.0) + w * a
            const[t] = const.get(t, 0.0) + w * b
        if fan and joins[c] is not None:
            t = ix[joins[c]]
            coef[t] = coef.get(t, 0.0) + a
            const[t] = const.get(t, 0.0) + b
        return coef, const, coins

    entry = ix[design.entry]

    class System:
        """A = I − Pᵀ and its inverse for one capped set, so that changing one back edge (one
        component's row of P) is a rank-1 Sherman–Morrison update, O(n²), not a new O(n³) solve."""

        def __init__(self, capped: set[int]):
            self.capped = set(capped)
            self.rows = {c: row(c, self.capped) for c in ids}
            a = np.eye(n)
            for c, (coef, _, _) in self.rows.items():
                for t, w in coef.items():
                    a[t, ix[c]] -= w
            try:
                self.inv = np.linalg.inv(a)
            except np.linalg.LinAlgError:
                self.inv = None
            self._solve()

        def _solve(self) -> None:
            rhs = np.zeros(n)
            rhs[entry] = 1.0
            for coef, const, _ in self.rows.values():
                for t, x in const.items():
                    rhs[t] += x
            # A free cycle that returns with probability 1 (or more) has no finite solution: one
            # arrival's visits (a column of A⁻¹) then come out negative or huge. The solution
            # itself may be negative where the capped set is infeasible (more caps than visits):
            # the iteration reads that to free them.
            ok = self.inv is not None and bool(np.all(np.isfinite(self.inv[:, entry]))) and \
                float(self.inv[:, entry].min()) >= -1e-9 and float(self.inv[:, entry].max()) < 1e15
            self.v = self.inv @ rhs if ok else None

        def reach(self, k: int) -> float:
            c = loop_edges[k].from_
            a, b = self.rows[c][2][k]
            return a * float(self.v[ix[c]]) + b

        def changed(self, capped: set[int]) -> "System | None":
            """The system with `capped` instead, by rank-1 updates for each component whose row
            changes (None when that has no finite solution)."""
            new = System.__new__(System)
            new.capped, new.rows, new.inv = set(capped), dict(self.rows), self.inv.copy()
            for c in {loop_edges[k].from_ for k in self.capped ^ set(capped)}:
                r = row(c, new.capped)
                u = ix[c]
                delta = np.zeros(n)  # column u of A: e_u − (row of P)ᵀ
                for t, w in self.rows[c][0].items():
                    delta[t] += w
                for t, w in r[0].items():
                    delta[t] -= w
                iu = new.inv @ delta
                den = 1.0 + iu[u]
                if abs(den) < 1e-12:
                    return None
                new.inv -= np.outer(iu, new.inv[u]) / den
                new.rows[c] = r
            new._solve()
            return new if new.v is not None else None

    def starved(sys: System) -> list[int]:
        """Capped edges whose coin sees too little flow to be taken max_repeats times."""
        return [k for k in sys.capped if loop_edges[k].p * sys.reach(k) < loop_edges[k].max_repeats * (1 - 1e-9)]

    def overflowing(sys: System) -> list[int]:
        """Free edges the flow would take more than max_repeats times."""
        return [k for k in range(len(loop_edges)) if k not in sys.capped
                and loop_edges[k].p * sys.reach(k) > loop_edges[k].max_repeats * (1 + 1e-9)]

    # Start with every back edge at its cap (no cycles: always solvable), then free the starved
    # ones one at a time — the most starved first (the edges tried last at a component see the
    # least flow); freeing all at once overshoots and the set oscillates — and re-cap any that
    # then overflow. Each step is one rank-1 update.
    sys = System(set(range(len(loop_edges))))
    best = sys if sys.v is not None else None
    for _ in range(3 * len(loop_edges) + 8):
        if best is None or (cancel is not None and cancel.is_set()):
            break
        free = starved(best)
        if free:
            k = min(free, key=lambda k: loop_edges[k].p * best.reach(k) - loop_edges[k].max_repeats)
            trial = best.changed(best.capped - {k})
            if trial is not None:
                best = trial
                continue
        over = overflowing(best)
        if over:
            trial = best.changed(best.capped | set(over))
            if trial is None:
                break
            best = trial
            continue
        break
    if best is None:
        raise ValueError("the visit equations have no finite solution")
    v = best.v
    if best.capped != set(range(len(loop_edges))):  # one direct solve of the final set: no drift from the updates
        a = np.eye(n)
        rhs = np.zeros(n)
        rhs[entry] = 1.0
        for c, (coef, const, _) in best.rows.items():
            for t, w in coef.items():
                a[t, ix[c]] -= w
            for t, x in const.items():
                rhs[t] += x
        try:
            v = np.linalg.solve(a, rhs)
        except np.linalg.LinAlgError:
            pass
    return {c: max(0.0, float(v[ix[c]])) for c in ids}
