"""The accuracy scoreboard: the token-level model against every published serving measurement.

Each row of ``components/data/serving_calibration.csv`` is a published measurement (vendor
performance tables, engine dashboards) with its source and a ``split`` tag set before any
factor was fitted: ``fit`` rows may set coefficients, ``held_out`` rows never do. For every row
the scoreboard computes what the row publishes (output tokens/s, TPOT or ITL, TTFT) twice:

* **twin** — the analytic twin (`sim.llm.twin`): the max request rate λ* for max-throughput
  rows, Little's law closed over `llm_estimate` for fixed-concurrency rows, `llm_estimate` at the
  row's rate for Poisson rows, and the roofline step times for fixed-batch rows;
* **sim** — one simulated replica driven the way the row was measured (`sim.llm.calibrate`).

Rows the model cannot represent (a model, GPU or precision not in the catalogue, a
configuration it refuses) are counted as *not modelled*, with the reason, never dropped silently.

Usage::

    >>> from sim.llm.accuracy import score_rows, summarise
    >>> res = score_rows(split="held_out", sim=False)             # doctest: +SKIP
    >>> for g in summarise(res, by=("source", "mode")):           # doctest: +SKIP
    ...     print(g.key, g.rows, g.mape_twin)

`uv run python bench/bench_accuracy.py` prints the whole table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from components.hardware import calibration_rows

__all__ = ["RowScore", "GroupScore", "score_row", "score_rows", "summarise", "source_label",
           "twin_figures", "finite_run_factor", "run_shape", "format_groups", "accuracy_scoreboard", "format_accuracy", "GROUP_COLUMNS"]

# Columns a scoreboard can be grouped by (attributes of `RowScore`).
GROUP_COLUMNS = ("split", "source", "mode", "gpu", "family", "tp")

METRICS = ("throughput", "tpot", "ttft")
_MEASURED = {"throughput": "throughput_tok_s", "tpot": "tpot_ms", "ttft": "ttft_ms"}


def source_label(row: dict) -> str:
    """A short name for the publication a row comes from (the grouping key of the table)."""
    s = row.get("source", "")
    if "TensorRT-LLM" in s and "perf-overview" in s:
        return "TRT-LLM perf overview"
    if "docs.nvidia.com/nim" in s:
        return "NIM benchmarks"
    if "buildkite" in s:
        return "vLLM CI dashboard"
    if "LambdaLabs" in s:
        return "Lambda vLLM benchmark"
    return s.split(" ")[0][:30]


@dataclass
class RowScore:
    """One row: measured figures and the twin's and the simulation's, with relative errors."""

    id: str
    split: str
    source: str
    mode: str
    gpu: str
    family: str  # "dense FP8", "MoE FP4", ...
    tp: int
    measured: dict
    twin: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    not_modelled: str | None = None

    def err(self, side: str, metric: str) -> float | None:
        got = (self.twin if side == "twin" else self.sim).get(metric)
        ref = self.measured.get(metric)
        if got is None or ref is None or not math.isfinite(got) or ref == 0:
            return None
        return (got - ref) / ref


def _workload(row: dict, *, arrival_rps: float | None = None):
    from components.distributions import ExponentialCount, FixedCount
    from designs.model import RequestClass, Workload

    sharegpt = not str(row.get("input_len", "")).strip().isdigit()
    if sharegpt:  # the same exponential assumption as the simulated rows (calibrate.py)
        p, o = ExponentialCount(mean=row["input_tokens"]), ExponentialCount(mean=row["output_tokens"])
    else:
        p, o = FixedCount(value=row["input_tokens"]), FixedCount(value=row["output_tokens"])
    # Every benchmark asks for max_tokens = the output length (calibrate.py submits each request
    # with max_output = its length): a reserve_max engine (TensorRT-LLM) reserves P + O, not the
    # model's context. Without the cap the twin reserved 128k tokens per sequence (S12: −90 %).
    cap = None if sharegpt else int(row["output_tokens"])
    return Workload(arrival_rps=arrival_rps or 1.0, classes=[RequestClass(name="row", prompt_tokens=p, output_tokens=o,
                                                                          max_output_tokens=cap)])


def twin_figures(row: dict) -> dict:
    """What the analytic twin says for a row: {"throughput", "tpot", "ttft"} (ms, tok/s)."""
    from .calibrate import row_component
    from .roofline import ServingSpec
    from .twin import llm_capacity, llm_estimate

    comp, overrides = row_component(row)
    mode = row["mode"]
    n_out = row["output_tokens"]
    if mode == "max_throughput" and str(row.get("input_len", "")).strip().isdigit():
        n, cap = run_shape(row, comp, overrides)
        return {"throughput": cap.max_rps * cap.sh.output * finite_run_factor(row, comp, overrides, (n, cap))}
    if mode in ("max_throughput", "rate_inf"):
        _, tok_s = llm_capacity(comp, _workload(row), overrides)
        return {"throughput": tok_s}
    if mode == "fixed_batch":
        spec = ServingSpec.from_component(comp, **overrides)
        b, n_in = row["batch"], row["input_tokens"]
        t = spec.iteration_s(0, 0, b * n_in, b * spec.prefill_flops_s(n_in))
        t += sum(spec.decode_step_s(b, b * (n_in + k)) for k in range(1, n_out))
        return {"throughput": b * n_out / t, "tpot": t / n_out * 1e3}
    if mode == "poisson":
        e = llm_estimate(comp, _workload(row, arrival_rps=row["rate_rps"]), row["rate_rps"], overrides)
        return {"ttft": e.ttft_ms_estimate, "tpot": e.tpot_ms_estimate,
                "throughput": row["rate_rps"] * row["output_tokens"]}
    if mode == "closed_loop":
        # Little's law over the twin: N = λ · (TTFT(λ) + (O − 1) · TPOT(λ)); bisection on λ.
        # The twin's load point assumes open (Poisson) arrivals; a closed loop of N clients with
        # no think time differs in two ways (arrival theorem: a request sees the N − 1 others):
        # with N ≤ S slots no request ever waits for a slot, and a lone client (N = 1) finds the
        # engine idle, so its TTFT is its own prefill iteration without the rest of a running one.
        from .twin import _capacity, _load_point

        n = row["concurrency"]
        wl = _workload(row)
        cap = _capacity(comp, wl, overrides)
        max_rps = cap.max_rps

        def at(lam):
            ld = _load_point(cap, 1, lam)
            ttft = ld.it.own_s if n == 1 else ld.ttft_s - ld.wait_s
            return ld, ttft, ttft + (n_out - 1) * ld.tpot_s

        lo, hi = 0.0, max_rps * (1 - 1e-6)
        ld_hi, _, r_hi = at(hi)
        # Saturated: the clients queue for slots. With at least as many clients as sequence
        # slots (S), N − S clients always wait, so every slot is always busy and the replica
        # runs at λ*: TTFT = N/λ* − (O − 1)·TPOT (the slot wait included).
        if hi * r_hi <= n or n >= cap.sh.seqs:
            tpot = ld_hi.tpot_s
            return {"throughput": max_rps * n_out, "tpot": tpot * 1e3,
                    "ttft": max(0.0, n / max_rps - (n_out - 1) * tpot) * 1e3}
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if mid * at(mid)[2] < n:
                lo = mid
            else:
                hi = mid
        ld, ttft, _ = at(0.5 * (lo + hi))
        return {"throughput": 0.5 * (lo + hi) * n_out, "tpot": ld.tpot_s * 1e3, "ttft": ttft * 1e3}
    raise ValueError(f"row {row['id']}: unknown mode {mode!r}")


def _wave_s(spec, b: int, n_in: int, n_out: int, chunk: int | None) -> float:
    """Seconds for ``b`` requests of fixed lengths that start together to finish: their prompts
    prefilled in iterations of at most ``chunk`` tokens, then n_out − 1 decode steps of the
    whole batch as its KV grows (trapezoid over 33 points: the step time is smooth in the KV)."""
    total = b * n_in
    n_it = max(1, math.ceil(total / chunk)) if chunk else 1
    per_it = spec.iteration_s(0, 0, total / n_it, (b / n_it) * spec.prefill_flops_s(n_in),
                              prefill_seqs=max(1, round(b / n_it)))
    steps = n_out - 1
    if steps <= 0:
        return n_it * per_it
    pts = min(steps, 32)
    ks = [1 + (steps - 1) * i / pts for i in range(pts + 1)]
    ys = [spec.decode_step_s(b, b * (n_in + k)) for k in ks]
    mean = sum((ys[i] + ys[i + 1]) / 2 for i in range(pts)) / pts
    return n_it * per_it + steps * mean


def run_shape(row: dict, comp=None, overrides: dict | None = None):
    """(N requests the row's run sends, the twin's `_capacity` at the row's lengths, whose
    ``sh.seqs`` is the S sequences the engine admits)."""
    from .calibrate import DEFAULT_MAX_REQUESTS, _request_count, row_component
    from .twin import _capacity

    if comp is None:
        comp, overrides = row_component(row)
    return _request_count(row, DEFAULT_MAX_REQUESTS), _capacity(comp, _workload(row), overrides or {})


def finite_run_factor(row: dict, comp=None, overrides: dict | None = None, shape=None) -> float:
    """Throughput of the benchmark's finite run over the twin's steady state (below 1 when the
    last wave is partial: its smaller batch makes fewer tokens per second).

    trtllm-bench's perf overview sends its N requests at once with fixed lengths: they run in
    waves of the S sequences the engine admits, every wave's requests finishing together, and
    "Total Output Throughput" is N·O over the whole run — so a last, partial wave of N mod S
    requests weighs in. Qwen3-235B on 8 H200 at 128/2048 admits S = 2,304 of the 3,000 requests:
    the second wave of 696 runs as long as a full one for a third of its tokens. The factor is
    (N / Σ wave times) / (S / full-wave time), 1 when S divides N; the simulated replica
    (`calibrate.run_row`) runs the same waves event by event. ``shape``: `run_shape`'s result
    when the caller has it.
    """
    from .calibrate import row_component
    from .roofline import ServingSpec

    if comp is None:
        comp, overrides = row_component(row)
    overrides = overrides or {}
    n, cap = shape or run_shape(row, comp, overrides)
    s = cap.sh.seqs
    if n <= 0 or s <= 0 or n % s == 0:
        return 1.0
    spec = ServingSpec.from_component(comp, **overrides)
    n_in, n_out = int(row["input_tokens"]), int(row["output_tokens"])
    chunk = spec.chunked_prefill_tokens
    full = _wave_s(spec, s, n_in, n_out, chunk)
    waves, rest = divmod(n, s)
    total = waves * full + (_wave_s(spec, rest, n_in, n_out, chunk) if rest else 0.0)
    return (n / total) / (s / full)


def _family(row: dict) -> str:
    arch = "MoE" if row.get("arch") == "moe" else "dense"
    return f"{arch} {row['weight_precision'].upper()}"


def score_row(row: dict, *, sim: bool = True, seed: int = 0) -> RowScore:
    """Twin (and simulated) figures of one row; `not_modelled` says why a row cannot be scored."""
    from .calibrate import run_row

    measured = {m: row[_MEASURED[m]] for m in METRICS if row.get(_MEASURED[m]) is not None}
    rs = RowScore(row["id"], row.get("split", ""), source_label(row), row["mode"], row["gpu_name"],
                  _family(row), row["tp"] or 1, measured)
    try:
        rs.twin = {k: v for k, v in twin_figures(row).items() if k in measured}
        if sim:
            r = run_row(row, seed=seed)
            rs.sim = {k: v for k, v in {"throughput": r.throughput_tok_s, "tpot": r.tpot_ms,
                                        "ttft": r.ttft_ms}.items() if k in measured}
    except ValueError as e:  # unknown model/GPU/precision, or a configuration refused
        rs.twin, rs.sim = {}, {}
        rs.not_modelled = " ".join(str(e).split())[:240]
    return rs


def score_rows(rows: list[dict] | None = None, *, split: str | None = None, sim: bool = True,
               seed: int = 0, ids: str | None = None) -> list[RowScore]:
    """Score every row (or those of one split; ``ids``: only rows whose id matches this
    shell-style pattern, e.g. ``"S*"`` or ``"T-L70-*"``)."""
    import fnmatch

    rows = rows if rows is not None else calibration_rows(split)
    if ids:
        rows = [r for r in rows if fnmatch.fnmatchcase(r["id"], ids)]
    return [score_row(r, sim=sim, seed=seed) for r in rows]


@dataclass
class GroupScore:
    key: tuple
    metric: str
    rows: int
    not_modelled: int
    mape_twin: float | None
    mape_sim: float | None
    worst_twin: tuple | None  # (row id, relative error)
    worst_sim: tuple | None
    within15_twin: float | None
    within25_twin: float | None
    within15_sim: float | None
    within25_sim: float | None


def _stats(errs: list[tuple[str, float]]):
    if not errs:
        return None, None, None, None
    a = [abs(e) for _, e in errs]
    worst = max(errs, key=lambda t: abs(t[1]))
    return (sum(a) / len(a), worst, sum(x <= 0.15 for x in a) / len(a), sum(x <= 0.25 for x in a) / len(a))


def summarise(scores: list[RowScore], by: tuple[str, ...] = ("source", "mode", "gpu", "family"),
              metrics: tuple[str, ...] = METRICS) -> list[GroupScore]:
    """Per group and metric: rows, MAPE, worst row and the shares within ±15 % / ±25 %."""
    groups: dict = defaultdict(list)
    for s in scores:
        groups[tuple(getattr(s, k) for k in by)].append(s)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        ss = groups[key]
        for m in metrics:
            have = [s for s in ss if m in s.measured]
            if not have:
                continue
            nm = sum(1 for s in have if s.not_modelled)
            et = [(s.id, s.err("twin", m)) for s in have if s.err("twin", m) is not None]
            es = [(s.id, s.err("sim", m)) for s in have if s.err("sim", m) is not None]
            t, s_ = _stats(et), _stats(es)
            out.append(GroupScore(key, m, len(have), nm, t[0], s_[0], t[1], s_[1], t[2], t[3], s_[2], s_[3]))
    return out


def _pct(x, signed=False):
    if x is None:
        return "—"
    return f"{x:+.0%}" if signed else f"{x:.0%}"


def format_groups(groups: list[GroupScore], by: tuple[str, ...], *, sim: bool = True) -> str:
    """A plain-text table of `summarise`'s groups."""
    head = " | ".join(by) + " | metric | rows | not modelled | twin MAPE | twin worst | twin ≤15 % | twin ≤25 %"
    if sim:
        head += " | sim MAPE | sim worst | sim ≤15 % | sim ≤25 %"
    lines = [head, "|".join("---" for _ in head.split("|"))]
    for g in groups:
        wt = f"{g.worst_twin[0]} {_pct(g.worst_twin[1], True)}" if g.worst_twin else "—"
        cells = [*map(str, g.key), g.metric, str(g.rows), str(g.not_modelled), _pct(g.mape_twin), wt,
                 _pct(g.within15_twin), _pct(g.within25_twin)]
        if sim:
            ws = f"{g.worst_sim[0]} {_pct(g.worst_sim[1], True)}" if g.worst_sim else "—"
            cells += [_pct(g.mape_sim), ws, _pct(g.within15_sim), _pct(g.within25_sim)]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _finite(d: dict) -> dict:
    """JSON-safe figures: a non-finite value (an unbounded queue) becomes None."""
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in d.items()}


