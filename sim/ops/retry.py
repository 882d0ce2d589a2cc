"""Retry policies and fallbacks on edges, compiled into the routing.

An edge ``{from: a, to: b, retry: {attempts: 3, backoff_ms: 100, timeout_ms: 2000}}`` makes every
call from `a` into `b` a *call* with a policy: each attempt is a copy of the request sent to `b`;
a failed attempt (``done(copy, False)``: dropped, timed out, its replica crashed, the provider
erred) is retried after ``backoff_ms × 2^k × U(0.5, 1.5)`` (k = 0, 1, …; jitter from the stream
``retry:<a>-><b>``) until ``attempts`` are used; an attempt still running at ``timeout_ms`` is
given up (its late answer is ignored) and retried. With every attempt failed, a component with
a fallback edge ``{from: b, to: c, fallback: true}`` is called in b's place (with the fallback
edge's own retry policy) and the request then continues after `b` as if `b` had answered.

Expected attempts with independent failures q: E[n] = (1 − qⁿ)/(1 − q) — the amplification a
retry policy puts on the component behind it (checked against the simulation in the tests).

`edge_target(edge, nodes, design, ctx)` returns the node to route to: the real node, or a
`CallNode` that stands in for it (same ``cb`` and ``is_last``, its own ``station.arrive``).
Counters per run live in ``ctx.extra["retry_stats"]``: attempts, retries, gave_up, fallbacks.
"""

from __future__ import annotations

from sim.des.events import later
from sim.des.request import Request

__all__ = ["CallNode", "Caller", "edge_target", "needs_call", "RetryStats"]

JITTER_LOW, JITTER_HIGH = 0.5, 1.5  # as sim.providers.api_station (AWS "Exponential Backoff and Jitter")


class RetryStats:
    """What the retry policies did in one run (cumulative)."""

    __slots__ = ("attempts", "retries", "gave_up", "fallbacks", "timeouts", "recovered")

    def __init__(self):
        self.attempts = self.retries = self.gave_up = self.fallbacks = self.timeouts = self.recovered = 0


def _stats(ctx) -> RetryStats:
    st = ctx.extra.get("retry_stats")
    if st is None:
        st = ctx.extra["retry_stats"] = RetryStats()
    return st


def _copy(req: Request) -> Request:
    c = Request(req.id, req.cls, req.t0, req.prompt_tokens, req.output_tokens, req.measured)
    c.first_token_at, c.last_token_at = req.first_token_at, req.last_token_at
    c.answer_output_tokens = req.answer_output_tokens
    c.loops = req.loops
    c.user = req.user
    c.bound = req.bound
    c.lag_from, c.lag_t = req.lag_from, req.lag_t
    return c


class Caller:
    """The `station` of a `CallNode`: runs the attempts into the real station, then the fallback."""

    def __init__(self, node, policy, fallback, rng, stats: RetryStats):
        self.node = node  # the real Node called
        self.policy = policy
        self.fallback = fallback  # a Caller for the fallback component, or None
        self.rng = rng
        self.stats = stats
        self.env = node.station.env
        self.id = node.id

    def arrive(self, req: Request, done) -> None:
        self._attempt(req, done, 0)

    def _attempt(self, req: Request, done, k: int) -> None:
        st = self.stats
        st.attempts += 1
        if k:
            st.retries += 1
        child = _copy(req)
        state = [False]  # this attempt is over (answered, failed or timed out)

        def back(c: Request, ok: bool) -> None:
            if state[0]:
                return  # the late answer of an attempt given up
            state[0] = True
            if ok:
                req.first_token_at, req.last_token_at = c.first_token_at, c.last_token_at
                req.answer_output_tokens = c.answer_output_tokens
                req.stop = c.stop
                req.loops = c.loops
                req.lag_from = c.lag_from
                if k:
                    st.recovered += 1
                done(req, True)
            else:
                self._failed(req, done, k)

        pol = self.policy
        if pol is not None and pol.timeout_ms is not None:
            def give_up(_ev) -> None:
                if not state[0]:
                    state[0] = True
                    st.timeouts += 1
                    self._failed(req, done, k)

            later(self.env, pol.timeout_ms / 1000.0, give_up)
        self.node.station.arrive(child, back)

    def _failed(self, req: Request, done, k: int) -> None:
        pol = self.policy
        if pol is not None and k + 1 < pol.attempts:
            delay = pol.backoff_ms / 1000.0 * (2 ** k) * self.rng.uniform(JITTER_LOW, JITTER_HIGH)
            later(self.env, delay, lambda _ev: self._attempt(req, done, k + 1))
            return
        if self.fallback is not None:
            self.stats.fallbacks += 1
            self.fallback.arrive(req, done)
            return
        self.stats.gave_up += 1
        req.dropped = True
        done(req, False)


class CallNode:
    """Stands in for a `sim.des.routing.Node` as an edge's target: calls go through `station`
    (a `Caller`); what happens after is the real node's (``cb``, ``is_last`` read at call time)."""

    __slots__ = ("real", "station", "id")

    def __init__(self, real, caller: Caller):
        self.real = real
        self.station = caller
        self.id = real.id

    @property
    def cb(self):
        return self.real.cb

    @property
    def is_last(self):
        return self.real.is_last

    def __getattr__(self, name):
        return getattr(self.real, name)


def needs_call(design) -> bool:
    """Whether any edge carries a retry policy or a fallback (else routing is untouched)."""
    return any(e.retry is not None or e.fallback for e in design.flow)


def _fallback_of(design) -> dict:
    return {e.from_: e for e in design.flow if e.fallback}


def _caller(design, nodes, ctx, target: str, policy, name: str, seen: frozenset = frozenset()) -> Caller:
    fb = _fallback_of(design).get(target)
    fallback = None
    if fb is not None and fb.to not in seen:  # cycles are refused by validation; never recurse forever
        fallback = _caller(design, nodes, ctx, fb.to, fb.retry, f"{target}->{fb.to}", seen | {target})
    return Caller(nodes[target], policy, fallback, ctx.stream("retry:" + name), _stats(ctx))


def edge_target(edge, nodes: dict, design, ctx):
    """The node routing sends `edge`'s traffic to: a `CallNode` when the edge has a retry
    policy or its target has a fallback, else the real node."""
    fb = _fallback_of(design)
    if edge.retry is None and edge.to not in fb:
        return nodes[edge.to]
    return CallNode(nodes[edge.to], _caller(design, nodes, ctx, edge.to, edge.retry, f"{edge.from_}->{edge.to}"))
