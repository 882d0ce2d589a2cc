"""Re-derive the published serving measurements with one simulated replica.

Each row of ``components/data/serving_calibration.csv`` says how the measurement was taken;
`run_row` drives one `ReplicaEngine` the same way:

* ``closed_loop``: ``concurrency`` clients, each sending its next request the moment the last
  one finishes (genai-perf / NIM benchmarking at a fixed concurrency), measured in steady
  state — warm-up and drain excluded (`_steady_window`);
* ``fixed_batch``: ``batch`` prompts at t = 0, one wave, mean end-to-end latency
  (vLLM's ``benchmark_latency``); the row's TPOT is that latency / output tokens;
* ``poisson``: ``num_prompts`` prompts arriving at ``rate_rps`` (vLLM ``benchmark_serving``
  with a finite ``--request-rate``), mean TTFT and ITL;
* ``max_throughput`` / ``rate_inf``: ``num_prompts`` prompts at t = 0, throughput = all output
  tokens / time until the last one (``trtllm-bench throughput``, vLLM ``benchmark_serving``
  with ``--request-rate inf``).

The efficiency factors are the data file's, for every row. What differs per row is only what
the row's engine is documented to do (`ENGINE_SETTINGS`): batch limits, KV-cache precision and
the host overhead of engines that do not overlap scheduling with GPU work.

Usage::

    >>> from sim.llm.calibrate import calibration_report
    >>> for r in calibration_report():                       # doctest: +SKIP
    ...     print(r["id"], r["throughput_rel_err"], r["tpot_rel_err"], r["ttft_rel_err"])
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import simpy

from components.catalogue import LLMServer
from components.hardware import calibration_rows

from .batching import ReplicaEngine
from .kv import KvConfig
from .roofline import ServingSpec

__all__ = ["CalibrationResult", "run_row", "calibration_report", "row_component", "ENGINE_SETTINGS", "trtllm_bench_settings",
           "trtllm_bench_limits", "PERF_OVERVIEW_GRAPH_SIZES"]


# What each row's serving stack does by default, with the source of each setting.
# - TensorRT-LLM / NIM: LLM API defaults max_batch_size 2048 and max_num_tokens 8192 (tokens per
#   iteration, i.e. chunked prefill); NVIDIA's FP8 checkpoints are made with ModelOpt, whose
#   hf_ptq.py quantises the KV cache to FP8 by default (--kv_cache_qformat fp8), and
#   trtllm-bench's perf overview runs those checkpoints (github NVIDIA/TensorRT-LLM
#   docs/source/performance/perf-overview.md; NVIDIA/TensorRT-Model-Optimizer
#   examples/llm_ptq/hf_ptq.py). The KV pool is a fraction of the memory left *free* after the
#   weights (KvCacheConfig free_gpu_memory_fraction, default 0.9); the perf overview raises it to
#   0.95 ("--kv_cache_free_gpu_mem_fraction 0.95 ... in many cases", same document).
# - vLLM nightly CI (v0.6+, CUDA graphs, async output processing): max_num_seqs 256, BF16 KV;
#   the pool is gpu_memory_utilization (0.9) of *total* memory, weights included.
# - vLLM 0.5.4 (S20): max-num-seq 256 (LambdaLabsML/vllm-benchmark benchmark_v0.md); the engine
#   did not overlap CPU scheduling and output processing with GPU work ("only 38% of the time was
#   spent on the actual GPU execution" for Llama 3 8B on 1 H100, vLLM blog 2024-09-05, "vLLM
#   v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction"): modelled as host time per
#   step and per sequence that adds to the GPU step (efficiency.csv vllm05_host_ms_per_step and
#   _per_seq, fitted on S20), not as a multiplier on GPU time — a 70B step is longer, so the same
#   host work weighs less.
# - KV policy: TensorRT-LLM's default capacity scheduler is GUARANTEED_NO_EVICT (reserve the
#   request's max tokens; TensorRT-LLM docs, "KV cache management" / CapacitySchedulerPolicy),
#   vLLM pages KV in 16-token blocks and preempts with recompute (vLLM docs, "Preemption").
#   Every benchmark sends max_tokens = the output length it asks for (trtllm-bench's dataset
#   output_tokens, benchmark_serving's output_len with ignore_eos), so the cap is that length.
ENGINE_SETTINGS: dict[str, dict] = {
    "trtllm": {"max_batch": 2048, "chunked_prefill_tokens": 8192, "fp8_kv_with_fp8_weights": True,
               "kv_memory_basis": "free", "gpu_memory_utilization": 0.9, "kv_policy": "reserve_max"},
    "trtllm-bench": {"max_batch": 2048, "chunked_prefill_tokens": 8192, "fp8_kv_with_fp8_weights": True,
                     "kv_memory_basis": "free", "gpu_memory_utilization": 0.95, "kv_policy": "reserve_max",
                     "bench_tuning": True, "host_floor_us_per_seq": "trtllm_host_us_per_seq"},
    "vllm": {"max_batch": 256, "chunked_prefill_tokens": None, "fp8_kv_with_fp8_weights": False,
             "kv_memory_basis": "total", "gpu_memory_utilization": 0.9, "kv_policy": "paged"},
    "vllm-0.5": {"max_batch": 256, "chunked_prefill_tokens": None, "fp8_kv_with_fp8_weights": False,
                 "kv_memory_basis": "total", "gpu_memory_utilization": 0.9, "host_ms_per_seq": "vllm05_host_ms_per_seq",
                 "host_ms_per_step": "vllm05_host_ms_per_step", "kv_policy": "paged"},
}
# trtllm-bench perf overview (same document): every run passes cuda_graph_config
# {enable_padding: true, batch_sizes: [1, 2, 4, ..., 8192]} (its llm_options.yml); the PyTorch
# model engine keeps the sizes <= max_batch_size and <= max_num_tokens and pads a decode-only
# batch up to the next of them ("batches are rounded up to the nearest cuda_graph_batch_size",
# llm_args.py CudaGraphConfig.enable_padding); since a listed size exceeds that cap, the cap
# itself is captured too (`perf_overview_graph_sizes`), so no decode batch runs eagerly.
PERF_OVERVIEW_GRAPH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)
# trtllm-bench's tuning (tensorrt_llm/bench/build/tuning.py calc_engine_setting): bytes per
# weight and per KV element by quantisation (BYTES_PER_ELEM there; NVFP4 counts 0.5 B).
_BENCH_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}
# trtllm-bench perf overview: 1000/1000 runs used 3000 requests (same document as row S12).
_PUBLISHED_PROMPTS = {("max_throughput", 1000, 1000): 3000}


def perf_overview_graph_sizes(max_batch: int, max_num_tokens: int) -> tuple:
    """CUDA-graph batch sizes the PyTorch backend captures from the perf overview's list: those
    ≤ max_cuda_graph_bs = min(max_batch_size, max_num_tokens), and — padding being enabled and a
    listed size exceeding it — max_cuda_graph_bs itself (github NVIDIA/TensorRT-LLM
    tensorrt_llm/_torch/pyexecutor/model_engine.py `_filter_cuda_graph_batch_sizes`: "We will
    pad batches to {max_cuda_graph_bs}"), so a decode batch above the largest listed size is
    padded up to the cap instead of running eagerly.

    >>> perf_overview_graph_sizes(768, 2048)[-3:]
    (384, 512, 768)
    >>> perf_overview_graph_sizes(512, 2048)[-2:]
    (384, 512)
    """
    cap = min(max_batch, max_num_tokens)
    sizes = [b for b in PERF_OVERVIEW_GRAPH_SIZES if b <= cap]
    if any(b > cap for b in PERF_OVERVIEW_GRAPH_SIZES) and (not sizes or sizes[-1] != cap):
        sizes.append(cap)
    return tuple(sizes)


def _engine_of(row: dict) -> str:
    e = (row.get("engine") or "").lower()
    if "nim" in e:
        return "trtllm"
    if "trt" in e:
        return "trtllm-bench" if "perf-overview" in (row.get("source") or "") else "trtllm"
    if "vllm 0.5" in e or "vllm 0.4" in e:
        return "vllm-0.5"
    return "vllm"


def trtllm_bench_settings(model, gpu, tp: int, pp: int, isl: int, osl: int, weight_prec: str,
                          kv_prec: str, fraction: float = 0.95) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) trtllm-bench picks for a dataset of ISL/OSL requests when
    the command line sets neither, as the perf-overview runs do (github NVIDIA/TensorRT-LLM
    tensorrt_llm/bench/build/tuning.py calc_engine_setting + finetune_setting, called from
    bench/benchmark/utils/general.py get_settings for the PyTorch backend): KV requests =
    fraction × (GPUs × device memory − params × bytes) / (bytes per token × (ISL + OSL)) in GiB,
    KV heads at least tp, no sliding-window saving; max_batch_size rounds min(requests, 4096)/pp
    up (min 64; to 32 below 256, 128 below 1024, else 256), max_num_tokens =
    min(batch × (1 + ISL/OSL), 32768) rounded up (min 2048), then at least ISL + batch because
    chunked prefill is off (get_settings: "Forcing max_num_tokens to max_isl + max_batch_size").
    Device memory is NVML's total in GiB; assumption: the GPU's catalogue GB (80, 141, 180, 186)
    is that figure (NVML reports 79.6 GiB = 81,559 MiB on an H100 SXM 80GB, 140.4 GiB on an H200).
    Used for every perf-overview row, dense and MoE (`row_component`); `trtllm_bench_limits` is
    the same for a calibration row.

    >>> from components.hardware import get_gpu, get_model
    >>> trtllm_bench_settings(get_model("llama-3.1-405b"), get_gpu("H200-SXM-141GB"), 8, 1, 128, 128, "fp8", "fp8")
    (4096, 8192)
    """
    gib = 1024 ** 3
    kv_heads = max(tp, model.kv_heads)
    per_token = 2 * model.layers * kv_heads * model.head_dim * _BENCH_BYTES.get(kv_prec, 2.0) / gib
    engine = model.params_total_b * 1e9 * _BENCH_BYTES.get(weight_prec, 2.0) / gib
    available = gpu.hbm_gb * tp * pp - engine
    requests = available * fraction / (per_token * (isl + osl))
    raw_bs = min(requests, 4096) / pp
    raw_tok = min(raw_bs * (1 + isl / osl), 32768)
    if raw_bs < 256:
        bs = max(64, 32 * math.ceil(raw_bs / 32))
    elif raw_bs < 1024:
        bs = 128 * math.ceil(raw_bs / 128)
    else:
        bs = 256 * math.ceil(raw_bs / 256)
    if raw_tok < 4096:
        tok = max(2048, 256 * math.ceil(raw_tok / 256))
    elif raw_tok < 8192:
        tok = 512 * math.ceil(raw_tok / 512)
    else:
        tok = 1024 * math.ceil(raw_tok / 1024)
    return bs, max(tok, isl + bs)


def trtllm_bench_limits(row: dict, kv_fraction: float = 0.95) -> tuple[int, int]:
    """`trtllm_bench_settings` for a calibration row (model, GPU, tp, pp, precisions, ISL/OSL
    from its columns; KV precision FP8 unless the row states it).

    >>> trtllm_bench_limits({"model_name": "qwen3-30b-a3b", "gpu_name": "B200-180GB", "tp": 1,
    ...     "weight_precision": "fp4", "kv_cache_precision": "fp8", "input_tokens": 1000,
    ...     "output_tokens": 1000})
    (1792, 3584)
    """
    from components.hardware import get_gpu, get_model

    w = (row["weight_precision"] or "").lower()
    kv = (row.get("kv_cache_precision") or "fp8").lower()
    return trtllm_bench_settings(get_model(row["model_name"]), get_gpu(row["gpu_name"]),
                                 int(row.get("tp") or 1), int(row.get("pp") or 1),
                                 int(row["input_tokens"]), int(row["output_tokens"]),
                                 w if w in ("fp8", "fp4") else "bf16", kv, kv_fraction)


def row_component(row: dict) -> tuple[LLMServer, dict]:
    """The `llm_server` a row describes, and the spec overrides its engine implies."""
    from components.hardware import factor

    eng = ENGINE_SETTINGS[_engine_of(row)]
    prec = row["weight_precision"].lower()
    kv = "fp8" if eng["fp8_kv_with_fp8_weights"] and prec in ("fp8", "fp4") else "bf16"
    if row.get("kv_cache_precision"):  # the row states it
        kv = row["kv_cache_precision"]
    tp, pp = row["tp"] or 1, row.get("pp") or 1
    ep = row.get("ep") or 1
    max_batch, chunk, graphs = eng["max_batch"], eng["chunked_prefill_tokens"], ()
    if eng.get("bench_tuning") and row.get("mode") == "max_throughput" and str(row.get("input_len", "")).strip().isdigit():
        # The perf-overview runs leave the batch limit and the token budget per iteration (no
        # chunking: the whole budget) to trtllm-bench's heuristic, dense and MoE rows alike.
        max_batch, chunk = trtllm_bench_limits(dict(row, kv_cache_precision=kv), eng["gpu_memory_utilization"])
        if row.get("arch") != "moe":
            # Padded CUDA graphs of the perf overview. Not on MoE rows: they run attention data
            # parallelism (perf overview llm_options.yml, enable_attention_dp), where each rank
            # pads its own share of the batch — per-rank batches the replica model does not carry.
            graphs = perf_overview_graph_sizes(max_batch, chunk)
    comp = LLMServer(
        id=f"cal-{row['id']}", model=row["model_name"], gpu=row["gpu_name"],
        gpus_per_replica=tp * pp, pipeline_stages=pp, expert_parallel=ep if ep > 1 else None,
        precision=prec, kv_cache_precision=kv,
        max_batch=max_batch, chunked_prefill_tokens=chunk,
        kv_memory_basis=eng["kv_memory_basis"], gpu_memory_utilization=eng["gpu_memory_utilization"],
        kv_policy=eng["kv_policy"],
    )
    overrides = {"graph_batch_sizes": graphs} if graphs else {}
    if "host_floor_us_per_seq" in eng:
        # Per-sequence host work of the PyTorch backend (Python scheduling and sampling per
        # request), per host CPU: GB200's Grace cores have their own value (efficiency.csv).
        key = eng["host_floor_us_per_seq"]
        try:
            us = factor(f"{key}@{row['gpu_name']}")
        except ValueError:
            us = factor(key)
        if us:
            overrides["host_floor_s_per_seq"] = us / 1e6
    if "host_ms_per_seq" in eng:
        overrides["host_overhead_s_per_seq"] = factor(eng["host_ms_per_seq"]) / 1e3
        overrides["iteration_overhead_s"] = factor(eng["host_ms_per_step"]) / 1e3
    return comp, overrides


@dataclass
class CalibrationResult:
    throughput_tok_s: float
    ttft_ms: float
    tpot_ms: float
    requests: int
    mean_batch: float


class _Req:
    __slots__ = ("prompt_tokens", "output_tokens", "first_token_at", "last_token_at", "t0")

    def __init__(self, prompt: int, output: int, t0: float):
        self.prompt_tokens = prompt
        self.output_tokens = output
        self.first_token_at = None
        self.last_token_at = None
        self.t0 = t0


def _request_count(row: dict, max_requests: int) -> int:
    mode = row["mode"]
    if mode == "closed_loop":
        # Warm-up, measured window and a tail that keeps every client busy (`_steady_window`).
        w, m = _steady_window(row["concurrency"])
        return w + m + 2 * row["concurrency"]
    n = row["batch"] if mode == "fixed_batch" else row["num_prompts"]
    return n or _PUBLISHED_PROMPTS.get((mode, row["input_tokens"], row["output_tokens"])) or max_requests


def _steady_window(users: int) -> tuple[int, int]:
    """(warm-up completions, measured completions) of a closed-loop row.

    Benchmark clients (genai-perf, AIPerf) report steady-state averages: the first requests all
    start at t = 0 and finish together, and the last ones drain with fewer clients, so both are
    excluded. Here: the first 2·N completions warm up (N clients, at least 2), the next
    max(4·N, 8) are measured, and 2·N more keep every client busy until the window closes."""
    return max(2 * users, 2), max(4 * users, 8)


def _sharegpt_lengths(mean_in: float, mean_out: float, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """Prompt/output lengths for a row that publishes only ShareGPT means.

    Assumption: exponential spread around the means (a long tail, coefficient of variation 1),
    taken at evenly spaced quantiles so a few hundred requests carry the tail without sampling
    noise, paired at random, then clipped the way vLLM's benchmark_serving filters ShareGPT
    (prompt ≤ 1024, prompt + output ≤ 2048 tokens, each ≥ 4).
    """
    def q(mean: float) -> list[int]:
        return [max(4, round(-mean * math.log(1 - (i + 0.5) / n))) for i in range(n)]

    ps, os_ = q(mean_in), q(mean_out)
    rng.shuffle(ps)
    rng.shuffle(os_)
    out = []
    for p, o in zip(ps, os_):
        p = min(p, 1024)
        out.append((p, max(4, min(o, 2048 - p))))
    return out


# Requests a simulated row runs when it states no count of its own (`_request_count`).
DEFAULT_MAX_REQUESTS = 600


def run_row(row: dict, *, max_requests: int = DEFAULT_MAX_REQUESTS, seed: int = 0) -> CalibrationResult:
    """Simulate one calibration row (see the module docstring for the modes)."""
    comp, overrides = row_component(row)
    spec = ServingSpec.from_component(comp, **overrides)
    mode = row["mode"]
    n_in, n_out = row["input_tokens"], row["output_tokens"]
    rng = random.Random(seed)
    sharegpt = not str(row.get("input_len", "")).strip().isdigit()

    n_total = _request_count(row, max_requests)
    pairs = _sharegpt_lengths(n_in, n_out, n_total, rng) if sharegpt else None

    def lengths() -> tuple[int, int]:
        return pairs.pop() if pairs else (n_in, n_out)

    env = simpy.Environment()
    done: list[_Req] = []
    state = {"left": 0, "t_w": 0.0, "t_e": None, "stats": None}
    warm, measured = _steady_window(row["concurrency"]) if mode == "closed_loop" else (0, 0)

    def on_done(req, ok, reason):
        if not ok:
            raise RuntimeError(f"calibration row {row['id']}: request refused: {reason}")
        done.append(req)
        if mode == "closed_loop":
            if len(done) == warm:
                state["t_w"] = env.now
                eng.reset_stats(env.now)
            elif len(done) == warm + measured:
                state["t_e"] = env.now
                state["stats"] = eng.stats(env.now)
            if state["left"] > 0:
                state["left"] -= 1
                p, o = lengths()
                eng.submit(_Req(p, o, env.now), max_output=o)

    eng = ReplicaEngine(env, spec, on_done, kv=KvConfig.from_component(comp))
    if mode == "closed_loop":
        users = row["concurrency"]
        state["left"] = n_total - users
        for _ in range(users):
            p, o = lengths()
            eng.submit(_Req(p, o, 0.0), max_output=o)
    elif mode == "poisson":
        # Poisson arrivals at the row's rate (vLLM benchmark_serving --request-rate), seeded.
        gaps = [rng.expovariate(row["rate_rps"]) for _ in range(n_total)]

        def arrivals():
            for g in gaps:
                yield env.timeout(g)
                p, o = lengths()
                eng.submit(_Req(p, o, env.now), max_output=o)

        env.process(arrivals())
    else:
        for _ in range(n_total):
            p, o = lengths()
            eng.submit(_Req(p, o, 0.0), max_output=o)
    env.run()
    st = eng.stats(env.now)
    if mode == "closed_loop":
        # Steady state: requests sent inside the measured window, tokens produced inside it.
        t_w, t_e = state["t_w"], state["t_e"]
        st = state["stats"]
        sample = [r for r in done if t_w <= r.t0 < t_e]
    else:
        sample = done
    ttft = sum(r.first_token_at - r.t0 for r in sample) / len(sample)
    e2e = sum(r.last_token_at - r.t0 for r in sample) / len(sample)
    multi = [r for r in sample if r.output_tokens > 1]
    if "itl" in (row.get("latency_metric") or "").lower():
        # Mean inter-token latency over all tokens (what benchmark_serving and genai-perf
        # report as ITL): long requests weigh more than in a per-request TPOT mean.
        tpot = (sum(r.last_token_at - r.first_token_at for r in multi)
                / max(1, sum(r.output_tokens - 1 for r in multi)))
    else:
        tpot = sum((r.last_token_at - r.first_token_at) / (r.output_tokens - 1) for r in multi) / max(1, len(multi))
    out_tokens = sum(r.output_tokens for r in done)
    if mode == "fixed_batch":
        # The row's figures are derived from the mean end-to-end latency (see its notes).
        thr = len(done) * n_out / e2e
        tpot = e2e / n_out
    elif mode == "closed_loop":
        thr = st.output_tokens / (t_e - t_w)  # all clients together, like genai-perf
    else:
        thr = out_tokens / env.now
    return CalibrationResult(thr, ttft * 1e3, tpot * 1e3, len(done), st.mean_batch_size)


def _rel(model: float, measured: float | None) -> float | None:
    if measured is None or not math.isfinite(model):
        return None
    return (model - measured) / measured


def calibration_report(rows: list[dict] | None = None, *, seed: int = 0) -> list[dict]:
    """Model vs measured for every calibration row, with relative errors (None: not published)."""
    out = []
    for row in rows if rows is not None else calibration_rows():
        r = run_row(row, seed=seed)
        out.append({
            "id": row["id"], "model": row["model_name"], "gpu": row["gpu_name"], "tp": row["tp"],
            "precision": row["weight_precision"], "mode": row["mode"], "engine": row.get("engine", ""),
            "throughput_tok_s": r.throughput_tok_s, "throughput_measured": row["throughput_tok_s"],
            "throughput_rel_err": _rel(r.throughput_tok_s, row["throughput_tok_s"]),
            "tpot_ms": r.tpot_ms, "tpot_measured": row["tpot_ms"], "tpot_rel_err": _rel(r.tpot_ms, row["tpot_ms"]),
            "ttft_ms": r.ttft_ms, "ttft_measured": row["ttft_ms"], "ttft_rel_err": _rel(r.ttft_ms, row["ttft_ms"]),
            "requests": r.requests, "mean_batch": r.mean_batch,
        })
    return out


if __name__ == "__main__":  # python -m sim.llm.calibrate
    for r in calibration_report():
        def f(x):
            return "   —  " if x is None else f"{x:+6.1%}"
        print(f"{r['id']:>4} {r['mode']:<15} thr {r['throughput_tok_s']:9.1f} vs {r['throughput_measured']:9.1f} "
              f"{f(r['throughput_rel_err'])}  tpot {r['tpot_ms']:7.2f} {f(r['tpot_rel_err'])}  "
              f"ttft {r['ttft_ms']:8.2f} {f(r['ttft_rel_err'])}  batch {r['mean_batch']:.0f}")
