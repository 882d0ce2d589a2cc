"""The `Design`: one typed model of a system design that every view and engine reads.

A design is plain data: a workload, SLOs, components from the catalogue, an entry point and
a flow of edges. Usage::

    >>> from designs.model import Design
    >>> d = Design.model_validate({
    ...     "name": "mmc",
    ...     "workload": {"requests_per_day": 8_640_000, "peak_to_average": 1.0},
    ...     "components": [{"id": "svc", "kind": "service", "replicas": 1, "concurrency": 10,
    ...                     "service_time": {"dist": "exponential", "mean_ms": 83.33}}],
    ...     "entry": "svc", "flow": [], "slo": {"latency_p95_ms": 1000}})
    >>> d.workload.peak_rps
    100.0

Flow semantics (what the engine and the analytic twin both implement):

* After a component serves a request, its outgoing edges decide what happens next.
  Plain edges are *branches*: one is taken with probability ``p``; with the remaining
  probability ``1 − Σp`` the request is finished.
* Edges marked ``parallel: true`` form a *fan-out*: every branch runs at once and the request
  waits for all of them at the *join*, the first component every branch reaches (or the end).
* A ``cache`` follows its outgoing edges only on a miss; a ``guardrail`` ends blocked requests;
  a ``queue`` acknowledges the caller at enqueue and its consumers run asynchronously.
* An edge with ``max_repeats`` goes *back* to an earlier component (an agent's next step): it
  is taken with probability ``p`` up to ``max_repeats`` times per request. The flow without
  these back edges must be acyclic.
"""

from __future__ import annotations

from components.errors import Refusal

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.catalogue import Component, ComponentBase
from components.distributions import Count, Duration, fixed_count
from designs.space import SearchSpace
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = [
    "Design",
    "Workload",
    "RequestClass",
    "BatchWindow",
    "SLO",
    "Edge",
    "Problem",
    "GraphError",
    "graph_problems",
    "MAX_REQUESTS_PER_DAY",
    "Retry",
    "Fault",
    "Arrivals",
    "Trace",
    "FAULT_KINDS",
]

SECONDS_PER_DAY = 86_400
# 1e10/day is ~116k requests/s on average: beyond any single design this tool is for, and a
# typo guard (10^12/day is 11.6 M requests/s).
MAX_REQUESTS_PER_DAY = 1e10
# Rates have positive floors (requests_per_day ≥ 1e-6, arrival_rps ≥ 1e-9) instead of `gt=0`:
# 5e-324 passes `gt=0` and its derived rates underflow to 0 (issue 14).
# Did-you-mean suggestions computed per report at most (each is a difflib search over the ids).
MAX_SUGGESTIONS = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RequestClass(_Strict):
    """A kind of request in the mix, with its token lengths for LLM paths."""

    name: str = Field(min_length=1, max_length=64)
    """Name of the class, e.g. `chat` or `summarise`."""
    share: float = Field(default=1.0, ge=1e-9, le=1)
    """Fraction of requests of this class; the shares of all classes sum to 1."""
    prompt_tokens: Count = Field(default_factory=lambda: fixed_count(500))
    """Input tokens per request (system prompt + context + question)."""
    output_tokens: Count = Field(default_factory=lambda: fixed_count(200))
    """Generated tokens per request."""
    max_output_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    """The `max_tokens` these requests are sent with: an `llm_server` with `kv_policy: reserve_max` reserves it at admission, and longer answers stop here. Empty: the server's `max_output_tokens`, else the model's context."""
    shared_prefix_tokens: int = Field(default=0, ge=0, le=10_000_000)
    """Leading prompt tokens shared with other requests of this class (a system prompt, a tenant's instructions, a conversation's history); an `llm_server` can serve them from its prefix cache."""
    distinct_prefixes: int = Field(default=1, ge=1, le=10_000_000)
    """How many different shared prefixes the class's requests draw from, uniformly (1: one system prompt for all; one per tenant; one per conversation)."""


class BatchWindow(_Strict):
    """For pipeline designs: how much a run processes and how long it may take."""

    items_per_run: float = Field(gt=0, le=1e13)
    """Items entering the pipeline per run (documents, examples)."""
    window_hours: float = Field(default=24, ge=1e-3, le=24 * 366)
    """Time a run may take, in hours."""
    runs_per_week: float = Field(default=1, ge=1e-3, le=7 * 24 * 60)
    """How often the pipeline runs (1 = weekly)."""


