"""`OpsLLMStation`: an `llm_server` whose replicas fail, slow down, start cold and drain.

The same continuous-batching replicas and two-choices router as `sim.llm.station`, restricted
to the replicas that are serving. A failed replica loses the requests it holds (waiting or
running): each is handed back with ``done(req, False)`` at the failure and the caller's retry
policy decides. The failed engine is set aside (its orphaned sequences are ignored) and a fresh,
empty one takes its place on repair. Usage::

    st = OpsLLMStation(comp, ctx)
    st.fail(st.slots[0]); st.restore(st.slots[0])
    st.add_replica(ready_in_s=cold_start_s)
    st.set_factor(3.0)                           # a `slow` fault: step times × 3 until set_factor(1.0)
"""

from __future__ import annotations

from sim.des.events import later
from sim.llm.batching import ReplicaEngine
from sim.llm.station import LLMServerStation

__all__ = ["OpsLLMStation", "LLMSlot"]


class LLMSlot:
    """One replica position: its engine, zone and state."""

    __slots__ = ("idx", "zone", "engine", "up", "ready", "draining")

    def __init__(self, idx, zone, engine, ready):
        self.idx, self.zone, self.engine = idx, zone, engine
        self.up, self.ready, self.draining = True, ready, False

    @property
    def serving(self) -> bool:
        return self.up and self.ready and not self.draining


class _SlowSpec:
    """A speculation config whose step time is × the factor (the rest is the config's own)."""

    def __init__(self, specu, factor):
        self._specu, self._f = specu, factor

    def step_s(self, *a):
        return self._specu.step_s(*a) * self._f

    def __getattr__(self, name):
        return getattr(self._specu, name)


def _slow_engine(eng: ReplicaEngine, factor: float) -> None:
    """Scale `eng`'s step times by `factor` (its own instance attributes; 1.0 restores them).

    The engine reads its step time from ``eng._iteration_s`` (the roofline, `fast_step_times`)
    or ``eng.specu.step_s`` each iteration, so the slowdown costs nothing outside the window."""
    base = eng.__dict__.setdefault("_ops_base", (eng._iteration_s, eng.specu, eng.swap_s))
    it, specu, swap = base
    if factor == 1.0:
        eng._iteration_s, eng.specu, eng.swap_s = it, specu, swap
        return
    eng._iteration_s = lambda *a: it(*a) * factor
    eng.specu = _SlowSpec(specu, factor) if specu is not None else None
    eng.swap_s = swap * factor


