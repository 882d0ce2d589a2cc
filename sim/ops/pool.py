"""`ReplicaPool`: a FIFO pool of replicas × concurrency slots whose replicas fail, slow down,
start cold and drain — the ops stand-in for a `FifoStation` pool.

A request takes a free slot on a serving replica (the one with most free slots: a
least-connections balancer), else waits in one shared FIFO queue. Each replica keeps the
requests it is serving, so when it fails exactly those are lost: each is handed back with
``done(req, False)`` at the failure instant and the caller's retry policy (`sim.ops.retry`)
decides whether it is retried. While no replica is up and none is starting, arrivals fail at
once (a balancer with no healthy backend answers 503) and the queue is failed too.

The service time comes from the original station built for the component (same random stream,
so with nothing failing this pool draws the same service times as `FifoStation`); a cache's hit
and a guardrail's block behave as there. Usage::

    pool = ReplicaPool(comp, ctx, inner=FifoStation(comp, ctx, comp.servers, comp.service_time))
    pool.arrive(req, done)
    pool.fail_replicas(1, now)      # one replica crashes; its requests fail
    pool.add_replica(ready_in_s=150)   # autoscaler: a cold start
"""

from __future__ import annotations

from collections import deque

from sim.des.events import later
from sim.des.fifo import FifoStation
from sim.des.station_base import StationBase

__all__ = ["ReplicaPool", "Replica"]


class Replica:
    """One replica: its zone, state and the requests it is serving (token → (req, done))."""

    __slots__ = ("idx", "zone", "up", "ready", "draining", "busy", "inflight", "epoch", "born")

    def __init__(self, idx: int, zone: int, ready: bool, born: float):
        self.idx = idx
        self.zone = zone
        self.up = True
        self.ready = ready
        self.draining = False
        self.busy = 0
        self.inflight: dict[int, tuple] = {}
        self.epoch = 0
        self.born = born

    @property
    def serving(self) -> bool:
        return self.up and self.ready and not self.draining


