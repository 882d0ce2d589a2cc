"""`Gate`: outages, slowness and error rates in front of an external call (API, tool, storage).

The gate wraps the station the component would have anyway and forwards every call to it,
except:

* during a ``provider_outage`` (or a random failure of the whole service) a call fails after
  the component's ``error_latency_ms`` (default 100 ms, assumption) — connection refused / 5xx;
* with ``error_rate`` q (``llm_api`` / ``judge``), each call independently fails with
  probability q after ``error_latency_ms`` (the gate's own seeded stream ``errors:<id>``);
  failed calls take no rate-limit tokens and cost nothing (providers do not bill errors);
* during a ``slow`` fault the call's delay is multiplied by the factor (for an API: TTFT × f
  and output speed ÷ f, so the whole call takes f times as long; for a tool with
  ``max_concurrency``, a FIFO station, each service time drawn in the window × f).

The caller's retry policy (`sim.ops.retry`) decides what a failure leads to. Usage::

    g = Gate(inner_station, comp, ctx)
    g.set_outage(True); g.set_factor(3.0)
"""

from __future__ import annotations

from sim.des.events import later

__all__ = ["Gate"]


class _Scaled:
    """A distribution whose samples are divided by the gate's factor (an API's output speed)."""

    def __init__(self, dist, gate):
        self.dist, self.gate = dist, gate

    def sample(self, rng):
        return self.dist.sample(rng) / self.gate.factor

    def __getattr__(self, name):
        return getattr(self.dist, name)


class _SlowComp:
    """The component as the API station reads it, with a slowed-down output speed."""

    def __init__(self, comp, gate):
        object.__setattr__(self, "_comp", comp)
        object.__setattr__(self, "output_tokens_per_s", _Scaled(comp.output_tokens_per_s, gate))

    def __getattr__(self, name):
        return getattr(self._comp, name)


class Gate:
    """Forwards calls to `inner` unless the service is out, erring or slow."""

    def __init__(self, inner, comp, ctx):
        self.inner = inner
        self.comp = comp
        self.env = ctx.env
        self.id = comp.id
        self.error_rate = float(getattr(comp, "error_rate", 0.0) or 0.0)
        self.error_s = float(getattr(comp, "error_latency_ms", 100.0)) / 1000.0
        self.err_rng = ctx.stream("errors:" + comp.id)
        self.out = False
        self.factor = 1.0
        self.errors = 0  # calls failed by the error rate
        self.outaged = 0  # calls failed by an outage
        self._slowed = False
        self._rate0 = None  # a slowed FIFO station's own exponential rate
        self._expo = False  # routing must not take this station for one that never fails

    def __getattr__(self, name):  # stats, reset_stats, servers, busy … are the inner station's
        return getattr(self.inner, name)

    def arrive(self, req, done):
        if self.out:
            self.outaged += 1
        elif self.error_rate and self.err_rng.random() < self.error_rate:
            self.errors += 1
        else:
            self.inner.arrive(req, done)
            return
        self.inner.arrivals += 1
        later(self.env, self.error_s, self._fail, (req, done))

    def _fail(self, ev):
        req, done = ev._value
        self.inner.drop(req, done)

    # --- operations ----------------------------------------------------------------------

    def set_outage(self, out: bool) -> None:
        self.out = out

    def set_factor(self, factor: float) -> None:
        if not self._slowed:
            self._slow_inner()
        self.factor = factor
        if self._rate0:  # the FIFO station's inline exponential draws read its rate
            self.inner._rate = self._rate0 / factor

    def _slow_inner(self) -> None:
        inner = self.inner
        self._slowed = True
        if hasattr(inner, "ttft"):  # ApiStation: TTFT × f, speed ÷ f
            base = inner.ttft
            inner.ttft = lambda: base() * self.factor
            inner.comp = _SlowComp(inner.comp, self)
        elif hasattr(inner, "sample") and not getattr(inner, "_rate", None) and not hasattr(inner, "queue"):
            base = inner.sample  # DelayStation
            inner.sample = lambda: base() * self.factor
        elif hasattr(inner, "queue") and hasattr(inner, "_svc"):
            # A FIFO station (a tool with max_concurrency): every service time it draws from now
            # on × f — its sampler, its one-call exponential draw and the rate its other paths
            # use inline (same random numbers, scaled). Services already running keep theirs.
            base, svc = inner.sample, inner._svc
            inner.sample = lambda: base() * self.factor
            if svc is not None:
                inner._svc = lambda: svc() * self.factor
            self._rate0 = inner._rate
        else:
            raise ValueError(f"'{self.id}': slow is not modelled for this station")

    def replica_seconds(self, now: float) -> float:
        return 0.0
