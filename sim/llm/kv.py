"""KV-cache mechanics of one `llm_server` replica: allocation policy, blocks, prefix cache.

Pure arithmetic (no SimPy), shared by the batching replica (`sim.llm.batching`, which runs the
mechanisms) and the analytic twin (`sim.llm.twin`, which uses the admission limit and the
prefix-cache hit ratio they imply at the workload's length distribution).

Two allocation policies (``LLMServer.kv_policy``):

* ``reserve_max`` — TensorRT-LLM's ``GUARANTEED_NO_EVICT`` scheduler: a request is admitted
  only when its prompt + ``max_output_tokens`` fit the KV left, and keeps that reservation
  until it finishes; nothing is ever preempted. A sequence in the batch therefore holds
  P + M tokens whatever it actually generates (weighted by residence, see `hold_tokens`).
* ``paged`` — vLLM's default: KV is allocated in blocks of ``kv_block_tokens`` (16) as tokens
  are produced; a new request is admitted when its prompt's blocks fit above a 1 % watermark;
  when a decode step cannot get a block, the most recently admitted sequence is preempted,
  its blocks freed, and it is recomputed (prompt + the tokens it had produced are prefilled
  again) when readmitted. A sequence holds ⌈(P + tokens so far) / block⌉ blocks: on average
  the length-biased P + O/2 plus half a block.

Prefix cache (request classes with ``shared_prefix_tokens``): the full blocks of a shared
prefix stay in the KV pool after the sequences that used them finish, and are evicted least
recently used when a sequence needs room. `PrefixCache` is that pool's bookkeeping;
`twin_prefix_hit` the twin's steady-state hit ratio (Che's approximation for LRU under uniform
popularity: hit probability = share of the distinct prefixes the room can hold).

Usage::

    >>> from components.catalogue import LLMServer
    >>> cfg = KvConfig.from_component(LLMServer(id="llm", model="llama-3.1-8b"))
    >>> cfg.policy, cfg.block_tokens, cfg.blocks(17)     # tokens rounded up to whole blocks
    ('paged', 16, 32)
    >>> tokens_per_step(0.8, 4)                            # speculative decoding, for reference
    3.3616
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "KvConfig",
    "PrefixCache",
    "hold_tokens",
    "twin_prefix_hit",
    "max_output_of",
    "WATERMARK",
    "AFFINITY_LOAD_FACTOR",
    "tokens_per_step",
]

# vLLM V0's BlockSpaceManager refuses a new prompt that would leave fewer than 1 % of the
# blocks free (`watermark: float = 0.01`, vllm/core/block_manager.py), so a freshly admitted
# batch is not preempted at its very next step.
WATERMARK = 0.01
# Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018): a key
# goes to the first replica on the ring whose load is at most c × the mean; c = 1.25 is the
# value used in the paper's experiments and HAProxy's `hash-balance-factor 125` example.
AFFINITY_LOAD_FACTOR = 1.25


@dataclass(frozen=True)
class KvConfig:
    """The KV mechanics of one replica (from an `LLMServer`)."""

    policy: str = "paged"  # "paged" | "reserve_max"
    block_tokens: int = 16
    max_output_tokens: int | None = None  # the server's cap (a class's own cap wins)

    @classmethod
    def from_component(cls, comp) -> "KvConfig":
        return cls(policy=getattr(comp, "kv_policy", "paged"),
                   block_tokens=getattr(comp, "kv_block_tokens", 16),
                   max_output_tokens=getattr(comp, "max_output_tokens", None))

    @property
    def paged(self) -> bool:
        return self.policy == "paged"

    def blocks(self, tokens: float) -> int:
        """``tokens`` rounded up to whole blocks, in tokens (paged); unchanged for reserve_max."""
        if not self.paged:
            return int(math.ceil(tokens))
        b = self.block_tokens
        return -(-int(math.ceil(tokens)) // b) * b


def max_output_of(cfg: KvConfig, class_max: int | None, prompt: float, context: int) -> float:
    """The output cap a request is admitted with: the class's, else the server's, else what the
    model's context leaves after the prompt (what an engine reserves when nothing is set)."""
    m = class_max if class_max is not None else cfg.max_output_tokens
    room = max(1.0, context - prompt)
    return float(min(m, room)) if m is not None else room


def hold_tokens(cfg: KvConfig, spec, workload) -> tuple[float, str]:
    """KV tokens a sequence in the batch holds on average under ``cfg.policy``, and why.

    Sequences stay in the batch for about O iterations, so the batch over-represents long
    outputs: each class weighs by share × E[O]. Shared prefix tokens are held once per replica
    (in the prefix cache), not per sequence, so they are left out here.
    """
    ctx = spec.model.max_context_tokens
    num = den = 0.0
    half_block = cfg.block_tokens / 2 if cfg.paged else 0.0
    for c in workload.request_classes():
        p, o = c.prompt_tokens, c.output_tokens
        ep, eo = p.expected(), max(1.0, o.expected())
        eo2 = o.var() + eo * eo
        shared = _shared_full_blocks(cfg, c, ep)
        w = c.share * eo
        if cfg.paged:
            # E[(P + O/2)·O] / E[O] per class: half-way through the output on average.
            held = ep - shared + 0.5 * eo2 / eo + half_block
        else:
            held = ep - shared + max_output_of(cfg, getattr(c, "max_output_tokens", None), ep, ctx)
        sw = spec.model.sliding_window
        if sw:
            held = min(held, sw)
        num += w * held
        den += w
    hold = num / den
    if cfg.paged:
        why = (f"paged KV ({cfg.block_tokens}-token blocks): a sequence holds its prompt + the tokens "
               f"produced so far, on average {hold:,.0f} tokens in the batch (length-biased P + O/2 + half a block)")
    else:
        why = (f"reserve_max: each admitted sequence reserves prompt + max_output_tokens, "
               f"{hold:,.0f} tokens on average in the batch")
    return hold, why


