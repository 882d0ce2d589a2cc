"""Diagrams: a `Design` as Graphviz DOT text, optionally annotated with simulated traffic.

Components become nodes shaped by kind and filled with their tier's colour (edge/API,
retrieval, model serving, data, offline — one scheme, named in a legend); the flow alone
sets the layout, so tiers never reorder it. Edges carry branch probabilities,
fan-outs are bold and marked "fan-out", back edges (agent loops) are dashed, and a cache's
outgoing edges are its misses. With an `Annotation` (from a simulation or the analytic
estimate) edges show traffic, nodes show utilisation and the bottleneck is drawn in red.

Usage::

    >>> from designs.io import load_design
    >>> from designs.diagram import Annotation, to_dot
    >>> dot = to_dot(load_design("designs/library/llm_serving.yaml"))
    >>> dot = to_dot(design, Annotation(node_rps={"llm": 120.0}, utilization={"llm": 0.93},
    ...                                 bottleneck="llm"))

The DOT is written here by hand, every string through `quote`, so labels containing quotes,
backslashes, ``<``, ``&`` or newlines stay inert. Rendering to SVG/PNG is `designs.render`.
The output is deterministic: the same design and annotation give the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from components.catalogue import KINDS, TIERS, ComponentBase

from .model import Design, Edge

__all__ = ["Annotation", "to_dot", "quote", "node_label", "sizing", "KIND_STYLE", "TIER_COLOUR", "CLIENT"]

CLIENT = "(client)"
"""Node id of the request source; parentheses cannot occur in a component id, so no clash."""

# One colour scheme, everywhere (Builder, Capacity, thumbnails): the fill says the tier, the
# shape says the kind. A legend in every full diagram names the colours.
TIER_COLOUR: dict[str, str] = {
    "edge": "#e1d5e7",       # violet: gateways, load balancers, services, queues
    "retrieval": "#d0f0f0",  # teal: embedders, vector/keyword search, rerankers
    "model": "#b9e0a5",      # green: LLM servers, APIs, judges
    "data": "#cfe2f3",       # blue: databases, caches, object storage
    "offline": "#fff2cc",    # yellow: batch stages, training, monitoring
}
_OTHER_TIER = "#eeeeee"

# kind → Graphviz shape. Data stores are cylinders, GPU model servers 3-D boxes or hexagons,
# offline work note-like shapes; the test suite checks every kind has an entry.
_SHAPES: dict[str, str] = {
    "service": "box", "load_balancer": "invtrapezium", "api_gateway": "pentagon", "cache": "cylinder",
    "queue": "cds", "database": "cylinder", "object_storage": "folder", "llm_server": "box3d",
    "llm_api": "septagon", "embedder": "hexagon", "vector_db": "cylinder", "keyword_search": "cylinder",
    "reranker": "hexagon", "guardrail": "octagon", "tool": "component", "judge": "diamond",
    "batch_stage": "parallelogram", "training_job": "tab", "monitoring": "note",
}
KIND_STYLE: dict[str, tuple[str, str]] = {
    k: (_SHAPES.get(k, "box"), TIER_COLOUR.get(cls.tier, _OTHER_TIER)) for k, cls in KINDS.items()
}
"""kind → (shape, fill): the fill is the kind's tier colour."""

# Utilisation bands: below 70 % is comfortable, 70–90 % is where queueing delay climbs
# steeply (M/M/1 waiting ∝ ρ/(1−ρ): 2.3× service time at 0.7, 9× at 0.9), above is danger.
# Drawn as the node's border, so the fill keeps the tier colour of the Builder's diagram.
_UTIL_BANDS = ((0.7, "#2e7d32"), (0.9, "#ef6c00"), (float("inf"), "#c62828"))
_UTIL_NAMES = ("ρ < 0.7", "0.7 ≤ ρ < 0.9", "ρ ≥ 0.9")
_BOTTLENECK_COLOUR = "#d32f2f"
_FONT = "Helvetica"


@dataclass
class Annotation:
    """Traffic to draw on a diagram: rates in requests/s, utilisation as a fraction (0–1+)."""

    node_rps: dict[str, float] = field(default_factory=dict)
    """Arrival rate at each component id."""
    edge_rps: dict[tuple[str, str], float] = field(default_factory=dict)
    """Rate along each (from, to) edge; (`CLIENT`, entry) labels the arrival edge."""
    utilization: dict[str, float] = field(default_factory=dict)
    """Busy fraction of each component's servers."""
    bottleneck: str | None = None
    """Component id that saturates first; drawn red and bold."""


