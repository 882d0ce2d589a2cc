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
        if e.get("max_repeats") is not None:
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
    search: SearchSpace | None = None
    """Optional: what `sdw size` may vary (designs/space.py); empty takes the default space."""

    @model_validator(mode="after")
    def _graph(self):
        problems = [p for p in self.graph_findings() if p.severity == "error"]
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
        return [e for e in self.flow if e.from_ == cid and not e.is_loop]

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
        reach = [self._distances(b) for b in branches]
        common = set(reach[0]).intersection(*reach[1:]) if reach else set()
        if not common:
            return None
        return min(common, key=lambda n: (max(r[n] for r in reach), n))

    def _distances(self, start: str) -> dict[str, int]:
        dist = {start: 0}
        frontier = [start]
        while frontier:
            nxt = []
            for u in frontier:
                for e in self.out_edges(u):
                    if e.to not in dist:
                        dist[e.to] = dist[u] + 1
                        nxt.append(e.to)
            frontier = nxt
        return dist

    def reachable(self) -> set[str]:
        return set(self._distances(self.entry))
