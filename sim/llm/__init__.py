"""Token-level model of self-hosted LLM serving (`llm_server`).

* `sim.llm.roofline` — pure maths: memory, KV capacity, step times.
* `sim.llm.twin` — the analytic view: capacity, operating point at a load, `llm_estimate`.
* `sim.llm.batching` — an iteration-level continuous-batching replica in SimPy.
* `sim.llm.station` — the engine's station for kind `llm_server` (replica routing).
* `sim.llm.calibrate` — re-derives the published serving measurements.
* `sim.llm.kv` — KV policies (paged, reserve_max), block arithmetic, the prefix cache.
* `sim.llm.speculative` — speculative decoding: tokens per step, draft cost, break-even batch.
* `sim.llm.disagg` — prefill/decode pools, KV transfer, the twin of both pools.
* `sim.llm.lora` — multi-LoRA: popularity, resident slots, swap-in, batch overhead.
"""

from .roofline import ServingConfigError, ServingSpec
from .twin import llm_estimate, llm_service_moments

__all__ = ["ServingConfigError", "ServingSpec", "llm_estimate", "llm_service_moments"]
