"""The search space of `sdw size`: what may vary, as an optional `search:` block or its own file.

A design's components are its choices; the search may change some of them and never touches
the facts of the prompt (traffic, token lengths, provider limits, item counts, hit ratios,
the model). Without a `search:` block every replicated component is sized and every
`llm_server` gets the default space (``sim.search.space`` lists it: every GPU that can hold
the model, the precisions the GPU supports, TP 1/2/4/8, a few batch and chunk sizes).
A block narrows or widens that per component id::

    search:
      objective: cost_per_day          # or cost_per_1k
      headroom: 1.2                    # size for 1.2 × the peak rate
      n_minus_1: true                  # every SLO holds with one replica of each pool down
      components:
        llm:
          gpu: [H100-SXM-80GB, H200-SXM-141GB]
          precision: [bf16, fp8]
          gpus_per_replica: [1, 2]
          max_batch: [128, 256]
          chunked_prefill_tokens: [null, 2048]     # null = whole prompts
        gateway: {min_replicas: 2}
        monitoring: {fixed: true}

Usage::

    >>> from designs.space import SearchSpace, space_problems
    >>> s = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100"]}}})
    >>> [p.message for p in space_problems(s, {"llm": "llm_server"})]
    []
    >>> [p.path for p in space_problems(s, {"gw": "api_gateway"})]
    ['search.components.llm']

`space_problems` does the checks that need the design (ids, which fields a kind has); the
`Design` model runs it on its own `search:` block, so a bad block is a located load error like
any other. `load_space(path, design)` reads a separate space file the same way.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.catalogue import GpuName, Precision
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = ["SearchSpace", "ComponentSpace", "space_problems", "load_space", "LLM_FIELDS", "REPLICA_FIELD"]

LLM_FIELDS = ("gpu", "precision", "kv_cache_precision", "gpus_per_replica", "max_batch", "chunked_prefill_tokens")
"""Fields of a `ComponentSpace` that only an `llm_server` has."""

REPLICA_FIELD: dict[str, str] = {
    "training_job": "gpus",
    "batch_stage": "workers",
}
"""The count a kind is sized by when it is not `replicas` (pipelines size GPUs and workers)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ComponentSpace(_Strict):
    """What the search may change on one component; an empty field takes the default space."""

    fixed: bool = False
    """Keep this component exactly as the design has it (nothing about it is searched)."""
    min_replicas: int | None = Field(default=None, ge=1, le=100_000)
    """Fewest replicas (GPUs of a training job, workers of a batch stage) the search may choose."""
    max_replicas: int | None = Field(default=None, ge=1, le=100_000)
    """Most replicas the search may choose; empty: the kind's bound (10,000 for an llm_server)."""
    gpu: list[GpuName] | None = Field(default=None, min_length=1, max_length=50)
    """llm_server: GPU types to try; empty: every catalogue GPU that can hold the model."""
    precision: list[Precision] | None = Field(default=None, min_length=1, max_length=5)
    """llm_server: weight precisions to try; empty: BF16, and FP8 where the GPU has FP8 tensor cores."""
    kv_cache_precision: list[Literal["bf16", "fp16", "fp8"]] | None = Field(default=None, min_length=1, max_length=3)
    """llm_server: KV-cache precisions to try; empty: FP8 with FP8 weights, else BF16."""
    gpus_per_replica: list[int] | None = Field(default=None, min_length=1, max_length=8)
    """llm_server: tensor-parallel degrees to try (one node: at most 8); empty: 1, 2, 4, 8."""
    max_batch: list[int] | None = Field(default=None, min_length=1, max_length=12)
    """llm_server: `max_batch` values to try; empty: 64, 128, 256 and the design's own."""
    chunked_prefill_tokens: list[int | None] | None = Field(default=None, min_length=1, max_length=8)
    """llm_server: prefill chunk sizes to try, `null` for whole prompts; empty: the design's own and 2048."""
    concurrency: list[int] | None = Field(default=None, min_length=1, max_length=12)
    """Pools: `concurrency` values to try, when it is a deployment choice; empty: never searched."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        for name, lo, hi in (("gpus_per_replica", 1, 8), ("max_batch", 1, 4096), ("concurrency", 1, 100_000)):
            for v in getattr(self, name) or []:
                if not lo <= v <= hi:
                    raise ValueError(f"{name}: {v} is outside {lo}..{hi}"
                                     + (" (tensor parallelism within one 8-GPU node)" if name == "gpus_per_replica" else ""))
        for v in self.chunked_prefill_tokens or []:
            if v is not None and not 16 <= v <= 1_000_000:
                raise ValueError(f"chunked_prefill_tokens: {v} is outside 16..1000000 (null for whole prompts)")
        return self


class SearchSpace(_Strict):
    """The `search:` block: what `sdw size` may vary and how it ranks the candidates."""

    components: dict[str, ComponentSpace] = Field(default_factory=dict, max_length=500)
    """Per component id: what may vary (components not named take the default space)."""
    objective: Literal["cost_per_day", "cost_per_1k"] = "cost_per_day"
    """What the search minimises: USD per day, or USD per 1,000 requests (same order at fixed traffic)."""
    headroom: float = Field(default=1.0, ge=1, le=10)
    """Size for this multiple of the peak rate (1.2 = 20 % above the stated peak)."""
    n_minus_1: bool = False
    """Every SLO must still hold with one replica of each replicated component down."""
    verify: int = Field(default=5, ge=0, le=50)
    """Cheapest candidates verified by simulation (0: the twin's answer only)."""
    max_candidates: int = Field(default=20_000, ge=1, le=1_000_000)
    """Refuse spaces with more discrete candidates than this (narrow the space instead)."""


def _suggest(name: str, known: list[str]) -> str | None:
    m = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return m[0] if m else None


def space_problems(space: SearchSpace, kinds: dict[str, str], prefix: str = "search") -> list[Problem]:
    """Checks that need the design: every id exists, and each field suits its component's kind.

    ``kinds`` maps component id → kind. Paths start at ``prefix`` (``search`` for the block in
    a design file, empty for a separate space file).
    """
    from designs.model import Problem  # designs.model imports this module for its `search` field

    out: list = []
    head = f"{prefix}.components" if prefix else "components"
    known = list(kinds)
    for cid, cs in space.components.items():
        path = f"{head}.{cid}"
        if cid not in kinds:
            out.append(Problem(path, f"'{cid}' is not a component id; expected one of {known}", suggestion=_suggest(cid, known)))
            continue
        kind = kinds[cid]
        given = [f for f in LLM_FIELDS if getattr(cs, f) is not None]
        if kind != "llm_server" and given:
            out.append(Problem(f"{path}.{given[0]}", f"'{cid}' is a {kind}; only an llm_server has {', '.join(given)} to search"))
        if cs.concurrency is not None and kind in ("llm_server", "training_job", "batch_stage", "queue", "object_storage",
                                                   "monitoring", "llm_api", "judge", "tool", "embedder", "reranker"):
            out.append(Problem(f"{path}.concurrency", f"'{cid}' is a {kind}, which has no concurrency to search"))
        if kind in ("queue", "object_storage", "monitoring", "llm_api", "judge", "tool") and (
                cs.min_replicas is not None or cs.max_replicas is not None):
            out.append(Problem(f"{path}.min_replicas" if cs.min_replicas is not None else f"{path}.max_replicas",
                               f"'{cid}' is a {kind}: it has no replicas (elastic, or a provider's fixed limits)"))
    return out


def load_space(path: str | Path, kinds: dict[str, str]):
    """A separate space file (the `search:` block's fields at the top level), every problem located.

    Raises ``designs.io.DesignFileError`` with file, line and field path for each problem.
    """
    from designs.io import DesignFileError, _line_of, parse_yaml, problems_from_validation
    from designs.model import Problem

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DesignFileError(str(p), [Problem("", e.strerror or str(e))]) from None
    try:
        data, node = parse_yaml(text, str(p))
    except DesignFileError:
        raise
    except Exception as e:  # noqa: BLE001 - a YAML syntax error, reported like a design's
        raise DesignFileError(str(p), [Problem("", f"not valid YAML: {e}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DesignFileError(str(p), [Problem("", "expected a mapping with the search fields (components, objective, …)")])
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as e:
        raise DesignFileError(str(p), [q for q in problems_from_validation(e, data, node) if not q.path.startswith("flow")]) from None
    probs = space_problems(space, kinds, prefix="")
    if probs:
        located = []
        for q in probs:
            loc = tuple(int(x) if x.isdigit() else x for x in q.path.split(".") if x)
            located.append(Problem(q.path, q.message, q.severity, q.suggestion, _line_of(node, loc)))
        raise DesignFileError(str(p), located)
    return space
