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

``routing`` picks the policy: ``least_outstanding_tokens`` (the above, the default),
``round_robin``, or ``prefix_affinity`` — consistent hashing of the request's shared prefix on
a ring of 64 points per replica, taking the first replica clockwise whose outstanding tokens
are at most 1.25 × the mean (bounded loads, `sim.llm.kv.AFFINITY_LOAD_FACTOR`), so each prefix
stays cached on one replica; requests without a shared prefix fall back to two choices.

A request of a class with ``shared_prefix_tokens`` draws one of its ``distinct_prefixes``
uniformly, from a hash of its id (a request that calls the server again — an agent loop —
brings the same prefix back), and its class's ``max_output_tokens`` (else the server's) caps
its answer.

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

import zlib
from bisect import bisect_left

from sim.results import LLMReplicaStats
from sim.des.stations import StationBase, later
from sim.des.stats import RawSample

from .batching import ReplicaEngine
from .disagg import is_disaggregated, kv_transfer_s, pool_components
from .kv import AFFINITY_LOAD_FACTOR, KvConfig
from .lora import AdapterCache, draw as lora_draw, lora_overrides, swap_s as lora_swap_s, zipf_cdf
from .speculative import Speculation
from .roofline import ServingSpec
from .twin import llm_capacity

__all__ = ["LLMServerStation"]

# Refusal reasons kept per station (the same reason repeats for every oversized prompt).
_MAX_REASONS = 5


def _mix(x: int, salt: int) -> int:
    """splitmix64 of (x, salt): a well-mixed, reproducible 64-bit draw."""
    z = (x * 0x9E3779B97F4A7C15 + salt) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


