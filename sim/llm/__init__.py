"""Token-level model of self-hosted LLM serving (`llm_server`).

* `sim.llm.roofline` — pure maths: memory, KV capacity, step times.
* `sim.llm.twin` — the analytic view: capacity, operating point at a load, `llm_estimate`.
* `sim.llm.batching` — an iteration-level continuous-batching replica in SimPy.
* `sim.llm.station` — the engine's station for kind `llm_server` (replica routing).
* `sim.llm.calibrate` — re-derives the published serving measurements.
"""

from .roofline import ServingConfigError, ServingSpec
from .twin import llm_estimate, llm_service_moments

__all__ = ["ServingConfigError", "ServingSpec", "llm_estimate", "llm_service_moments"]
