"""What happens over time in a timeline run: scheduled faults, random failures, the autoscaler.

* **Scheduled faults** (``design.faults``): at ``at_s`` the fault starts, at ``at_s +
  duration_s`` it ends. ``replica_down`` fails the lowest-numbered serving replicas (their
  requests fail at that instant and are retried or lost per the callers' retry policies) and
  repairs them at the end; ``zone_down`` does the same to every replica of one zone;
  ``slow`` multiplies service times drawn meanwhile; ``provider_outage`` fails every call.
* **Random failures** (``failures: {mtbf_hours, mttr_minutes}``): with n replicas up, the next
  failure comes after Exp(n / MTBF) (each replica independently exponential; redrawn whenever n
  changes, exact by memorylessness) and hits a replica chosen at random; it is repaired after
  Exp(MTTR). For an external service the whole service is out. Streams ``failures:<id>``.
* **Autoscaler** (``autoscale:``): every ``interval_s`` it reads the signal and recommends
  desired = ceil(n × signal / target) within [min, max], n the replicas up (serving or
  starting), unchanged while signal/target is within 1 ± tolerance — the Kubernetes HPA rule;
  when scaling up while replicas are still starting, those count at 0 % of the signal (the
  HPA's not-yet-ready rule: signal × ready / (ready + starting)), so a cold start is not asked
  for again at every tick. Scale-up asks for replicas ``scale_up_delay_s`` later;
  each serves after its cold start (provisioning + image pull + weights ÷ bandwidth +
  warm-up). Scale-down goes to the highest recommendation of the last ``scale_down_delay_s``
  (the HPA's stabilisation window, which starts with the initial count), starting replicas
  first, then draining the least busy. An `llm_server`'s utilisation is the twin's: output
  tokens/s over the serving replicas' capacity at the workload's mean lengths.

Every event is on the run's own clock and streams, so the same seed gives the same timeline.
`Controller.install(stations)` schedules it all; what happened is in ``faults`` and
``cold_starts`` (`sim.results.FaultWindow`, `ColdStartEvent`).
"""

from __future__ import annotations

import math

from sim.des.events import later
from sim.results import ColdStartEvent, FaultWindow

__all__ = ["Controller", "cold_start_s"]


def cold_start_s(comp) -> float:
    """Seconds until a new replica of `comp` serves (its autoscale.cold_start, weights sourced
    from the model catalogue for an `llm_server`)."""
    cs = comp.autoscale.cold_start
    weights_gb = 0.0
    if comp.kind == "llm_server" and cs.weights_gb is None:
        from components.hardware import BYTES_PER_PARAM, get_model

        prec = comp.precision if comp.precision in BYTES_PER_PARAM else "bf16"
        weights_gb = get_model(comp.model).weight_bytes(BYTES_PER_PARAM[prec]) / 1e9
    return cs.seconds(weights_gb)


class Controller:
    """Faults, failures and autoscalers of one timeline run."""

    def __init__(self, design, ctx, *, horizon_s: float, stop_s: float):
        self.design = design
        self.ctx = ctx
        self.env = ctx.env
        self.horizon_s = horizon_s
        self.stop_s = stop_s  # nothing is scheduled after this (a run with no arrivals still ends)
        self.faults: list[FaultWindow] = []
        self.cold_starts: list[ColdStartEvent] = []
        self.peak: dict[str, int] = {}

    def _at(self, t: float, fn, arg=None) -> None:
        if t <= self.stop_s:
            later(self.env, max(0.0, t - self.env.now), fn, arg)

    def install(self, stations: dict) -> None:
        self.stations = stations
        for cid, st in stations.items():
            self.peak[cid] = _provisioned(st)
        for f in self.design.faults:
            if f.at_s < self.horizon_s:
                self._at(f.at_s, self._start_fault, f)
        for c in self.design.components:
            st = stations.get(c.id)
            if st is None:
                continue
            if c.failures is not None:
                _Failures(self, c, st).start()
            if getattr(c, "autoscale", None) is not None:
                _Autoscaler(self, c, st).start()

    # --- scheduled faults ----------------------------------------------------------------

    def _start_fault(self, ev) -> None:
        f = ev._value
        st = self.stations[f.component]
        now = self.env.now
        rec = FaultWindow(component=f.component, what=f.what, start_s=now, end_s=now + f.duration_s, source="scheduled")
        self.faults.append(rec)
        if f.what in ("replica_down", "zone_down"):
            ups = st.up_replicas(f.zone if f.what == "zone_down" else None)
            hit = ups if f.what == "zone_down" else sorted(ups, key=lambda r: r.idx)[: f.replicas]
            rec.lost_requests = sum(st.fail(r) for r in hit)
            self._at(now + f.duration_s, lambda _e: [st.restore(r) for r in hit])
        elif f.what == "slow":
            st.set_factor(f.factor)
            self._at(now + f.duration_s, lambda _e: st.set_factor(1.0))
        else:  # provider_outage
            st.set_outage(True)
            self._at(now + f.duration_s, lambda _e: st.set_outage(False))


