"""Practice prompts: typed, loaded from `review/prompts.yaml`, drawn with an explicit RNG.

Usage::

    >>> import random
    >>> from review.prompts import load_prompts, draw_prompt, skeleton_design, reference_design
    >>> prompts = load_prompts()
    >>> p = draw_prompt(random.Random(3))
    >>> d = skeleton_design(p)          # the partly wired starting point, workload and SLOs set
    >>> ref = reference_design(p)       # hidden reference, same numbers (library file or inline)

The numbers of a prompt live in `requirements`; `prompt_workload` and `prompt_slo` turn them
into the design's `Workload` and `SLO`, so the skeleton, the reference and the grading all
read the same figures.
"""

from __future__ import annotations

from components.errors import Refusal

import copy
import math
import re
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from designs.io import load_design
from designs.model import SLO, BatchWindow, Design, RequestClass, Workload
from components.distributions import fixed_count
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = [
    "Requirements",
    "Prompt",
    "PromptFileError",
    "load_prompts",
    "get_prompt",
    "draw_prompt",
    "prompt_workload",
    "prompt_slo",
    "skeleton_design",
    "reference_design",
    "LIBRARY_DIR",
    "PROMPTS_FILE",
]

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "designs" / "library"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Requirements(_Strict):
    """The numbers an interviewer states: traffic, token lengths, SLOs, budget, data size."""

    requests_per_day: float | None = Field(default=None, gt=0)
    """Requests per day on average (online designs)."""
    peak_to_average: float = Field(default=3.0, ge=1, le=100)
    """Peak-hour rate over the daily average."""
    prompt_tokens: int | None = Field(default=None, ge=1)
    """Mean prompt tokens per request."""
    output_tokens: int | None = Field(default=None, ge=1)
    """Mean output tokens per request."""
    latency_p95_ms: float | None = Field(default=None, gt=0)
    ttft_p95_ms: float | None = Field(default=None, gt=0)
    tpot_p95_ms: float | None = Field(default=None, gt=0)
    availability: float | None = Field(default=None, gt=0, le=1)
    daily_budget_usd: float | None = Field(default=None, gt=0)
    """Spending limit per day in USD."""
    data_size_gb: float | None = Field(default=None, ge=0)
    """Data the system stores (corpus, index, datasets), in GB."""
    repeated_query_ratio: float | None = Field(default=None, ge=0, le=1)
    """Fraction of requests that repeat an earlier one verbatim (a cache can answer them)."""
    items_per_run: float | None = Field(default=None, gt=0)
    """Pipelines: items entering one run."""
    window_hours: float | None = Field(default=None, gt=0)
    """Pipelines: time one run may take."""
    runs_per_week: float | None = Field(default=None, gt=0)
    """Pipelines: how often the pipeline runs."""
    model: str | None = None
    """The model the prompt names, if any (applied to training jobs)."""
    training_tokens: float | None = Field(default=None, gt=0)
    """Pipelines: tokens one training run processes (applied to training jobs)."""
    chunks: int | None = Field(default=None, ge=0, le=10**12)
    """Chunks (vectors) the retrieval index holds (applied to every vector_db's `vectors`)."""
    rpm_limit: int | None = Field(default=None, ge=1)
    """The provider's stated requests per minute (applied to every llm_api and judge; never raised)."""
    tpm_limit: int | None = Field(default=None, ge=1)
    """The provider's stated tokens per minute (applied to every llm_api and judge; never raised)."""
    eval_regression_points: float | None = Field(default=None, gt=0, le=100)
    """Evals: the drop in pass rate (points) the eval must detect."""
    eval_power: float | None = Field(default=None, gt=0, lt=1)
    """Evals: the probability of detecting that drop, in (0, 1)."""


