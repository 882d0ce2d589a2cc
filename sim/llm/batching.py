"""One `llm_server` replica as an iteration-level continuous-batching engine, in SimPy.

Each iteration (one forward pass of the model):

1. admits waiting requests, first come first served, while the batch has fewer than
   ``max_batch`` sequences and the KV cache can hold the newcomer's **prompt + output tokens**;
2. prefills admitted prompts — all of them, or at most ``chunked_prefill_tokens`` tokens per
   iteration, oldest first — skipping the prefix-cached share of each prompt;
3. decodes one token for every sequence whose prefill had finished before this iteration;
4. at its end stamps first tokens (the iteration that finished a prompt's prefill produces its
   first token), retires sequences that produced their last token and frees their KV.

The iteration's duration comes from `ServingSpec.iteration_s` with the batch's actual KV
tokens and prefill work. KV policy: a sequence reserves its full prompt + output tokens at
admission, like TensorRT-LLM's default `GUARANTEED_NO_EVICT` scheduler, so no sequence is ever
preempted; vLLM allocates pages on demand and preempts when full, which packs a little more
(sequences are on average half-way through their output) at the cost of recomputation.
A request whose prompt + output can never fit the cache, or exceeds the model's context, is
refused at once with a reason.

The engine is driven by `sim.des.events.later` callbacks — one event per iteration, no process
per request, no `simpy.Timeout` object (same ordering as a Timeout: time, priority, event id)
— and keeps O(log n) work per request: decode progress is a global step counter and
sequences sit in a heap keyed by the step they finish at. Works on the engine's `SimEnv` and
on a plain `simpy.Environment`.

Usage::

    import simpy
    from sim.llm.batching import ReplicaEngine
    env = simpy.Environment()
    eng = ReplicaEngine(env, spec, on_done=lambda req, ok, reason: ...)
    eng.submit(req)            # req has prompt_tokens, output_tokens, first/last_token_at
    env.run()
    eng.stats(env.now)         # ReplicaTotals: batch, KV occupancy, tokens/s
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from heapq import heappush

from sim.des.events import SimEnv, later

from .roofline import ServingSpec

__all__ = ["ReplicaEngine", "ReplicaTotals", "OnDone", "fast_step_times"]

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
    if type(spec) is not ServingSpec or m.is_moe or m.sliding_window:
        return slow_path
    try:
        w = spec.weights_read_bytes(1.0)
        kvb = spec.kv_bytes_per_token
        bw = spec._bandwidth
        c1 = 2 * m.params_active_b * 1e9
        c_dec = spec._peak_flops * spec.decode_mfu
        c_pre = spec._peak_flops * spec.prefill_mfu
        a2 = 4 * m.layers * m.q_heads * m.head_dim
        slow, ovh = spec._slowdown, spec.iteration_overhead_s
    except AttributeError:  # a roofline that moved on: use its own methods
        return slow_path

    def prefill_flops_s(tokens, cached_tokens=0.0):
        return (c1 * tokens + a2 * (tokens * cached_tokens + tokens * tokens / 2)) / c_pre

    def iteration_s(decode_batch, kv_tokens_read, prefill_tokens=0.0, prefill_flops_s=None):
        if prefill_flops_s is None:
            return spec.iteration_s(decode_batch, kv_tokens_read, prefill_tokens, None)
        mem = (w + kv_tokens_read * kvb) / bw
        comp = c1 * decode_batch / c_dec
        x = comp + prefill_flops_s
        return (mem if mem >= x else x) * slow + ovh

    for b, kv, pt, c in ((0, 0, 1, 0), (1, 1000, 0, 0), (7, 12_345, 300, 17), (256, 300_000, 2048, 4096),
                         (64, 80_000, 0, 0), (200, 250_000, 900, 0), (3, 10, 50_000, 90_000)):
        pf = spec.prefill_flops_s(pt, c)
        if prefill_flops_s(pt, c) != pf or iteration_s(b, kv, pt, pf) != spec.iteration_s(b, kv, pt, pf):
            return slow_path
    return iteration_s, prefill_flops_s


class _Seq:
    __slots__ = ("req", "prompt", "output", "need", "left", "done_tok", "finish", "t_in", "dead")

    def __init__(self, req, prompt: int, output: int, need: float, cached: int, t_in: float):
        self.req = req
        self.prompt = prompt
        self.output = output
        self.need = need  # KV tokens reserved
        self.left = prompt - cached  # prompt tokens still to prefill
        self.done_tok = cached  # prompt tokens already in the KV cache
        self.finish = 0  # decode step at which the last token is produced
        self.t_in = t_in
        self.dead = False  # abandoned while waiting (timeout)


@dataclass
class ReplicaTotals:
    """Accumulated measurements of one replica over a window."""

    window_s: float
    busy_s: float
    iterations: int
    mean_batch_size: float  # sequences per iteration, weighted by iteration time
    max_batch_size: int
    kv_occupancy: float  # reserved KV tokens / capacity, time-averaged over the window
    mean_waiting: float  # requests waiting for admission, time-averaged
    output_tokens: int
    output_tokens_per_s: float
    rejected: int
    completed: int


class ReplicaEngine:
    """A single replica's continuous-batching loop (see the module docstring)."""

    def __init__(self, env, spec: ServingSpec, on_done: OnDone, *, record_iterations: bool = False,
                 on_admit: Callable[[Any, float], None] | None = None):
        self.env = env
        self.spec = spec
        self.on_done = on_done
        self.on_admit = on_admit  # on_admit(req, wait_s) when a request enters the batch
        self.capacity = spec.kv_capacity_tokens
        self.max_batch = spec.max_batch
        self.chunk = spec.chunked_prefill_tokens
        self.hit = spec.prefix_cache_hit_ratio
        self.ctx_limit = spec.model.max_context_tokens
        self.waiting: deque[_Seq] = deque()
        self.prefilling: deque[_Seq] = deque()  # admitted, prompt not finished
        self.heap: list = []  # (finish step, tiebreak, seq) of decoding sequences
        self.n_running = 0
        self.n_waiting = 0  # live requests in `waiting` (abandoned ones are skipped lazily)
        self.kv_reserved = 0.0
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
        # statistics (reset_stats starts a window)
        self.record = [] if record_iterations else None  # (t_end, dt, batch, kv_reserved)
        self.reset_stats(env.now)

    # --- public --------------------------------------------------------------------------

    @property
    def in_system(self) -> int:
        return self.n_waiting + len(self.prefilling) + self.n_running

    def submit(self, req):
        """Queue ``req`` and return its handle (for `abandon`); a request that can never fit is
        refused at once through ``on_done(req, False, reason)`` and None is returned."""
        prompt = max(1, int(req.prompt_tokens))
        output = max(1, int(req.output_tokens))
        spec = self.spec
        reason = None
        if prompt + output > self.ctx_limit:
            reason = (f"{spec.component_id}: prompt {prompt:,} + output {output:,} tokens exceed "
                      f"{spec.model.name}'s {self.ctx_limit:,}-token context")
        need = spec.kv_tokens_of(prompt, output)
        if reason is None and need > self.capacity:
            reason = (f"{spec.component_id}: prompt {prompt:,} + output {output:,} tokens need "
                      f"{need * spec.kv_bytes_per_token / 1e9:.1f} GB of KV cache; a replica holds "
                      f"{self.capacity:,} tokens ({spec.kv_capacity_bytes / 1e9:.1f} GB)")
        if reason is not None:
            self.rejected += 1
            self.on_done(req, False, reason)
            return None
        cached = min(prompt - 1, int(prompt * self.hit))  # the last prompt token always runs
        now = self.env._now  # the clock's attribute: `env.now` is a property call
        seq = _Seq(req, prompt, output, need, cached, now)
        self._advance(now)
        self.waiting.append(seq)
        self.n_waiting += 1
        self.outstanding_tokens += prompt + output
        if not self.busy:
            self.busy = True
            # Zero-delay start: requests arriving at the same instant share the first iteration.
            later(self.env, 0.0, self._start)
        return seq

    def abandon(self, seq) -> bool:
        """Withdraw a request that is still waiting (its client timed out); False if admitted."""
        if seq is None or seq.dead or seq.t_in < 0:
            return False
        self._advance(self.env.now)
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
        )

    # --- the loop ------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if now > self._t_last:
            self._kv_area += self.kv_reserved * (now - self._t_last)
            self._wait_area += self.n_waiting * (now - self._t_last)
            self._t_last = now

    def _start(self, _event=None) -> None:
        env, spec = self.env, self.spec
        now = env._now
        self._advance(now)
        # 1. admission: FIFO, bounded by max_batch and the KV left (head-of-line blocking).
        waiting, prefilling = self.waiting, self.prefilling
        on_admit = self.on_admit
        while waiting and len(prefilling) + self.n_running < self.max_batch:
            s = waiting[0]
            if s.dead:
                waiting.popleft()
                continue
            if self.kv_reserved + s.need > self.capacity:
                break
            waiting.popleft()
            self.n_waiting -= 1
            self.kv_reserved += s.need
            prefilling.append(s)
            if on_admit is not None:
                on_admit(s.req, now - s.t_in)
            s.t_in = -1.0  # admitted: can no longer be abandoned
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
        dt = self._iteration_s(self.n_running, self.kv_ctx, p_tokens, p_flops_s)
        self._it_batch = batch
        self._it_start = now
        if self._heap is not None:  # the engine's SimEnv: the entry `later` would push, directly
            heappush(self._heap, (now + dt, 1, next(self._eid), self._end, None))
        else:
            later(env, dt, self._end)

    def _end(self, _event=None) -> None:
        now = self.env._now
        self._advance(now)
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
        self.kv_ctx += self.n_running
        self.tokens_out += self.n_running
        heap = self.heap
        finished = []
        while heap and heap[0][0] <= step:
            finished.append(heapq.heappop(heap)[2])
        # 4. first tokens of the prompts this iteration finished.
        for s in self._just_prefilled:
            s.req.first_token_at = now
            self.tokens_out += 1
            if s.output == 1:
                finished.append(s)
                s.finish = -1  # never entered the decode set
                continue
            s.finish = step + s.output - 1
            self._tie += 1
            heapq.heappush(heap, (s.finish, self._tie, s))
            self.n_running += 1
            self.kv_ctx += s.prompt + 1
        self._just_prefilled = []
        if self.record is not None:
            self.record.append((now, dt, batch, self.kv_reserved))
        for s in finished:
            if s.finish >= 0:
                self.n_running -= 1
                self.kv_ctx -= s.prompt + s.output
            self.kv_reserved -= s.need
            self.outstanding_tokens -= s.prompt + s.output
            self.completed += 1
            s.req.last_token_at = now
            self.on_done(s.req, True, None)
        if self.n_waiting or self.prefilling or self.n_running:
            self._start()
        else:
            self.busy = False
