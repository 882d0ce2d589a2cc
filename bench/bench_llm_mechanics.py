"""LLM engine mechanics against their published effects, side by side (issue 12).

Run with ``uv run python bench/bench_llm_mechanics.py``. Each line prints the published figure
(source in the line) and ours, simulated with the replica engine (`sim.llm.station`) and, where
it has one, the analytic twin. The hand-worked checks are in tests/test_llm_mechanics.py.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.catalogue import LLMServer  # noqa: E402
from components.distributions import FixedCount, LogNormalCount  # noqa: E402
from designs.model import RequestClass, Workload  # noqa: E402
from sim.des.request import Request, SimContext  # noqa: E402
from sim.llm.batching import ReplicaEngine  # noqa: E402
from sim.llm.kv import KvConfig  # noqa: E402
from sim.llm.roofline import ServingSpec  # noqa: E402
from sim.llm.speculative import Speculation  # noqa: E402
from sim.llm.station import LLMServerStation  # noqa: E402
from sim.llm.twin import llm_capacity, llm_estimate  # noqa: E402


def wl_of(prompt, output, rps=1.0, **cls):
    return Workload(arrival_rps=rps, classes=[RequestClass(name="c", prompt_tokens=prompt, output_tokens=output, **cls)])


def station(comp, wl, rate, n, seed=1):
    """(llm stats, mean TTFT ms, TPOT p95 ms) of ``n`` Poisson requests."""
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(seed), design=None, workload=wl, seed=seed))
    rng = random.Random(seed + 1)
    c = wl.classes[0]
    fin, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(rate)
        req = Request(i, 0, t, c.prompt_tokens.sample_int(rng), c.output_tokens.sample_int(rng))
        env.timeout(t).callbacks.append(lambda _e, r=req: st.arrive(r, lambda q, ok: fin.append(q)))
    env.run()
    ttft = sum(q.first_token_at - q.t0 for q in fin) / len(fin) * 1e3
    tp = sorted((q.last_token_at - q.first_token_at) / (q.output_tokens - 1) for q in fin if q.output_tokens > 1)
    return st.stats(env.now).llm, ttft, tp[int(0.95 * len(tp))] * 1e3


def wave_tpot(comp, n, prompt=500, output=300) -> float:
    spec = ServingSpec.from_component(comp)
    env = simpy.Environment()
    done = []
    eng = ReplicaEngine(env, spec, lambda r, ok, why: done.append(r), kv=KvConfig.from_component(comp),
                        speculation=Speculation.from_component(comp, spec))

    class R:
        def __init__(self):
            self.prompt_tokens, self.output_tokens, self.first_token_at, self.last_token_at = prompt, output, None, None

    for _ in range(n):
        eng.submit(R())
    env.run()
    return 1e3 * sum((r.last_token_at - r.first_token_at) / (output - 1) for r in done) / n


def main() -> None:
    print("KV policy (Llama-3.1-8B, 1 × H100 at gpu_memory_utilization 0.35, prompt 1000, output lognormal 500/p95 1500):")
    wl = wl_of(FixedCount(value=1000), LogNormalCount(mean=500, p95=1500), max_output_tokens=4000)
    for pol in ("reserve_max", "paged"):
        comp = LLMServer(id="llm", model="llama-3.1-8b", gpu_memory_utilization=0.35, kv_policy=pol)
        rps, tok = llm_capacity(comp, wl)
        llm, _, _ = station(comp, wl, 1.3 * rps, 2500)
        print(f"  {pol:<12} twin {tok:7,.0f} tok/s, simulated {llm.output_tokens_per_s:7,.0f} tok/s at 1.3 × capacity, "
              f"batch {llm.mean_batch_size:5.1f}, preemptions {llm.preemptions_per_s:.2f}/s")

    print("Prefix cache, 4000-token system prompt + 200-token question, 8B on 1 × H100, 4 req/s "
          "(NVIDIA TensorRT-LLM KV reuse: 'up to 5x' TTFT; Anthropic prompt caching: 'up to 85%' latency):")
    base = dict(prompt=FixedCount(value=4200), output=FixedCount(value=100), rps=4)
    comp = LLMServer(id="llm", model="llama-3.1-8b")
    _, cold, _ = station(comp, wl_of(**base), 4, 600)
    llm, warm, _ = station(comp, wl_of(**base, shared_prefix_tokens=4000), 4, 600)
    print(f"  TTFT mean {cold:.0f} ms → {warm:.1f} ms ({cold / warm:.0f}×, −{1 - warm / cold:.0%}), hit ratio "
          f"{llm.prefix_hit_ratio:.0%}; twin {llm_estimate(comp, wl_of(**base), 4).ttft_ms_estimate:.0f} → "
          f"{llm_estimate(comp, wl_of(**base, shared_prefix_tokens=4000), 4).ttft_ms_estimate:.1f} ms")
    print("Routing, 64 tenants × 4000-token prefixes, 4 replicas (KV room for ~40 % of them each), 40 req/s:")
    wl = wl_of(FixedCount(value=4200), FixedCount(value=100), rps=40, shared_prefix_tokens=4000, distinct_prefixes=64)
    for routing in ("round_robin", "least_outstanding_tokens", "prefix_affinity"):
        comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=4, gpu_memory_utilization=0.5, routing=routing)
        llm, ttft, _ = station(comp, wl, 40, 2500)
        print(f"  {routing:<25} hit {llm.prefix_hit_ratio:4.0%}, TTFT mean {ttft:8,.0f} ms")

    print("Speculative decoding, one wave of n requests, 500 in / 300 out:")
    for label, model, g, sd, pub in (
            ("EAGLE, 70B on 4 × H100", "llama-3.1-70b", 4, {"method": "eagle"}, "EAGLE (ICML 2024): 2.7–3.5× at batch 1"),
            ("MTP, 70B on 4 × H100", "llama-3.1-70b", 4, {"method": "mtp"}, "DeepSeek-V3 §5.4.3: 1.8× TPS"),
            ("draft 8B for 70B", "llama-3.1-70b", 4, {"method": "draft_model", "draft_model": "llama-3.1-8b"},
             "Leviathan et al. 2023: 2–3× with T5 drafts")):
        plain = LLMServer(id="llm", model=model, gpus_per_replica=g)
        spec = LLMServer.model_validate({**plain.model_dump(mode="json"), "speculative": sd})
        g1 = wave_tpot(plain, 1) / wave_tpot(spec, 1)
        g256 = wave_tpot(plain, 256) / wave_tpot(spec, 256)
        print(f"  {label:<24} TPOT gain batch 1 {g1:.2f}×, batch 256 {g256:.2f}×   (published: {pub}; "
              "SpecDecode-Bench, arXiv 2601.11580: gains shrink as the batch grows)")

    print("Prefill/decode disaggregation at 8 × H100, 8B, prompts lognormal 3000/p95 6000, 30 req/s "
          "(DistServe, OSDI 2024: removing prefill-decode interference cuts TPOT; the pool split sets TTFT):")
    wl = wl_of(LogNormalCount(mean=3000, p95=6000), LogNormalCount(mean=200, p95=500), rps=30)
    for label, kw in (("aggregated 8", {"replicas": 8}),
                      ("5 prefill + 3 decode", {"prefill_pool": {"replicas": 5}, "decode_pool": {"replicas": 3}}),
                      ("4 prefill + 4 decode", {"prefill_pool": {"replicas": 4}, "decode_pool": {"replicas": 4}})):
        comp = LLMServer(id="llm", model="llama-3.1-8b", **kw)
        e = llm_estimate(comp, wl, 30)
        _, ttft, tp95 = station(comp, wl, 30, 1500)
        print(f"  {label:<22} TTFT mean {ttft:5.0f} ms (twin {e.ttft_ms_estimate:5.0f}), TPOT p95 {tp95:5.1f} ms "
              f"(twin {e.tpot_ms_p95_estimate:5.1f})")

    print("Multi-LoRA, 8B on 1 × H100, 16 req/s (Punica: +2 ms per token):")
    wl = wl_of(LogNormalCount(mean=800, p95=2000), LogNormalCount(mean=200, p95=500), rps=16)
    for kw in ({}, {"adapters": 200, "max_resident_adapters": 64}, {"adapters": 100, "max_resident_adapters": 8}):
        comp = LLMServer(id="llm", model="llama-3.1-8b", **kw)
        e = llm_estimate(comp, wl, 16)
        print(f"  {str(kw) if kw else 'no adapters':<48} capacity {llm_capacity(comp, wl)[0]:5.1f} req/s per replica, "
              f"twin TTFT {e.ttft_ms_estimate:6.1f} ms, TPOT {e.tpot_ms_estimate:5.2f} ms")


if __name__ == "__main__":
    main()