class Workload(_Strict):
    """Traffic offered to the design. The simulated rate is the peak rate."""

    requests_per_day: float = Field(default=1_000_000, ge=1e-6, le=MAX_REQUESTS_PER_DAY)
    """Requests per day on average."""
    peak_to_average: float = Field(default=3.0, ge=1, le=100)
    """Peak-hour rate over the daily average rate; capacity is planned for the peak."""
    arrival_rps: float | None = Field(default=None, ge=1e-9, le=1e6)
    """Explicit arrival rate in requests per second; overrides the daily figures."""
    concurrent_users: int | None = Field(default=None, ge=1, le=10**6)
    """Closed loop: this many users, each sending a request, waiting, thinking, repeating."""
    think_time: Duration | None = None
    """Closed loop: pause between a user's response and next request, in milliseconds."""
    profile_24h: list[float] | None = Field(default=None, min_length=24, max_length=24)
    """Optional hourly rate multipliers for a whole-day run (24 values, mean scaled to 1)."""
    classes: list[RequestClass] = Field(default_factory=list, max_length=50)
    """Request classes mixed by share; empty means one class with default token lengths."""
    batch: BatchWindow | None = None
    """Pipeline designs: items per run and the window a run must fit in."""
    arrivals: "Arrivals | None" = None
    """How arrivals bunch: Poisson (empty), gamma/lognormal gaps with a stated CV, or a 2-state MMPP."""
    trace: "Trace | None" = None
    """Replay arrivals (times and token lengths) from a CSV trace instead of drawing them."""
    timeline_s: float | None = Field(default=None, gt=0, le=86_400)
    """Length of a timeline run (faults, autoscaling, traces) in seconds; empty: one peak hour (or the trace)."""

    @model_validator(mode="after")
    def _consistent(self):
        if self.classes:
            total = sum(c.share for c in self.classes)
            if abs(total - 1) > 1e-6:
                raise ValueError(f"class shares sum to {total:g}; expected 1")
            names = [c.name for c in self.classes]
            dup = {n for n, k in Counter(names).items() if k > 1}
            if dup:
                raise ValueError(f"duplicate class names: {', '.join(sorted(dup))}")
        if self.profile_24h is not None and any(x < 0 for x in self.profile_24h):
            raise ValueError("profile_24h values must be ≥ 0")
        if self.profile_24h is not None and sum(self.profile_24h) <= 0:
            raise ValueError("profile_24h must have a positive value somewhere")
        if self.think_time is not None and self.concurrent_users is None:
            raise ValueError("think_time is for the closed loop: set concurrent_users too")
        return self

    @property
    def average_rps(self) -> float:
        return self.requests_per_day / SECONDS_PER_DAY

    @property
    def peak_rps(self) -> float:
        """The rate the design is simulated at: `arrival_rps`, else average × peak factor."""
        if self.arrival_rps is not None:
            return self.arrival_rps
        return self.average_rps * self.peak_to_average

    @property
    def closed_loop(self) -> bool:
        return self.concurrent_users is not None

    def request_classes(self) -> list[RequestClass]:
        """The classes, or one default class when none are given."""
        return list(self.classes) or [RequestClass(name="default")]


class SLO(_Strict):
    """Service-level objectives the verdict checks."""

    latency_p95_ms: float | None = Field(default=None, gt=0, le=1e9)
    """End-to-end 95th-percentile latency target, in milliseconds."""
    latency_p99_ms: float | None = Field(default=None, gt=0, le=1e9)
    """End-to-end 99th-percentile latency target, in milliseconds."""
    ttft_p95_ms: float | None = Field(default=None, gt=0, le=1e9)
    """95th-percentile time to first token, in milliseconds (streaming LLM paths)."""
    tpot_p95_ms: float | None = Field(default=None, gt=0, le=1e6)
    """95th-percentile time per output token, in milliseconds."""
    availability: float | None = Field(default=None, gt=0, le=1)
    """Fraction of requests that must complete (not dropped or timed out), e.g. 0.999."""
    daily_budget_usd: float | None = Field(default=None, gt=0, le=1e9)
    """Spending limit per day, in USD."""


