"""Routing: a design's flow compiled into nodes that move requests between stations.

Implements `designs.model`'s flow semantics: branches by `p`, cache hits and guardrail blocks
end the request (``req.stop``), parallel edges fan out and join at `design.join_of`, back edges
loop with `p` up to `max_repeats`, a `queue` ends the caller's latency at enqueue and the
message continues asynchronously (`hand_off`); a drop anywhere drops the request.

Every station calls ``done(req, ok)`` when a request leaves it; the `done` a station gets is
its node's ``cb``, which picks the next station (or calls ``req.k``, the request's own
continuation, when the path ends). The commonest node — one plain edge with p = 1 — gets a
closure with its successor bound (`_single_cb`; `_plain_cb` when the station can neither drop
nor end a request and the successor is no join: then the hop is just the successor's arrive).

Usage::

    from sim.des.routing import build_nodes, goto

    nodes = build_nodes(design, ctx)          # ctx: sim.des.request.SimContext of the run
    req.k = on_end                            # on_end(req, ok): the request is over
    goto(nodes[design.entry], req)            # send it in
"""

from __future__ import annotations

from sim.ops.retry import edge_target, needs_call

from .request import Request, SimContext
from .stations import BrokerStation

__all__ = ["Node", "build_nodes", "goto", "hand_off", "async_done"]


class Node:
    """One component in the flow: its station and what happens after it."""

    __slots__ = ("id", "station", "cb", "single", "cum", "targets", "fan", "join", "loops", "rng", "is_queue",
                 "is_last")

    def __init__(self, cid: str, station):
        self.id = cid
        self.station = station
        self.single = None  # exactly one plain edge with p = 1
        self.cum: list[float] = []  # cumulative branch probabilities
        self.targets: list[Node] = []
        self.fan: list[Node] = []
        self.join: Node | None = None
        self.loops: list[tuple[int, float, int, Node]] = []
        self.rng = None
        self.is_queue = isinstance(station, BrokerStation)
        self.is_last = False  # no edges out: the path ends here
        self.cb = self.after  # bind once: stations call node.cb(req, ok)

    def after(self, req: Request, ok: bool) -> None:
        if not ok:
            req.k(req, False)
            return
        if req.stop:  # cache hit, guardrail block: answered here
            req.stop = False
            req.k(req, True)
            return
        if self.loops:
            counts = req.loops
            if counts is None:
                counts = req.loops = {}
            for idx, p, cap, target in self.loops:
                n = counts.get(idx, 0)
                if n < cap and self.rng.random() < p:
                    counts[idx] = n + 1
                    goto(target, req)
                    return
        if self.is_queue:
            hand_off(self, req)
            req.k(req, True)  # the caller's latency ends at enqueue
            return
        nxt = self.single
        if nxt is not None:
            if nxt is req.bound:
                req.k(req, True)
            else:
                nxt.station.arrive(req, nxt.cb)
            return
        if self.fan:
            self.fan_out(req)
            return
        if self.cum:
            u = self.rng.random()
            for c, target in zip(self.cum, self.targets):
                if u < c:
                    goto(target, req)
                    return
        req.k(req, True)  # no branch taken: the request is finished

    def after_last(self, req: Request, ok: bool) -> None:
        """`after` for a node with no outgoing edges: the request (or branch) ends here."""
        req.stop = False
        req.k(req, ok)

    def fan_out(self, req: Request) -> None:
        join = self.join
        state = [len(self.fan), True]

        def branch_done(child: Request, ok: bool) -> None:
            state[0] -= 1
            if not ok:
                state[1] = False
            # The streamed answer is the LLM call that finished last on any branch.
            if child.last_token_at is not None and (req.last_token_at is None or child.last_token_at >= req.last_token_at):
                req.first_token_at = child.first_token_at
                req.last_token_at = child.last_token_at
                req.answer_output_tokens = child.answer_output_tokens
            if state[0] == 0:
                if not state[1]:
                    req.dropped = True
                    req.k(req, False)
                elif join is None:
                    req.k(req, True)
                else:
                    goto(join, req)

        for target in self.fan:
            child = Request(req.id, req.cls, req.t0, req.prompt_tokens, req.output_tokens, req.measured)
            child.first_token_at, child.last_token_at = req.first_token_at, req.last_token_at
            child.answer_output_tokens = req.answer_output_tokens
            child.loops = req.loops
            child.user = req.user
            child.k = branch_done
            child.bound = join if join is not None else req.bound
            goto(target, child)


def goto(node: Node, req: Request) -> None:
    if node is req.bound:
        req.k(req, True)
    else:
        node.station.arrive(req, node.cb)


