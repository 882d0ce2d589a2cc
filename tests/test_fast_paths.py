"""The engine's fast paths give exactly what the plain code gives: same numbers, same order."""

import random

import pytest
import simpy

from components.catalogue import LLMServer
from components.distributions import EmpiricalCount, ExponentialCount, LogNormalCount, UniformCount
from sim.des.station_base import expo_draw
from sim.des.stats import LogHistogram, RawSample
from sim.des.workload import count_draw
from sim.llm import batching
from sim.llm.batching import ReplicaEngine, fast_step_times
from sim.llm.roofline import ServingSpec


def test_count_and_exponential_draws_are_the_distributions_own():
    for d in (LogNormalCount(mean=250, p95=600), ExponentialCount(mean=33), UniformCount(low=3, high=90),
              EmpiricalCount(values=[1, 5, 9.6])):
        a, b = random.Random(4), random.Random(4)
        fast = count_draw(d, b)
        assert [d.sample_int(a) for _ in range(3000)] == [fast() for _ in range(3000)], d.dist
        assert a.random() == b.random()  # nothing drawn ahead
    a, b = random.Random(3), random.Random(3)
    gap = expo_draw(b, 7.5)
    assert [a.expovariate(7.5) for _ in range(5000)] == [gap() for _ in range(5000)]
    assert a.random() == b.random()


def test_raw_sample_answers_as_the_histogram():
    rng = random.Random(1)
    h, r = LogHistogram(), RawSample()
    for _ in range(5000):
        x = rng.lognormvariate(0, 1) if rng.random() > 0.1 else 0.0
        h.add(x)
        r.add(x)
    assert r.quantiles() == h.quantiles() and r.n == h.n
    cdf = tuple((i + 0.5) / 256 for i in range(256))  # the summary's CDF points take the binned path
    assert r.quantiles(cdf) == h.quantiles(cdf)
    b = r.histogram()
    assert (b.bins, b.n, b.zeros, b.total, b.max) == (h.bins, h.n, h.zeros, h.total, h.max)
    r.add(1e3), h.add(1e3)  # a value added after a summary: the kept histogram is rebuilt
    assert r.quantiles(cdf) == h.quantiles(cdf) and r.histogram().max == 1e3
    assert r.mean() == pytest.approx(h.mean(), rel=1e-12)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.1-70b"])
def test_folded_step_times_are_the_rooflines_floats(model):
    comp = LLMServer(id="llm", model=model, gpus_per_replica=1 if model.endswith("8b") else 4)
    spec = ServingSpec.from_component(comp)
    it, pf = fast_step_times(spec)
    assert it != spec.iteration_s  # the folded path is in use for a dense model
    rng = random.Random(2)
    for _ in range(2000):
        b, kv = rng.randrange(0, 257), rng.randrange(0, 400_000)
        t, c = rng.randrange(0, 9000), rng.randrange(0, 9000)
        p = spec.prefill_flops_s(t, c)
        assert pf(t, c) == p
        assert it(b, kv, t, p) == spec.iteration_s(b, kv, t, p)


def _serve(spec, fast: bool):
    env = simpy.Environment()
    out = []
    eng = ReplicaEngine(env, spec, lambda r, ok, why: out.append((r.t0, r.first_token_at, r.last_token_at)))
    if not fast:
        eng._iteration_s, eng._prefill_flops_s = spec.iteration_s, spec.prefill_flops_s
    rng = random.Random(9)
    t = 0.0

    class Req:
        first_token_at = last_token_at = None

    for _ in range(400):
        t += rng.expovariate(25)
        r = Req()
        r.t0, r.prompt_tokens, r.output_tokens = t, rng.randrange(1, 3000), rng.randrange(1, 600)
        env.timeout(t).callbacks.append(lambda _e, r=r: eng.submit(r))
    env.run()
    return out, eng.stats(env.now)


def test_the_replica_on_its_fast_path_is_the_same_replica():
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", chunked_prefill_tokens=2048))
    (a, sa), (b, sb) = _serve(spec, True), _serve(spec, False)
    assert a == b and len(a) == 400
    assert sa == sb
    assert batching.fast_step_times(spec)[0] is not spec.iteration_s


def test_plain_stations_that_forward_give_the_same_run(monkeypatch):
    from designs.model import Design
    from sim.des.engine import simulate
    from sim.des.fifo import FifoStation

    comps = [{"id": f"s{i}", "kind": "service", "concurrency": c,
              "service_time": {"dist": "exponential", "mean_ms": ms}} for i, (c, ms) in enumerate([(4, 33), (2, 16), (8, 50)])]
    d = Design.model_validate({"name": "tandem", "workload": {"arrival_rps": 90}, "components": comps, "entry": "s0",
                               "flow": [{"from": "s0", "to": "s1"}, {"from": "s1", "to": "s2"}]})
    # On the event loop (a tandem like this one otherwise takes the FIFO recursion, sim.des.chain).
    a = simulate(d, seed=5, replications=3, max_requests=60_000, path="events").to_json()
    monkeypatch.setattr(FifoStation, "forward_to", lambda self, arrive, done=None: False)
    b = simulate(d, seed=5, replications=3, max_requests=60_000, path="events").to_json()
    assert a["engine_path"] == b["engine_path"] == "events"
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