# --- escaping ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def quote(text: object) -> str:
    """A DOT double-quoted string that renders exactly as `text`.

    Backslashes are doubled (so ``\\N``, ``\\l`` are not Graphviz escapes), quotes escaped,
    ``&`` written as ``&amp;`` (Graphviz decodes entities in plain labels, so a literal
    ``&lt;`` would otherwise render as ``<``), line breaks become centred ``\\n`` lines, and
    other control characters, which XML cannot carry, become spaces. ``<`` and ``>`` are
    harmless inside a quoted (non-HTML) label; the SVG writer escapes them.
    """
    s = str(text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    s = _CONTROL.sub(" ", s)
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
    return '"' + s.replace("\n", "\\n") + '"'


def _attrs(**kw: object) -> str:
    parts = [f"{k}={quote(v)}" for k, v in kw.items() if v is not None]
    return f" [{', '.join(parts)}]" if parts else ""


# --- numbers -----------------------------------------------------------------------------


def _num(x: float) -> str:
    """Compact number: 62000 → 62k, 1e6 → 1M, 83.33 → 83.3, 8 → 8."""
    x = float(x)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    if x == int(x):
        return str(int(x))
    return f"{x:.3g}"


def _pct(p: float) -> str:
    """Probability as a percentage: 0.3 → 30%, 1/3 → 33.3%, 0.005 → 0.5%."""
    return f"{p * 100:.3g}%"


def _ms(dist) -> str:
    return f"{_num(dist.expected())} ms"


def _gpu_short(name: str | None) -> str:
    # "H100-SXM-80GB" → "H100": the family is what a reader needs on a diagram.
    return (name or "CPU").split("-")[0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- labels ------------------------------------------------------------------------------


def sizing(c: ComponentBase) -> str:
    """The one sizing fact a reader wants under a component's name."""
    k = c.kind  # type: ignore[attr-defined]
    if k == "service":
        return f"{c.replicas} × {c.concurrency} conc · {_ms(c.service_time)}"
    if k in ("load_balancer", "api_gateway"):
        return f"{c.replicas} × {_num(c.concurrency)} conc · +{_ms(c.latency)}"
    if k == "cache":
        return f"hit {_pct(c.hit_ratio)} · {_plural(c.replicas, 'node')}"
    if k == "queue":
        depth = f" · max {_num(c.max_depth)}" if c.max_depth else ""
        return f"enqueue {_ms(c.enqueue_latency)}{depth}"
    if k == "database":
        return f"{c.replicas} × {c.concurrency} conn · {_ms(c.query_time)}"
    if k == "object_storage":
        return f"{_ms(c.latency)}/GET · {_num(c.storage_gb)} GB"
    if k == "llm_server":
        return (
            f"{c.model} · {c.gpus_per_replica}×{_gpu_short(c.gpu)} {c.precision.upper()}"
            f" · {_plural(c.replicas, 'replica')}"
        )
    if k in ("llm_api", "judge"):
        parts = [c.provider_model]
        if c.rpm_limit:
            parts.append(f"{_num(c.rpm_limit)} rpm")
        if c.tpm_limit:
            parts.append(f"{_num(c.tpm_limit)} tpm")
        return " · ".join(parts)
    if k == "embedder":
        return f"{c.replicas} × {_gpu_short(c.gpu)} · {_num(c.tokens_per_s_per_replica)} tok/s each"
    if k == "reranker":
        return f"{c.replicas} × {_gpu_short(c.gpu)} · {_num(c.pairs_per_request.expected())} pairs/req"
    if k == "vector_db":
        return f"{c.replicas} × {c.concurrency} conc · {_num(c.vectors)} vectors"
    if k == "keyword_search":
        return f"{c.replicas} × {c.concurrency} conc · {_ms(c.query_time)}"
    if k == "guardrail":
        return f"{c.replicas} × {c.concurrency} conc · blocks {_pct(c.block_ratio)}"
    if k == "tool":
        cap = f" · ≤{_num(c.max_concurrency)} in flight" if c.max_concurrency else ""
        return f"{_ms(c.latency)}{cap}"
    if k == "batch_stage":
        return f"{_plural(c.workers, 'worker')} × {_num(c.items_per_s_per_worker)} items/s"
    if k == "training_job":
        return f"{c.model} · {c.method} · {c.gpus}×{_gpu_short(c.gpu)} · {_num(c.tokens)} tokens"
    if k == "monitoring":
        return f"${_num(c.monthly_usd)}/month"
    return ""  # a kind added to the catalogue without a sizing line yet


def node_label(c: ComponentBase) -> str:
    """Display name, then the kind (with the id when a label hides it), then the sizing fact."""
    kind = c.kind  # type: ignore[attr-defined]
    second = f"{c.id} · {kind}" if c.label and c.label != c.id and c.id != kind else kind
    return "\n".join(x for x in (c.display_name, second, sizing(c)) if x)


def _util_colour(rho: float) -> str:
    for limit, colour in _UTIL_BANDS:
        if rho < limit:
            return colour
    return _UTIL_BANDS[-1][1]


def _rps(x: float) -> str:
    return f"{_num(x)} rps" if x >= 10 else f"{x:.3g} rps"


# --- the graph ---------------------------------------------------------------------------


def _node_line(c: ComponentBase, reachable: set[str], ann: Annotation | None) -> str:
    kind = c.kind  # type: ignore[attr-defined]
    shape, fill = KIND_STYLE.get(kind, ("box", "#ffffff"))
    label = node_label(c)
    styles = ["filled"] + (["rounded"] if shape == "box" else [])
    attrs: dict[str, object] = {"shape": shape}
    if kind != "monitoring" and c.id not in reachable:
        styles.append("dashed")
        label += "\n(unreachable)"
    if ann is not None:
        extra = []
        if c.id in ann.utilization:
            rho = ann.utilization[c.id]
            extra.append(f"ρ {rho:.2f}")
            attrs.update(color=_util_colour(rho), penwidth="2.5")
        if c.id in ann.node_rps:
            extra.append(_rps(ann.node_rps[c.id]))
        if extra:
            label += "\n" + " · ".join(extra)
        if ann.bottleneck == c.id:
            label += "\nbottleneck"
            styles.append("bold")
            attrs.update(color=_BOTTLENECK_COLOUR, fontcolor=_BOTTLENECK_COLOUR, penwidth="3")
    attrs.update(label=label, style=",".join(styles), fillcolor=fill)
    if c.notes:
        attrs["tooltip"] = c.notes if len(c.notes) <= 500 else c.notes[:497] + "..."
    return f"    {quote(c.id)}{_attrs(**attrs)};"


def _edge_line(e: Edge, kinds: dict[str, str], ann: Annotation | None) -> str:
    parts: list[str] = []
    attrs: dict[str, object] = {}
    src_kind = kinds.get(e.from_)
    if e.fallback:  # taken only when `from` fails (issue 13): dotted, beside it
        parts.append("on failure")
        attrs.update(style="dotted", constraint="false")
    elif e.is_loop:
        # Back edges must not pull the target rank forward, or loops flip the layout.
        parts.append(f"≤{e.max_repeats}× @{_pct(e.p)}")
        attrs.update(style="dashed", constraint="false")
    elif e.parallel:
        parts.append("fan-out")
        attrs.update(style="bold")
    else:
        if src_kind == "cache":
            parts.append("miss")
        elif src_kind == "queue":
            parts.append("async")
        if e.p < 1:
            parts.append(_pct(e.p))
    if e.label:
        parts.append(e.label)
    if ann is not None and (e.from_, e.to) in ann.edge_rps:
        parts.append(_rps(ann.edge_rps[(e.from_, e.to)]))
    if ann is not None and ann.bottleneck is not None and e.to == ann.bottleneck:
        attrs.update(color=_BOTTLENECK_COLOUR)
    if parts:
        attrs["label"] = " · ".join(parts)
    return f"  {quote(e.from_)} -> {quote(e.to)}{_attrs(**attrs)};"


def _client_label(design: Design) -> str:
    w = design.workload
    if w.closed_loop:
        return f"{_num(w.concurrent_users)} users"
    text = f"{_rps(w.peak_rps)} peak"
    if w.batch is not None:
        text += f" · {_num(w.batch.items_per_run)} items/run"
    return text


def to_dot(design: Design, annotate: Annotation | None = None, *, thumbnail: bool = False) -> str:
    """DOT text of the design: styled nodes, labelled edges, a legend (see module doc).

    ``thumbnail=True`` draws the shape of the design for a small card: one short name per
    node in a large font, no sizing lines, edge labels or tier titles (shrunken text is
    unreadable at 180 px; the shape and the colours are what a card can show).
    """
    if thumbnail:
        return _thumbnail(design)
    reachable = design.reachable()
    kinds = {c.id: c.kind for c in design.components}  # type: ignore[attr-defined]
    lines = [
        f"digraph {quote(design.name)} {{",
        f"  graph{_attrs(label=design.name, labelloc='t', fontname=_FONT, fontsize='16', rankdir='TB', nodesep='0.35', ranksep='0.5')};",
        f"  node{_attrs(fontname=_FONT, fontsize='11', penwidth='1.2')};",
        f"  edge{_attrs(fontname=_FONT, fontsize='10', color='#555555')};",
        f"  {quote(CLIENT)}{_attrs(label='clients', shape='oval', style='filled', fillcolor='#ffffff')};",
    ]
    # No tier clusters: they reorder the flow (the agent loop's edges tangled). The flow sets
    # the layout, top to bottom; the tier is the fill colour, named in the legend.
    lines.extend(_node_line(c, reachable, annotate) for c in design.components)
    lines.extend(_legend(design, annotate))
    client_parts = [_client_label(design)]
    if annotate is not None and (CLIENT, design.entry) in annotate.edge_rps:
        client_parts = [_rps(annotate.edge_rps[(CLIENT, design.entry)])]
    lines.append(f"  {quote(CLIENT)} -> {quote(design.entry)}{_attrs(label=' · '.join(client_parts), style='bold')};")
    lines.extend(_edge_line(e, kinds, annotate) for e in design.flow)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _legend(design: Design, ann: Annotation | None) -> list[str]:
    """A small cluster naming the tier colours present (and the utilisation borders)."""
    present = [t for t in TIERS if any(type(c).tier == t for c in design.components)]
    items = [(f"legend:{t}", TIERS[t], {"fillcolor": TIER_COLOUR.get(t, _OTHER_TIER), "style": "filled"}) for t in present]
    if ann is not None and ann.utilization:
        items += [(f"legend:util{i}", name, {"fillcolor": "#ffffff", "style": "filled", "color": colour, "penwidth": "2.5"})
                  for i, ((_, colour), name) in enumerate(zip(_UTIL_BANDS, _UTIL_NAMES))]
    if not items:
        return []
    out = ["  subgraph \"cluster_legend\" {",
           f"    graph{_attrs(label='legend', style='dashed', color='#bbbbbb', fontsize='10', fontname=_FONT)};"]
    for nid, label, extra in items:
        out.append(f"    {quote(nid)}{_attrs(label=label, shape='box', fontsize='9', height='0.2', margin='0.05,0.02', **extra)};")
    # A row: invisible edges in order keep the legend compact and off the flow's ranks.
    for (a, _, _), (b, _, _) in zip(items, items[1:]):
        out.append(f"    {quote(a)} -> {quote(b)} [style=\"invis\"];")
    out.append(f"    {{rank=same; {'; '.join(quote(n) for n, _, _ in items)}}}")
    out.append("  }")
    return out


def _thumbnail(design: Design) -> str:
    lines = [
        f"digraph {quote(design.name)} {{",
        f"  graph{_attrs(rankdir='LR', nodesep='0.25', ranksep='0.35', pad='0.1', bgcolor='transparent')};",
        f"  node{_attrs(fontname=_FONT, fontsize='20', penwidth='1.5', margin='0.08,0.04')};",
        f"  edge{_attrs(color='#777777', penwidth='1.5', arrowsize='0.8')};",
        f"  {quote(CLIENT)}{_attrs(label='', shape='circle', width='0.25', style='filled', fillcolor='#555555')};",
    ]
    for c in design.components:
        shape, fill = KIND_STYLE.get(c.kind, ("box", "#ffffff"))  # type: ignore[attr-defined]
        name = c.id if len(c.id) <= 14 else c.id[:13] + "…"
        lines.append(f"  {quote(c.id)}{_attrs(label=name, shape=shape, style='filled', fillcolor=fill)};")
    lines.append(f"  {quote(CLIENT)} -> {quote(design.entry)};")
    for e in design.flow:
        attrs = {"style": "dashed", "constraint": "false"} if e.is_loop else {"style": "bold"} if e.parallel else {}
        lines.append(f"  {quote(e.from_)} -> {quote(e.to)}{_attrs(**attrs)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