def _group_dict(g: GroupScore, by: tuple[str, ...]) -> dict:
    d = {k: v for k, v in zip(by, g.key)}
    d.update(metric=g.metric, rows=g.rows, not_modelled=g.not_modelled)
    for side in ("twin", "sim"):
        w = getattr(g, f"worst_{side}")
        d[side] = {"mape": getattr(g, f"mape_{side}"), "worst_row": w[0] if w else None,
                   "worst_error": w[1] if w else None, "within_15": getattr(g, f"within15_{side}"),
                   "within_25": getattr(g, f"within25_{side}")}
    return d


def accuracy_scoreboard(*, splits: tuple[str, ...] = ("fit", "held_out"), sim: bool = True,
               by: tuple[str, ...] = ("source", "mode", "gpu", "family"), ids: str | None = None,
               seed: int = 0) -> dict:
    """The whole scoreboard as plain data (what ``sdw accuracy --json`` prints).

    ``{"sim": bool, "by": [...], "splits": {split: {"rows", "not_modelled", "groups",
    "overall", "row_scores"}}}``: ``groups`` per ``by`` and metric, ``overall`` per mode and
    model family, each with ``twin``/``sim`` MAPE, worst row and error, shares within ±15/±25 %
    (fractions, None where nothing was scored); ``row_scores`` every row's measured and modelled
    figures and relative errors, or its not-modelled reason."""
    bad = [b for b in by if b not in GROUP_COLUMNS]
    if bad:
        raise ValueError(f"unknown grouping column {bad[0]!r}: use any of {', '.join(GROUP_COLUMNS)}")
    out: dict = {"sim": sim, "by": list(by), "ids": ids, "splits": {}}
    for split in splits:
        scores = score_rows(split=split, sim=sim, seed=seed, ids=ids)
        overall = ("mode", "family")
        out["splits"][split] = {
            "rows": len(scores),
            "not_modelled": sum(1 for s in scores if s.not_modelled),
            "groups": [_group_dict(g, by) for g in summarise(scores, by=by)],
            "overall": [_group_dict(g, overall) for g in summarise(scores, by=overall)],
            "row_scores": [{"id": s.id, "source": s.source, "mode": s.mode, "gpu": s.gpu,
                            "family": s.family, "tp": s.tp, "measured": s.measured,
                            "twin": _finite(s.twin), "sim": _finite(s.sim), "not_modelled": s.not_modelled,
                            "error": {side: {m: s.err(side, m) for m in s.measured}
                                      for side in (("twin", "sim") if sim else ("twin",))}}
                           for s in scores],
        }
    return out


