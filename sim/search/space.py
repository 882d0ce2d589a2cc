"""The discrete candidates of a sizing search, and the families rejected before any sizing.

A *candidate* fixes every searched setting except the replica counts: per `llm_server` a GPU,
weight and KV precision, `gpus_per_replica`, `max_batch` and `chunked_prefill_tokens`; per
pool a `concurrency` where the space lists some. Replica counts are then found per candidate
by ``sim.search.sizing``. A *family* is an llm_server's (model, GPU, precision, TP) — the
unit in which hardware that cannot hold the model is rejected, with the numbers.

The default space for an `llm_server` (a `search:` block narrows or widens it per id):

* GPU: every GPU in ``components/data/gpus.csv``;
* weight precision: BF16, and FP8 where the GPU has FP8 tensor cores (``has_fp8``), plus the
  design's own; KV-cache precision FP8 with 8-bit weights on an FP8 GPU, else BF16;
* ``gpus_per_replica``: 1, 2, 4, 8 (one 8-GPU node) and the design's own, those that divide
  the model's attention heads;
* ``max_batch``: 64, 128, 256 and the design's own; ``chunked_prefill_tokens``: the design's
  own and 2048.

Pipelines and closed loops keep the design's own LLM settings unless the space lists others:
each of their candidates costs a full estimate and no cheap cost bound prunes them.

Usage::

    >>> from designs.io import load_design
    >>> from sim.search.space import resolve
    >>> sp = resolve(load_design("designs/library/llm_serving.yaml"))
    >>> len(sp.candidates) > 100, sp.sized["llm"]
    (True, ('replicas', 1, 10000))

Never searched: the workload, token lengths, hit and block ratios, provider limits
(`rpm_limit`, `tpm_limit`), item counts, the model itself; components marked `fixed`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from components.hardware import get_gpu, gpu_names
from designs.model import Design
from designs.space import REPLICA_FIELD, ComponentSpace, SearchSpace

__all__ = ["Candidate", "Rejected", "Space", "resolve", "SpaceError", "DEFAULT_TP", "DEFAULT_BATCH"]

DEFAULT_TP = (1, 2, 4, 8)
"""Tensor-parallel degrees within one 8-GPU node (NVLink domain of an HGX board)."""
DEFAULT_BATCH = (64, 128, 256)
"""`max_batch` values: vLLM's default `max_num_seqs` 256 and two smaller, lower-latency settings."""
DEFAULT_CHUNK = 2048
"""A chunked-prefill budget of 2048 tokens per iteration (vLLM's default `max_num_batched_tokens` for chunked prefill in V1)."""

# Kinds the search can size, and the count field of each.
_NO_COUNT = {"queue", "object_storage", "monitoring", "llm_api", "judge", "tool"}


class SpaceError(ValueError):
    """The space cannot be searched (nothing fits, or too many candidates); the message says why."""


@dataclass(frozen=True)
class Candidate:
    """One point of the discrete space: settings per component id (replicas come later)."""

    index: int
    settings: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]

    def values(self, cid: str) -> dict[str, Any]:
        return dict(dict(self.settings).get(cid, ()))

    def apply(self, design: Design, replicas: dict[str, int] | None = None) -> Design:
        """The design with these settings and replica counts (no re-validation: values come
        from the validated space and the kinds' bounds)."""
        sets = dict(self.settings)
        comps = []
        for c in design.components:
            upd = dict(sets.get(c.id, ()))
            if replicas and c.id in replicas:
                upd[REPLICA_FIELD.get(c.kind, "replicas")] = replicas[c.id]
            comps.append(c.model_copy(update=upd) if upd else c)
        return design.model_copy(update={"components": comps})

    def label(self) -> str:
        """'llm: H100-SXM-80GB FP8/kv fp8 TP1 batch 256 chunk 2048'."""
        parts = []
        for cid, vals in self.settings:
            v = dict(vals)
            if "gpu" in v:
                s = f"{cid}: {v['gpu']} {v['precision'].upper()}"
                if v.get("kv_cache_precision") != "bf16":
                    s += f"/kv {v['kv_cache_precision']}"
                s += f" TP{v['gpus_per_replica']} batch {v['max_batch']}"
                if v.get("chunked_prefill_tokens"):
                    s += f" chunk {v['chunked_prefill_tokens']}"
                parts.append(s)
            elif "concurrency" in v:
                parts.append(f"{cid}: concurrency {v['concurrency']}")
        return "; ".join(parts) or "as designed"

    def family(self) -> str:
        """The hardware family: model, GPU, precision and TP of each llm_server."""
        parts = []
        for cid, vals in self.settings:
            v = dict(vals)
            if "gpu" in v:
                parts.append(f"{v['precision'].upper()} on {v['gpus_per_replica']}×{v['gpu']}")
        return "; ".join(parts) or "as designed"


@dataclass(frozen=True)
class Rejected:
    """A family (or candidate) out of the running, with the reason in numbers."""

    family: str
    reason: str


@dataclass
class Space:
    """The resolved space of one design."""

    candidates: list[Candidate]
    sized: dict[str, tuple[str, int, int]]
    """Component id → (count field, min, max) for every component whose count is searched."""
    rejected: list[Rejected] = field(default_factory=list)
    options: SearchSpace = field(default_factory=SearchSpace)


