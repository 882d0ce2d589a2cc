"""The engine's station for kind `llm_server`: replicas of a continuous-batching engine.

Each replica is a `ReplicaEngine` (iteration-level batching, KV-cache admission, roofline step
times). An arriving request samples two replicas at random (the station's own seeded stream) and
goes to the one with **fewer outstanding tokens** (prompt + output tokens of the requests it
holds, waiting or running; ties to the lower index) — power of two choices, the token-aware form
of Envoy's default ``LEAST_REQUEST`` balancer. Why not the global minimum: sequences admitted
together finish together, so a replica that just retired a cohort became the strict minimum and
took every arrival until it caught up; those prompts were then prefilled in one long iteration
and finished together again. With fixed token lengths this herding quadrupled TTFT at 72 % load
(serve-10m reference, 8 replicas, mean TTFT: 228 ms with the global minimum, 58 ms with two
choices, 44 ms for one replica fed Poisson arrivals at the same rate, 21 ms with round robin).
Two choices keep the load balancing for variable lengths (llm_serving library design: TTFT
p95 182 ms vs 160 ms with the global minimum) and remove most of the herding; with exactly fixed
lengths some remains at high load (serve-10m, 7 replicas, 83 %: 114 ms vs 59 ms Poisson).

The station stamps ``first_token_at`` (end of the iteration that finished the prompt's
prefill), ``last_token_at`` and ``answer_output_tokens`` on every request, which the engine
turns into TTFT and TPOT. TTFT therefore includes the wait for admission (queueing).

``timeout_ms``: a request still waiting for admission after that long is withdrawn and counted
as dropped; once admitted it runs to completion (an engine does not abort mid-generation).

Utilisation (``ComponentStats.utilization``) is the share of the replicas' capacity in use:
measured output tokens/s ÷ (replicas × max output tokens/s of one replica), the maximum coming
from the roofline twin at the workload's mean token lengths
(`sim.llm.roofline.llm_capacity`, the same λ*·E[O] as
``LLMEstimate.max_output_tokens_per_s_per_replica``). It is therefore the simulated counterpart
of the twin's ρ = λ / (replicas × λ*), and reads ≈ 1 (or the ratio of the simulated to the
analytic capacity) when the server is saturated. The share of time a replica spends iterating
— ≈ 1 at any moderate load, since a continuous-batching engine iterates whenever it holds a
sequence — is kept as ``LLMReplicaStats.busy_fraction``. If the twin cannot size the workload
(e.g. a mean request that does not fit), the busy share is reported as utilisation instead.

Usage (the engine does this through ``sim.des.stations.STATIONS["llm_server"]``)::

    st = LLMServerStation(comp, ctx)
    st.arrive(req, done)
    st.stats(env.now).llm.mean_batch_size
"""

from __future__ import annotations

from sim.results import LLMReplicaStats
from sim.des.stations import StationBase, later

from .batching import ReplicaEngine
from .roofline import ServingSpec
from .twin import llm_capacity

__all__ = ["LLMServerStation"]

# Refusal reasons kept per station (the same reason repeats for every oversized prompt).
_MAX_REASONS = 5


class LLMServerStation(StationBase):
    """`replicas` continuous-batching replicas behind a token-aware router."""

    kind = "llm_server"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx)
        self.spec = ServingSpec.from_component(comp)
        self.servers = comp.replicas
        try:  # capacity at the workload's mean lengths: the denominator of the utilisation
            self.max_tokens_per_s = llm_capacity(comp, ctx.workload)[1] * comp.replicas
        except ValueError:
            self.max_tokens_per_s = None
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
        n = len(engines)
        if n > 1:
            # Power of two choices on outstanding tokens (see the module docstring).
            i = int(self.rng.random() * n)
            j = int(self.rng.random() * (n - 1))
            j += j >= i
            a, b = engines[i], engines[j]
            best = a if (a.outstanding_tokens, i) <= (b.outstanding_tokens, j) else b
        key = id(req)
        self._pending[key] = (done, None)
        seq = best.submit(req)
        if seq is None:  # refused synchronously; _on_done already handled it
            return
        self._pending[key] = (done, seq, best)
        if self.timeout_s is not None:
            later(self.env, self.timeout_s, self._timeout, (req, key))

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
        tokens_per_s = sum(t.output_tokens for t in totals) / window
        busy_share = busy / (window * n)
        llm = LLMReplicaStats(
            mean_batch_size=(sum(t.mean_batch_size * t.busy_s for t in totals) / busy) if busy else 0.0,
            max_batch_size=max(t.max_batch_size for t in totals),
            kv_cache_occupancy=sum(t.kv_occupancy for t in totals) / n,
            output_tokens_per_s=tokens_per_s,
            rejected_prompts=self.rejected,
            busy_fraction=busy_share,
        )
        cap = self.max_tokens_per_s
        return st.model_copy(update={
            "utilization": tokens_per_s / cap if cap else busy_share,
            "mean_queue_len": sum(t.mean_waiting for t in totals),
            "backlog_end": sum(e.n_waiting for e in self.engines),
            "llm": llm,
        })
