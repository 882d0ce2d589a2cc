"""Drills ("interviewer mode"): scripted follow-ups applied to a copy of the design, re-run on
the twin in well under a second, and a stated prediction graded against the result.

Usage::

    >>> from designs.io import load_design
    >>> from review.drills import run_drill, DRILLS
    >>> d = load_design("designs/library/llm_serving.yaml")
    >>> r = run_drill(d, "traffic_x2", prediction="we need about 17 more replicas")
    >>> r.after["replicas_needed:llm"], r.grade.verdict          # doctest: +SKIP
    (33, 'good')

Drills (`DRILLS`): ``traffic_x2`` (peak traffic × 2), ``prompts_x4`` (every prompt × 4),
``switch_70b`` (every self-hosted LLM becomes Llama-3.1-70B, with the tensor parallelism its
weights need), ``lose_replica`` / ``lose_zone`` (a component — the busiest replicated one
unless named — loses one replica / its largest zone), ``provider_down_30min`` (an external
LLM API is out for 30 minutes of the peak hour: requests that need it fail unless a fallback
edge takes them). Each result has the figures before and after (`DRILL_METRICS`: end-to-end
and TTFT p95, per-component utilisation and replicas needed, GPUs, cost, availability) and the
arithmetic in words. ``simulate=True`` also runs the simulation of the changed design.

A prediction is text ("TTFT p95 will roughly double", "we need 3 more replicas", "cost × 2",
"availability 50 %") or a `Prediction`; it is graded like an estimate: the predicted
after-value against the model's, within 1.25× "good" (1.0), within 2× "close" (0.6), else
"off" (0); a predicted change in a count is "good" within ±max(1, 25 %) of the real change, "close"
within ±max(2, 50 %).
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from designs.model import Design

__all__ = ["DRILLS", "Prediction", "DrillGrade", "DrillResult", "apply_drill", "run_drill", "parse_prediction"]

DRILLS: dict[str, str] = {
    "traffic_x2": "Traffic × 2 at peak",
    "prompts_x4": "Prompts × 4",
    "switch_70b": "Switch to the 70B model",
    "lose_replica": "Lose a replica",
    "lose_zone": "Lose a zone",
    "provider_down_30min": "Provider down for 30 minutes",
}
BIG_MODEL = "llama-3.1-70b"
OUTAGE_S, HOUR_S = 1800.0, 3600.0


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prediction(_Rec):
    """What the candidate expects: a metric and its value after, a factor, or a change."""

    metric: str
    """A `DRILL_METRICS` key, e.g. `ttft_p95_ms`, `replicas_needed:llm`, `cost_per_day_usd`."""
    value: float | None = None
    factor: float | None = None
    delta: float | None = None
    text: str = ""


class DrillGrade(_Rec):
    metric: str
    predicted: float | None
    """The predicted after-value (None: nothing to scale or compare — the figure is missing)."""
    actual: float | None
    """The model's after-value (None: unbounded or not on this design)."""
    score: float
    verdict: Literal["good", "close", "off"]
    arithmetic: str


class DrillResult(_Rec):
    drill: str
    title: str
    change: str
    """What was changed on the copy, in words."""
    before: dict[str, float | None]
    after: dict[str, float | None]
    lines: list[str] = Field(default_factory=list)
    """The arithmetic and the headline changes, one sentence each."""
    grade: DrillGrade | None = None
    prediction: Prediction | None = None
    simulated: dict[str, float | None] | None = None
    wall_s: float = 0.0


# --- applying a drill --------------------------------------------------------------------------

def _scale_count(c, k: float):
    data = c.model_dump()
    for key in ("value", "mean", "p95", "low", "high"):
        if key in data and isinstance(data[key], (int, float)):
            data[key] = data[key] * k
    if "values" in data:
        data["values"] = [v * k for v in data["values"]]
    return type(c).model_validate(data)


def _busiest(design: Design, est, kinds=None) -> str | None:
    cands = [(s.utilization, cid) for cid, s in est.stations.items()
             if getattr(design.component(cid), "replicas", 0) >= 1 and s.servers
             and (kinds is None or s.kind in kinds) and s.arrival_rps > 0]
    return max(cands)[1] if cands else None