def _provisioned(st) -> int:
    return st.provisioned() if hasattr(st, "provisioned") else 1


class _Failures:
    """Random failures of one component's replicas (or of the whole external service)."""

    def __init__(self, ctl: Controller, comp, st):
        self.ctl, self.comp, self.st = ctl, comp, st
        self.rng = ctl.ctx.stream("failures:" + comp.id)
        self.mtbf_s = comp.failures.mtbf_hours * 3600.0
        self.mttr_s = comp.failures.mttr_minutes * 60.0
        self.gen = 0
        self.pooled = hasattr(st, "up_replicas")

    def start(self) -> None:
        self._next()

    def _next(self) -> None:
        self.gen += 1
        n = len(self.st.up_replicas()) if self.pooled else (0 if self.st.out else 1)
        if n:
            self.ctl._at(self.ctl.env.now + self.rng.expovariate(n / self.mtbf_s), self._fail, self.gen)

    def _fail(self, ev) -> None:
        if ev._value != self.gen:
            return  # the number up changed since: a fresh draw superseded this one
        now = self.ctl.env.now
        down = self.rng.expovariate(1.0 / self.mttr_s)
        rec = FaultWindow(component=self.comp.id, what="replica_down" if self.pooled else "provider_outage",
                          start_s=now, end_s=now + down, source="random")
        self.ctl.faults.append(rec)
        if self.pooled:
            ups = self.st.up_replicas()
            r = ups[int(self.rng.random() * len(ups))]
            rec.lost_requests = self.st.fail(r)
            self.ctl._at(now + down, self._repair, r)
        else:
            self.st.set_outage(True)
            self.ctl._at(now + down, self._repair, None)
        self._next()

    def _repair(self, ev) -> None:
        r = ev._value
        if r is None:
            self.st.set_outage(False)
        else:
            self.st.restore(r)
        self._next()


class _Autoscaler:
    """The HPA rule on one component (see the module docstring)."""

    def __init__(self, ctl: Controller, comp, st):
        self.ctl, self.comp, self.st = ctl, comp, st
        self.a = comp.autoscale
        self.cold_s = cold_start_s(comp)
        self.mark = (0.0, 0.0)
        self.recs: list[tuple[float, int]] = []
        self.pending = 0  # replicas decided on but not yet asked for (scale-up delay)

    def start(self) -> None:
        self.mark = self.st.signal(self.a.signal, (0.0, 0.0))[1]
        # The current count is the first recommendation: no scale-down before the stabilisation
        # window has seen lower ones throughout (as the HPA, which starts from its current size).
        self.recs.append((self.ctl.env.now, self._up()))
        self.ctl._at(self.ctl.env.now + self.a.interval_s, self._tick)

    def _up(self) -> int:
        return len(self.st.up_replicas())

    def _tick(self, _ev) -> None:
        a, st, now = self.a, self.st, self.ctl.env.now
        value, self.mark = st.signal(a.signal, self.mark)
        n = self._up() + self.pending
        ratio = value / a.target
        starting = st.starting() if hasattr(st, "starting") else 0
        if starting and ratio > 1.0 + a.tolerance:
            # The HPA's rule for pods not yet ready when scaling up: they count at 0 % of the metric
            # (kubernetes.io, "Horizontal Pod Autoscaling", algorithm details) — without it every
            # tick of a cold start asks again for the same missing capacity.
            ready = max(1, self._up() - starting)
            ratio *= ready / (ready + starting)
        if abs(ratio - 1.0) <= a.tolerance:
            desired = n  # within the tolerance band: no change (the HPA's rule)
        else:
            desired = math.ceil(max(n, 1) * ratio - 1e-9) if value > 0 else a.min_replicas
        desired = min(a.max_replicas, max(a.min_replicas, desired))
        self.recs.append((now, desired))
        self.recs = [(t, d) for t, d in self.recs if t >= now - a.scale_down_delay_s]
        if desired > n:
            k = desired - n
            self.pending += k
            self.ctl._at(now + a.scale_up_delay_s, self._add, k)
        elif desired < n:
            keep = max(d for _, d in self.recs)
            for _ in range(max(0, self._up() - max(keep, a.min_replicas))):
                if not st.remove_replica():
                    break
        self.ctl.peak[self.comp.id] = max(self.ctl.peak.get(self.comp.id, 0), _provisioned(st))
        self.ctl._at(now + a.interval_s, self._tick)

    def _add(self, ev) -> None:
        k = ev._value
        self.pending -= k
        now = self.ctl.env.now
        room = self.a.max_replicas - self._up()
        for _ in range(max(0, min(k, room))):
            self.st.add_replica(self.cold_s)
            self.ctl.cold_starts.append(ColdStartEvent(component=self.comp.id, requested_s=now, ready_s=now + self.cold_s))
        self.ctl.peak[self.comp.id] = max(self.ctl.peak.get(self.comp.id, 0), _provisioned(self.st))
