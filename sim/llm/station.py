"""The engine's station for kind `llm_server`: replicas of a continuous-batching engine.

Each replica is a `ReplicaEngine` (iteration-level batching, KV-cache admission, roofline step
times). An arriving request goes to the replica with the **fewest outstanding tokens** (prompt +
output tokens of the requests it holds, waiting or running) — the token-aware form of
least-outstanding-requests that LLM routers use; ties go to the lowest replica index, so runs
are deterministic.

The station stamps ``first_token_at`` (end of the iteration that finished the prompt's
prefill), ``last_token_at`` and ``answer_output_tokens`` on every request, which the engine
turns into TTFT and TPOT. TTFT therefore includes the wait for admission (queueing).

``timeout_ms``: a request still waiting for admission after that long is withdrawn and counted
as dropped; once admitted it runs to completion (an engine does not abort mid-generation).

Usage (the engine does this through ``sim.stations.STATIONS["llm_server"]``)::

    st = LLMServerStation(comp, ctx)
    st.arrive(req, done)
    st.stats(env.now).llm.mean_batch_size
"""

from __future__ import annotations

from simpy.events import Timeout

from sim.results import LLMReplicaStats
from sim.stations import StationBase

from .batching import ReplicaEngine
from .roofline import ServingSpec

__all__ = ["LLMServerStation"]

# Refusal reasons kept per station (the same reason repeats for every oversized prompt).
_MAX_REASONS = 5


class LLMServerStation(StationBase):
    """`replicas` continuous-batching replicas behind a token-aware router."""

    kind = "llm_server"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx)
        self.spec = ServingSpec.from_component(comp)
        self.servers = comp.replicas  # utilisation = share of time a replica is iterating
        self._pending: dict[int, tuple] = {}  # id(req) -> (done, seq handle)
        self.engines = [
            ReplicaEngine(self.env, self.spec, self._on_done, on_admit=self._on_admit)
            for _ in range(comp.replicas)
        ]
        self.rejected = 0
        self.reasons: list[str] = []

    # --- protocol ------------------------------------------------------------------------

    def arrive(self, req, done):
        self.arrivals += 1
        engines = self.engines
        best = engines[0]
        if len(engines) > 1:
            low = best.outstanding_tokens
            for e in engines:
                if e.outstanding_tokens < low:
                    best, low = e, e.outstanding_tokens
        key = id(req)
        self._pending[key] = (done, None)
        seq = best.submit(req)
        if seq is None:  # refused synchronously; _on_done already handled it
            return
        self._pending[key] = (done, seq, best)
        if self.timeout_s is not None:
            ev = Timeout(self.env, self.timeout_s, (req, key))
            ev.callbacks.append(self._timeout)

    # --- engine callbacks -------------------------------------------------------------------

    def _on_admit(self, req, wait_s: float) -> None:
        self.record_wait(req, wait_s)

    def _on_done(self, req, ok: bool, reason: str | None) -> None:
        entry = self._pending.pop(id(req))
        done = entry[0]
        if ok:
            self.completions += 1
            req.answer_output_tokens = max(1, int(req.output_tokens))
            done(req, True)
            return
        self.rejected += 1
        if reason and len(self.reasons) < _MAX_REASONS and reason not in self.reasons:
            self.reasons.append(reason)
        self.drop(req, done)

    def _timeout(self, ev) -> None:
        req, key = ev._value
        entry = self._pending.get(key)
        if entry is None or len(entry) < 3:
            return  # finished already
        done, seq, engine = entry
        if engine.abandon(seq):
            del self._pending[key]
            self.drop(req, done)

    # --- statistics ----------------------------------------------------------------------

    def reset_stats(self, now: float) -> None:
        super().reset_stats(now)
        self.rejected = 0
        for e in self.engines:
            e.reset_stats(now)

    def stats(self, now: float):
        st = super().stats(now)
        totals = [e.stats(now) for e in self.engines]
        n = len(totals)
        window = max(1e-12, totals[0].window_s)
        busy = sum(t.busy_s for t in totals)
        llm = LLMReplicaStats(
            mean_batch_size=(sum(t.mean_batch_size * t.busy_s for t in totals) / busy) if busy else 0.0,
            max_batch_size=max(t.max_batch_size for t in totals),
            kv_cache_occupancy=sum(t.kv_occupancy for t in totals) / n,
            output_tokens_per_s=sum(t.output_tokens for t in totals) / window,
            rejected_prompts=self.rejected,
        )
        return st.model_copy(update={
            "utilization": busy / (window * n),
            "mean_queue_len": sum(t.mean_waiting for t in totals),
            "backlog_end": sum(e.n_waiting for e in self.engines),
            "llm": llm,
        })
