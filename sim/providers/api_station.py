"""The simulation station of an external LLM API (``llm_api``) and an LLM judge (``judge``).

One call takes a TTFT sample plus (output tokens − 1) / an output-speed sample: the catalogue
quotes ``output_tokens_per_s`` as the speed *after* the first token, so the time per output
token of a streamed answer is exactly 1 / speed. An ``llm_api`` call carries the request's own
prompt and output tokens and stamps ``req.first_token_at`` / ``req.last_token_at`` so the engine
can report TTFT and TPOT; a ``judge`` draws its own prompt/output tokens and stamps nothing
(its verdict is not the streamed answer).

Limits, as providers apply them (see ``sim.providers.ratelimit``):

* ``rpm_limit`` and ``tpm_limit``: two token buckets; a call is admitted when both allow it,
  and takes 1 request and prompt + output tokens at admission. A call above the whole
  per-minute token limit is refused at once (providers reject it; counted as a drop).
* ``on_limit: wait``: calls queue FIFO; the head reserves the earliest time both buckets allow
  and starts then (a client-side limiter).
* ``on_limit: retry``: a refused call sleeps backoff_ms × 2^k × U(0.5, 1.5) (k = 0, 1, …; the
  jitter from this station's own random stream) and tries again at the back of the queue;
  after ``max_retries`` refused retries it is dropped (``retry_drops``).
* ``max_concurrency``: calls in flight at most (servers); the others wait FIFO.
* ``timeout_ms``: a call that cannot finish within it is dropped at its deadline.

Reported utilisation is the larger of the concurrency in use and the share of the rate limit
used (admitted calls or tokens per second over the limit), so a throttled API shows ρ ≈ 1.

Usage::

    from sim.des.stations import STATIONS
    station = STATIONS["llm_api"](comp, ctx)   # → ApiStation(comp, ctx)
    station.arrive(req, done)                  # done(req, ok) when the call ends
"""

from __future__ import annotations

from collections import deque


from .ratelimit import DEFAULT_BURST_S, buckets_for
from sim.des.request import Done, Request, SimContext
from sim.des.stations import StationBase, make_sampler

__all__ = ["ApiStation", "JITTER_LOW", "JITTER_HIGH"]

# Multiplicative jitter on each backoff: mean 1, so the mean delay is exactly backoff × 2^k.
# Jitter spreads retries so refused clients do not return in lockstep (the AWS Architecture
# Blog's "Exponential Backoff and Jitter" shows synchronised retries waste most attempts).
JITTER_LOW, JITTER_HIGH = 0.5, 1.5

# Item layout in the queue (a list, mutable): request, done, arrival time, still waiting,
# tokens counted by the token limit, output tokens, refused attempts so far.
_REQ, _DONE, _T, _ALIVE, _TOKENS, _OUT, _K = range(7)


