"""Design-doc export: Markdown (diagram as an SVG beside it) and self-contained HTML.

Usage::

    >>> from review.doc import render_doc, render_html, Variant, annotation_for
    >>> md = render_doc(design, est, result, findings, diagram="doc.svg")   # '![diagram](doc.svg)'
    >>> page = render_html(design, est, result, findings, svg=svg_text)     # SVG inline

Both views build the same list of blocks (headings, paragraphs, bullets, tables, image) and
only differ in how they print them: every piece of text in HTML goes through `html.escape`,
and every piece of user text in Markdown through `md_escape` (entities for `<>&`, backslashes
for link and attribute punctuation), so nothing a user typed (names, labels, notes,
assumptions) can inject markup in either — not even once the Markdown is rendered. The caller
writes the files; nothing here touches the disk.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from designs.diagram import Annotation, sizing, to_dot
from designs.model import Design
from sim import Estimate, RunResult

from .lint import slo_checks

__all__ = ["Variant", "render_doc", "render_html", "doc_blocks", "annotation_for", "sanitize_svg", "verdict_line",
           "md_escape"]


@dataclass(frozen=True)
class Variant:
    """An alternative that was compared: its design and figures (result optional)."""

    name: str
    design: Design
    estimate: Estimate
    result: RunResult | None = None


# Blocks: ("h", level, text) ("p", text) ("ul", [text]) ("table", headers, rows) ("img", alt, src)
Block = tuple


def _n(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if abs(x) < 5e-4:
        x = 0.0  # Erlang-C waits of 1e-36 ms read as noise; they are zero at this precision
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:,.1f}"
    else:
        s = f"{x:.3g}"
    return f"{s} {unit}".strip()


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _checks(est: Estimate, result: RunResult | None):
    return slo_checks(est, result)


def verdict_line(est: Estimate, result: RunResult | None) -> str:
    """'SLO verdict: MET (simulation) — 3 of 3 targets met' and the like."""
    checks, source = _checks(est, result)
    if not checks:
        return f"SLO verdict: NO TARGETS ({source}) — the design states no SLOs"
    met = sum(c.met is True for c in checks)
    failed = sum(c.met is False for c in checks)
    unknown = len(checks) - met - failed
    word = "NOT MET" if failed else ("MET" if not unknown else ("UNKNOWN" if not met else "MET where measured"))
    tail = f", {unknown} not measurable" if unknown else ""
    return f"SLO verdict: {word} ({source}) — {met} of {len(checks)} targets met{tail}"


def annotation_for(design: Design, est: Estimate, result: RunResult | None = None) -> Annotation:
    """Traffic and utilisation to draw on the diagram (simulation when given, else analytic)."""
    node_rps = {cid: st.arrival_rps for cid, st in est.stations.items()}
    util = {cid: st.utilization for cid, st in est.stations.items()}
    if result is not None:
        util.update({cid: st.utilization for cid, st in result.components.items()})
    bott = (result.bottleneck if result is not None and result.bottleneck else est.bottleneck)
    return Annotation(node_rps=node_rps, utilization=util, bottleneck=bott)


def doc_blocks(
    design: Design,
    estimate: Estimate,
    result: RunResult | None = None,
    findings: Iterable[Any] = (),
    variants: Sequence[Variant] = (),
    *,
    diagram: str = "diagram.svg",
    esc: Callable[[str], str] = str,
) -> list[Block]:
    """The document as blocks; `esc` is applied to every piece of user text (names, labels,
    notes, assumptions, lint messages) — Markdown passes `md_escape`, HTML escapes everything."""
    est = estimate
    findings = list(findings)
    w, slo = design.workload, design.slo
    b: list[Block] = [("h", 1, f"Design doc: {esc(design.name)}")]
    b.append(("p", verdict_line(est, result)))

    # 1. Problem and requirements
    b.append(("h", 2, "Problem and requirements"))
    b.append(("p", esc(design.problem) if design.problem else "(no problem statement given)"))
    req = []
    if w.batch is not None:
        req.append(("Items per run", _n(w.batch.items_per_run), "workload.batch"))
        req.append(("Window", f"{w.batch.window_hours:g} h, {w.batch.runs_per_week:g} run(s)/week", "workload.batch"))
    if w.arrival_rps is not None:
        req.append(("Arrival rate", _n(w.arrival_rps, "requests/s"), "workload.arrival_rps"))
    elif w.batch is None:
        req.append(("Requests per day", f"{w.requests_per_day:,.0f}", "workload"))
        req.append(("Peak / average", f"{w.peak_to_average:g}×", "workload"))
        req.append(("Peak rate", f"{w.requests_per_day:,.0f} ÷ 86,400 s × {w.peak_to_average:g} = {_n(w.peak_rps, 'requests/s')}", "derived"))
    for c in w.request_classes():
        req.append((f"Class '{esc(c.name)}'", f"{c.share:.0%} of requests; {c.prompt_tokens.expected():,.0f} prompt / {c.output_tokens.expected():,.0f} output tokens (mean)", "workload.classes"))
    for key, label in (("latency_p95_ms", "Latency p95"), ("latency_p99_ms", "Latency p99"), ("ttft_p95_ms", "TTFT p95"),
                       ("tpot_p95_ms", "TPOT p95"), ("availability", "Availability"), ("daily_budget_usd", "Budget")):
        v = getattr(slo, key)
        if v is not None:
            val = f"${v:,.0f}/day" if key == "daily_budget_usd" else (f"{v:g}" if key == "availability" else f"{v:,.0f} ms")
            req.append((label, val, "slo"))
    b.append(("table", ["Requirement", "Value", "From"], req))

    # 2. Assumptions with sources
    b.append(("h", 2, "Assumptions"))
    b.append(("ul", [esc(a) for a in design.assumptions] or ["(none written down — every number below then rests on catalogue defaults)"]))
    sources = []
    for line in est.cost_breakdown:
        if line.source:
            sources.append(f"{line.id} price: {line.rule} — source: {line.source}")
    for c in design.components:
        if c.kind == "llm_server":
            try:
                from components.hardware import get_gpu, get_model

                g, m = get_gpu(c.gpu), get_model(c.model)
                sources.append(f"{c.gpu}: {g.hbm_gb:g} GB HBM, {g.hbm_bandwidth_tbps:g} TB/s, {g.bf16_tflops:g} BF16 TFLOPS — source: {g.spec_source}")
                sources.append(f"{c.model}: {m.params_total_b:g} B parameters, {m.layers} layers, {m.kv_heads} KV heads — source: {m.source}")
            except Exception:  # noqa: BLE001 - unknown names are the validator's to report
                pass
    if sources:
        b.append(("p", "Reference data behind the figures:"))
        b.append(("ul", sources))

    # 3. Architecture
    b.append(("h", 2, "Architecture"))
    b.append(("img", f"Diagram of {esc(design.name)}", diagram))
    rows = [(c.id, c.kind, esc(c.display_name), sizing(c)) for c in design.components]
    b.append(("table", ["Component", "Kind", "Name", "Sizing"], rows))
    flow = [f"{e.from_} → {e.to}" + (f" (p = {e.p:g})" if e.p != 1 else "") + (" [parallel]" if e.parallel else "")
            + (f" [loop ≤ {e.max_repeats}]" if e.max_repeats else "") for e in design.flow]
    if flow:
        b.append(("p", f"Flow from entry '{design.entry}':"))
        b.append(("ul", flow))

    # 4. Back-of-envelope (analytic model)
    b.append(("h", 2, "Back-of-envelope estimate (analytic model)"))
    b.append(("p", f"At {_n(est.arrival_rps, 'requests/s')} peak: mean latency {_n(est.latency_ms_mean, 'ms')}, "
                   f"p95 ≈ {_n(est.latency_ms_p95_approx, 'ms')}, sustainable throughput {_n(est.max_throughput_rps, 'requests/s')}, "
                   f"bottleneck {est.bottleneck or '—'}, {'stable' if est.stable else 'UNSTABLE'}."))
    rows = []
    for cid, st in est.stations.items():
        rows.append((cid, st.kind, _n(st.arrival_rps), "—" if st.servers is None else str(st.servers), _n(st.service_ms_mean),
                     _pct(st.utilization), _n(st.wait_ms_mean), _n(st.response_ms_mean),
                     "—" if st.replicas_needed is None else str(st.replicas_needed), st.formula))
    b.append(("table", ["Component", "Kind", "Arrivals/s", "Servers", "Service ms", "Utilisation", "Wait ms", "Response ms", "Replicas needed", "Formula"], rows))
    for cid, le in est.llm.items():
        b.append(("p", f"LLM '{cid}': {le.weights_gb:,.1f} GB weights, KV capacity {le.kv_capacity_tokens:,.0f} tokens/replica, "
                       f"{le.max_concurrent_seqs} concurrent sequences, decode step {_n(le.decode_step_ms, 'ms')}, "
                       f"TTFT ≈ {_n(le.ttft_ms_estimate, 'ms')}, TPOT ≈ {_n(le.tpot_ms_estimate, 'ms')}, {le.bound}-bound; "
                       f"{le.replicas_needed} replicas / {le.gpus_needed} GPUs needed."))
        if le.explanation:
            b.append(("ul", list(le.explanation)))
    for cid, r in (getattr(est, "retrieval", None) or {}).items():
        b.append(("p", f"Vector index '{cid}': {r.index_type}, {r.vectors:,} vectors × {r.dimensions} ({r.precision}) in "
                       f"{r.shards} shard(s) × {r.replicas} replica(s); recall@{r.top_k} {r.recall_at_k:.3f}"
                       f"{f' (target {r.recall_target:g})' if r.recall_target else ''}, {_n(r.query_ms_mean, 'ms')} per query, "
                       f"{r.ram_needed_gb_per_node:,.1f} of {r.node_ram_gb:g} GB per node, build {r.build_hours:.2g} h, "
                       f"re-embed {r.reembed_hours:.3g} h."))
        b.append(("ul", list(r.explanation)))
    for cid, e in (getattr(est, "evaluation", None) or {}).items():
        b.append(("p", f"Eval plan '{cid}': {e.cases:,} {e.outcome} cases per run"
                       + (f"; {(e.cases_needed_with_judge or e.cases_needed):,} needed for a {e.regression_points:g}-point drop "
                          f"at {e.power:.0%} power" if e.cases_needed else "")
                       + (f"; judge–human agreement {e.human_agreement:g}" if e.human_agreement is not None else "; judge not validated")
                       + (f"; ${e.run_cost_usd:,.0f} per run" if e.run_cost_usd is not None else "") + "."))
        b.append(("ul", list(e.explanation)))
    if est.unstable:
        b.append(("ul", [f"Unstable: {u}" for u in est.unstable]))
    if est.pipeline is not None:
        p = est.pipeline
        b.append(("p", f"Pipeline: {p.summary}; critical path {' → '.join(p.critical_path)}."))

    # 5. Simulation
    b.append(("h", 2, "Simulation results"))
    if result is None:
        b.append(("p", "Not simulated for this document (analytic figures only)."))
    elif result.pipeline is not None:
        p = result.pipeline
        b.append(("p", f"Pipeline run (deterministic stage model, no sampling): {p.summary}; "
                       f"{'fits' if p.fits else 'DOES NOT FIT'} its {p.window_h:g} h window; critical path {' → '.join(p.critical_path)}."))
        b.append(("table", ["Stage", "Kind", "Start h", "Duration h", "Items in", "Items out", "GPU-hours", "USD", "Detail"],
                  [(st.id, st.kind, _n(st.start_h), _n(st.duration_h), _n(st.items_in), _n(st.items_out), _n(st.gpu_hours),
                    f"${st.cost_usd:,.2f}", st.detail) for st in p.stages]))
    else:
        r = result
        b.append(("p", f"{r.simulated_requests:,} requests simulated at {_n(r.arrival_rps, 'requests/s')} (seed {r.seed}, "
                       f"{r.ci_method or f'{r.replications} batches'}), stopped by {r.stopped_by}"
                       + (f", p95 CI half-width {r.precision_achieved:.1%}" if r.precision_achieved is not None else "")
                       + f"; {r.completed_requests:,} completed, {r.dropped_requests:,} dropped." + (" PARTIAL run." if r.partial else "")))
        lat = [("Latency (ms)", r.latency_ms, r.latency_ms_ci95)]
        if r.ttft_ms is not None:
            lat.append(("TTFT (ms)", r.ttft_ms, r.ttft_ms_ci95))
        if r.tpot_ms is not None:
            lat.append(("TPOT (ms)", r.tpot_ms, r.tpot_ms_ci95))
        rows = []
        for name, pc, ci in lat:
            for stat in ("mean", "p50", "p90", "p95", "p99"):
                v = getattr(pc, stat)
                lo_hi = getattr(ci, stat) if ci is not None else None
                rows.append((name, stat, _n(v), f"[{_n(lo_hi[0])}, {_n(lo_hi[1])}]" if lo_hi else "—"))
        b.append(("table", ["Metric", "Statistic", "Value", "95 % CI"], rows))
        if r.littles_law is not None:
            ll = r.littles_law
            b.append(("p", f"Little's law: L = {ll.mean_in_system:,.3g}, λW = {ll.throughput_x_latency:,.3g} (error {ll.rel_error:.2%}, {'ok' if ll.ok else 'CHECK'})."))
        rows = [(cid, st.kind, _pct(st.utilization), _n(st.mean_queue_len), _n(st.wait_ms_p95), _n(st.throughput_rps), str(st.dropped))
                for cid, st in r.components.items()]
        b.append(("table", ["Component", "Kind", "Utilisation", "Mean queue", "Wait p95 ms", "Throughput/s", "Dropped"], rows))
    checks, source = _checks(est, result)
    b.append(("h", 3, "SLO verdict"))
    b.append(("p", verdict_line(est, result)))
    if checks:
        b.append(("table", ["Metric", "Target", "Value", "Met", "Detail"],
                  [(c.metric, _n(c.target), _n(c.value), {True: "yes", False: "NO", None: "unknown"}[c.met], c.detail) for c in checks]))

    # 6. Cost
    b.append(("h", 2, "Cost breakdown"))
    rec = result if result is not None else est
    lines = rec.cost_breakdown or est.cost_breakdown
    rows = [(l.id, l.kind, f"${l.usd_per_day:,.2f}", l.rule, l.source) for l in sorted(lines, key=lambda l: -l.usd_per_day)]
    rows.append(("total", "", f"${rec.cost_per_day_usd:,.2f}", "per day", ""))
    b.append(("table", ["Component", "Kind", "USD/day", "Rule", "Source"], rows))
    per1k = rec.cost_per_1k_requests_usd
    budget = slo.daily_budget_usd
    b.append(("p", f"Cost: ${rec.cost_per_day_usd:,.2f}/day" + (f", ${per1k:.4g} per 1k requests" if per1k else "")
                   + (f"; budget ${budget:,.0f}/day — {'within' if rec.cost_per_day_usd <= budget else 'OVER'} budget" if budget else "; no budget stated") + "."))

    # 7. Bottlenecks and scaling plan
    b.append(("h", 2, "Bottlenecks and scaling plan"))
    plan = []
    bott = (result.bottleneck if result is not None and result.bottleneck else est.bottleneck)
    pipe = (result.pipeline if result is not None and result.pipeline is not None else est.pipeline)
    if pipe is not None and pipe.stages:
        longest = max(pipe.stages, key=lambda st: st.duration_h)
        plan.append(f"Longest stage: '{longest.id}' ({longest.duration_h:,.2f} h of the {pipe.duration_h:,.2f} h critical path, "
                    f"window {pipe.window_h:g} h); more {'GPUs' if longest.gpu_hours else 'workers'} there shorten the run first.")
        bott = None
    if bott:
        u = est.stations[bott].utilization if bott in est.stations else None
        plan.append(f"Bottleneck: '{bott}'" + (f" at {u:.0%} utilisation at peak" if u is not None else "") + ".")
    for cid, st in est.stations.items():
        if st.utilization <= 0:
            continue
        have = getattr(design.component(cid), "replicas", None) if cid in design.by_id() else None
        at2 = st.utilization * 2
        if st.replicas_needed and have and st.replicas_needed > have:
            plan.append(f"'{cid}': {have} replicas now, {st.replicas_needed} needed for ≤ 80 % at peak.")
        elif at2 >= 0.8 and have:
            need2 = max(have, int(-(-have * at2 // 0.8)))
            plan.append(f"'{cid}': {st.utilization:.0%} now, {at2:.0%} at 2× the peak — scale to about {need2} replicas before traffic doubles.")
    if pipe is None:
        plan.append("Autoscale on queue depth (not CPU/GPU utilisation) with headroom for one replica loss per zone.")
    else:
        plan.append(f"Growth: the run scales with items per run; at 2× the data the critical path is about {2 * pipe.duration_h:,.1f} h "
                    f"against the {pipe.window_h:g} h window.")
    b.append(("ul", plan))

    # 8. Failure modes (lint)
    b.append(("h", 2, "Failure modes and risks"))
    if findings:
        b.append(("table", ["Severity", "Rule", "Component", "Finding", "Mitigation"],
                  [(f.severity, f.rule, esc(f.component or "—"), esc(f.message), esc(f.fix or "")) for f in findings]))
    else:
        b.append(("p", "The design lint reports no findings."))

    # 9. Alternatives considered
    b.append(("h", 2, "Alternatives considered"))
    if variants:
        rows = []
        for v in [Variant(design.name + " (this design)", design, est, result), *variants]:
            rr = v.result
            p95 = rr.latency_ms.p95 if rr is not None else v.estimate.latency_ms_p95_approx
            cost = rr.cost_per_day_usd if rr is not None else v.estimate.cost_per_day_usd
            rows.append((esc(v.name), _n(p95, "ms"), f"${cost:,.0f}", (rr.bottleneck if rr is not None else v.estimate.bottleneck) or "—",
                         verdict_line(v.estimate, rr).split(" — ")[0].replace("SLO verdict: ", "")))
        b.append(("table", ["Variant", "p95", "USD/day", "Bottleneck", "SLOs"], rows))
    else:
        b.append(("p", "No variants were compared for this document."))
    if design.notes:
        b.append(("h", 3, "Notes and trade-offs"))
        b.extend(("p", esc(para.strip())) for para in design.notes.split("\n\n") if para.strip())

    # 10. Open questions
    b.append(("h", 2, "Open questions"))
    qs = [f"{c.metric} could not be evaluated: {c.detail or 'no value'}" for c in checks if c.met is None]
    qs += [f"{esc(f.message)} — accept or fix?" for f in findings if f.severity == "warning"][:5]
    unsourced = [a for a in design.assumptions if "source" not in a.lower() and "assumption" not in a.lower()]
    qs += [f"Confirm: {esc(a)}" for a in unsourced[:3]]
    if slo.daily_budget_usd is None:
        qs.append("What is the budget per day?")
    if not any(getattr(slo, k) is not None for k in ("latency_p95_ms", "ttft_p95_ms", "latency_p99_ms")) and w.batch is None:
        qs.append("Which latency target (TTFT or end to end, which percentile) does the product need?")
    b.append(("ul", qs or ["None recorded."]))
    return b


# --- printers ----------------------------------------------------------------------------------


# User text in Markdown: a renderer passes raw HTML through and turns [x](javascript:…) into
# a link and {: onclick=…} into attributes (attr_list), so HTML's three characters become
# entities and the link, attribute and code punctuation is backslash-escaped. Emphasis (`*`,
# `_`) is left alone: it cannot run anything, and ids like `llm_server` stay readable.
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "`": "\\`", "[": "\\[", "]": "\\]", "{": "\\{", "}": "\\}",
                             "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": " ", "\x85": " ", "\u2028": " ",
                             "\u2029": " "})


def md_escape(text: str) -> str:
    """`text` as inert Markdown: no HTML, no links or images, no attribute lists.

    >>> md_escape("<script>alert(1)</script> [x](javascript:alert(1))")
    '&lt;script&gt;alert(1)&lt;/script&gt; \\\\[x\\\\](javascript:alert(1))'
    """
    return str(text).translate(_MD_ESCAPES)


def _md_cell(x: Any) -> str:
    # User text in cells is already `md_escape`d (its backslashes doubled there).
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_doc(
    design: Design,
    estimate: Estimate,
    result: RunResult | None = None,
    findings: Iterable[Any] = (),
    variants: Sequence[Variant] = (),
    *,
    diagram: str = "diagram.svg",
) -> str:
    """The design doc as Markdown; `diagram` is the SVG file name the caller writes beside it."""
    out: list[str] = []
    for blk in doc_blocks(design, estimate, result, findings, variants, diagram=diagram, esc=md_escape):
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2].replace("\n", " "))
        elif kind == "p":
            out.append(blk[1])
        elif kind == "ul":
            out.append("\n".join("- " + str(x).replace("\n", " ") for x in blk[1]))
        elif kind == "table":
            head, rows = blk[1], blk[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![diagram]({blk[2]})")
    return "\n\n".join(out) + "\n"


_SVG_DROP = (
    re.compile(r"<\?xml.*?\?>", re.S),
    re.compile(r"<!DOCTYPE.*?>", re.S | re.I),
    re.compile(r"<script\b.*?</script\s*>", re.S | re.I),
    re.compile(r"<script\b[^>]*/>", re.I),
    re.compile(r"<foreignObject\b.*?</foreignObject\s*>", re.S | re.I),
)
_SVG_ATTR = re.compile(r"\s(?:on[a-z]+|(?:xlink:)?href)\s*=\s*(\"[^\"]*\"|'[^']*')", re.I)


def sanitize_svg(svg: str) -> str:
    """SVG text safe to inline: no XML prolog, scripts, foreign objects, event handlers or links.

    Graphviz already escapes label text; this is the belt to that pair of braces.
    """
    for pat in _SVG_DROP:
        svg = pat.sub("", svg)
    return _SVG_ATTR.sub("", svg).strip()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
h1{border-bottom:2px solid #333;padding-bottom:.3rem}h2{margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}.diagram svg{max-width:100%;height:auto}code{background:#f3f3f3}
"""