def _uniq(xs) -> list:
    out = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _llm_axes(comp, cs: ComponentSpace, rejected: list[Rejected], own_only: bool = False) -> list[tuple[tuple[str, Any], ...]]:
    """Every valid setting of one llm_server; families that cannot hold the model are rejected.

    `own_only`: fields the space does not list keep the design's value (pipelines, where each
    candidate costs a full pipeline estimate and no cost bound prunes)."""
    from sim.llm.roofline import ServingConfigError, ServingSpec

    if own_only:
        cs = cs.model_copy(update={
            "gpu": cs.gpu or [comp.gpu], "precision": cs.precision or [comp.precision],
            "kv_cache_precision": cs.kv_cache_precision or [comp.kv_cache_precision],
            "gpus_per_replica": cs.gpus_per_replica or [comp.gpus_per_replica],
            "max_batch": cs.max_batch or [comp.max_batch],
            "chunked_prefill_tokens": cs.chunked_prefill_tokens or [comp.chunked_prefill_tokens]})

    gpus = cs.gpu or _uniq([comp.gpu] + gpu_names())
    gpus = _uniq(get_gpu(g).name for g in gpus)
    tps = cs.gpus_per_replica or _uniq(sorted(set(DEFAULT_TP) | ({comp.gpus_per_replica} if comp.gpus_per_replica <= 8 else set())))
    batches = cs.max_batch or sorted(set(DEFAULT_BATCH) | {comp.max_batch})
    chunks = cs.chunked_prefill_tokens or _uniq([comp.chunked_prefill_tokens, DEFAULT_CHUNK])
    out = []
    for g in gpus:
        gpu = get_gpu(g)
        precs = cs.precision or _uniq([p for p in ("bf16", "fp8") if p != "fp8" or gpu.has_fp8]
                                      + ([comp.precision] if gpu.name == get_gpu(comp.gpu).name else []))
        for p in precs:
            kvs = cs.kv_cache_precision or ["fp8" if p in ("fp8", "int8", "int4") and gpu.has_fp8 else "bf16"]
            for tp in tps:
                fam = f"{comp.id}: {comp.model} {p.upper()} on {tp}×{g}"
                ok_kv = []
                for kv in kvs:
                    probe = comp.model_copy(update=dict(gpu=g, precision=p, kv_cache_precision=kv, gpus_per_replica=tp))
                    try:
                        ServingSpec.from_component(probe)
                    except ServingConfigError as e:
                        msg = str(e)
                        rejected.append(Rejected(fam, msg.split(": ", 1)[1] if msg.startswith(comp.id + ": ") else msg))
                        break
                    ok_kv.append(kv)
                for kv, mb, ch in itertools.product(ok_kv, batches, chunks):
                    out.append((("gpu", g), ("precision", p), ("kv_cache_precision", kv), ("gpus_per_replica", tp),
                                ("max_batch", mb), ("chunked_prefill_tokens", ch)))
    return out


def resolve(design: Design, space: SearchSpace | None = None, *, n_minus_1: bool | None = None,
            headroom: float | None = None, objective: str | None = None, verify: int | None = None) -> Space:
    """The candidates and sized components of `design` under `space` (default: its `search:`
    block, else the default space); keyword options override the block's."""
    opts = space or design.search or SearchSpace()
    upd = {k: v for k, v in dict(n_minus_1=n_minus_1, headroom=headroom, objective=objective, verify=verify).items()
           if v is not None}
    if upd:
        opts = opts.model_copy(update=upd)
    rejected: list[Rejected] = []
    axes: list[tuple[str, list]] = []
    sized: dict[str, tuple[str, int, int]] = {}
    for comp in design.components:
        cs = opts.components.get(comp.id, ComponentSpace())
        if cs.fixed or comp.kind in _NO_COUNT:
            continue
        fld = REPLICA_FIELD.get(comp.kind, "replicas")
        if fld not in type(comp).model_fields:
            continue
        hi_kind = type(comp).model_fields[fld].metadata
        bound = next((m.le for m in hi_kind if getattr(m, "le", None) is not None), 100_000)
        lo = cs.min_replicas or 1
        hi = min(cs.max_replicas or bound, bound)
        if comp.kind == "training_job" and design.workload.batch is None:
            continue  # a training job on a request path adds no latency: nothing to size for
        sized[comp.id] = (fld, lo, hi)
        if comp.kind == "llm_server":
            own_only = design.workload.batch is not None or design.workload.closed_loop
            vals = _llm_axes(comp, cs, rejected, own_only)
            if not vals:
                raise SpaceError(
                    f"nothing in the space can hold {comp.model} for '{comp.id}': "
                    + "; ".join(f"{r.family}: {r.reason}" for r in rejected[-3:]))
            axes.append((comp.id, vals))
        elif cs.concurrency:
            axes.append((comp.id, [(("concurrency", c),) for c in cs.concurrency]))
    total = 1
    for _, vals in axes:
        total *= len(vals)
    if total > opts.max_candidates:
        sizes = " × ".join(f"{len(v)} for {cid}" for cid, v in axes)
        raise SpaceError(f"the space has {total:,} candidates ({sizes}), more than max_candidates "
                         f"{opts.max_candidates:,}; narrow it in the search: block (gpu, precision, max_batch, …)")
    cands = []
    for i, combo in enumerate(itertools.product(*[v for _, v in axes])):
        cands.append(Candidate(i, tuple((cid, vals) for (cid, _), vals in zip(axes, combo))))
    if not axes:
        cands = [Candidate(0, ())]
    return Space(cands, sized, rejected, opts)