def apply_drill(design: Design, drill: str, component: str | None = None, est=None) -> tuple[Design, str]:
    """A changed copy of `design` and what was changed (the provider outage is applied by `run_drill`)."""
    from sim import config_problems, estimate

    if drill not in DRILLS:
        raise ValueError(f"unknown drill '{drill}'; expected one of {', '.join(DRILLS)}")
    d = design.model_copy(deep=True)
    wl = d.workload
    if drill == "traffic_x2":
        if wl.arrival_rps is not None:
            wl.arrival_rps *= 2
        else:
            wl.requests_per_day *= 2
        if wl.concurrent_users is not None:
            wl.concurrent_users *= 2
        return d, "peak traffic doubled"
    if drill == "prompts_x4":
        wl.classes = [c.model_copy(update={"prompt_tokens": _scale_count(c.prompt_tokens, 4)}) for c in wl.request_classes()]
        return d, "every request class's prompt tokens × 4"
    if drill == "switch_70b":
        changed = []
        for i, c in enumerate(d.components):
            if c.kind == "llm_server":
                c.model = BIG_MODEL
                while config_problems(d) and c.gpus_per_replica < 8:
                    c.gpus_per_replica *= 2
                changed.append(f"{c.id} → {BIG_MODEL} on {c.gpus_per_replica} GPU(s) per replica")
        if not changed:
            raise ValueError("switch_70b: the design has no llm_server to switch")
        return d, "; ".join(changed)
    est = est if est is not None else estimate(design)
    cid = component or _busiest(design, est)
    if cid is None:
        raise ValueError(f"{drill}: no replicated component to lose")
    comp = d.component(cid)
    r = getattr(comp, "replicas", None)
    if r is None:
        raise ValueError(f"{drill}: '{cid}' has no replicas")
    if drill == "lose_replica":
        lost = 1
    elif drill == "lose_zone":
        lost = math.ceil(r / max(1, getattr(comp, "zones", 1)))
    else:
        return d, ""
    if lost >= r:
        return d, f"{cid}: all {r} replicas lost (zones: {getattr(comp, 'zones', 1)})"
    comp.replicas = r - lost
    return d, f"{cid}: {r} → {r - lost} replicas"


# --- figures -----------------------------------------------------------------------------------

def _figures(design: Design, est) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "latency_p95_ms": _fin(est.latency_ms_p95_approx),
        "cost_per_day_usd": est.cost_per_day_usd,
        "stable": 1.0 if est.stable else 0.0,
        "gpus": float(sum(getattr(c, "gpus", 0) if c.kind in ("llm_server",) else 0 for c in design.components)),
    }
    chk = next((c for c in est.slo if c.metric == "ttft_p95_ms"), None)
    if chk is not None:
        ttft = chk.value  # None when unbounded (an unstable station before the first token)
    else:
        ests = [e.ttft_ms_p95_estimate or e.ttft_ms_estimate for e in est.llm.values()]
        ttft = max(ests) if ests and est.stable else None
    out["ttft_p95_ms"] = _fin(ttft)
    for cid, s in est.stations.items():
        if s.servers and s.arrival_rps > 0:
            out[f"utilization:{cid}"] = s.utilization
            need = est.llm[cid].replicas_needed if cid in est.llm else s.replicas_needed
            if need is not None:
                out[f"replicas_needed:{cid}"] = float(need)
    out["gpus_needed"] = float(sum(e.gpus_needed for e in est.llm.values())) if est.llm else None
    return out


def _fin(x):
    return None if x is None or not math.isfinite(x) else float(x)


# --- predictions -------------------------------------------------------------------------------

_WORDS = {"double": 2.0, "doubles": 2.0, "twice": 2.0, "triple": 3.0, "triples": 3.0, "quadruple": 4.0,
          "half": 0.5, "halve": 0.5, "halves": 0.5, "same": 1.0, "unchanged": 1.0}
_METRIC_WORDS = [
    (r"\bttft\b|time to first token", "ttft_p95_ms"),
    (r"\bavailab", "availability"),
    (r"\bcost|\$|budget|spend", "cost_per_day_usd"),
    (r"\bgpus?\b", "gpus_needed"),
    (r"\breplicas?\b|\bservers?\b|\binstances?\b", "replicas_needed"),
    (r"\butili[sz]", "utilization"),
    (r"\blatency|\bp95\b|end.to.end", "latency_p95_ms"),
]