class Edge(_Strict):
    """One step of the flow: after `from`, go to `to`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)

    from_: str = Field(alias="from", min_length=1)
    """Component id the edge leaves."""
    to: str = Field(min_length=1)
    """Component id the edge enters."""
    p: float = Field(default=1.0, ge=0, le=1)
    """Probability of taking this branch (branches from one component sum to at most 1)."""
    parallel: bool = False
    """Part of a fan-out: all parallel edges from a component run at once and join."""
    max_repeats: int | None = Field(default=None, ge=1, le=1000)
    """Makes this a back edge (agent loop): taken with probability `p`, at most this many times."""
    label: str | None = Field(default=None, max_length=200)
    """Text on the diagram edge."""
    retry: "Retry | None" = None
    """Retry policy for calls along this edge into `to`: attempts, backoff, per-attempt timeout."""
    fallback: bool = False
    """A fallback: when a call into `from` fails (after its retries), `to` is called in its place."""

    @property
    def is_loop(self) -> bool:
        return self.max_repeats is not None


@dataclass(frozen=True)
class Problem:
    """One located finding about a design file: an error, or a warning."""

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"
    suggestion: str | None = None
    line: int | None = None

    def format(self, file: str | None = None) -> str:
        where = f"{file}:{self.line}" if file and self.line else (file or "")
        head = f"{where}: " if where else ""
        loc = f"{self.path}: " if self.path else ""
        tail = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{head}{self.severity}: {loc}{self.message}{tail}"


class GraphError(Refusal):
    """The flow graph is inconsistent; `problems` has every finding."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


def graph_problems(
    ids: list[str | None], entry: str | None, edges: Iterable[dict], kinds: dict[str, str] | None = None
) -> list[Problem]:
    """Check the flow on plain data, so it runs even when a component failed to validate.

    `edges` are dicts with `from`, `to`, `p`, `parallel`, `max_repeats` (missing keys take the
    defaults). Returns errors and warnings; an empty list means the graph is sound.
    """
    import difflib

    out: list[Problem] = []
    known = [i for i in ids if isinstance(i, str)]
    seen: set[str] = set()
    for n, i in enumerate(ids):
        if isinstance(i, str):
            if i in seen:
                out.append(Problem(f"components[{n}].id", f"duplicate id '{i}'; ids must be unique"))
            seen.add(i)

    hints: dict[str, str | None] = {}

    def suggest(name: str) -> str | None:
        # Once per distinct name, and only for the first few: difflib over hundreds of ids
        # for each of thousands of misspelt edges would make a bad file slow to report.
        if name not in hints:
            m = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if len(hints) < MAX_SUGGESTIONS else []
            hints[name] = m[0] if m else None
        return hints[name]

    if isinstance(entry, str) and entry not in seen:
        out.append(Problem("entry", f"'{entry}' is not a component id; expected one of {known}", suggestion=suggest(entry)))

    edges = list(edges)
    plain: dict[str, list[tuple[int, dict]]] = {}
    loops: list[tuple[int, dict]] = []
    fallbacks: list[tuple[int, dict]] = []
    for n, e in enumerate(edges):
        if not isinstance(e, dict):
            continue
        ok = True
        for end in ("from", "to"):
            v = e.get(end, e.get("from_") if end == "from" else None)
            if isinstance(v, str) and v not in seen:
                out.append(Problem(f"flow[{n}].{end}", f"'{v}' is not a component id", suggestion=suggest(v)))
                ok = False
            elif not isinstance(v, str):
                ok = False
        if not ok:
            continue
        src = e.get("from", e.get("from_"))
        if src == e["to"]:
            out.append(Problem(f"flow[{n}]", f"edge from '{src}' to itself; use max_repeats on a back edge for a loop"))
            continue
        if e.get("fallback") is True:
            fallbacks.append((n, e))  # not a flow step: checked by `_fallback_problems`
        elif e.get("max_repeats") is not None:
            loops.append((n, e))
        else:
            plain.setdefault(src, []).append((n, e))

    for src, outs in plain.items():
        par = [e for _, e in outs if e.get("parallel")]
        if par and len(par) != len(outs):
            out.append(Problem(f"flow[{outs[0][0]}]", f"edges from '{src}' mix parallel and branch edges; a component either fans out (all parallel) or branches"))
        if par:
            for n, e in outs:
                pv = e.get("p", 1.0)  # raw data: a non-number p is already a field error
                if isinstance(pv, (int, float)) and float(pv) != 1.0:
                    out.append(Problem(f"flow[{n}].p", f"parallel edge from '{src}' has p={e.get('p')}; every branch of a fan-out runs, so p must be 1"))
        else:
            total = sum(float(e.get("p", 1.0)) for _, e in outs if isinstance(e.get("p", 1.0), (int, float)))
            if total > 1 + 1e-9:
                out.append(Problem(f"flow[{outs[0][0]}].p", f"branch probabilities from '{src}' sum to {total:g}; expected at most 1"))
        tos = Counter(e["to"] for _, e in outs)
        for t in sorted(t for t, k in tos.items() if k > 1):
            out.append(Problem(f"flow[{outs[0][0]}]", f"more than one edge from '{src}' to '{t}'; merge them and add the probabilities"))
        if kinds and kinds.get(src) in ("monitoring",):
            out.append(Problem(f"flow[{outs[0][0]}]", f"'{src}' is monitoring, which sits off the request path; give it no outgoing edges", severity="warning"))

    # Acyclic without back edges: depth-first search with colours, iterative (a chain of
    # thousands of components must get its "at most 500" message, not a RecursionError).
    cycle = _find_cycle(([entry] if isinstance(entry, str) and entry in seen else []) + sorted(plain), plain)
    if cycle:
        out.append(Problem("flow", "the flow has a cycle " + " → ".join(cycle) + "; model an agent loop as a back edge with max_repeats"))

    reach = _reachable(entry, plain) if isinstance(entry, str) and entry in seen else set()
    out.extend(_fallback_problems(fallbacks, entry))
    reach = _with_fallbacks(reach, fallbacks, plain)
    reach_from: dict[str, set[str]] = {}  # once per back-edge target, not once per edge
    for n, e in loops:
        src, dst = e.get("from", e.get("from_")), e["to"]
        if reach and src not in reach:
            continue  # reported as unreachable below
        if dst not in reach_from:
            reach_from[dst] = _reachable(dst, plain)
        if src not in reach_from[dst]:
            out.append(Problem(f"flow[{n}].to", f"back edge {src} → {dst}: '{dst}' must come before '{src}' in the flow (a loop returns to an earlier step)"))

    if reach:
        for n, i in enumerate(ids):
            if isinstance(i, str) and i not in reach and (kinds or {}).get(i) != "monitoring":
                out.append(Problem(f"components[{n}]", f"'{i}' is not reachable from entry '{entry}'; it gets no traffic", severity="warning"))
    return out