def _shared_full_blocks(cfg: KvConfig, c, prompt_mean: float) -> float:
    """Tokens of a class's shared prefix that can be cached (whole blocks, at most P − 1)."""
    L = getattr(c, "shared_prefix_tokens", 0) or 0
    if L <= 0:
        return 0.0
    b = cfg.block_tokens if cfg.paged else 1
    return float((min(L, max(0.0, prompt_mean - 1)) // b) * b)


def twin_prefix_hit(cfg: KvConfig, spec, workload, *, routing: str, replicas: int,
                    room_tokens: float) -> tuple[float, float, list[str]]:
    """(token share of prompts served from the prefix cache, prefix KV tokens held, lines).

    Per replica a class with N distinct prefixes of L cached tokens needs N·L tokens of cache
    (N/replicas with prefix-affinity routing, which sends each prefix to one replica); with
    ``room_tokens`` left by the batch, LRU under uniform popularity keeps a share
    min(1, room / Σ N·L) of them (Che's approximation), which is the hit probability. Cold
    misses and concurrent first requests are left out (steady state).
    """
    classes = workload.request_classes()
    need = 0.0
    per = []
    for c in classes:
        ep = c.prompt_tokens.expected()
        L = _shared_full_blocks(cfg, c, ep)
        if L <= 0:
            per.append((c, 0.0, 0.0))
            continue
        n = c.distinct_prefixes
        if routing == "prefix_affinity":
            n = math.ceil(n / max(1, replicas))
        need += n * L
        per.append((c, L, n))
    if need <= 0:
        return 0.0, 0.0, []
    keep = min(1.0, max(0.0, room_tokens) / need)
    pm = sum(c.share * c.prompt_tokens.expected() for c in classes)
    hit_tokens = sum(c.share * keep * L for c, L, _ in per)
    share = hit_tokens / pm if pm > 0 else 0.0
    lines = [
        f"prefix cache: {', '.join(f'{c.name} {n:g} prefix(es) × {L:,.0f} tokens' for c, L, n in per if L)} per "
        f"replica ({routing.replace('_', ' ')}) need {need:,.0f} KV tokens; {max(0.0, room_tokens):,.0f} are "
        f"left beside the batch, so LRU keeps {keep:.0%} of them → {share:.0%} of prompt tokens skip prefill"
    ]
    return share, min(need, max(0.0, room_tokens)), lines


def tokens_per_step(alpha: float, k: int) -> float:
    """Expected tokens a sequence produces per target step with k drafted tokens accepted
    independently with probability α: (1 − α^(k+1)) / (1 − α) (Leviathan et al. 2023, eq. 1)."""
    if alpha >= 1:
        return float(k + 1)
    return round((1 - alpha ** (k + 1)) / (1 - alpha), 10)


class PrefixCache:
    """Cached prefix blocks of one replica: reference counts and an LRU of unreferenced ones.

    ``tokens`` is the KV the cache holds in total (referenced or not). Usage::

        pc = PrefixCache()
        hit = pc.lookup(key)            # cached tokens if ready, else 0
        pc.insert(key, 64)              # first user computes it (refs 1, not yet ready)
        pc.ready(key); pc.release(key)  # prefill done; sequence finished → evictable
        freed = pc.evict_one()          # LRU victim's tokens (0 when nothing is evictable)
    """

    __slots__ = ("entries", "lru", "tokens")

    def __init__(self):
        self.entries: dict = {}  # key -> [tokens, refs, ready]
        self.lru: OrderedDict = OrderedDict()  # unreferenced keys, oldest first
        self.tokens = 0

    def lookup(self, key) -> int:
        e = self.entries.get(key)
        return e[0] if e is not None and e[2] else 0

    def has(self, key) -> bool:
        return key in self.entries

    def acquire(self, key) -> None:
        e = self.entries[key]
        if e[1] == 0:
            self.lru.pop(key, None)
        e[1] += 1

    def insert(self, key, tokens: int) -> None:
        self.entries[key] = [tokens, 1, False]
        self.tokens += tokens

    def ready(self, key) -> None:
        e = self.entries.get(key)
        if e is not None:
            e[2] = True

    def release(self, key) -> None:
        e = self.entries.get(key)
        if e is None:
            return
        e[1] -= 1
        if e[1] <= 0:
            e[1] = 0
            if e[2]:
                self.lru[key] = None
            else:  # its only user left before computing it: nothing to keep
                self.drop(key)

    def drop(self, key) -> int:
        e = self.entries.pop(key, None)
        if e is None:
            return 0
        self.lru.pop(key, None)
        self.tokens -= e[0]
        return e[0]

    @property
    def evictable(self) -> int:
        return sum(self.entries[k][0] for k in self.lru)

    def evict_one(self) -> int:
        """Drop the least recently used unreferenced prefix; its tokens (0 if none)."""
        if not self.lru:
            return 0
        key, _ = self.lru.popitem(last=False)
        e = self.entries.pop(key)
        self.tokens -= e[0]
        return e[0]