def parse_prediction(text: str, component: str | None = None) -> Prediction:
    """Read "TTFT p95 will roughly double", "we need 3 more replicas", "cost × 1.5",
    "availability 50 %" into a `Prediction` (ValueError when no metric or amount is found)."""
    t = text.lower()
    metric = next((m for pat, m in _METRIC_WORDS if re.search(pat, t)), None)
    if metric is None:
        raise ValueError(f"prediction {text!r}: name what changes (TTFT, latency, replicas, GPUs, cost, availability, utilisation)")
    if metric in ("replicas_needed", "utilization"):
        metric = f"{metric}:{component}" if component else metric
    t = re.sub(r"\bp\d{2}\b", " ", t)  # "p95" names the percentile, not an amount
    m = re.search(r"(\d+(?:\.\d+)?)\s*(?:more|extra|additional)\b|\+\s*(\d+(?:\.\d+)?)", t)
    if m:
        return Prediction(metric=metric, delta=float(m.group(1) or m.group(2)), text=text)
    m = re.search(r"(?:[x×]\s*(\d+(?:\.\d+)?))|(?:(\d+(?:\.\d+)?)\s*[x×])|(?:(\d+(?:\.\d+)?)\s*times)", t)
    if m:
        return Prediction(metric=metric, factor=float(next(g for g in m.groups() if g)), text=text)
    for w, f in _WORDS.items():
        if re.search(rf"\b{w}\b", t):
            return Prediction(metric=metric, factor=f, text=text)
    m = re.search(r"(\d[\d,]*(?:\.\d+)?)\s*(%|ms|s\b|k\b)?", t)
    if m:
        v = float(m.group(1).replace(",", ""))
        unit = m.group(2)
        if unit == "%":
            v /= 100.0
        elif unit == "s" and metric.endswith("_ms"):
            v *= 1000.0
        elif unit == "k":
            v *= 1000.0
        return Prediction(metric=metric, value=v, text=text)
    raise ValueError(f"prediction {text!r}: give an amount (× 2, double, 3 more, 500 ms, 99 %)")


def _resolve(metric: str, before: dict, after: dict) -> str:
    if metric in after or ":" in metric:
        return metric
    keys = [k for k in after if k.startswith(metric + ":")]
    if not keys:
        return metric
    # The component whose figure moved most.
    return max(keys, key=lambda k: abs((after.get(k) or 0) - (before.get(k) or 0)))


def grade_prediction(p: Prediction, before: dict, after: dict) -> DrillGrade:
    metric = _resolve(p.metric, before, after)
    b, a = before.get(metric), after.get(metric)
    if a is None:
        return DrillGrade(metric=metric, predicted=None, actual=None, score=0.0, verdict="off",
                          arithmetic=f"{metric}: no figure after the drill (unbounded or not on this design)")
    if p.delta is not None:
        real = a - (b or 0.0)
        err = abs(p.delta - real)
        verdict = "good" if err <= max(1.0, 0.25 * abs(real)) else ("close" if err <= max(2.0, 0.5 * abs(real)) else "off")
        score = {"good": 1.0, "close": 0.6, "off": 0.0}[verdict]
        return DrillGrade(metric=metric, predicted=(b or 0) + p.delta, actual=a, score=score, verdict=verdict,
                          arithmetic=f"{metric}: {_n(b)} → {_n(a)}, a change of {real:+,.4g}; you said {p.delta:+,.4g}")
    pred = p.value if p.value is not None else (b * p.factor if b is not None and p.factor is not None else None)
    if pred is None:
        return DrillGrade(metric=metric, predicted=None, actual=a, score=0.0, verdict="off",
                          arithmetic=f"{metric}: no figure before the drill to scale")
    if a == 0 or pred == 0:
        ratio = 1.0 if a == pred else math.inf
    else:
        ratio = max(pred / a, a / pred)
    verdict = "good" if ratio <= 1.25 else ("close" if ratio <= 2.0 else "off")
    score = {"good": 1.0, "close": 0.6, "off": 0.0}[verdict]
    how = f"× {p.factor:g} of {_n(b)} = {_n(pred)}" if p.factor is not None else f"{_n(pred)}"
    head = f"{metric}: {_n(b)} → {_n(a)} (× {a / b:.3g})" if b else f"{metric}: {_n(a)}"
    off = f"{ratio:.2f}× off" if math.isfinite(ratio) else "not comparable"
    return DrillGrade(metric=metric, predicted=pred, actual=a, score=score, verdict=verdict,
                      arithmetic=f"{head}; you said {how}: {off}")


def _n(x) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


# --- running a drill ---------------------------------------------------------------------------