def render_html(
    design: Design,
    estimate: Estimate,
    result: RunResult | None = None,
    findings: Iterable[Any] = (),
    variants: Sequence[Variant] = (),
    *,
    svg: str | None = None,
) -> str:
    """The same doc as one HTML page with the SVG inline; all text HTML-escaped.

    Without `svg` the diagram is rendered here (annotated with the estimate's traffic); when
    no renderer is available the page says so instead of the picture.
    """
    esc = html.escape
    svg_note = "(diagram not rendered)"
    if svg is None:
        try:
            from designs.render import render

            svg = render(to_dot(design, annotation_for(design, estimate, result)), "svg").decode("utf-8")
        except Exception as e:  # noqa: BLE001 - a missing renderer must not lose the document
            svg = None
            svg_note = f"(diagram not rendered: {e})"
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{esc('Design doc: ' + design.name)}</title><style>{_CSS}</style></head><body>"]
    for blk in doc_blocks(design, estimate, result, findings, variants, diagram="diagram.svg"):
        kind = blk[0]
        if kind == "h":
            parts.append(f"<h{blk[1]}>{esc(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            parts.append(f"<p>{esc(blk[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{esc(str(x))}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in blk[1])
            rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in blk[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            if svg:
                parts.append(f"<div class=\"diagram\" role=\"img\" aria-label=\"{esc(blk[1])}\">{sanitize_svg(svg)}</div>")
            else:
                parts.append(f"<p><em>{esc(svg_note)}</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