class OpsLLMStation(LLMServerStation):
    """`llm_server` replicas behind the token-aware router, with failures and scaling."""

    kind = "ops_llm"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx)
        self.zones = getattr(comp, "zones", 1)
        self.slots = [LLMSlot(i, i % self.zones, e, True) for i, e in enumerate(self.engines)]
        self._next_idx = len(self.slots)
        self.killed = 0
        self.cold_waits = 0
        self._reqs: dict[int, object] = {}  # id(req) -> req while it is here (to fail it)
        self._held: list = []  # arrivals while replicas are only starting (scale from zero)
        self._c_t = ctx.env.now
        self._prov_cum = 0.0
        self._retired_tokens = 0  # output tokens of engines set aside (failed, removed)
        self._per_replica_tps = (self.max_tokens_per_s / comp.replicas) if self.max_tokens_per_s else None
        self.factor = 1.0  # a `slow` fault's step-time factor (set_factor)

    def _engine(self) -> ReplicaEngine:
        eng = self._new_engine()  # the component's KV policy, speculation and LoRA (sim.llm.station)
        if getattr(self, "factor", 1.0) != 1.0:
            _slow_engine(eng, self.factor)
        return eng

    def _tick_ops(self) -> None:
        now = self.env._now
        if now > self._c_t:
            self._prov_cum += len(self.slots) * (now - self._c_t)
            self._c_t = now

    def provisioned(self) -> int:
        return len(self.slots)

    def serving(self) -> int:
        return sum(1 for s in self.slots if s.serving)

    def starting(self) -> int:
        return sum(1 for s in self.slots if s.up and not s.ready)

    def replica_seconds(self, now: float) -> float:
        self._tick_ops()
        return self._prov_cum

    # --- protocol ------------------------------------------------------------------------

    def arrive(self, req, done):
        live = [s.engine for s in self.slots if s.serving]
        if not live:
            self.arrivals += 1
            if any(s.up for s in self.slots):
                self._held.append((req, done))  # a replica is starting: wait for it
            else:
                self.drop(req, done)
            return
        self._reqs[id(req)] = req
        self.engines = live  # the parent routes among `self.engines`
        try:
            super().arrive(req, done)
        finally:
            self.engines = [s.engine for s in self.slots]

    def _on_done(self, req, ok, reason):
        if id(req) not in self._pending:
            return  # an orphan of a failed replica: already failed
        self._reqs.pop(id(req), None)
        super()._on_done(req, ok, reason)

    def _on_admit(self, req, wait_s):
        if id(req) in self._pending:
            if wait_s > 0.0 and self.starting():
                self.cold_waits += 1  # waited while a replica was starting
            super()._on_admit(req, wait_s)

    # --- operations ----------------------------------------------------------------------

    def fail(self, slot: LLMSlot) -> int:
        eng = slot.engine
        slot.up = False
        lost = [(k, v) for k, v in self._pending.items() if len(v) >= 3 and v[2] is eng]
        for k, _ in lost:
            del self._pending[k]
        n = 0
        for k, v in lost:
            req = self._reqs.pop(k, None)
            if req is not None:
                n += 1
                self.drop(req, v[0])
        self.killed += n
        self._retired_tokens += eng.tokens_out
        slot.engine = self._engine()  # empty; serves again on repair
        self.engines = [s.engine for s in self.slots]
        if not any(s.up for s in self.slots):
            held, self._held = self._held, []
            for req, done in held:
                self.drop(req, done)
        return n

    def restore(self, slot: LLMSlot) -> None:
        if slot in self.slots:
            slot.up = True
            self._release()

    def up_replicas(self, zone: int | None = None):
        return [s for s in self.slots if s.up and (zone is None or s.zone == zone)]

    def set_factor(self, factor: float) -> None:
        """A `slow` fault: every replica's step time (prefill and decode iterations, speculative
        steps, adapter swaps) × `factor` for steps that start from now on; 1.0 ends it. Steps
        already running keep their length; engines that start during the window (repairs,
        scale-ups) are slowed too."""
        self.factor = factor
        for eng in [s.engine for s in self.slots] + list(self.d_engines):
            _slow_engine(eng, factor)

    def add_replica(self, ready_in_s: float) -> LLMSlot:
        self._tick_ops()
        slot = LLMSlot(self._next_idx, self._next_idx % self.zones, self._engine(), ready_in_s <= 0)
        self._next_idx += 1
        self.slots.append(slot)
        self.engines = [s.engine for s in self.slots]
        if not slot.ready:
            later(self.env, ready_in_s, self._ready, slot)
        return slot

    def _ready(self, ev) -> None:
        slot = ev._value
        if slot in self.slots:
            slot.ready = True
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, []
        for req, done in held:
            self.arrivals -= 1  # counted when it was held
            self.arrive(req, done)

    def remove_replica(self) -> bool:
        self._tick_ops()
        cands = [s for s in self.slots if not s.draining]
        starting = [s for s in cands if s.up and not s.ready]
        if starting:
            self._retired_tokens += starting[-1].engine.tokens_out
            self.slots.remove(starting[-1])
        else:
            serving = [s for s in cands if s.serving]
            if len(serving) <= 1:
                return False
            slot = min(serving, key=lambda s: (s.engine.in_system, -s.idx))
            slot.draining = True  # takes no new work; removed once empty (checked by `signal`)
        self.engines = [s.engine for s in self.slots]
        return True

    def _reap(self) -> None:
        for s in [s for s in self.slots if s.draining and s.engine.in_system == 0]:
            self._tick_ops()
            self._retired_tokens += s.engine.tokens_out
            self.slots.remove(s)
        self.engines = [s.engine for s in self.slots]

    def signal(self, kind: str, since):
        self._reap()
        live = [s.engine for s in self.slots if s.serving]
        n = max(1, len(live))
        if kind in ("waiting_requests", "queue_length"):
            return sum(e.n_waiting for e in live) / n + len(self._held), since
        if kind == "kv_occupancy":
            return sum(e.kv_reserved / e.capacity for e in live if e.capacity) / n, since
        # Utilisation as the twin defines it: output tokens/s over the serving replicas' capacity
        # (sim.llm.twin.llm_capacity at the workload's mean lengths), over the last interval.
        now = self.env._now
        tokens = self._retired_tokens + sum(s.engine.tokens_out for s in self.slots)
        if self._per_replica_tps is None:
            return sum(e.in_system for e in live) / (n * max(1, self.spec.max_batch)), since
        t0, tok0 = since if since != (0.0, 0.0) else (now, tokens)
        dt = now - t0
        value = (tokens - tok0) / dt / (n * self._per_replica_tps) if dt > 0 else 0.0
        return value, (now, tokens)