class ApiStation(StationBase):
    """``llm_api`` / ``judge``: TTFT + tokens at a provider's speed, under rate limits."""

    kind = "api"

    def __init__(self, comp, ctx: SimContext, burst_s: float = DEFAULT_BURST_S):
        super().__init__(comp, ctx)
        self.judge = comp.kind == "judge"
        self.ttft = make_sampler(comp.ttft, self.rng)
        # Separate streams: changing a limit must not shift the service-time draws (CRN).
        self.tps_rng = ctx.stream("tps:" + comp.id)
        self.tok_rng = ctx.stream("tokens:" + comp.id)
        self.backoff_rng = ctx.stream("backoff:" + comp.id)
        self.req_bucket, self.tok_bucket = buckets_for(comp, burst_s)
        self.servers = comp.max_concurrency  # None: unbounded (utilisation from the limits)
        self.wait_mode = comp.on_limit == "wait"
        self.max_retries = comp.max_retries
        self.backoff_s = comp.backoff_ms / 1000.0
        self.queue: deque = deque()
        self.gate_busy = False  # wait mode: the head holds a reservation and sleeps until it
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.admitted = 0
        self.admitted_tokens = 0
        self.limited = 0  # calls that found the limit exhausted (waited or were refused)
        self.retries = 0
        self.retry_drops = 0
        self.oversize_drops = 0
        self.timeout_drops = 0

    # --- arrival ------------------------------------------------------------------------

    def arrive(self, req: Request, done: Done) -> None:
        now = self.env._now
        self.arrivals += 1
        self.tick(now)
        if self.judge:
            prompt = self.comp.prompt_tokens.sample_int(self.tok_rng)
            out = self.comp.output_tokens.sample_int(self.tok_rng)
        else:
            prompt, out = req.prompt_tokens, req.output_tokens
        tokens = prompt + out
        if self.tok_bucket is not None and tokens > self.tok_bucket.burst:
            self.oversize_drops += 1  # larger than the whole per-minute limit: refused at once
            self.drop(req, done)
            return
        item = [req, done, now, True, tokens, out, 0]
        self.qlen += 1
        self.queue.append(item)
        if self.timeout_s is not None:
            self.call_later(self.timeout_s, self._abandon, item)
        self._pump(now)

    def _pairs(self, item):
        pairs = []
        if self.req_bucket is not None:
            pairs.append((self.req_bucket, 1.0))
        if self.tok_bucket is not None:
            pairs.append((self.tok_bucket, float(item[_TOKENS])))
        return pairs

    # --- dispatch -----------------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Start waiting calls while a server is free and the limits allow (FIFO)."""
        q = self.queue
        while q and not self.gate_busy and (self.servers is None or self.busy < self.servers):
            item = q[0]
            if not item[_ALIVE]:
                q.popleft()
                continue
            pairs = self._pairs(item)
            if self.wait_mode:
                start = max([now] + [b.earliest(now, a) for b, a in pairs])
                if self.timeout_s is not None and start > item[_T] + self.timeout_s:
                    # The client gives up before the limit lets it through: it is dropped at its
                    # deadline by _abandon, and takes no tokens.
                    q.popleft()
                    continue
                for b, a in pairs:
                    b.take_at(start, a)
                q.popleft()
                if start > now:
                    self.limited += 1
                    self.gate_busy = True
                    self.call_later(start - now, self._gate_open, item)
                    return
                self._begin(item, now)
            else:
                q.popleft()
                if all(b.can_take(now, a) for b, a in pairs):
                    for b, a in pairs:
                        b.take_at(now, a)
                    self._begin(item, now)
                else:
                    self._refused(item, now)

    def _gate_open(self, item) -> None:
        now = self.env._now
        self.gate_busy = False
        if item[_ALIVE]:
            self._begin(item, now)
        self._pump(now)

    def _refused(self, item, now: float) -> None:
        """Retry mode: the provider said 429. Back off, or give up after max_retries retries."""
        if item[_K] == 0:
            self.limited += 1
        if item[_K] >= self.max_retries:
            item[_ALIVE] = False
            self.tick(now)
            self.qlen -= 1
            self.retry_drops += 1
            self.drop(item[_REQ], item[_DONE])
            return
        delay = self.backoff_s * (2 ** item[_K]) * self.backoff_rng.uniform(JITTER_LOW, JITTER_HIGH)
        item[_K] += 1
        self.retries += 1
        self.call_later(delay, self._retry, item)  # still counted as waiting (qlen)

    def _retry(self, item) -> None:
        if not item[_ALIVE]:
            return  # timed out while backing off
        self.queue.append(item)
        self._pump(self.env._now)

    # --- service ------------------------------------------------------------------------

    def _begin(self, item, now: float) -> None:
        req = item[_REQ]
        item[_ALIVE] = False
        self.tick(now)
        self.qlen -= 1
        self.busy += 1
        self.admitted += 1
        self.admitted_tokens += item[_TOKENS]
        wait = now - item[_T]
        self.record_wait(req, wait)
        out = item[_OUT]
        ttft = self.ttft()
        tps = max(1e-6, self.comp.output_tokens_per_s.sample(self.tps_rng))
        total = ttft + max(0, out - 1) / tps
        if self.timeout_s is not None and wait + total > self.timeout_s:
            self.call_later(max(0.0, self.timeout_s - wait), self._cut, (req, item[_DONE]))
            return
        if not self.judge:
            req.first_token_at = now + ttft
            req.last_token_at = now + total
            req.answer_output_tokens = out
        self.call_later(total, self._finish, (req, item[_DONE]))

    def _finish(self, arg) -> None:
        req, done = arg
        now = self.env._now
        self.tick(now)
        self.busy -= 1
        self.completions += 1
        self._pump(now)
        done(req, True)

    def _cut(self, arg) -> None:
        # The call would outlive the timeout: the client hangs up at its deadline.
        req, done = arg
        now = self.env._now
        self.tick(now)
        self.busy -= 1
        self.timeout_drops += 1
        self._pump(now)
        self.drop(req, done)

    def _abandon(self, item) -> None:
        if not item[_ALIVE]:
            return  # started (or already dropped)
        item[_ALIVE] = False
        self.tick(self.env._now)
        self.qlen -= 1
        self.timeout_drops += 1
        self.drop(item[_REQ], item[_DONE])

    # --- statistics ---------------------------------------------------------------------

    def reset_stats(self, now: float) -> None:
        super().reset_stats(now)
        self._reset_counters()

    def limit_utilization(self, now: float) -> float:
        """Share of the binding rate limit used since the last reset (0 without limits)."""
        span = max(now - self._t_reset, 1e-12)
        u = 0.0
        if self.req_bucket is not None:
            u = max(u, self.admitted / span / self.req_bucket.rate_per_s)
        if self.tok_bucket is not None:
            u = max(u, self.admitted_tokens / span / self.tok_bucket.rate_per_s)
        return u

    def stats(self, now: float):
        st = super().stats(now)
        # The bucket's initial burst can push the measured share a little above 1 in a short
        # window; utilisation is a share, so cap it.
        util = max(st.utilization, min(1.0, self.limit_utilization(now)))
        return st.model_copy(update={"utilization": util})