def _outage(design: Design, est, component: str | None):
    """(after figures, lines) for a 30-minute outage of an external LLM API in the peak hour."""
    from sim import estimate, visits_per_request

    apis = [c for c in design.components if c.kind in ("llm_api", "judge") and est.stations.get(c.id)
            and est.stations[c.id].arrival_rps > 0]
    if component is not None:
        apis = [c for c in apis if c.id == component]
    if not apis:
        raise ValueError("provider_down_30min: no external LLM API with traffic on this design")
    api = apis[0]
    fb = next((e for e in design.flow if e.fallback and e.from_ == api.id), None)
    visits = visits_per_request(design)[api.id]
    share = min(1.0, visits)
    after = dict(_figures(design, est))
    lines = [f"{api.id} is out for {OUTAGE_S / 60:.0f} of the peak hour's 60 minutes"]
    if fb is None:
        after["availability"] = 1.0 - share * OUTAGE_S / HOUR_S
        lines.append(f"no fallback: the {share:.0%} of requests that call it fail for 30 min → availability "
                     f"1 − {share:.2f} × 30/60 = {after['availability']:.1%} over the hour")
        return after, lines, f"{api.id} out for 30 minutes (no fallback)"
    # With a fallback: its traffic moves there; the twin of the outage half-hour.
    d = design.model_copy(deep=True)
    for e in d.flow:
        if e.to == api.id and not e.fallback:
            e.to = fb.to
    d.flow = [e for e in d.flow if not (e.fallback and e.from_ == api.id)]
    d.flow += [e.model_copy(update={"from_": fb.to}) for e in design.out_edges(api.id)]
    try:
        e2 = estimate(Design.model_validate(d.model_dump(by_alias=True)))
        after = _figures(d, e2)
        after["availability"] = 1.0 if e2.stable else None
        lines.append(f"the fallback '{fb.to}' takes its {est.stations[api.id].arrival_rps:,.3g} calls/s; "
                     f"{'stable' if e2.stable else 'NOT stable'} while it lasts")
    except Exception as ex:  # noqa: BLE001 - a drill explains, never crashes
        after["availability"] = None
        lines.append(f"the fallback '{fb.to}' could not be evaluated: {ex}")
    return after, lines, f"{api.id} out for 30 minutes; calls go to '{fb.to}'"


def run_drill(design: Design, drill: str, *, component: str | None = None, prediction: Any = None,
              simulate: bool = False, seed: int = 0) -> DrillResult:
    """Apply `drill` to a copy of `design`, re-run the twin and grade `prediction` (text or `Prediction`)."""
    from sim import estimate

    t0 = time.perf_counter()
    est0 = estimate(design)
    before = _figures(design, est0)
    before["availability"] = 1.0
    lines: list[str] = []
    if drill == "provider_down_30min":
        after, lines, change = _outage(design, est0, component)
        changed = design
    else:
        changed, change = apply_drill(design, drill, component, est0)
        try:
            est1 = estimate(changed)
            after = _figures(changed, est1)
            after["availability"] = 1.0 if est1.stable else None
            lines += est1.unstable
        except Exception as ex:  # noqa: BLE001
            after = {k: None for k in before}
            lines.append(f"the changed design cannot run: {ex}")
        if "all" in change and "replicas lost" in change:
            after["availability"] = 0.0
    for k in ("latency_p95_ms", "ttft_p95_ms", "cost_per_day_usd", "gpus_needed"):
        b, a = before.get(k), after.get(k)
        if b and a is not None and abs(a - b) > 1e-9 * abs(b):
            lines.append(f"{k}: {_n(b)} → {_n(a)} (× {a / b:.3g})")
        elif b and a is None:
            lines.append(f"{k}: {_n(b)} → unbounded")
    for k in sorted(after):
        if k.startswith("replicas_needed:") and before.get(k) != after.get(k) and after.get(k) is not None:
            lines.append(f"{k.split(':')[1]} needs {_n(after[k])} replicas (was {_n(before.get(k))})")
    pred = None
    grade = None
    if prediction is not None:
        pred = prediction if isinstance(prediction, Prediction) else parse_prediction(str(prediction), component)
        grade = grade_prediction(pred, before, after)
    sim_fig = None
    if simulate:
        sim_fig = _simulate(changed if drill != "provider_down_30min" else design, drill, component, est0, seed)
    return DrillResult(drill=drill, title=DRILLS[drill], change=change, before=before, after=after, lines=lines,
                       grade=grade, prediction=pred, simulated=sim_fig, wall_s=time.perf_counter() - t0)


def _simulate(design: Design, drill: str, component, est, seed: int) -> dict[str, float | None]:
    """The simulation of the changed design (an outage as a scheduled fault in the peak hour)."""
    from sim import simulate

    d = design
    if drill == "provider_down_30min":
        api = component or next(c.id for c in design.components if c.kind in ("llm_api", "judge"))
        data = design.model_dump(by_alias=True)
        data["faults"] = list(data.get("faults") or []) + [
            {"at_s": 900, "component": api, "what": "provider_outage", "duration_s": OUTAGE_S}]
        data["workload"]["timeline_s"] = HOUR_S
        d = Design.model_validate(data)
    r = simulate(d, seed=seed, max_seconds=20)
    n = r.completed_requests + r.dropped_requests
    return {"latency_p95_ms": r.latency_ms.p95, "ttft_p95_ms": r.ttft_ms.p95 if r.ttft_ms else None,
            "availability": (r.ops.availability if r.ops is not None else (r.completed_requests / n if n else None))}
