"""One `llm_server` replica as an iteration-level continuous-batching engine, in SimPy.

Each iteration (one forward pass of the model):

0. (``paged``) gives every decoding sequence that crosses a block boundary its next KV block;
   when the pool is short it evicts unreferenced cached prefixes (LRU), then preempts the
   most recently admitted sequence (its blocks are freed; it goes back to the head of the
   queue and its prompt + the tokens it had produced are prefilled again when readmitted);
1. admits waiting requests, first come first served, while the batch has fewer than
   ``max_batch`` sequences and the KV left holds the newcomer: under ``reserve_max`` its
   prompt + max output tokens (TensorRT-LLM's ``GUARANTEED_NO_EVICT``), under ``paged`` its
   prompt's blocks above a 1 % watermark (vLLM) — never its actual output length, which no
   engine knows in advance. Cached prefix blocks that no sequence uses are evicted to make room;
2. prefills admitted prompts — all of them, or at most ``chunked_prefill_tokens`` tokens per
   iteration, oldest first — skipping the tokens found in the prefix cache;
3. decodes one token for every sequence whose prefill had finished before this iteration;
4. at its end stamps first tokens (the iteration that finished a prompt's prefill produces its
   first token), retires sequences that produced their last token and frees their KV.

The iteration's duration comes from `ServingSpec.iteration_s` with the batch's actual KV
tokens and prefill work. A request whose prompt + output can never fit the cache, or exceeds
the model's context, is refused at once with a reason. See `sim.llm.kv` for the policies and
the prefix cache.

The engine is driven by `sim.des.events.later` callbacks — one event per iteration, no process
per request — and keeps O(log n) work per request: decode progress is a global step counter,
sequences sit in buckets keyed by the step they finish at, and paged block growth is counted by
the step residue at which each sequence crosses a block boundary (O(1) per step). Works on the
engine's `SimEnv` and on a plain `simpy.Environment`.

Usage::

    import simpy
    from sim.llm.batching import ReplicaEngine
    env = simpy.Environment()
    eng = ReplicaEngine(env, spec, on_done=lambda req, ok, reason: ...)   # kv=KvConfig(...)
    eng.submit(req)            # req has prompt_tokens, output_tokens, first/last_token_at
    env.run()
    eng.stats(env.now)         # ReplicaTotals: batch, KV occupancy, tokens/s, preemptions
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from heapq import heappush

from sim.des.events import SimEnv, later

from .kv import WATERMARK, KvConfig, PrefixCache
from .roofline import ServingSpec
from .lora import AdapterCache
from .speculative import Speculation

__all__ = ["ReplicaEngine", "ReplicaTotals", "OnDone", "fast_step_times"]

_MAX_SKIP = 256

OnDone = Callable[[Any, bool, "str | None"], None]
"""``on_done(req, ok, reason)``: finished (ok) or refused (reason says why)."""


def fast_step_times(spec: ServingSpec):
    """(iteration_s, prefill_flops_s) for one replica's loop: `ServingSpec`'s methods with the
    per-spec constants folded in (one multiply-add instead of a dozen property reads per
    iteration), for dense models without a sliding window.

    The folded formulas must give the *same floats*: they are checked against the spec's own
    methods on a grid of inputs at construction, and any difference (another model kind, or a
    change to the roofline) falls back to the spec's methods — slower, never different.
    """
    m = spec.model
    slow_path = (spec.iteration_s, spec.prefill_flops_s)
    if type(spec) is not ServingSpec or m.is_moe or m.sliding_window or getattr(spec, "graph_batch_sizes", ()) \
            or getattr(spec, "host_floor_s_per_seq", 0.0):
        return slow_path  # (CUDA-graph padding, issue 11: not folded here)
    try:
        w = spec.weights_read_bytes(1.0)
        kvb = spec.kv_bytes_per_token
        bw = spec._bandwidth
        c1 = 2 * m.params_active_b * 1e9
        c_dec = spec._peak_flops * spec.decode_mfu
        # decode rows at the step's GEMM height (issue 11): decode_mfu → prefill_mfu with T/(T + T_d)
        pk, d_mfu, p_mfu, h_d = spec._peak_flops, spec.decode_mfu, spec.prefill_mfu, spec.decode_mfu_half_tokens
        sig = spec.attention_serial_share  # KV reads outside the GEMMs' max (issue 11)
        c_pre = spec._peak_flops * spec.prefill_mfu
        h_p = spec.prefill_mfu_half_tokens  # prefill MFU × T/(T + T½) at the step's T tokens (issue 11)
        a2 = 4 * m.layers * m.q_heads * m.head_dim
        slow, ovh = spec._slowdown, spec.iteration_overhead_s
        # issue 11: tensor-parallel all-reduces (one pipeline stage, no expert parallelism)
        if getattr(spec, "pp", 1) != 1 or getattr(spec, "ep", 1) != 1:
            return slow_path
        tp, n_ar = getattr(spec, "tp", 1), 2 * m.layers
        if tp > 1:
            from .roofline import ACT_BYTES

            lat, hid = spec.allreduce_latency_s, m.hidden
            bwe = spec.link_bytes_per_s * spec.allreduce_bus_efficiency
    except AttributeError:  # a roofline that moved on: use its own methods
        return slow_path

    def comm(tokens):
        if tp <= 1 or tokens <= 0:
            return 0.0
        return n_ar * (lat + 2 * (tp - 1) / tp * (tokens * hid * ACT_BYTES) / bwe)

    def prefill_flops_s(tokens, cached_tokens=0.0):
        return (c1 * tokens + a2 * (tokens * cached_tokens + tokens * tokens / 2)) / c_pre

    def iteration_s(decode_batch, kv_tokens_read, prefill_tokens=0.0, prefill_flops_s=None):
        if prefill_flops_s is None:
            return spec.iteration_s(decode_batch, kv_tokens_read, prefill_tokens, None)
        mem = (w + kv_tokens_read * kvb) / bw
        serial = sig * (kv_tokens_read * kvb) / bw if sig > 0 and kv_tokens_read > 0 else 0.0
        mem = mem - serial
        if h_d > 0:
            t = decode_batch + prefill_tokens
            mfu = d_mfu + (p_mfu - d_mfu) * (t / (t + h_d)) if t > 0 else d_mfu
            comp = c1 * decode_batch / (pk * mfu)
        else:
            comp = c1 * decode_batch / c_dec
        if h_p > 0 and prefill_tokens:
            t = decode_batch + prefill_tokens
            prefill_flops_s = prefill_flops_s * ((t + h_p) / t)
        x = comp + prefill_flops_s
        return ((mem if mem >= x else x) + serial + comm(decode_batch + prefill_tokens)) * slow + ovh

    if tp <= 1:  # no all-reduce: the same floats without the call (t + 0.0 is t for t ≥ 0)
        pure_decode: dict = {}  # decode batch -> its compute term, for steps without prefill

        def iteration_s(decode_batch, kv_tokens_read, prefill_tokens=0.0, prefill_flops_s=None):  # noqa: F811
            if prefill_flops_s is None:
                return spec.iteration_s(decode_batch, kv_tokens_read, prefill_tokens, None)
            kv_bytes = kv_tokens_read * kvb
            mem = (w + kv_bytes) / bw
            serial = sig * kv_bytes / bw if sig > 0 and kv_tokens_read > 0 else 0.0
            mem = mem - serial
            if h_p > 0 and prefill_tokens:
                tp_ = decode_batch + prefill_tokens
                prefill_flops_s = prefill_flops_s * ((tp_ + h_p) / tp_)
            if not prefill_tokens and not prefill_flops_s:  # a pure decode step: its FLOPs term by batch
                x = pure_decode.get(decode_batch)
                if x is None:
                    if h_d > 0:
                        t = decode_batch + prefill_tokens
                        mfu = d_mfu + (p_mfu - d_mfu) * (t / (t + h_d)) if t > 0 else d_mfu
                        x = c1 * decode_batch / (pk * mfu) + prefill_flops_s
                    else:
                        x = c1 * decode_batch / c_dec + prefill_flops_s
                    if len(pure_decode) < 4096:
                        pure_decode[decode_batch] = x
            elif h_d > 0:
                t = decode_batch + prefill_tokens
                mfu = d_mfu + (p_mfu - d_mfu) * (t / (t + h_d)) if t > 0 else d_mfu
                x = c1 * decode_batch / (pk * mfu) + prefill_flops_s
            else:
                x = c1 * decode_batch / c_dec + prefill_flops_s
            return ((mem if mem >= x else x) + serial) * slow + ovh

    for b, kv, pt, c in ((0, 0, 1, 0), (1, 1000, 0, 0), (7, 12_345, 300, 17), (256, 300_000, 2048, 4096),
                         (64, 80_000, 0, 0), (200, 250_000, 900, 0), (3, 10, 50_000, 90_000)):
        pf = spec.prefill_flops_s(pt, c)
        if prefill_flops_s(pt, c) != pf or iteration_s(b, kv, pt, pf) != spec.iteration_s(b, kv, pt, pf):
            return slow_path
    return iteration_s, prefill_flops_s


class _Seq:
    __slots__ = ("req", "prompt", "output", "need", "left", "done_tok", "finish", "t_in", "dead",
                 "produced", "base", "s0", "gen", "growing", "pkey", "ptok", "shared", "owner", "first_adm",
                 "prefilled", "adapter")

    def __init__(self, req, prompt: int, output: int, need: float, t_in: float):
        self.req = req
        self.prompt = prompt
        self.output = output  # tokens this request will produce (its answer, at most the cap)
        self.need = need  # reserve_max: KV tokens reserved; paged: tokens allocated at admission
        self.left = prompt  # prompt tokens still to prefill (set at admission)
        self.done_tok = 0  # prompt tokens already in the KV cache
        self.finish = 0  # decode step at which the last token is produced
        self.t_in = t_in
        self.dead = False  # abandoned while waiting (timeout)
        self.produced = 0  # output tokens produced so far (kept across a preemption)
        self.base = 0  # KV tokens at decode entry (prompt + produced)
        self.s0 = 0  # step at decode entry
        self.gen = 0  # bumped on preemption: heap entries of an older generation are stale
        self.growing = False  # counted in the block-residue table
        self.pkey = None  # shared-prefix key, or None
        self.ptok = 0  # cacheable prefix tokens (whole blocks)
        self.shared = 0  # tokens this sequence uses from the prefix cache (not its own KV)
        self.owner = False  # it computes the prefix entry it registered
        self.first_adm = True
        self.prefilled = False  # disaggregation: prompt KV arrived from a prefill replica
        self.adapter = None  # multi-LoRA: the adapter it runs with, or None


@dataclass
class ReplicaTotals:
    """Accumulated measurements of one replica over a window."""

    window_s: float
    busy_s: float
    iterations: int
    mean_batch_size: float  # sequences per iteration, weighted by iteration time
    max_batch_size: int
    kv_occupancy: float  # KV tokens in use (incl. cached prefixes) / capacity, time-averaged
    mean_waiting: float  # requests waiting for admission, time-averaged
    output_tokens: int
    output_tokens_per_s: float
    rejected: int
    completed: int
    preemptions: int = 0
    recomputed_tokens: int = 0  # prompt + produced tokens prefilled again after a preemption
    prompt_tokens: int = 0  # prompt tokens of first admissions
    prefix_hit_tokens: int = 0  # of which served from the prefix cache
    prefill_saved_s: float = 0.0  # prefill compute the hits skipped (≈ TTFT saved)
    admissions: int = 0


class ReplicaEngine:
    """A single replica's continuous-batching loop (see the module docstring)."""

    def __init__(self, env, spec: ServingSpec, on_done: OnDone, *, record_iterations: bool = False,
                 on_admit: Callable[[Any, float], None] | None = None, kv: KvConfig | None = None,
                 speculation: Speculation | None = None, lora: AdapterCache | None = None,
                 swap_s: float = 0.0, quiet_path: bool = True):
        self.env = env
        self.spec = spec
        self.on_done = on_done
        self.on_admit = on_admit  # on_admit(req, wait_s) when a request enters the batch
        self.kv = kv = kv or KvConfig()
        self.paged = kv.paged
        self.B = kv.block_tokens if kv.paged else 1
        # Speculative decoding: E tokens per step per sequence (1: plain decoding, exact integers);
        # the draft's weights and KV take room from the target's KV cache.
        self.specu = speculation
        self.lora, self.swap_s, self._swaps = lora, swap_s, 0  # multi-LoRA residency (sim.llm.lora)
        self.rate = speculation.tokens_per_step if speculation is not None else 1
        cap_tok = speculation.kv_capacity_tokens(spec) if speculation is not None else spec.kv_capacity_tokens
        self.capacity = (cap_tok // self.B) * self.B
        self.watermark = int(WATERMARK * (self.capacity // self.B)) * self.B if kv.paged else 0
        self.max_batch = spec.max_batch
        self.chunk = spec.chunked_prefill_tokens
        self.hit = spec.prefix_cache_hit_ratio
        self.ctx_limit = spec.model.max_context_tokens
        self.sw = spec.model.sliding_window or 0
        self.waiting: deque[_Seq] = deque()
        self.prefilling: deque[_Seq] = deque()  # admitted, prompt not finished
        # decoding sequences by the step they finish at: step -> [(seq, gen)] in admission order
        # (a dict of buckets: O(1) per sequence; a heap's pops were ~4 % of a serving run)
        self.fin: dict[int, list] = {}
        self.running: dict[_Seq, None] = {}  # decoding sequences in admission order
        self.residue = [0] * self.B  # paged: decoding sequences needing a block when step % B == r
        self.sw_heap: list = []  # paged + sliding window: (step growth stops, tie, seq, gen)
        self.grow_heap: list = []  # paged + speculative: (step of the next block, tie, seq, gen)
        self.pcache = PrefixCache()
        self.n_running = 0
        self.n_waiting = 0  # live requests in `waiting` (abandoned ones are skipped lazily)
        self.kv_reserved = 0.0  # KV tokens in use: sequences' own + cached prefixes
        self.kv_ctx = 0  # KV tokens the decoding sequences hold (read by every decode step)
        self.step = 0
        self.busy = False
        self.outstanding_tokens = 0  # routing signal: tokens of requests not yet finished
        self._tie = 0
        self._just_prefilled: list[_Seq] = []
        self._it_batch = 0
        self._it_start = 0.0
        # Step times: the roofline's own formulas, or their constants folded (`fast_step_times`).
        self._iteration_s, self._prefill_flops_s = fast_step_times(spec)
        self._heap = env._queue if env.__class__ is SimEnv else None
        self._eid = env._eid
        # The quiet path of `_end` (plain decoding, no sliding window, no iteration records).
        self._quiet = quiet_path and not record_iterations and speculation is None and not self.sw
        # The plain case of `_admit`, `_grow` and retirement (paged or reserved KV, no sliding
        # window, no speculation, no LoRA, no flat prefix hit ratio): written out where they are
        # called, the same operations in the same order (tests/test_llm_quiet.py checks the
        # results against the general path).
        self._plain = quiet_path and speculation is None and not self.sw and lora is None and not self.hit
        # statistics (reset_stats starts a window)
        self.record = [] if record_iterations else None  # (t_end, dt, batch, kv_reserved)
        self.reset_stats(env.now)

    # --- public --------------------------------------------------------------------------

    @property
    def in_system(self) -> int:
        return self.n_waiting + len(self.prefilling) + self.n_running

    def submit(self, req, *, max_output: float | None = None, prefix: tuple | None = None,
               prefill_only: bool = False, prefilled: bool = False, adapter: int | None = None):
        """Queue ``req`` and return its handle (for `abandon`); a request that can never fit is
        refused at once through ``on_done(req, False, reason)`` and None is returned.

        ``max_output``: the request's output cap (its class's or the server's
        ``max_output_tokens``; None: what the context leaves); the answer stops there, and
        ``reserve_max`` reserves it. ``prefix``: ``(key, tokens)`` of its shared prefix.
        Disaggregation: ``prefill_only`` runs the prompt and its first token only (a prefill
        replica); ``prefilled`` admits a request whose prompt KV and first token arrived from a
        prefill replica, straight into the decode set (a decode replica)."""
        prompt = max(1, int(req.prompt_tokens))
        output = max(1, int(req.output_tokens))
        spec = self.spec
        room = max(1, self.ctx_limit - prompt)
        cap = room if max_output is None else max(1, min(int(max_output), room))
        reason = None
        if prompt + output > self.ctx_limit and (max_output is None or prompt >= self.ctx_limit):
            reason = (f"{spec.component_id}: prompt {prompt:,} + output {output:,} tokens exceed "
                      f"{spec.model.name}'s {self.ctx_limit:,}-token context")
        output = min(output, cap)  # the engine stops at max_tokens
        if prefill_only:
            output = cap = 1
        if self.paged:
            if self.sw:
                need = self._blocks(spec.kv_tokens_of(prompt, output))
            else:  # `kv_tokens_of` is the sum without a sliding window; `_blocks` inlined
                B = self.B
                need = -(-(prompt + output) // B) * B if B > 1 else prompt + output
        else:
            need = spec.kv_tokens_of(prompt, cap)
        if reason is None and need > self.capacity:
            what = (f"prompt {prompt:,} + output {output:,} tokens need" if self.paged
                    else f"prompt {prompt:,} + max output {cap:,} tokens reserve")
            reason = (f"{spec.component_id}: {what} "
                      f"{need * spec.kv_bytes_per_token / 1e9:.1f} GB of KV cache; a replica holds "
                      f"{self.capacity:,} tokens ({spec.kv_capacity_bytes / 1e9:.1f} GB)"
                      + ("" if self.paged else "; lower max_output_tokens or use kv_policy: paged"))
        if reason is not None:
            self.rejected += 1
            self.on_done(req, False, reason)
            return None
        now = self.env._now  # the clock's attribute: `env.now` is a property call
        seq = _Seq(req, prompt, output, need, now)
        if prefilled:
            seq.produced = 1  # its first token came from the prefill replica
            seq.prefilled = True
        if self.lora is not None:
            seq.adapter = adapter
        if prefix is not None and not self.hit:
            ptok = (min(int(prefix[1]), prompt - 1) // self.B) * self.B
            if ptok > 0:
                seq.pkey, seq.ptok = prefix[0], ptok
        if now > self._t_last:  # `_advance`, inlined
            self._kv_area += self.kv_reserved * (now - self._t_last)
            self._wait_area += self.n_waiting * (now - self._t_last)
            self._t_last = now
        self.waiting.append(seq)
        self.n_waiting += 1
        self.outstanding_tokens += prompt + output
        if not self.busy:
            self.busy = True
            # Zero-delay start: requests arriving at the same instant share the first iteration.
            later(self.env, 0.0, self._start)
        return seq

    def submit_plain(self, req):
        """`submit(req)` with no output cap, prefix, adapter or disaggregation, for a `_plain`
        paged engine without a sliding window (`plain_submit`): the same steps and values.
        A request that could be refused takes `submit` itself (which refuses it)."""
        prompt = req.prompt_tokens
        output = req.output_tokens
        if prompt.__class__ is not int or output.__class__ is not int or prompt < 1 or output < 1:
            prompt = max(1, int(prompt))
            output = max(1, int(output))
        n = prompt + output
        B = self.B
        need = -(-n // B) * B if B > 1 else n
        if n > self.ctx_limit or need > self.capacity:
            return self.submit(req)
        now = self.env._now
        seq = _Seq(req, prompt, output, need, now)
        if now > self._t_last:  # `_advance`, inlined (as in `submit`, whose tail this is)
            self._kv_area += self.kv_reserved * (now - self._t_last)
            self._wait_area += self.n_waiting * (now - self._t_last)
            self._t_last = now
        self.waiting.append(seq)
        self.n_waiting += 1
        self.outstanding_tokens += n
        if not self.busy:
            self.busy = True
            later(self.env, 0.0, self._start)
        return seq

    @property
    def plain_submit(self) -> bool:
        """Whether `submit_plain` may stand in for `submit` (plain, paged, no sliding window)."""
        return self._plain and self.paged and not self.sw

    def abandon(self, seq) -> bool:
        """Withdraw a request that is still waiting (its client timed out); False if admitted."""
        if seq is None or seq.dead or seq.t_in < 0:
            return False
        self._advance(self.env._now)
        seq.dead = True
        self.n_waiting -= 1
        self.outstanding_tokens -= seq.prompt + seq.output
        return True

    def reset_stats(self, now: float) -> None:
        self._t_stat = now
        self._t_last = now
        self._busy_s = 0.0
        self._batch_area = 0.0
        self._kv_area = 0.0
        self._wait_area = 0.0
        self._iters = 0
        self.max_batch_seen = 0
        self.tokens_out = 0
        self.rejected = 0
        self.completed = 0
        self.preemptions = 0
        self.recomputed = 0
        self.prompt_in = 0
        self.prefix_hits = 0
        self.saved_s = 0.0
        self.admissions = 0

    def stats(self, now: float) -> ReplicaTotals:
        self._advance(now)
        w = max(1e-12, now - self._t_stat)
        return ReplicaTotals(
            window_s=now - self._t_stat, busy_s=self._busy_s, iterations=self._iters,
            mean_batch_size=self._batch_area / self._busy_s if self._busy_s else 0.0,
            max_batch_size=self.max_batch_seen,
            kv_occupancy=self._kv_area / w / self.capacity if self.capacity else 0.0,
            mean_waiting=self._wait_area / w,
            output_tokens=self.tokens_out, output_tokens_per_s=self.tokens_out / w,
            rejected=self.rejected, completed=self.completed,
            preemptions=self.preemptions, recomputed_tokens=self.recomputed,
            prompt_tokens=self.prompt_in, prefix_hit_tokens=self.prefix_hits,
            prefill_saved_s=self.saved_s, admissions=self.admissions,
        )

    # --- KV bookkeeping ------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if now > self._t_last:
            self._kv_area += self.kv_reserved * (now - self._t_last)
            self._wait_area += self.n_waiting * (now - self._t_last)
            self._t_last = now

    def _blocks(self, tokens) -> int:
        """``tokens`` rounded up to whole blocks (paged), in tokens; `KvConfig.blocks` inlined."""
        B = self.B
        return -(-int(tokens) // B) * B if B > 1 else int(tokens)

    def _held(self, s: _Seq, ahead: int = 0) -> int:
        """KV tokens a decoding sequence holds now (prompt + produced so far, window-capped)."""
        n = s.base + self.rate * (self.step + ahead - s.s0)
        if self.rate != 1:
            n = int(n) + (n > int(n))
        return min(n, self.sw) if self.sw else n

    def _own_alloc(self, s: _Seq, decoding: bool) -> float:
        """KV tokens allocated to ``s`` itself (cached prefix blocks are the cache's)."""
        if not self.paged:
            return s.need
        if not decoding or self.rate != 1:
            return s.need  # speculative: tracked per sequence (grow_heap)
        n = s.base + (self.step - s.s0)  # `_held` at one token a step, inlined with `_blocks`
        if self.sw and n > self.sw:
            n = self.sw
        B = self.B
        return (-(-n // B) * B if B > 1 else n) - s.shared

    def _room(self, tokens: float) -> bool:
        """Make ``tokens`` of KV free by evicting unreferenced cached prefixes; True if it fits."""
        pc = self.pcache
        while self.kv_reserved + tokens > self.capacity:
            freed = pc.evict_one()
            if not freed:
                return False
            self.kv_reserved -= freed
        return True

    def _release(self, s: _Seq, decoding: bool) -> None:
        """Free the KV of a sequence that finished or is preempted."""
        if self.lora is not None and s.adapter is not None:
            self.lora.release(s.adapter)
        own = self._own_alloc(s, decoding)
        self.kv_reserved -= own
        if s.shared:
            pc = self.pcache
            before = pc.tokens
            pc.release(s.pkey)
            self.kv_reserved -= before - pc.tokens  # an entry never computed is dropped at once
        s.shared = 0
        s.owner = False

    def _stop_growing(self, s: _Seq) -> None:
        if s.growing:
            self.residue[(s.s0 - s.base) % self.B] -= 1
            s.growing = False

    def _preempt_one(self) -> bool:
        """Preempt the most recently admitted sequence (vLLM's recompute); False if none."""
        if self.prefilling:
            s = self.prefilling.pop()  # admitted after every decoding sequence
            self._release(s, decoding=False)
        elif self.running:
            s, _ = self.running.popitem()
            self._stop_growing(s)
            grown = self.rate * (self.step - s.s0)
            self.kv_ctx -= s.base + grown
            s.produced = min(s.output - 1, s.base - s.prompt + int(grown))
            self.tokens_out += (s.produced - (s.base - s.prompt)) - grown  # counted at the mean rate
            self.n_running -= 1
            s.gen += 1  # its heap entry is stale now
            self._release(s, decoding=True)
        else:
            return False
        self.preemptions += 1
        s.done_tok = 0
        self.waiting.appendleft(s)
        self.n_waiting += 1
        return True

    def _grow_speculative(self) -> None:
        """Paged + speculative: sequences grow by E tokens a step, each tracked on a heap."""
        heap, step = self.grow_heap, self.step
        while heap and heap[0][0] <= step:
            _, _, s, g = heap[0]
            if g != s.gen or s not in self.running:  # preempted or finished since
                heapq.heappop(heap)
                continue
            delta = self._blocks(self._held(s, 1)) - s.shared - s.need
            if delta <= 0 or self._room(delta):
                heapq.heappop(heap)
                if delta > 0:
                    self.kv_reserved += delta
                    s.need += delta
                self._push_growth(s)
            elif not self._preempt_one():
                return

    def _push_growth(self, s: _Seq) -> None:
        """Schedule the step at which ``s`` outgrows its blocks: base + E·(t + 1 − s0) > allocated."""
        alloc = s.need + s.shared
        if self.sw and alloc >= self.sw:
            return
        t = s.s0 + int((alloc - s.base) / self.rate)
        self._tie += 1
        heapq.heappush(self.grow_heap, (max(t, self.step), self._tie, s, s.gen))

    def _grow(self) -> None:
        """Paged: allocate this step's new blocks, preempting when the pool runs dry."""
        if self.rate != 1:
            return self._grow_speculative()
        B, step = self.B, self.step
        sw_heap = self.sw_heap
        while sw_heap and sw_heap[0][0] <= step:
            _, _, s, g = heapq.heappop(sw_heap)
            if g == s.gen and s in self.running:
                self._stop_growing(s)
        r = step % B
        while self.residue[r]:
            need = self.residue[r] * B
            if self.kv_reserved + need <= self.capacity or self._room(need):  # `_room`'s no-eviction case first
                self.kv_reserved += need
                return
            if not self._preempt_one():
                return

    # --- the loop ------------------------------------------------------------------------

    def _admit(self, s: _Seq) -> bool | None:
        """Allocate a waiting sequence's KV (with its prefix-cache hit); False if it must wait
        (no KV: admission stops), None if its LoRA adapter has no free slot (it is skipped)."""
        pc = self.pcache
        prompt_eff = s.prompt + s.produced  # a preempted sequence recomputes what it had produced
        cached = shared = 0
        owner = False
        if s.pkey is not None:
            hit = pc.lookup(s.pkey)
            if hit:
                cached = shared = min(hit, s.ptok)
            elif not pc.has(s.pkey):
                owner, shared = True, s.ptok  # computes the prefix; the blocks stay cached
            # else another sequence is computing it right now: this one computes its own copy
        elif self.hit:
            cached = min(s.prompt - 1, int(s.prompt * self.hit))  # flat override, no memory
        if s.prefilled:
            cached = prompt_eff  # its KV came over the link: nothing to compute
        if self.paged:
            own = self._blocks(min(prompt_eff + 1, self.sw) if self.sw else prompt_eff + 1) - shared
            extra = self.watermark if (self.n_running or self.prefilling) else 0
        else:
            own = s.need - shared
            extra = 0
        entry = shared if owner else 0
        lora = self.lora
        if lora is not None and s.adapter is not None and not lora.can_admit(s.adapter):
            return None  # every adapter slot is held by running sequences: skip it for now
        if shared and not owner:
            pc.acquire(s.pkey)  # first, so that making room cannot evict the prefix it hits
        need = own + entry + extra
        if self.kv_reserved + need > self.capacity and not self._room(need):  # `_room` only to evict
            if shared and not owner:
                pc.release(s.pkey)
            return False
        if owner:
            pc.insert(s.pkey, entry)
        if lora is not None and s.adapter is not None:
            self._swaps += lora.admit(s.adapter)
        self.kv_reserved += own + entry
        s.need = own
        s.shared = shared
        s.owner = owner
        s.done_tok = cached
        s.left = prompt_eff - cached
        if s.first_adm:
            self.prompt_in += s.prompt
            self.admissions += 1
            if cached:
                self.prefix_hits += cached
                self.saved_s += self.spec.prefill_s(cached)
        else:
            self.recomputed += s.left
        return True

    def _start(self, _event=None) -> None:
        env, spec = self.env, self.spec
        now = env._now
        if now > self._t_last:  # called from `_end` at the same instant: nothing to add
            self._advance(now)
        if self.paged and self.n_running:  # 0. blocks for this step's tokens (may preempt)
            res = self.residue[self.step % self.B]
            if not self._plain or res and self.kv_reserved + res * self.B > self.capacity:
                self._grow()
            elif res:  # `_grow`'s first case: the blocks fit
                self.kv_reserved += res * self.B
        # 1. admission: FIFO, bounded by max_batch and the KV left (head-of-line blocking).
        waiting, prefilling = self.waiting, self.prefilling
        on_admit = self.on_admit
        skipped = []
        plain, paged, B = self._plain, self.paged, self.B
        while waiting and len(prefilling) + self.n_running < self.max_batch:
            s = waiting[0]
            if s.dead:
                waiting.popleft()
                continue
            if plain and s.pkey is None and not s.prefilled:
                # `_admit` without prefix cache, LoRA or disaggregation (its plain case)
                prompt_eff = s.prompt + s.produced
                if paged:
                    own = -(-(prompt_eff + 1) // B) * B if B > 1 else prompt_eff + 1
                    need = own + (self.watermark if (self.n_running or prefilling) else 0)
                else:
                    own = need = s.need
                if self.kv_reserved + need > self.capacity and not self._room(need):
                    break
                self.kv_reserved += own
                s.need = own
                s.shared = 0
                s.owner = False
                s.done_tok = 0
                s.left = prompt_eff
                if s.first_adm:
                    self.prompt_in += s.prompt
                    self.admissions += 1
                else:
                    self.recomputed += prompt_eff
                waiting.popleft()
                self.n_waiting -= 1
                prefilling.append(s)
                if s.first_adm:
                    s.first_adm = False
                    if on_admit is not None:
                        on_admit(s.req, now - s.t_in)
                s.t_in = -1.0
                continue
            ok = self._admit(s)
            if ok is None:
                # vLLM's scheduler passes over a request whose LoRA cannot join the batch and
                # keeps it first in line (scans at most _MAX_SKIP of them per step, for speed)
                skipped.append(waiting.popleft())
                if len(skipped) >= _MAX_SKIP:
                    break
                continue
            if not ok:
                break
            waiting.popleft()
            self.n_waiting -= 1
            if s.prefilled:
                s.prefilled = False
                self._enter_decode(s, self.step)  # decodes in this very iteration
            else:
                prefilling.append(s)
            if s.first_adm:
                s.first_adm = False
                if on_admit is not None:
                    on_admit(s.req, now - s.t_in)
            s.t_in = -1.0  # admitted: can no longer be abandoned
        if skipped:
            waiting.extendleft(reversed(skipped))
        # 2. prefill, oldest first, within the chunk budget.
        budget = self.chunk if self.chunk is not None else 1 << 62
        p_tokens = 0
        p_flops_s = 0.0
        done = self._just_prefilled
        n_prefill = 0
        for s in prefilling:
            if budget <= 0:
                break
            take = s.left if s.left <= budget else budget
            p_flops_s += self._prefill_flops_s(take, s.done_tok)
            p_tokens += take
            budget -= take
            s.left -= take
            s.done_tok += take
            n_prefill += 1
            if s.left == 0:
                done.append(s)
        for _ in range(len(done)):
            prefilling.popleft()  # finished prompts are always the oldest ones
        batch = self.n_running + n_prefill
        if batch == 0:
            self.busy = False
            return
        if self.specu is not None and self.n_running:
            dt = self.specu.step_s(spec, self.n_running, self.kv_ctx, p_tokens, p_flops_s)
        else:
            dt = self._iteration_s(self.n_running, self.kv_ctx, p_tokens, p_flops_s)
        if self._swaps:  # adapters copied in before this step can run them
            dt += self._swaps * self.swap_s
            self._swaps = 0
        self._it_batch = batch
        self._it_start = now
        if self._heap is not None:  # the engine's SimEnv: the entry `later` would push, directly
            heappush(self._heap, (now + dt, 1, next(self._eid), self._end, None))
        else:
            later(env, dt, self._end)

    def _start_plain(self, now: float) -> None:
        """`_start` for a `_plain` engine called from `_end` (same instant, clock advanced):
        the same steps and floats with the branches it cannot take removed."""
        if self.paged and self.n_running:  # 0. blocks for this step's tokens (may preempt)
            res = self.residue[self.step % self.B]
            if res:
                if self.kv_reserved + res * self.B > self.capacity:
                    self._grow()
                else:
                    self.kv_reserved += res * self.B
        # 1. admission (see `_start`)
        waiting, prefilling = self.waiting, self.prefilling
        if waiting:
            on_admit, paged, B, max_batch = self.on_admit, self.paged, self.B, self.max_batch
            while waiting and len(prefilling) + self.n_running < max_batch:
                s = waiting[0]
                if s.dead:
                    waiting.popleft()
                    continue
                if s.pkey is None and not s.prefilled:  # `_admit`'s plain case, as in `_start`
                    prompt_eff = s.prompt + s.produced
                    if paged:
                        own = -(-(prompt_eff + 1) // B) * B if B > 1 else prompt_eff + 1
                        need = own + (self.watermark if (self.n_running or prefilling) else 0)
                    else:
                        own = need = s.need
                    if self.kv_reserved + need > self.capacity and not self._room(need):
                        break
                    self.kv_reserved += own
                    s.need = own
                    s.shared = 0
                    s.owner = False
                    s.done_tok = 0
                    s.left = prompt_eff
                    if s.first_adm:
                        self.prompt_in += s.prompt
                        self.admissions += 1
                    else:
                        self.recomputed += prompt_eff
                elif not self._admit(s):  # no LoRA here: never None
                    break
                waiting.popleft()
                self.n_waiting -= 1
                if s.prefilled:
                    s.prefilled = False
                    self._enter_decode(s, self.step)  # decodes in this very iteration
                else:
                    prefilling.append(s)
                if s.first_adm:
                    s.first_adm = False
                    if on_admit is not None:
                        on_admit(s.req, now - s.t_in)
                s.t_in = -1.0  # admitted: can no longer be abandoned
        # 2. prefill, oldest first, within the chunk budget.
        p_tokens = 0
        p_flops_s = 0.0
        n_prefill = 0
        if prefilling:
            budget = self.chunk if self.chunk is not None else 1 << 62
            done = self._just_prefilled
            pf = self._prefill_flops_s
            for s in prefilling:
                if budget <= 0:
                    break
                take = s.left if s.left <= budget else budget
                p_flops_s += pf(take, s.done_tok)
                p_tokens += take
                budget -= take
                s.left -= take
                s.done_tok += take
                n_prefill += 1
                if s.left == 0:
                    done.append(s)
            for _ in range(len(done)):
                prefilling.popleft()  # finished prompts are always the oldest ones
        n = self.n_running
        batch = n + n_prefill
        if batch == 0:
            self.busy = False
            return
        dt = self._iteration_s(n, self.kv_ctx, p_tokens, p_flops_s)
        self._it_batch = batch
        self._it_start = now
        if self._heap is not None:
            heappush(self._heap, (now + dt, 1, next(self._eid), self._end, None))
        else:
            later(self.env, dt, self._end)

    def _enter_decode(self, s: _Seq, step: int) -> None:
        """Put ``s`` in the decode set at step ``step`` with the tokens it has produced."""
        rate, B, sw = self.rate, self.B, self.sw
        s.base = s.prompt + s.produced
        s.s0 = step
        s.finish = step + (s.output - s.produced if rate == 1 else int(-(-(s.output - s.produced) // rate)))
        self._tie += 1
        due = self.fin.get(s.finish)
        if due is None:
            self.fin[s.finish] = [(s, s.gen)]
        else:
            due.append((s, s.gen))
        self.running[s] = None
        self.n_running += 1
        self.kv_ctx += s.base
        if self.paged and rate != 1:
            self._push_growth(s)
        elif self.paged and (not sw or s.base < sw):
            # blocks for base tokens were allocated at admission (prompt + first token)
            self.residue[(s.s0 - s.base) % B] += 1
            s.growing = True
            if sw:
                heapq.heappush(self.sw_heap, (s.s0 + sw - s.base, self._tie, s, s.gen))

    def _end(self, _event=None) -> None:
        now = self.env._now
        if (self._quiet and self.n_running and not self._just_prefilled and not self.n_waiting
                and not self.prefilling and self.step + 1 not in self.fin):
            # Quiet iteration: it only decoded, nothing finishes, nobody waits — about a third of
            # them. `_end` then `_start` reduce to this (same operations, same floats;
            # tests/test_llm_quiet.py runs both paths).
            if now > self._t_last:  # `_advance`, inlined
                self._kv_area += self.kv_reserved * (now - self._t_last)
                self._wait_area += self.n_waiting * (now - self._t_last)
                self._t_last = now
            batch = self._it_batch
            t0 = self._it_start if self._it_start > self._t_stat else self._t_stat
            dt_w = now - t0
            self._busy_s += dt_w
            self._batch_area += batch * dt_w
            self._iters += 1
            if batch > self.max_batch_seen:
                self.max_batch_seen = batch
            self.step = step = self.step + 1
            n = self.n_running
            self.kv_ctx += n
            self.tokens_out += n
            if self.paged:
                need = self.residue[step % self.B] * self.B
                if need:
                    if self.kv_reserved + need > self.capacity:  # evictions or preemptions: the full loop
                        self._start()
                        return
                    self.kv_reserved += need
            dt = self._iteration_s(n, self.kv_ctx, 0, 0.0)
            self._it_batch = n
            self._it_start = now
            if self._heap is not None:
                heappush(self._heap, (now + dt, 1, next(self._eid), self._end, None))
            else:
                later(self.env, dt, self._end)
            return
        if now > self._t_last:  # `_advance`, inlined
            self._kv_area += self.kv_reserved * (now - self._t_last)
            self._wait_area += self.n_waiting * (now - self._t_last)
            self._t_last = now
        dt = now - self._it_start
        batch = self._it_batch
        t0 = self._it_start if self._it_start > self._t_stat else self._t_stat
        dt_w = now - t0  # only the part inside the measured window
        self._busy_s += dt_w
        self._batch_area += batch * dt_w
        self._iters += 1
        if batch > self.max_batch_seen:
            self.max_batch_seen = batch
        # 3. one decode token for every sequence that was decoding.
        self.step += 1
        step = self.step
        rate = self.rate
        self.kv_ctx += self.n_running * rate
        self.tokens_out += self.n_running * rate
        due = self.fin.pop(step, None)  # every finish step is > the step of entry: none is skipped
        finished = [s for s, g in due if g == s.gen] if due is not None else []
        # 4. first tokens of the prompts this iteration finished.
        plain = self._plain
        if plain and self._just_prefilled:
            # `_enter_decode` written out for one token a step and no sliding window
            fin, running, paged, B = self.fin, self.running, self.paged, self.B
            residue = self.residue
            for s in self._just_prefilled:
                if s.owner:
                    self.pcache.ready(s.pkey)
                s.produced += 1
                self.tokens_out += 1
                if s.produced == 1:
                    s.req.first_token_at = now
                if s.produced >= s.output:
                    finished.append(s)
                    s.finish = -1  # never entered the decode set
                    continue
                s.base = base = s.prompt + s.produced
                s.s0 = step
                s.finish = f = step + (s.output - s.produced)
                self._tie += 1
                due = fin.get(f)
                if due is None:
                    fin[f] = [(s, s.gen)]
                else:
                    due.append((s, s.gen))
                running[s] = None
                self.n_running += 1
                self.kv_ctx += base
                if paged:
                    residue[(step - base) % B] += 1
                    s.growing = True
            self._just_prefilled = []
        elif self._just_prefilled:
            for s in self._just_prefilled:
                if s.owner:
                    self.pcache.ready(s.pkey)
                s.produced += 1
                self.tokens_out += 1
                if s.produced == 1:
                    s.req.first_token_at = now
                if s.produced >= s.output:
                    finished.append(s)
                    s.finish = -1  # never entered the decode set
                    continue
                self._enter_decode(s, step)
            self._just_prefilled = []
        if self.record is not None:
            self.record.append((now, dt, batch, self.kv_reserved))
        if plain:
            B = self.B
            on_done = self.on_done
            for s in finished:
                # `_stop_growing`, `_release` and `_own_alloc` written out (one token a step)
                if s.finish >= 0:
                    self.n_running -= 1
                    self.kv_ctx -= s.prompt + s.output
                    del self.running[s]
                    if s.growing:
                        self.residue[(s.s0 - s.base) % B] -= 1
                        s.growing = False
                    if s.shared:
                        self._release(s, True)
                    elif self.paged:
                        n = s.base + (step - s.s0)
                        self.kv_reserved -= -(-n // B) * B if B > 1 else n
                        s.owner = False
                    else:
                        self.kv_reserved -= s.need
                        s.owner = False
                else:
                    self._release(s, False)
                self.outstanding_tokens -= s.prompt + s.output
                self.completed += 1
                s.req.last_token_at = now
                on_done(s.req, True, None)
            finished = ()
        for s in finished:
            decoding = s.finish >= 0
            if decoding:
                self.n_running -= 1
                if rate == 1:
                    self.kv_ctx -= s.prompt + s.output
                else:  # grown at the mean rate E; the answer's exact length corrects the count
                    grown = rate * (s.finish - s.s0)
                    self.kv_ctx -= s.base + grown
                    self.tokens_out += (s.output - s.produced) - grown
                del self.running[s]
                self._stop_growing(s)
            self._release(s, decoding)
            self.outstanding_tokens -= s.prompt + s.output
            self.completed += 1
            s.req.last_token_at = now
            self.on_done(s.req, True, None)
        if self.n_waiting or self.prefilling or self.n_running:
            if plain:
                self._start_plain(now)
            else:
                self._start()
        else:
            self.busy = False