class ReplicaPool(StationBase):
    """`replicas` × `concurrency` slots, one FIFO queue, replicas that come and go."""

    kind = "ops_pool"

    def __init__(self, comp, ctx, inner):
        super().__init__(comp, ctx)
        self.inner = inner
        self.conc = getattr(comp, "concurrency", 1)
        self.zones = getattr(comp, "zones", 1)
        custom = type(inner).service_time is not FifoStation.service_time
        self.svc = inner.service_time if custom else (lambda req: inner.sample())
        self.block = comp.kind == "guardrail" and getattr(inner, "block_ratio", 0) > 0
        self.replicas: list[Replica] = []
        self.factor = 1.0
        self.queue: deque = deque()
        self.killed = 0  # requests lost in service when their replica failed
        self.rejected = 0  # arrivals (and queued requests) failed for want of any replica
        self.cold_waits = 0  # requests that waited while a replica was starting (never reset)
        self._cold = 0  # replicas starting now
        self._token = 0
        self._next_idx = 0
        # Cumulative areas, never reset (the autoscaler's signal and the replica-hours).
        self._cap_now = 0
        self._c_t = ctx.env.now
        self._cap_cum = 0.0
        self._busy_cum = 0.0
        self._prov_cum = 0.0
        self._cap_area = 0.0
        for _ in range(comp.replicas):
            self._new_replica(ready=True)
        self._recount()

    # --- accounting ----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        dt = now - self._c_t
        if dt > 0.0:
            self._cap_cum += self._cap_now * dt
            self._cap_area += self._cap_now * dt
            self._busy_cum += self.busy * dt
            self._prov_cum += len(self.replicas) * dt
            self._c_t = now
        super().tick(now)

    def _recount(self) -> None:
        self._cap_now = sum(self.conc for r in self.replicas if r.serving)
        self.servers = max(1, self._cap_now)

    def provisioned(self) -> int:
        """Replicas that exist (paid for): serving, starting, failed or draining."""
        return len(self.replicas)

    def serving(self) -> int:
        return sum(1 for r in self.replicas if r.serving)

    def starting(self) -> int:
        return sum(1 for r in self.replicas if r.up and not r.ready)

    def replica_seconds(self, now: float) -> float:
        self.tick(now)
        return self._prov_cum

    # --- requests ------------------------------------------------------------------------

    def _free(self) -> Replica | None:
        best, room = None, 0
        for r in self.replicas:
            if r.serving and self.conc - r.busy > room:
                best, room = r, self.conc - r.busy
        return best

    def _hopeless(self) -> bool:
        return not any(r.up for r in self.replicas)

    def arrive(self, req, done):
        now = self.env._now
        self.arrivals += 1
        self.tick(now)
        if self._hopeless():
            self.rejected += 1
            self.drop(req, done)
            return
        r = self._free()
        if r is not None:
            self._start(r, req, done, now, 0.0)
            return
        item = [req, done, now, True]
        self.qlen += 1
        self.queue.append(item)
        if self.timeout_s is not None:
            later(self.env, self.timeout_s, self._abandon, item)

    def _start(self, r: Replica, req, done, now: float, wait: float) -> None:
        self.record_wait(req, wait)
        if wait > 0.0 and self._cold:
            self.cold_waits += 1  # queued while capacity was on its way: the scale-up lag users feel
        s = self.svc(req) * self.factor
        self._token += 1
        tok = self._token
        r.inflight[tok] = (req, done)
        r.busy += 1
        self.busy += 1
        to = self.timeout_s
        if to is not None and wait + s > to:
            later(self.env, max(0.0, to - wait), self._end, (r, tok, r.epoch, False))
        else:
            later(self.env, s, self._end, (r, tok, r.epoch, True))

    def _end(self, ev) -> None:
        r, tok, epoch, ok = ev._value
        if r.epoch != epoch:
            return  # the replica failed meanwhile: this request was already failed
        entry = r.inflight.pop(tok, None)
        if entry is None:
            return
        now = self.env._now
        self.tick(now)
        r.busy -= 1
        self.busy -= 1
        req, done = entry
        if r.draining and r.busy == 0:
            self._remove(r)
        self._dispatch(now)
        if not ok:
            self.drop(req, done)
            return
        self.completions += 1
        if self.block and self.inner.route_rng.random() < self.inner.block_ratio:
            req.stop = True
        done(req, True)

    def _dispatch(self, now: float) -> None:
        q = self.queue
        while q:
            r = self._free()
            if r is None:
                return
            item = q.popleft()
            if not item[3]:
                continue
            item[3] = False
            self.qlen -= 1
            self._start(r, item[0], item[1], now, now - item[2])

    def _abandon(self, ev) -> None:
        item = ev._value
        if not item[3]:
            return
        item[3] = False
        self.tick(self.env._now)
        self.qlen -= 1
        self.drop(item[0], item[1])

    # --- operations ----------------------------------------------------------------------

    def _new_replica(self, ready: bool) -> Replica:
        r = Replica(self._next_idx, self._next_idx % self.zones, ready, self.env.now)
        self._next_idx += 1
        self.replicas.append(r)
        return r

    def fail(self, r: Replica) -> int:
        """`r` crashes now: the requests it serves fail; returns how many."""
        now = self.env._now
        self.tick(now)
        lost = list(r.inflight.values())
        r.up = False
        r.epoch += 1
        r.inflight = {}
        self.busy -= r.busy
        r.busy = 0
        self._recount()
        self.killed += len(lost)
        for req, done in lost:
            self.drop(req, done)
        if self._hopeless():
            self._fail_queue()
        if r.draining:
            self._remove(r)
        return len(lost)

    def _fail_queue(self) -> None:
        q, self.queue = self.queue, deque()
        for item in q:
            if item[3]:
                item[3] = False
                self.qlen -= 1
                self.rejected += 1
                self.drop(item[0], item[1])

    def restore(self, r: Replica) -> None:
        """`r` is repaired and serves again (its slots are empty)."""
        if r not in self.replicas:
            return
        self.tick(self.env._now)
        r.up = True
        self._recount()
        self._dispatch(self.env._now)

    def up_replicas(self, zone: int | None = None) -> list[Replica]:
        return [r for r in self.replicas if r.up and (zone is None or r.zone == zone)]

    def set_factor(self, factor: float) -> None:
        """Service times drawn from now on are multiplied by `factor` (a `slow` fault)."""
        self.factor = factor

    def add_replica(self, ready_in_s: float) -> Replica:
        """The autoscaler asks for a replica; it serves after `ready_in_s` (its cold start)."""
        self.tick(self.env._now)
        r = self._new_replica(ready=ready_in_s <= 0)
        if not r.ready:
            self._cold += 1
            later(self.env, ready_in_s, self._ready, r)
        self._recount()
        return r

    def _ready(self, ev) -> None:
        r = ev._value
        self._cold -= 1
        if r not in self.replicas:
            return
        self.tick(self.env._now)
        r.ready = True
        self._recount()
        self._dispatch(self.env._now)

    def remove_replica(self) -> bool:
        """Scale down by one: a starting replica first, else the least busy serving one drains."""
        self.tick(self.env._now)
        cands = [r for r in self.replicas if not r.draining]
        if len(cands) <= 1 and all(r.serving for r in cands):
            return False
        starting = [r for r in cands if r.up and not r.ready]
        if starting:
            self._remove(starting[-1])
            return True
        serving = [r for r in cands if r.serving]
        if not serving:
            return False
        r = min(serving, key=lambda x: (x.busy, -x.idx))
        r.draining = True
        if r.busy == 0:
            self._remove(r)
        self._recount()
        return True

    def _remove(self, r: Replica) -> None:
        if r in self.replicas:
            self.tick(self.env._now)
            self.replicas.remove(r)
            self._recount()

    def signal(self, kind: str, since: tuple[float, float]) -> tuple[float, tuple[float, float]]:
        """The autoscaler's reading: (value, new mark). Utilisation is over the last interval."""
        now = self.env._now
        self.tick(now)
        mark = (self._busy_cum, self._cap_cum)
        if kind == "utilization":
            db, dc = mark[0] - since[0], mark[1] - since[1]
            return (db / dc if dc > 0 else (1.0 if self.qlen else 0.0)), mark
        n = max(1, self.serving())
        return self.qlen / n, mark

    # --- statistics ----------------------------------------------------------------------

    def reset_stats(self, now: float) -> None:
        super().reset_stats(now)
        self._cap_area = 0.0
        self.killed = self.rejected = 0

    def stats(self, now: float):
        st = super().stats(now)
        util = self._busy_area / self._cap_area if self._cap_area > 0 else 0.0
        return st.model_copy(update={"utilization": util})