def _groups_back(ds: list[dict], by: tuple[str, ...]) -> list[GroupScore]:
    out = []
    for d in ds:
        t, s = d["twin"], d["sim"]
        out.append(GroupScore(tuple(d[k] for k in by), d["metric"], d["rows"], d["not_modelled"],
                              t["mape"], s["mape"],
                              (t["worst_row"], t["worst_error"]) if t["worst_row"] else None,
                              (s["worst_row"], s["worst_error"]) if s["worst_row"] else None,
                              t["within_15"], t["within_25"], s["within_15"], s["within_25"]))
    return out


def _fmt_err(x: float | None) -> str:
    return "None" if x is None else format(x, "+.1%")


def format_accuracy(board: dict, *, rows: bool = False) -> str:
    """The plain-text scoreboard of `scoreboard` (what bench/bench_accuracy.py and
    ``sdw accuracy`` print): per split the grouped table, then by mode and family."""
    by, sim = tuple(board["by"]), board["sim"]
    parts = []
    for split, sb in board["splits"].items():
        parts.append(f"\n## {split}: {sb['rows']} rows, {sb['not_modelled']} not modelled\n")
        parts.append(format_groups(_groups_back(sb["groups"], by), by, sim=sim))
        parts.append(f"\n### {split}, overall by mode and family\n")
        parts.append(format_groups(_groups_back(sb["overall"], ("mode", "family")), ("mode", "family"), sim=sim))
        if rows:
            parts.append("")
            for r in sb["row_scores"]:
                if r["not_modelled"]:
                    parts.append(f"{r['id']:28} {r['not_modelled']}")
                    continue
                errs = " ".join(f"{m}: twin {_fmt_err(r['error']['twin'][m])}"
                                + (f" sim {_fmt_err(r['error']['sim'][m])}" if sim else "")
                                for m in r["measured"])
                parts.append(f"{r['id']:28} {errs}")
    return "\n".join(parts)