class LLMServerStation(StationBase):
    """`replicas` continuous-batching replicas behind a token-aware router."""

    kind = "llm_server"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx)
        self.spec = ServingSpec.from_component(comp, **lora_overrides(comp))
        self.servers = comp.replicas
        try:  # capacity at the workload's mean lengths: the denominator of the utilisation
            self.max_tokens_per_s = llm_capacity(comp, ctx.workload)[1] * (1 if is_disaggregated(comp) else comp.replicas)
        except ValueError:
            self.max_tokens_per_s = None
        self._pending: dict[int, tuple] = {}  # id(req) -> (done, seq handle)
        kv = KvConfig.from_component(comp)
        # Disaggregated (sim.llm.disagg): `engines` are the prefill replicas (routing picks among
        # them), `d_engines` the decode replicas the prompts' KV is handed to.
        self.pd = is_disaggregated(comp)
        self.d_engines: list[ReplicaEngine] = []
        self._xfer_s = 0.0
        self._xfers = 0
        if self.pd:
            pc, dc = pool_components(comp)
            # decode replicas recompute a preempted prompt in full (the twin's cached-prompt trick is not theirs)
            pspec = ServingSpec.from_component(pc, **lora_overrides(pc))
            dspec = ServingSpec.from_component(dc, **lora_overrides(dc), prefix_cache_hit_ratio=0.0)
            self.spec = pspec
            self.engines = [ReplicaEngine(self.env, pspec, self._on_prefilled, on_admit=self._on_admit, kv=kv,
                                          **self._lora_kw(pc)) for _ in range(pc.replicas)]
            specu = Speculation.from_component(dc, dspec)
            self.d_engines = [ReplicaEngine(self.env, dspec, self._on_done, kv=kv, speculation=specu,
                                            **self._lora_kw(dc)) for _ in range(dc.replicas)]
            self.servers = pc.replicas + dc.replicas
            self._comp = comp
        else:
            specu = Speculation.from_component(comp, self.spec)
            self.engines = [
                ReplicaEngine(self.env, self.spec, self._on_done, on_admit=self._on_admit, kv=kv, speculation=specu,
                              **self._lora_kw(comp))
                for _ in range(comp.replicas)
            ]
        self.rejected = 0
        self.reasons: list[str] = []
        self.routing = getattr(comp, "routing", "least_outstanding_tokens")
        self._rr = 0
        # Per request class: (max output tokens or None, shared prefix tokens, distinct prefixes).
        classes = ctx.workload.request_classes() if ctx.workload is not None else []
        server_max = getattr(comp, "max_output_tokens", None)
        self._cls = [(c.max_output_tokens if c.max_output_tokens is not None else server_max,
                      c.shared_prefix_tokens, c.distinct_prefixes) for c in classes]
        self._salt = self.rng.getrandbits(63)
        self._lora_salt = self.rng.getrandbits(63)
        self._lora_cdf = zipf_cdf(comp.adapters, comp.adapter_zipf_s) if getattr(comp, "adapters", 0) > 0 else None
        self._rings: dict[int, tuple] = {}  # replicas -> consistent-hash ring (prefix_affinity)
        self._kv, self._specu = kv, specu
        # The commonest server (this class itself, two-choice routing, no caps, prefixes,
        # timeouts, adapters or disaggregation; plain paged replicas): `arrive` and `_on_done`
        # without the branches it cannot take. The same draws and values (tests/test_llm_quiet.py).
        if (type(self) is LLMServerStation and not self.pd and self._lora_cdf is None and self.timeout_s is None
                and self.routing not in ("round_robin", "prefix_affinity")
                and all(cap is None and L <= 0 for cap, L, _ in self._cls)
                and all(e.plain_submit for e in self.engines)):
            self.arrive = self._arrive_plain
            for e in self.engines:
                e.on_done = self._on_done_plain

    def _new_engine(self) -> ReplicaEngine:
        """A fresh replica configured like the others (aggregated servers; for `sim.ops`)."""
        return ReplicaEngine(self.env, self.spec, self._on_done, on_admit=self._on_admit, kv=self._kv,
                             speculation=self._specu, **self._lora_kw(self.comp))

    def _ring(self, n: int) -> tuple:
        """(hashes, replica indices) of the ring over ``n`` replicas, 64 points each."""
        r = self._rings.get(n)
        if r is None:
            pts = sorted((zlib.crc32(f"{self.id}:{i}:{v}".encode()), i) for i in range(n) for v in range(64))
            r = self._rings[n] = ([h for h, _ in pts], [i for _, i in pts])
        return r

    @staticmethod
    def _lora_kw(c) -> dict:
        if getattr(c, "adapters", 0) <= 0:
            return {}
        return {"lora": AdapterCache(c.max_resident_adapters), "swap_s": lora_swap_s(c)}

    def _adapter(self, req) -> int | None:
        """The request's adapter: Zipf by popularity, from a hash of its id (same on a revisit)."""
        if self._lora_cdf is None:
            return None
        return lora_draw(self._lora_cdf, _mix(req.id, self._lora_salt) / 2.0 ** 64)

    def _request_terms(self, req) -> tuple:
        """(max output, prefix or None) of a request, from its class."""
        cls = self._cls
        if not cls or not 0 <= req.cls < len(cls):
            return None, None
        cap, L, n = cls[req.cls]
        if L <= 0:
            return cap, None
        return cap, ((req.cls, _mix(req.id, self._salt) % n), L)  # reproducible, well mixed

    def _affine(self, key) -> int:
        """Consistent hashing with bounded loads on outstanding tokens (module docstring)."""
        engines = self.engines
        n = len(engines)
        total = sum(e.outstanding_tokens for e in engines)
        bound = AFFINITY_LOAD_FACTOR * (total / n + 1)
        h = zlib.crc32(repr(key).encode())
        ring_h, ring_r = self._ring(n)
        i = bisect_left(ring_h, h)
        m = len(ring_r)
        seen = 0
        for k in range(m):
            r = ring_r[(i + k) % m]
            if seen >> r & 1:
                continue
            seen |= 1 << r
            if engines[r].outstanding_tokens <= bound:
                return r
        return ring_r[i % m]

    # --- protocol ------------------------------------------------------------------------

    def arrive(self, req, done):
        self.arrivals += 1
        engines = self.engines
        best = engines[0]
        n = len(engines)
        cls = self._cls  # `_request_terms`, inlined (once per request)
        if cls and 0 <= req.cls < len(cls):
            cap, L, m = cls[req.cls]
            prefix = ((req.cls, _mix(req.id, self._salt) % m), L) if L > 0 else None
        else:
            cap = prefix = None
        if n > 1 and self.routing == "round_robin":
            best = engines[self._rr % n]
            self._rr += 1
        elif n > 1 and self.routing == "prefix_affinity" and prefix is not None:
            best = engines[self._affine(prefix[0])]
        elif n > 1:
            # Power of two choices on outstanding tokens (see the module docstring).
            rnd = self.rng.random
            i = int(rnd() * n)
            j = int(rnd() * (n - 1))
            j += j >= i
            a, b = engines[i], engines[j]
            ta, tb = a.outstanding_tokens, b.outstanding_tokens  # (tokens, index) compared, no tuples
            best = a if ta < tb or ta == tb and i <= j else b
        key = id(req)
        self._pending[key] = (done, None)
        seq = best.submit(req, max_output=cap, prefix=prefix, prefill_only=self.pd,
                          adapter=self._adapter(req) if self._lora_cdf is not None else None)
        if seq is None:  # refused synchronously; _on_done already handled it
            return
        self._pending[key] = (done, seq, best)
        if self.timeout_s is not None:
            later(self.env, self.timeout_s, self._timeout, (req, key))

    def _arrive_plain(self, req, done):
        """`arrive` for the plain server (see `__init__`)."""
        self.arrivals += 1
        engines = self.engines
        n = len(engines)
        if n > 1:  # power of two choices on outstanding tokens, as in `arrive`
            rnd = self.rng.random
            i = int(rnd() * n)
            j = int(rnd() * (n - 1))
            j += j >= i
            a, b = engines[i], engines[j]
            ta, tb = a.outstanding_tokens, b.outstanding_tokens
            best = a if ta < tb or ta == tb and i <= j else b
        else:
            best = engines[0]
        key = id(req)
        pending = self._pending
        pending[key] = (done, None)
        seq = best.submit_plain(req)
        if seq is not None:
            pending[key] = (done, seq, best)

    def _on_done_plain(self, req, ok: bool, reason: str | None) -> None:
        """`_on_done` without output caps (the plain server)."""
        if ok:
            done = self._pending.pop(id(req))[0]
            self.completions += 1
            n = req.output_tokens
            req.answer_output_tokens = n if n.__class__ is int and n >= 1 else max(1, int(n))
            done(req, True)
            return
        self._on_done(req, ok, reason)

    # --- engine callbacks -------------------------------------------------------------------

    def _on_admit(self, req, wait_s: float) -> None:
        self.record_wait(req, wait_s)

    def _on_prefilled(self, req, ok: bool, reason: str | None) -> None:
        """Disaggregated: a prefill replica finished the prompt; ship its KV to a decode replica."""
        if not ok:
            self._on_done(req, False, reason)
            return
        key = id(req)
        self._pending[key] = (self._pending[key][0],)  # admitted: no longer withdrawn on timeout
        t = kv_transfer_s(self._comp, max(1, int(req.prompt_tokens)))
        self._xfer_s += t
        self._xfers += 1
        later(self.env, t, self._to_decode, req)

    def _to_decode(self, ev) -> None:
        req = ev._value
        now = self.env.now
        req.first_token_at = now  # TTFT = prefill queue + prefill + KV transfer
        cap = self._request_terms(req)[0]
        out = max(1, int(req.output_tokens)) if cap is None else min(max(1, int(req.output_tokens)), int(cap))
        if out <= 1:
            req.last_token_at = now
            self._on_done(req, True, None)
            return
        engines = self.d_engines
        n = len(engines)
        best = engines[0]
        if n > 1:  # two choices on outstanding tokens
            i = int(self.rng.random() * n)
            j = int(self.rng.random() * (n - 1))
            j += j >= i
            a, b = engines[i], engines[j]
            best = a if (a.outstanding_tokens, i) <= (b.outstanding_tokens, j) else b
        best.submit(req, max_output=cap, prefilled=True, adapter=self._adapter(req))

    def _on_done(self, req, ok: bool, reason: str | None) -> None:
        entry = self._pending.pop(id(req))
        done = entry[0]
        if ok:
            self.completions += 1
            n = int(req.output_tokens)
            if n < 1:
                n = 1
            cls = self._cls  # the class's output cap (`_request_terms`'s first term)
            if cls and 0 <= req.cls < len(cls):
                cap = cls[req.cls][0]
                if cap is not None and cap < n:
                    n = int(cap)  # the engine stopped at max_tokens
            req.answer_output_tokens = n
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
        # Admission waits kept raw (one append each; the p95 by selection, the histogram's value)
        self.waits = RawSample()
        self.rejected = 0
        self._xfer_s, self._xfers = 0.0, 0
        for e in self.engines + self.d_engines:
            e.reset_stats(now)

    def stats(self, now: float):
        st = super().stats(now)
        if self.pd:
            return self._stats_pd(st, now)
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
            preemptions_per_s=sum(t.preemptions for t in totals) / window,
            recomputed_tokens_per_s=sum(t.recomputed_tokens for t in totals) / window,
        )
        prompt_in = sum(t.prompt_tokens for t in totals)
        if any(c[1] > 0 for c in self._cls) or self.spec.prefix_cache_hit_ratio:
            adm = sum(t.admissions for t in totals)
            llm = llm.model_copy(update={
                "prefix_hit_ratio": sum(t.prefix_hit_tokens for t in totals) / prompt_in if prompt_in else 0.0,
                "prefix_hit_ratio_per_replica": [t.prefix_hit_tokens / t.prompt_tokens if t.prompt_tokens else 0.0
                                                 for t in totals],
                "ttft_saved_ms_mean": 1e3 * sum(t.prefill_saved_s for t in totals) / adm if adm else 0.0,
            })
        cap = self.max_tokens_per_s
        return st.model_copy(update={
            "utilization": tokens_per_s / cap if cap else busy_share,
            "mean_queue_len": sum(t.mean_waiting for t in totals),
            "backlog_end": sum(e.n_waiting for e in self.engines),
            "llm": llm,
        })

    def _stats_pd(self, st, now: float):
        """Disaggregated: batch and KV of the decode pool; busy share of each pool."""
        pre = [e.stats(now) for e in self.engines]
        dec = [e.stats(now) for e in self.d_engines]
        window = max(1e-12, pre[0].window_s)
        busy_d = sum(t.busy_s for t in dec)
        tokens_per_s = sum(t.output_tokens for t in pre + dec) / window
        prefill_busy = sum(t.busy_s for t in pre) / (window * len(pre))
        llm = LLMReplicaStats(
            mean_batch_size=(sum(t.mean_batch_size * t.busy_s for t in dec) / busy_d) if busy_d else 0.0,
            max_batch_size=max(t.max_batch_size for t in dec),
            kv_cache_occupancy=sum(t.kv_occupancy for t in dec) / len(dec),
            output_tokens_per_s=tokens_per_s,
            rejected_prompts=self.rejected,
            busy_fraction=busy_d / (window * len(dec)),
            preemptions_per_s=sum(t.preemptions for t in pre + dec) / window,
            recomputed_tokens_per_s=sum(t.recomputed_tokens for t in pre + dec) / window,
            prefill_busy_fraction=prefill_busy,
            kv_transfer_ms_mean=1e3 * self._xfer_s / self._xfers if self._xfers else 0.0,
        )
        if any(c[1] > 0 for c in self._cls):  # the prefix cache lives on the prefill replicas
            adm = sum(t.admissions for t in pre)
            prompt_in = sum(t.prompt_tokens for t in pre)
            llm = llm.model_copy(update={
                "prefix_hit_ratio": sum(t.prefix_hit_tokens for t in pre) / prompt_in if prompt_in else 0.0,
                "prefix_hit_ratio_per_replica": [t.prefix_hit_tokens / t.prompt_tokens if t.prompt_tokens else 0.0
                                                 for t in pre],
                "ttft_saved_ms_mean": 1e3 * sum(t.prefill_saved_s for t in pre) / adm if adm else 0.0,
            })
        cap = self.max_tokens_per_s
        return st.model_copy(update={
            "utilization": tokens_per_s / cap if cap else max(prefill_busy, llm.busy_fraction),
            "mean_queue_len": sum(t.mean_waiting for t in pre + dec),
            "backlog_end": sum(e.n_waiting for e in self.engines + self.d_engines),
            "llm": llm,
        })
