"""External model providers (`llm_api`, `judge`): their limits and their simulated stations.

* `sim.providers.ratelimit` — request and token buckets as providers apply them; the limits of a
  component (`api_limits`) and mean tokens per call, shared by the twin, pipelines and lint.
* `sim.providers.api_station` — the engine's station for provider APIs (TTFT + tokens at the
  provider's speed, waits or retries with backoff on a limit).
"""