def _single_cb(nxt: Node):
    """`after` for the common node (one plain edge with p = 1, no loops) as a closure: the
    successor and its `arrive` are locals, the cheapest hop on the hot path."""
    arrive = nxt.station.arrive
    if nxt.is_last:
        # The successor ends the path: hand it the request's own continuation (one hop fewer).
        def after_to_last(req: Request, ok: bool) -> None:
            if ok and not req.stop and req.bound is not nxt:
                arrive(req, req.k)
                return
            req.stop = False
            req.k(req, ok)

        return after_to_last

    def after(req: Request, ok: bool) -> None:
        if ok and not req.stop and req.bound is not nxt:
            arrive(req, nxt.cb)
            return
        req.stop = False
        req.k(req, ok)

    return after


def _plain_cb(nxt: Node):
    """`after` for a node whose station never drops nor ends a request (a plain exponential
    `FifoStation`) and whose successor is no join: `ok` is always True, `req.stop` False and
    `req.bound` never `nxt`, so the hop is just the successor's `arrive`."""
    arrive = nxt.station.arrive
    if nxt.is_last:
        def after_to_last(req: Request, ok: bool) -> None:
            arrive(req, req.k)

        return after_to_last

    def after(req: Request, ok: bool) -> None:
        arrive(req, nxt.cb)

    return after


def build_nodes(design, ctx: SimContext) -> dict[str, Node]:
    from sim.ops.factory import station_for  # ops stations where faults, failures, autoscaling or errors act

    nodes = {c.id: Node(c.id, station_for(c, ctx)) for c in design.components}
    to = lambda e: nodes[e.to]  # noqa: E731
    if needs_call(design):  # edges with a retry policy or a fallback (sim.ops.retry)
        to = lambda e: edge_target(e, nodes, design, ctx)  # noqa: E731
    for idx, e in enumerate(design.flow):
        src = nodes[e.from_]
        if e.is_loop:
            src.loops.append((idx, e.p, e.max_repeats, to(e)))
    for cid, node in nodes.items():
        outs = design.out_edges(cid)
        if node.loops or (outs and not (len(outs) == 1 and outs[0].p >= 1.0)):
            node.rng = ctx.stream("route:" + cid)
        if not outs:
            continue
        if design.is_fanout(cid):
            node.fan = [to(e) for e in outs]
            j = design.join_of(cid)
            node.join = nodes[j] if j is not None else None
        elif len(outs) == 1 and outs[0].p >= 1.0:
            node.single = to(outs[0])
        else:
            acc = 0.0
            for e in outs:
                acc += e.p
                node.cum.append(acc)
                node.targets.append(to(e))
    for node in nodes.values():
        if not node.loops and not node.is_queue and node.single is None and not node.fan and not node.cum:
            node.cb = node.after_last
            node.is_last = True
    # Only a queue's direct consumers ever see a message's lag stamp (the first service start
    # clears it); every other station can skip the check. Before the closures below bind
    # the stations' `arrive`.
    consumers = set()
    for node in nodes.values():
        if node.is_queue:
            consumers.update(id(getattr(n, "real", n)) for n in [node.single, *node.fan, *node.targets] if n is not None)
    for node in nodes.values():
        if id(node) not in consumers and hasattr(node.station, "no_lag"):
            node.station.no_lag()
    joins = {node.join for node in nodes.values() if node.fan}
    plain: list[Node] = []
    for node in nodes.values():
        if not node.loops and not node.is_queue and node.single is not None:
            if getattr(node.station, "_expo", False) and node.single not in joins:
                node.cb = _plain_cb(node.single)
                plain.append(node)
            else:
                node.cb = _single_cb(node.single)
    # A plain station hands each request straight to its successor (no `after` in between):
    # every request reaches it with `done` = node.cb (goto, the entry, hand-offs all pass a
    # node's cb), which does exactly that. Twice: the second pass binds each successor's
    # final `arrive`.
    for _ in range(2):
        for node in plain:
            nxt = node.single
            node.station.forward_to(nxt.station.arrive, None if nxt.is_last else nxt.cb)
    return nodes


def hand_off(node: Node, req: Request) -> None:
    """A `queue` acknowledged `req`: its consumers get an async copy of the message."""
    msg = req.clone()
    msg.k = async_done
    node.station.enqueued(msg)
    if node.single is not None:
        node.single.station.arrive(msg, node.single.cb)
    elif node.fan:
        node.fan_out(msg)
    elif node.cum:
        u = node.rng.random()
        for c, target in zip(node.cum, node.targets):
            if u < c:
                target.station.arrive(msg, target.cb)
                return
        node.station.record_lag(msg, node.station.env._now)  # nobody consumes it
    else:
        node.station.record_lag(msg, node.station.env._now)


def async_done(req: Request, ok: bool) -> None:
    """End of an asynchronous message's path: nothing waits for it."""