class Prompt(_Strict):
    """One practice problem with its numbers, hints, probes, skeleton and hidden reference."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,63}$")
    family: str
    """Problem family: rag, eval, serving, serving_70b, finetune, agent."""
    title: str
    statement: str
    """The problem in the interviewer's words."""
    requirements: Requirements
    required: list[list[str]] = Field(default_factory=list)
    """Component kinds an answer must reach from its entry; each inner list holds alternatives."""
    hints: list[str] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)
    """Questions the interviewer asks once the design is on the table."""
    skeleton: dict[str, Any]
    """Components only partly wired: `components`, `entry`, `flow` (design file syntax)."""
    reference: str | None = None
    """Hidden reference: a file name in designs/library/."""
    reference_inline: dict[str, Any] | None = None
    """Hidden reference as inline design data (when no library file fits)."""

    @property
    def is_pipeline(self) -> bool:
        return self.requirements.items_per_run is not None


class PromptFileError(Refusal):
    """prompts.yaml is malformed; the message names the prompt and the field."""


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Prompt, ...]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PromptFileError(f"{path}: cannot read prompts: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("prompts"), list):
        raise PromptFileError(f"{path}: expected a mapping with 'families' and a 'prompts' list")
    families = raw.get("families") or {}
    out: list[Prompt] = []
    seen: set[str] = set()
    for n, item in enumerate(raw["prompts"]):
        if not isinstance(item, dict):
            raise PromptFileError(f"{path}: prompts[{n}]: expected a mapping")
        fam = families.get(item.get("family"))
        if fam is None:
            raise PromptFileError(f"{path}: prompts[{n}].family: unknown family {item.get('family')!r}; expected one of {sorted(families)}")
        data = copy.deepcopy(fam) | copy.deepcopy(item)
        try:
            p = Prompt.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise PromptFileError(f"{path}: prompts[{n}] ({item.get('id')}).{loc}: {first['msg']}") from None
        if p.id in seen:
            raise PromptFileError(f"{path}: prompts[{n}].id: duplicate id {p.id!r}")
        from components.catalogue import KINDS

        bad = [k for group in p.required for k in group if k not in KINDS]
        if bad:
            raise PromptFileError(f"{path}: prompts[{n}] ({p.id}).required: unknown kind(s) {bad}")
        if (p.reference is None) == (p.reference_inline is None):
            raise PromptFileError(f"{path}: prompts[{n}] ({p.id}): give exactly one of reference / reference_inline")
        seen.add(p.id)
        out.append(p)
    return tuple(out)


def load_prompts(path: str | Path | None = None) -> list[Prompt]:
    """Every prompt in file order (the file is parsed once per process)."""
    return list(_load(str(path or PROMPTS_FILE)))


def get_prompt(prompt_id: str) -> Prompt:
    for p in load_prompts():
        if p.id == prompt_id:
            return p
    import difflib

    ids = [p.id for p in load_prompts()]
    near = difflib.get_close_matches(prompt_id, ids, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise KeyError(f"unknown prompt {prompt_id!r}{hint}")


def draw_prompt(rng: random.Random, family: str | None = None) -> Prompt:
    """A prompt chosen with the caller's RNG (optionally from one family)."""
    pool = [p for p in load_prompts() if family is None or p.family == family]
    if not pool:
        raise KeyError(f"no prompt in family {family!r}")
    return rng.choice(pool)


def prompt_workload(prompt: Prompt, base: Workload | None = None) -> Workload:
    """The prompt's traffic as a `Workload`, keeping any other settings of `base`."""
    r = prompt.requirements
    data = base.model_dump() if base is not None else {}
    if r.requests_per_day is not None:
        data["requests_per_day"] = r.requests_per_day
        data["peak_to_average"] = r.peak_to_average
        data["arrival_rps"] = None
        data["concurrent_users"] = None
        data["think_time"] = None
    if r.prompt_tokens is not None or r.output_tokens is not None:
        old = (base.request_classes()[0] if base is not None else RequestClass(name="default"))
        data["classes"] = [
            RequestClass(
                name=old.name,
                prompt_tokens=fixed_count(r.prompt_tokens) if r.prompt_tokens else old.prompt_tokens,
                output_tokens=fixed_count(r.output_tokens) if r.output_tokens else old.output_tokens,
            ).model_dump()
        ]
    if r.items_per_run is not None:
        batch = dict(data.get("batch") or {})
        batch["items_per_run"] = r.items_per_run
        if r.window_hours is not None:
            batch["window_hours"] = r.window_hours
        if r.runs_per_week is not None:
            batch["runs_per_week"] = r.runs_per_week
        data["batch"] = BatchWindow.model_validate(batch).model_dump()
    return Workload.model_validate(data)


def prompt_slo(prompt: Prompt, base: SLO | None = None) -> SLO:
    """The prompt's targets as an `SLO` (targets the prompt does not state keep `base`'s)."""
    r = prompt.requirements
    data = base.model_dump() if base is not None else {}
    for key in ("latency_p95_ms", "ttft_p95_ms", "tpot_p95_ms", "availability", "daily_budget_usd"):
        v = getattr(r, key)
        if v is not None:
            data[key] = v
    return SLO.model_validate(data)


def _assumptions(prompt: Prompt) -> list[str]:
    r = prompt.requirements
    out = [f"Prompt {prompt.id}: {prompt.title} (review/prompts.yaml)."]
    if r.repeated_query_ratio is not None:
        out.append(f"repeated_query_ratio: {r.repeated_query_ratio:g} — {r.repeated_query_ratio:.0%} of queries repeat verbatim (stated in the prompt).")
    if r.data_size_gb is not None:
        out.append(f"Data size: {r.data_size_gb:,.0f} GB (stated in the prompt).")
    return out


def _apply_training(data: dict, prompt: Prompt) -> None:
    r = prompt.requirements
    for comp in data.get("components", []):
        if comp.get("kind") == "training_job":
            if r.model:
                comp["model"] = r.model
            if r.training_tokens:
                comp["tokens"] = r.training_tokens


def _apply_eval(data: dict, prompt: Prompt) -> None:
    """The prompt's eval asks (regression to detect, power) on every judge of the design."""
    r = prompt.requirements
    for comp in data.get("components", []):
        if comp.get("kind") == "judge":
            if r.eval_regression_points is not None:
                comp["eval_regression_points"] = r.eval_regression_points
            if r.eval_power is not None:
                comp["eval_power"] = r.eval_power


_CHUNKS = re.compile(r"(\d+(?:\.\d+)?)\s*(million|billion)\s+chunks", re.I)


def _corpus_vectors(prompt: Prompt) -> int | None:
    """The corpus size the statement names ('20 million chunks'), as a vector count."""
    m = _CHUNKS.search(prompt.statement)
    if not m:
        return None
    return int(float(m.group(1)) * (1e6 if m.group(2).lower() == "million" else 1e9))


def _apply_corpus(data: dict, prompt: Prompt, *, shard: bool) -> list[str]:
    """Every vector_db at the statement's corpus size; with `shard`, indexed ones get the fewest
    shards whose index (+20 %) stays under the lint's RAM ceiling on one node."""
    n = _corpus_vectors(prompt)
    notes: list[str] = []
    if n is None:
        return notes
    for comp in data.get("components", []):
        if comp.get("kind") != "vector_db":
            continue
        comp["vectors"] = n
        if not shard or not comp.get("index_type"):
            continue
        from components.catalogue import VectorDB
        from sim import RetrievalError, retrieval_estimate

        from .lint_quality import INDEX_RAM_WARN

        old = int(comp.get("shards", 1))
        for shards in range(old, 10_001):
            try:
                r = retrieval_estimate(VectorDB.model_validate({**comp, "shards": shards}))
            except RetrievalError as e:
                if "would fit" in str(e):
                    continue
                break  # a recall problem: sharding does not fix it; the lint reports it
            if r.ram_needed_gb_per_node <= INDEX_RAM_WARN * r.node_ram_gb:
                if shards != old:
                    comp["shards"] = shards
                    notes.append(f"{comp['id']}: {n:,} vectors (the prompt's corpus), {old} → {shards} shards so one shard's "
                                 f"index ({r.ram_needed_gb_per_node:,.1f} GB with headroom) fits a {r.node_ram_gb:g} GB node")
                break
    return notes


def skeleton_design(prompt: Prompt) -> Design:
    """The starting design: the family's skeleton with the prompt's workload and SLOs."""
    data = copy.deepcopy(prompt.skeleton)
    _apply_training(data, prompt)
    _apply_eval(data, prompt)
    _apply_corpus(data, prompt, shard=False)
    data.setdefault("name", f"{prompt.id}-attempt")
    data["problem"] = prompt.statement
    data["workload"] = prompt_workload(prompt).model_dump(mode="json", exclude_none=True)
    data["slo"] = prompt_slo(prompt).model_dump(mode="json", exclude_none=True)
    data.setdefault("assumptions", _assumptions(prompt))
    return Design.model_validate(data)


def _apply_numbers(data: dict, prompt: Prompt, base_rps: float) -> None:
    """The prompt's stated facts on the reference's components: index size, repeat ratio,
    provider limits, and (for an eval pipeline) the day's items."""
    r = prompt.requirements
    for comp in data.get("components", []):
        kind = comp.get("kind")
        if kind == "vector_db" and r.chunks is not None:
            old_n = comp.get("vectors") or r.chunks
            if comp.get("shards") and r.chunks > old_n:
                # Same vectors per shard as the reference was drawn with: the index still fits a node.
                comp["shards"] = int(math.ceil(comp["shards"] * r.chunks / old_n))
            comp["vectors"] = r.chunks
        if kind == "cache" and r.repeated_query_ratio is not None:
            comp["hit_ratio"] = r.repeated_query_ratio
        if kind in ("llm_api", "judge"):
            if r.rpm_limit is not None:
                comp["rpm_limit"] = r.rpm_limit
            if r.tpm_limit is not None:
                comp["tpm_limit"] = r.tpm_limit
    wl = data.get("workload") or {}
    scale = (r.requests_per_day * r.peak_to_average / 86_400) / base_rps if r.requests_per_day and base_rps else 1.0
    if scale > 1 and r.rpm_limit is None and r.tpm_limit is None:
        # Limits the prompt does not state are the reference's choice of provider tier: scale
        # them with the traffic (the prompt's stated limits are never changed).
        for comp in data.get("components", []):
            if comp.get("kind") in ("llm_api", "judge"):
                for key in ("rpm_limit", "tpm_limit"):
                    if comp.get(key):
                        comp[key] = int(math.ceil(comp[key] * scale))
        data.setdefault("assumptions", []).append(
            f"Provider limits (not stated in the prompt) scaled ×{scale:.2f} with the traffic: a higher tier")
    if wl.get("batch") and r.items_per_run is None and r.requests_per_day is not None:
        # A nightly pipeline reference answering "N a day": one run carries the day's N items.
        wl["batch"] = dict(wl["batch"], items_per_run=r.requests_per_day)
        if r.window_hours is not None:
            wl["batch"]["window_hours"] = r.window_hours


def reference_design(prompt: Prompt, *, sized: bool = True, library_dir: Path | None = None) -> Design:
    """The hidden reference at the prompt's numbers.

    Every number the prompt states is applied (traffic, token lengths, SLOs, budget, index
    size, repeat ratio, provider limits, items per run). With `sized`, the replica counts come
    from the sizing search (`sim.size`, the analytic twin) on the reference's own hardware:
    the cheapest counts meeting every SLO at the prompt's peak, and with one replica of each
    pool down where the prompt states an availability target. Cached per prompt.
    """
    if sized and library_dir is None:
        return _sized_reference(prompt.id, prompt.model_dump_json()).model_copy(deep=True)
    return _reference(prompt, sized=sized, library_dir=library_dir)


@lru_cache(maxsize=64)
def _sized_reference(prompt_id: str, prompt_json: str) -> Design:
    return _reference(Prompt.model_validate_json(prompt_json), sized=True, library_dir=None)


def _reference(prompt: Prompt, *, sized: bool, library_dir: Path | None) -> Design:
    if prompt.reference is not None:
        path = (library_dir or LIBRARY_DIR) / prompt.reference
        base = load_design(path)  # raises DesignFileError with the path when missing
        data = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        data = copy.deepcopy(prompt.reference_inline or {})
        data.setdefault("workload", {})
    base_wl = Workload.model_validate(data.get("workload") or {})
    data["workload"] = prompt_workload(prompt, base_wl).model_dump(mode="json", exclude_none=True)
    data["slo"] = prompt_slo(prompt, SLO.model_validate(data.get("slo") or {})).model_dump(mode="json", exclude_none=True)
    data["problem"] = prompt.statement
    data["name"] = f"{prompt.id}-reference"
    _apply_training(data, prompt)
    _apply_numbers(data, prompt, base_wl.peak_rps)
    _apply_eval(data, prompt)
    corpus = _apply_corpus(data, prompt, shard=True)
    if corpus:
        data["assumptions"] = list(data.get("assumptions", [])) + [f"Sized for this prompt — {c}" for c in corpus]
    design = Design.model_validate(data)
    return _sized(design, prompt) if sized else design


def reference_space(design: Design):
    """The answer keys' search space: the reference's own hardware, only the counts vary."""
    from sim import SearchSpace

    comps = {}
    for c in design.components:
        if c.kind == "llm_server":
            comps[c.id] = {"gpu": [c.gpu], "precision": [c.precision], "kv_cache_precision": [c.kv_cache_precision],
                           "gpus_per_replica": [c.gpus_per_replica], "max_batch": [c.max_batch],
                           "chunked_prefill_tokens": [c.chunked_prefill_tokens]}
    return SearchSpace.model_validate({"components": comps})


REFERENCE_HEADROOM = 1.06
"""The answer keys are sized for 1.06 × the prompt's peak: the LLM twin's capacity is within
6 % of the batching simulation (sim/llm/twin.py, tests/test_llm_twin.py), and a reference sized
to the twin's edge (ρ 0.95 on rag-10m, N−1 at ρ 0.84–0.91 on serve-10m) saturated or missed its
p95 in simulation (bench/bench_size.py --only keys, 2026-12-02)."""


def _sized(design: Design, prompt: Prompt) -> Design:
    """The search's winner for this reference (twin only, at `REFERENCE_HEADROOM` × the peak),
    or the unsized reference when the search finds none — the test per prompt
    (tests/test_answer_keys.py) makes that a failure."""
    from sim import size

    n1 = prompt.requirements.availability is not None and design.workload.batch is None
    r = size(design, space=reference_space(design), verify=0, n_minus_1=n1, headroom=REFERENCE_HEADROOM,
             workers=1, max_seconds=60)
    if r.winner_design is None:
        return design
    data = r.winner_design
    data["assumptions"] = [a for a in data.get("assumptions", []) if not a.startswith("Sized by `sdw size`")] + [
        f"Replica counts from the sizing search (sim.size, analytic twin) at {REFERENCE_HEADROOM:g} × this "
        f"prompt's peak (the twin's LLM capacity is within 6 % of the simulation)"
        + (", with one replica of each pool down (availability stated)" if n1 else "")
        + f": {', '.join(f'{k} {v}' for k, v in r.winner.replicas.items())} — ${r.winner.cost_per_day_usd:,.0f}/day"]
    return Design.model_validate(data)
