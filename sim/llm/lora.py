"""Multi-LoRA serving on an `llm_server`: adapter popularity, residency, swap-in, batch overhead.

With ``adapters: N`` every request draws one adapter by Zipf popularity (share of adapter i ∝
1 / i^s, ``adapter_zipf_s``). A replica keeps at most ``max_resident_adapters`` C in GPU memory
(vLLM ``max_loras``: their slots are reserved up front, so they come out of the KV cache);
a request whose adapter is not resident is admitted once a slot is free of running requests
(least recently used one evicted) and its iteration first copies the adapter in. Costs:

* batch overhead: the per-adapter gather kernels (Punica's SGMV) add about 2 ms to every step
  of a batch that serves adapters — Punica (Chen et al., MLSys 2024): "only adding 2ms latency
  per token" — taken as a fixed per-iteration overhead;
* swap-in: adapter bytes (`components.catalogue.lora_adapter_bytes`) over host-to-GPU copy
  bandwidth, 25 GB/s (assumption: PCIe Gen5 x16 peaks at 64 GB/s; pinned copies of many small
  tensors reach well under half of it).

The twin: the same step overhead and memory; the batch is capped where the expected number of
distinct adapters among its sequences, Σ 1 − (1 − p_i)^b, reaches C (`batch_cap`): a batch
holds only requests of resident adapters; a miss costs one swap in the prefill of the
request that misses, with P(miss) = the popularity mass outside the C most popular adapters
(what LRU keeps under a skewed, stationary popularity — an approximation; uniform popularity
misses more under LRU than this).

Usage::

    >>> from components.catalogue import LLMServer
    >>> comp = LLMServer(id="llm", model="llama-3.1-8b", adapters=100, max_resident_adapters=8)
    >>> round(miss_probability(comp), 3)            # Zipf s = 1 over 100 adapters, top 8 resident
    0.476
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

from components.catalogue import lora_adapter_bytes

from .roofline import RESERVE_BYTES_PER_GPU

__all__ = ["LORA_STEP_OVERHEAD_S", "HOST_TO_GPU_GB_PER_S", "zipf_cdf", "miss_probability", "swap_s",
           "lora_overrides", "AdapterCache", "draw", "twin_lines", "batch_cap", "distinct_in_batch"]

LORA_STEP_OVERHEAD_S = 2e-3
HOST_TO_GPU_GB_PER_S = 25.0


def zipf_cdf(n: int, s: float) -> list[float]:
    w = [1.0 / (i + 1) ** s for i in range(n)]
    tot = sum(w)
    acc, out = 0.0, []
    for x in w:
        acc += x / tot
        out.append(acc)
    out[-1] = 1.0
    return out


def miss_probability(comp) -> float:
    n, c = comp.adapters, comp.max_resident_adapters
    if n <= c:
        return 0.0
    return 1.0 - zipf_cdf(n, comp.adapter_zipf_s)[c - 1]


def distinct_in_batch(comp, b: float) -> float:
    """Expected distinct adapters among ``b`` sequences drawn by popularity: Σ 1 − (1 − p_i)^b."""
    cdf = zipf_cdf(comp.adapters, comp.adapter_zipf_s)
    prev, out = 0.0, 0.0
    for c in cdf:
        p, prev = c - prev, c
        out += 1 - (1 - p) ** b
    return out


def batch_cap(comp, limit: int) -> int:
    """Largest batch whose expected distinct adapters fit the resident slots (≤ ``limit``):
    a batch can only run requests whose adapters are resident (vLLM's max_loras rule)."""
    c = comp.max_resident_adapters
    if comp.adapters <= c:
        return limit
    lo, hi = 1, limit
    if distinct_in_batch(comp, hi) <= c:
        return limit
    while lo < hi:  # distinct_in_batch grows with b
        mid = (lo + hi + 1) // 2
        if distinct_in_batch(comp, mid) <= c:
            lo = mid
        else:
            hi = mid - 1
    return lo


def swap_s(comp) -> float:
    return lora_adapter_bytes(comp.model, comp.adapter_rank) / (HOST_TO_GPU_GB_PER_S * 1e9)


def lora_overrides(comp) -> dict:
    """`ServingSpec` overrides that carry multi-LoRA's cost: the step overhead, and the resident
    adapters' memory as extra per-GPU reserve (it leaves the KV cache)."""
    if getattr(comp, "adapters", 0) <= 0:
        return {}
    from components.hardware import factor

    n = min(comp.adapters, comp.max_resident_adapters)
    mem = n * lora_adapter_bytes(comp.model, comp.adapter_rank)
    return {"iteration_overhead_s": factor("iteration_overhead_ms") / 1e3 + LORA_STEP_OVERHEAD_S,
            "reserve_bytes_per_gpu": RESERVE_BYTES_PER_GPU + mem / comp.gpus_per_replica}


def draw(cdf: list[float], u: float) -> int:
    """Adapter index for a uniform ``u`` in [0, 1)."""
    return min(len(cdf) - 1, bisect_right(cdf, u))


class AdapterCache:
    """Resident adapters of one replica: at most ``cap``, LRU among those no sequence uses."""

    __slots__ = ("cap", "refs", "lru", "swaps")

    def __init__(self, cap: int):
        self.cap = cap
        self.refs: dict[int, int] = {}  # resident adapter -> running sequences using it
        self.lru: OrderedDict = OrderedDict()  # resident and unused, oldest first
        self.swaps = 0

    def can_admit(self, a: int) -> bool:
        return a in self.refs or len(self.refs) < self.cap or bool(self.lru)

    def admit(self, a: int) -> int | None:
        """Use adapter ``a``: 0 if resident, 1 if it must be swapped in now, None if every slot is
        held by running sequences (the request waits)."""
        if a in self.refs:
            if self.refs[a] == 0:
                self.lru.pop(a, None)
            self.refs[a] += 1
            return 0
        if len(self.refs) >= self.cap:
            if not self.lru:
                return None
            old, _ = self.lru.popitem(last=False)
            del self.refs[old]
        self.refs[a] = 1
        self.swaps += 1
        return 1

    def release(self, a: int) -> None:
        self.refs[a] -= 1
        if self.refs[a] == 0:
            self.lru[a] = None


def twin_lines(comp) -> list[str]:
    if getattr(comp, "adapters", 0) <= 0:
        return []
    n = min(comp.adapters, comp.max_resident_adapters)
    one = lora_adapter_bytes(comp.model, comp.adapter_rank)
    return [f"multi-LoRA: {comp.adapters} adapters (Zipf s = {comp.adapter_zipf_s:g}), {n} resident per replica × "
            f"{one / 1e6:,.0f} MB (rank {comp.adapter_rank}) = {n * one / 1e9:.2f} GB out of the KV cache; "
            f"+{LORA_STEP_OVERHEAD_S * 1e3:g} ms per step (Punica's mixed-adapter kernels); a miss "
            f"(P = {miss_probability(comp):.0%}, the popularity outside the top {n}) swaps the adapter in in "
            f"{swap_s(comp) * 1e3:.1f} ms at {HOST_TO_GPU_GB_PER_S:g} GB/s; a batch can only hold requests of resident "
            f"adapters, so at most {batch_cap(comp, 4096):,} sequences (their expected distinct adapters ≤ {n})"]