def _find_cycle(starts: list[str], plain: dict[str, list[tuple[int, dict]]]) -> list[str]:
    """The first cycle met by a depth-first search from `starts` (as a path u → … → u), or []."""
    colour: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in starts:
        if start in colour:
            continue
        path = [start]
        colour[start] = 1
        todo = [iter(plain.get(start, []))]
        while todo:
            for _, e in todo[-1]:
                v = e["to"]
                if colour.get(v) == 1:
                    return path[path.index(v):] + [v]
                if v not in colour:
                    colour[v] = 1
                    path.append(v)
                    todo.append(iter(plain.get(v, [])))
                    break
            else:
                colour[path.pop()] = 2
                todo.pop()
    return []


def _reachable(start: str, plain: dict[str, list[tuple[int, dict]]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        u = todo.pop()
        for _, e in plain.get(u, []):
            if e["to"] not in seen:
                seen.add(e["to"])
                todo.append(e["to"])
    return seen


class Design(_Strict):
    """A system design: workload, SLOs, components, entry point and flow."""

    name: str = Field(min_length=1, max_length=120)
    """Short name of the design."""
    problem: str = Field(default="", max_length=10_000)
    """The prompt this design answers, in the interviewer's words."""
    workload: Workload
    """Traffic the design must carry."""
    slo: SLO = Field(default_factory=SLO)
    """Targets the verdict checks."""
    components: list[Component] = Field(min_length=1, max_length=500)
    """Building blocks from the catalogue; each has a unique `id`."""
    entry: str = Field(min_length=1)
    """Component id where a request starts."""
    flow: list[Edge] = Field(default_factory=list, max_length=5000)
    """Edges between components: branches, fan-outs and bounded loops."""
    assumptions: list[str] = Field(default_factory=list, max_length=200)
    """What the design takes as given, each with its source where it has one."""
    notes: str = Field(default="", max_length=20_000)
    """Free text: trade-offs, alternatives, open questions."""
    faults: list["Fault"] = Field(default_factory=list, max_length=1000)
    """Scheduled fault events of a timeline run (`sim.ops`): replica/zone down, slow, provider outage."""
    search: SearchSpace | None = None
    """Optional: what `sdw size` may vary (designs/space.py); empty takes the default space."""

    @model_validator(mode="after")
    def _graph(self):
        problems = [p for p in self.graph_findings() if p.severity == "error"]
        if problems:
            raise GraphError(problems)
        problems = ops_problems(self)
        if problems:
            raise GraphError(problems)
        return self

    @model_validator(mode="after")
    def _search_refs(self):
        # The block names components by id: check them here so a typo is a located load error.
        if self.search is not None:
            from designs.space import space_problems

            problems = space_problems(self.search, {c.id: c.kind for c in self.components})
            if problems:
                raise GraphError(problems)
        return self

    def graph_findings(self) -> list[Problem]:
        """Every graph error and warning (unreachable components are warnings)."""
        return graph_problems(
            [c.id for c in self.components],
            self.entry,
            [e.model_dump(by_alias=True) for e in self.flow],
            {c.id: c.kind for c in self.components},
        )

    def warnings(self) -> list[Problem]:
        return [p for p in self.graph_findings() if p.severity == "warning"]

    # --- navigation helpers used by the diagram, the engine and the analytic twin ---------

    def component(self, cid: str) -> ComponentBase:
        for c in self.components:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def by_id(self) -> dict[str, ComponentBase]:
        return {c.id: c for c in self.components}

    def out_edges(self, cid: str) -> list[Edge]:
        """Forward (non-loop) edges leaving `cid`, in file order."""
        return [e for e in self.flow if e.from_ == cid and not e.is_loop and not e.fallback]

    def loop_edges(self, cid: str) -> list[Edge]:
        """Back edges leaving `cid`."""
        return [e for e in self.flow if e.from_ == cid and e.is_loop]

    def is_fanout(self, cid: str) -> bool:
        outs = self.out_edges(cid)
        return bool(outs) and all(e.parallel for e in outs)

    def join_of(self, cid: str) -> str | None:
        """Where a fan-out from `cid` joins: the nearest component every branch reaches.

        None means the branches never meet and the request ends when the last one ends.
        """
        branches = [e.to for e in self.out_edges(cid)]
        out = self._out_map()
        reach = [self._distances(b, out) for b in branches]
        common = set(reach[0]).intersection(*reach[1:]) if reach else set()
        if not common:
            return None
        return min(common, key=lambda n: (max(r[n] for r in reach), n))

    def _out_map(self) -> dict[str, list[Edge]]:
        """`out_edges` of every component in one pass over the flow (a walk that called
        `out_edges` per node was O(nodes × edges): 6 s to validate 500 stations)."""
        out: dict[str, list[Edge]] = {}
        for e in self.flow:
            if not e.is_loop and not e.fallback:
                out.setdefault(e.from_, []).append(e)
        return out

    def _distances(self, start: str, out: dict[str, list[Edge]] | None = None) -> dict[str, int]:
        out = self._out_map() if out is None else out
        dist = {start: 0}
        frontier = [start]
        while frontier:
            nxt = []
            for u in frontier:
                for e in out.get(u, ()):
                    if e.to not in dist:
                        dist[e.to] = dist[u] + 1
                        nxt.append(e.to)
            frontier = nxt
        return dist

    def reachable(self) -> set[str]:
        return set(self._distances(self.entry))


# --- operations over time (issue 13): retries, fallbacks, faults, bursty and replayed traffic ---

FAULT_KINDS = ("replica_down", "zone_down", "slow", "provider_outage")
# Kinds with replicas a fault can take down one by one (their stations in `sim.ops`).
_REPLICATED = frozenset({"service", "load_balancer", "api_gateway", "cache", "database", "vector_db",
                         "keyword_search", "guardrail", "llm_server"})
# Kinds that are someone else's service: they have outages, not replicas.
_EXTERNAL = frozenset({"llm_api", "judge", "tool", "object_storage"})


class Retry(_Strict):
    """How a caller retries a failed or timed-out call: up to `attempts`, with jittered backoff."""

    attempts: int = Field(default=3, ge=1, le=20)
    """Attempts in all, the first included (3 = two retries)."""
    backoff_ms: float = Field(default=100, ge=0, le=600_000)
    """Delay before the first retry in milliseconds; doubles each retry, × U(0.5, 1.5) jitter (assumption)."""
    timeout_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    """Give up on one attempt after this long and retry (its late answer is ignored); empty: wait."""

    def expected_attempts(self, fail_p: float) -> float:
        """Mean attempts when each fails independently with `fail_p`: (1 − qⁿ)/(1 − q)."""
        q = min(max(fail_p, 0.0), 1.0)
        n = self.attempts
        return float(n) if q >= 1.0 else (1.0 - q**n) / (1.0 - q)


class Fault(_Strict):
    """One scheduled fault of a timeline run."""

    at_s: float = Field(ge=0, lt=86_400)
    """When it starts, in seconds from the start of the run (a whole-day run starts at midnight)."""
    component: str = Field(min_length=1)
    """Component id it hits."""
    what: Literal["replica_down", "zone_down", "slow", "provider_outage"]
    """replica_down: replicas crash; zone_down: every replica in one zone; slow: service × factor; provider_outage: every call fails."""
    duration_s: float = Field(gt=0, le=86_400)
    """How long it lasts, in seconds."""
    factor: float = Field(default=2.0, ge=1, le=1000)
    """For `slow`: service times are multiplied by this (an llm_server: every replica's step time)."""
    replicas: int = Field(default=1, ge=1, le=100_000)
    """For `replica_down`: how many replicas go down."""
    zone: int = Field(default=0, ge=0, le=63)
    """For `zone_down`: which zone (0-based; replica i lives in zone i mod zones)."""


class Arrivals(_Strict):
    """How arrivals bunch. The mean rate is the workload's; only the variability changes."""

    process: Literal["poisson", "gamma", "lognormal", "mmpp"] = "poisson"
    """poisson; gamma or lognormal gaps with coefficient of variation `cv`; mmpp: 2-state Markov-modulated Poisson."""
    cv: float = Field(default=1.0, gt=0, le=50)
    """Coefficient of variation of the gaps (std/mean) for gamma and lognormal (1 = Poisson-like)."""
    burst_factor: float = Field(default=3.0, gt=1, le=1000)
    """For mmpp: the rate in a burst over the mean rate."""
    high_share: float = Field(default=0.1, gt=0, lt=1)
    """For mmpp: share of time spent in bursts."""
    mean_burst_s: float = Field(default=60.0, gt=0, le=86_400)
    """For mmpp: mean length of a burst, in seconds (exponential)."""

    @model_validator(mode="after")
    def _feasible(self):
        if self.process == "mmpp" and self.burst_factor * self.high_share >= 1:
            raise ValueError(f"burst_factor × high_share = {self.burst_factor * self.high_share:g} must be < 1 "
                             "(the bursts would carry more than the mean rate)")
        return self


class Trace(_Strict):
    """A CSV of arrivals to replay (`sim.ops.traffic` documents the accepted column layouts)."""

    path: str = Field(min_length=1, max_length=1000)
    """CSV file: `timestamp_s,prompt_tokens,output_tokens[,class]`, or an Azure LLM / BurstGPT trace."""
    target_rps: float | None = Field(default=None, gt=0, le=1e6)
    """Time-scale the trace so its mean rate is this many requests/s; empty: as recorded."""
    time_scale: float = Field(default=1.0, gt=0, le=1e6)
    """Multiply the trace's timestamps by this (2 = half the rate); ignored when target_rps is set."""


def _fallback_problems(fallbacks: list[tuple[int, dict]], entry) -> list[Problem]:
    """Fallback edges on plain data: one per component, not from the entry, no cycle."""
    out: list[Problem] = []
    nxt: dict[str, str] = {}
    for n, e in fallbacks:
        src, dst = e.get("from", e.get("from_")), e.get("to")
        if e.get("max_repeats") is not None or e.get("parallel"):
            out.append(Problem(f"flow[{n}].fallback", "a fallback edge cannot also be a back edge or a fan-out branch"))
        if src in nxt:
            out.append(Problem(f"flow[{n}].fallback", f"'{src}' already has a fallback ('{nxt[src]}'); chain fallbacks instead"))
            continue
        if src == entry:
            out.append(Problem(f"flow[{n}].from", f"'{src}' is the entry: nothing calls it, so nothing can fall back; "
                               "put a gateway or load balancer in front"))
        nxt[src] = dst
    for n, e in fallbacks:
        src = e.get("from", e.get("from_"))
        path, cur = [src], nxt.get(src)
        while cur is not None and cur not in path:
            path.append(cur)
            cur = nxt.get(cur)
        if cur is not None and cur == src:
            out.append(Problem(f"flow[{n}].to", "fallback cycle " + " → ".join(path + [src])
                               + "; a fallback must end at a component with none"))
            break
    return out


def _with_fallbacks(reach: set[str], fallbacks: list[tuple[int, dict]], plain: dict) -> set[str]:
    """A fallback target (and what follows it) gets traffic when its primary fails."""
    if not reach:
        return reach
    reach = set(reach)
    changed = True
    while changed:
        changed = False
        for _, e in fallbacks:
            src, dst = e.get("from", e.get("from_")), e.get("to")
            if src in reach and isinstance(dst, str) and dst not in reach:
                reach |= _reachable(dst, plain)
                changed = True
    return reach


def ops_problems(design: "Design") -> list[Problem]:
    """Located errors in a design's operations settings: faults, retries, fallbacks, trace scale."""
    import difflib

    out: list[Problem] = []
    by_id = design.by_id()
    horizon = design.workload.timeline_s
    for n, f in enumerate(design.faults):
        comp = by_id.get(f.component)
        if comp is None:
            m = difflib.get_close_matches(f.component, list(by_id), n=1, cutoff=0.6)
            out.append(Problem(f"faults[{n}].component", f"'{f.component}' is not a component id; expected one of {list(by_id)}",
                               suggestion=m[0] if m else None))
            continue
        if horizon is not None and f.at_s >= horizon:
            out.append(Problem(f"faults[{n}].at_s", f"the fault starts at {f.at_s:g} s, after the {horizon:g} s run "
                               "(workload.timeline_s) ends; start it earlier or lengthen the run"))
        kind = comp.kind
        if f.what in ("replica_down", "zone_down") and kind not in _REPLICATED:
            out.append(Problem(f"faults[{n}].what", f"'{f.component}' is a {kind}, which has no replicas to lose; "
                               f"use provider_outage or slow (replicated kinds: {', '.join(sorted(_REPLICATED))})"))
        elif f.what == "provider_outage" and kind not in _EXTERNAL:
            out.append(Problem(f"faults[{n}].what", f"'{f.component}' is a {kind} you run yourself; use replica_down or "
                               f"zone_down (provider_outage is for {', '.join(sorted(_EXTERNAL))})"))
        elif f.what == "slow" and kind not in _REPLICATED | _EXTERNAL:
            out.append(Problem(f"faults[{n}].what", f"slow is not modelled for a {kind}; it is for "
                               f"{', '.join(sorted(_REPLICATED | _EXTERNAL))} (slow the component in front)"))
        elif f.what == "zone_down" and f.zone >= getattr(comp, "zones", 1):
            out.append(Problem(f"faults[{n}].zone", f"zone {f.zone} does not exist: '{f.component}' has "
                               f"{getattr(comp, 'zones', 1)} zone(s), numbered from 0"))
    for n, c in enumerate(design.components):
        if c.failures is not None and c.kind not in _REPLICATED | _EXTERNAL:
            out.append(Problem(f"components[{n}].failures", f"random failures are not modelled for a {c.kind}; "
                               f"they are for {', '.join(sorted(_REPLICATED | _EXTERNAL))}"))
        if getattr(c, "autoscale", None) is not None and c.kind not in _REPLICATED:
            out.append(Problem(f"components[{n}].autoscale", f"autoscaling is not modelled for a {c.kind}; "
                               f"it is for {', '.join(sorted(_REPLICATED))}"))
    joins = {design.join_of(c.id) for c in design.components if design.is_fanout(c.id)}
    for n, e in enumerate(design.flow):
        if e.retry is not None and e.is_loop:
            out.append(Problem(f"flow[{n}].retry", "retries on a back edge are not modelled; put them on the forward edge into the step"))
        elif e.retry is not None and e.to in joins:
            out.append(Problem(f"flow[{n}].retry", f"'{e.to}' is where a fan-out joins; retries into a join are not modelled"))
    tr = design.workload.trace
    if tr is not None and design.workload.concurrent_users is not None:
        out.append(Problem("workload.trace", "a trace replays open-loop arrivals; remove concurrent_users"))
    return out


Workload.model_rebuild()
Edge.model_rebuild()
Design.model_rebuild()
