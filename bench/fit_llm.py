"""Fit the LLM model's coefficients on the `fit` rows of serving_calibration.csv — and only those.

    uv run python bench/fit_llm.py            # coordinate descent, prints the fitted values
    uv run python bench/fit_llm.py --show     # errors of the data file's current values
    uv run python bench/fit_llm.py --fix prefill_mfu_half_tokens=0   # the same fit without a term
    uv run python bench/fit_llm.py --stage "MoE rows on Blackwell"     # one stage only

Each coefficient is fitted on the rows it governs (stages below), minimising the mean absolute
log error of the analytic twin (`sim.llm.accuracy.twin_figures`; the simulated replica for the
vLLM 0.5 row, whose all-at-once drain the steady-state twin does not see; the perf-overview rows'
finite waves the twin does model, `accuracy.finite_run_factor`). The printed values
go into components/data/efficiency.csv with the rows they were fitted on; held-out rows are
never read here.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.hardware import calibration_rows, factor  # noqa: E402
from sim.llm.accuracy import _MEASURED, twin_figures  # noqa: E402
from sim.llm.calibrate import run_row  # noqa: E402

# GPUs without a decode_bw_efficiency@GPU row (Hopper and Ampere share one HBM efficiency).
_SHARED_BW = ("H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB")
_BLACKWELL = ("B200-180GB", "GB200-186GB")


def _moe(r: dict) -> bool:
    return r.get("arch") == "moe"


def _bench(r: dict) -> bool:
    return "perf-overview" in (r.get("source") or "")


def _bw(r: dict) -> bool:
    return r["gpu_name"] in _BLACKWELL


# coefficient -> (ServingSpec field, scale from the data file's unit, applies to a row?)
KEYS = {
    "decode_bw_efficiency": ("decode_bw_efficiency", 1.0, lambda r: r["gpu_name"] in _SHARED_BW),
    "decode_bw_efficiency@B200-180GB": ("decode_bw_efficiency", 1.0, lambda r: r["gpu_name"] == "B200-180GB"),
    "decode_bw_efficiency@GB200-186GB": ("decode_bw_efficiency", 1.0, lambda r: r["gpu_name"] == "GB200-186GB"),
    "prefill_mfu": ("prefill_mfu", 1.0, lambda r: True),
    "decode_mfu": ("decode_mfu", 1.0, lambda r: True),
    "mfu_ratio@fp4": (None, 1.0, lambda r: r["weight_precision"] == "fp4"),
    "allreduce_latency_us": ("allreduce_latency_s", 1e-6, lambda r: (r["tp"] or 1) > 1),
    "prefill_mfu_half_tokens": ("prefill_mfu_half_tokens", 1.0, lambda r: True),
    "decode_mfu_half_tokens": ("decode_mfu_half_tokens", 1.0, lambda r: True),
    "attention_serial_share": ("attention_serial_share", 1.0, lambda r: True),
    # MoE: one set for Hopper (the keys without @, also any other GPU) and one for Blackwell,
    # fitted on the B200 and GB200 rows together (same die) and written to both @GPU rows.
    "moe_expert_half_tokens": ("moe_expert_half_tokens", 1.0, lambda r: _moe(r) and not _bw(r)),
    "moe_expert_max_penalty": ("moe_expert_max_penalty", 1.0, lambda r: _moe(r) and not _bw(r)),
    "moe_expert_bw_efficiency": ("moe_expert_bw_efficiency", 1.0, lambda r: _moe(r) and not _bw(r)),
    "moe_expert_base_penalty": ("moe_expert_base_penalty", 1.0, lambda r: _moe(r) and not _bw(r)),
    "moe_expert_half_tokens@B200-180GB": ("moe_expert_half_tokens", 1.0, lambda r: _moe(r) and _bw(r)),
    "moe_expert_max_penalty@B200-180GB": ("moe_expert_max_penalty", 1.0, lambda r: _moe(r) and _bw(r)),
    "moe_expert_bw_efficiency@B200-180GB": ("moe_expert_bw_efficiency", 1.0, lambda r: _moe(r) and _bw(r)),
    "moe_expert_base_penalty@B200-180GB": ("moe_expert_base_penalty", 1.0, lambda r: _moe(r) and _bw(r)),
    "moe_routing_flops_per_elem": ("moe_routing_flops_per_elem", 1.0, lambda r: _moe(r) and not _bw(r)),
    "moe_routing_flops_per_elem@B200-180GB": ("moe_routing_flops_per_elem", 1.0, lambda r: _moe(r) and _bw(r)),
    "moe_alltoall_latency_us": ("moe_alltoall_latency_s", 1e-6, lambda r: _moe(r) and not _bw(r)),
    "moe_alltoall_latency_us@B200-180GB": ("moe_alltoall_latency_s", 1e-6, lambda r: _moe(r) and _bw(r)),
    "trtllm_host_us_per_seq": ("host_floor_s_per_seq", 1e-6, lambda r: _bench(r) and r["gpu_name"] != "GB200-186GB"),
    "trtllm_host_us_per_seq@GB200-186GB": ("host_floor_s_per_seq", 1e-6, lambda r: _bench(r) and r["gpu_name"] == "GB200-186GB"),
    "vllm05_host_ms_per_seq": ("host_overhead_s_per_seq", 1e-3, lambda r: "0.5" in (r.get("engine") or "")),
    "vllm05_host_ms_per_step": ("iteration_overhead_s", 1e-3, lambda r: "0.5" in (r.get("engine") or "")),
}
# first step of the search where the start value is 0 or small (in the data file's unit)
STEP = {"prefill_mfu_half_tokens": 200.0, "decode_mfu_half_tokens": 128.0, "attention_serial_share": 0.25, "moe_expert_half_tokens": 64.0, "moe_expert_max_penalty": 1.0,
        "moe_expert_half_tokens@B200-180GB": 64.0, "moe_expert_max_penalty@B200-180GB": 1.0,
        "moe_expert_base_penalty": 0.25, "moe_expert_base_penalty@B200-180GB": 0.25, "vllm05_host_ms_per_seq": 0.01,
        "vllm05_host_ms_per_step": 1.0,
        "trtllm_host_us_per_seq": 5.0, "moe_routing_flops_per_elem@B200-180GB": 4000.0, "moe_routing_flops_per_elem": 4000.0, "moe_alltoall_latency_us": 10.0,
        "moe_alltoall_latency_us@B200-180GB": 10.0, "trtllm_host_us_per_seq@GB200-186GB": 5.0,
        "allreduce_latency_us": 3.0, "mfu_ratio@fp4": 0.1}
# Upper bounds: the routed experts' weight streams cannot beat ~85 % of paper HBM bandwidth
# (the best streaming kernels reach about that; the dense fits give 0.44-0.67).
UPPER = {"moe_expert_bw_efficiency": 0.85, "moe_expert_bw_efficiency@B200-180GB": 0.85}
STAGES = [
    ("trtllm-bench host floor (dense and MoE rows)", _bench,
     ["trtllm_host_us_per_seq", "trtllm_host_us_per_seq@GB200-186GB"]),
    ("dense rows on Hopper (FP8/BF16)", lambda r: r.get("arch") == "dense" and r["weight_precision"] != "fp4"
     and "0.5" not in (r.get("engine") or ""),
     ["decode_bw_efficiency", "prefill_mfu", "decode_mfu",
      "allreduce_latency_us", "prefill_mfu_half_tokens", "decode_mfu_half_tokens", "attention_serial_share"]),
    ("dense FP4 rows on Blackwell", lambda r: r.get("arch") == "dense" and r["weight_precision"] == "fp4",
     ["decode_bw_efficiency@B200-180GB", "decode_bw_efficiency@GB200-186GB", "mfu_ratio@fp4"]),
    ("MoE rows on Hopper", lambda r: _moe(r) and not _bw(r),
     ["moe_expert_bw_efficiency", "moe_expert_base_penalty", "moe_expert_max_penalty", "moe_expert_half_tokens",
      "moe_routing_flops_per_elem"]),
    ("MoE rows on Blackwell", lambda r: _moe(r) and _bw(r),
     ["moe_alltoall_latency_us@B200-180GB", "moe_expert_bw_efficiency@B200-180GB", "moe_expert_base_penalty@B200-180GB",
      "moe_expert_max_penalty@B200-180GB", "moe_expert_half_tokens@B200-180GB", "moe_routing_flops_per_elem@B200-180GB"]),
    ("vLLM 0.5 row", lambda r: "0.5" in (r.get("engine") or ""), ["vllm05_host_ms_per_step", "vllm05_host_ms_per_seq"]),
]


def _overrides(row: dict, vals: dict) -> dict:
    out = {}
    for key, v in vals.items():
        field, scale, applies = KEYS[key]
        if field is None or not applies(row):
            continue
        if key.startswith("decode_bw_efficiency"):
            if key != "decode_bw_efficiency" or row["gpu_name"] in _SHARED_BW:
                out[field] = v
            continue
        out[field] = v * scale
    if row["weight_precision"] == "fp4":
        r = vals.get("mfu_ratio@fp4", factor("mfu_ratio@fp4"))
        out["prefill_mfu"] = out.get("prefill_mfu", factor("prefill_mfu")) * r
        out["decode_mfu"] = out.get("decode_mfu", factor("decode_mfu")) * r
    return out


def row_errors(row: dict, vals: dict) -> list[float]:
    """log(model / measured) for each figure the row publishes, at coefficients ``vals``."""
    import sim.llm.calibrate as cal

    ov = _overrides(row, vals)
    base_rc = cal.row_component

    def patched(r):
        comp, o = base_rc(r)
        return comp, {**o, **ov}

    cal.row_component = patched
    try:
        if "0.5" in (row.get("engine") or ""):
            res = run_row(row)
            got = {"throughput": res.throughput_tok_s, "tpot": res.tpot_ms}
        else:
            got = twin_figures(row)
    finally:
        cal.row_component = base_rc
    errs = []
    for m, col in _MEASURED.items():
        if row.get(col) is not None and got.get(m) is not None and got[m] > 0:
            errs.append(math.log(got[m] / row[col]))
    return errs


def loss(rows: list[dict], vals: dict) -> float:
    e = [abs(x) for r in rows for x in row_errors(r, vals)]
    return sum(e) / max(1, len(e))


def fit(passes: int = 2, only: str | None = None, fixed: dict | None = None) -> dict:
    """Coordinate descent stage by stage; ``fixed`` coefficients are held at the given values
    (e.g. ``{"prefill_mfu_half_tokens": 0}`` to compare the fit loss without a term)."""
    rows = calibration_rows("fit")
    vals = {k: factor(k) for k in KEYS}
    vals.update(fixed or {})
    for name, pick, keys in STAGES:
        if only and only not in name:
            continue
        keys = [k for k in keys if k not in (fixed or {})]
        sub = [r for r in rows if pick(r)]
        best = loss(sub, vals)
        print(f"\n{name}: {len(sub)} rows, start loss {best:.4f}")
        for _ in range(passes):
            for k in keys:
                x0 = vals[k]
                step = max(abs(x0) * 0.15, STEP.get(k, 0.02))
                for _ in range(6):
                    improved = False
                    for x in (x0 - step, x0 + step):
                        if x < 0 or x > UPPER.get(k, math.inf):
                            continue
                        v = dict(vals, **{k: x})
                        lo = loss(sub, v)
                        if lo < best - 1e-5:
                            best, x0, improved = lo, x, True
                            vals = v
                    if not improved:
                        step /= 2
                print(f"  {k} = {vals[k]:.4g}  (loss {best:.4f})", flush=True)
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--stage", default=None, help="fit only the stage whose name contains this")
    ap.add_argument("--fix", action="append", default=[], metavar="KEY=VALUE",
                    help="hold a coefficient at VALUE (repeatable), e.g. prefill_mfu_half_tokens=0")
    a = ap.parse_args(argv)
    fixed = {}
    for f in a.fix:
        k, _, v = f.partition("=")
        if k not in KEYS:
            ap.error(f"--fix {f}: unknown coefficient {k!r} (one of {', '.join(KEYS)})")
        try:
            fixed[k] = float(v)
        except ValueError:
            ap.error(f"--fix {f}: the value must be a number")
    if a.show:
        vals = {**{k: factor(k) for k in KEYS}, **fixed}
        for r in calibration_rows("fit"):
            print(f"{r['id']:26}", " ".join(f"{math.exp(e) - 1:+.1%}" for e in row_errors(r, vals)))
        return 0
    vals = fit(a.passes, a.stage, fixed)
    print("\nfitted:")
    for k, v in vals.items():
        print(f"  {k},{v:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
