"""Fine-tuning jobs honestly: LoRA throughput from LoRA rows, memory per GPU, failures and restarts.

* **Throughput.** A full fine-tune costs 6 FLOPs per parameter per token (forward 2, backward
  4); LoRA and QLoRA freeze the base weights, which then get no weight gradient: 4 FLOPs per
  parameter per token (NeMo's reported LoRA TFLOP/s equal 4·N·tokens/s within 1 %). Their MFU
  comes from LoRA measurements (``lora_mfu_fp8``/``lora_mfu_bf16``, ``qlora_speed_vs_lora`` in
  ``components/data/efficiency.csv``, fitted on ``components/data/finetune.csv``).
* **Memory per GPU** = states + activations + logits. States per parameter: full 2 (bf16
  weights) + 2 (grads) + 12 (fp32 master, Adam m and v) bytes (ZeRO, arXiv 1910.02054),
  split by the sharding strategy — ``zero1`` shards the 12, ``zero2`` also the grads, ``zero3``
  (FSDP full shard) everything; LoRA a frozen bf16 base (2 B; NF4 0.5 B for QLoRA), sharded only
  by zero3, plus adapters with their Adam states (0.16 B, ~1 % of parameters × 16 B).
  Activations per layer per sequence: 34·s·h bytes (Korthikanti et al. 2022, arXiv 2205.05198,
  eq. 1 without the attention-score term FlashAttention never stores); with activation
  checkpointing only each layer's input (2·s·h) plus one layer's 34·s·h. Logits: s·V·2 bytes
  (bf16, assumption) per sequence.
* **Failures.** A synchronous job restarts from its last checkpoint when any GPU fails: at
  ``gpu_failure_rate_per_hour`` (Llama 3: 419 unexpected interruptions in 54 days on 16,384
  H100s) the job's MTBF is 1 / (rate × GPUs). Checkpoints every τ (Young's optimum √(2·C·MTBF)
  unless set) cost C each; a failure loses τ/2 of work plus the restart R:
  ``wall = compute · (1 + C/τ) + compute / MTBF · (τ/2 + R)`` (first order, Daly 2006). C is the
  checkpoint's bytes per GPU over 0.122 GB/s per GPU (Llama 3's storage: 2 TB/s sustained
  over 16,384 GPUs). GPU acquisition time adds to the wall clock, not to the bill.

Usage::

    >>> from sim.quality.training import memory_per_gpu, reliability
    >>> # memory_per_gpu(job, model) -> {"total_gb": 20.0, "states_gb": ..., "lines": [...]}
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["memory_per_gpu", "reliability", "train_flops_per_param_token", "train_mfu",
           "CHECKPOINT_GBPS_PER_GPU", "ADAPTER_BYTES_PER_PARAM"]

ADAPTER_BYTES_PER_PARAM = 0.16
"""Adapters at rank 8–64 on every linear layer ≈ 1 % of parameters × 16 B (weights, grads, Adam)."""
CHECKPOINT_GBPS_PER_GPU = 2000 / 16384
"""Checkpoint write rate per GPU: Llama 3's Tectonic file system, 2 TB/s sustained for 16,384 GPUs."""
ACT_BYTES_PER_TOKEN_HIDDEN = 34  # Korthikanti et al. 2022, eq. 1, 16-bit activations, no TP
CKPT_BYTES_PER_TOKEN_HIDDEN = 2  # a checkpointed layer keeps only its bf16 input


def train_flops_per_param_token(method: str) -> int:
    return 6 if method == "full" else 4


def train_mfu(method: str, precision: str, has_fp8: bool) -> tuple[float, str]:
    """(MFU, source) for the method: full fine-tunes at training_mfu, LoRA/QLoRA at their LoRA rows."""
    from components.hardware import factor, source_of

    if method == "full":
        return factor("training_mfu"), source_of("factor", "training_mfu")
    key = "lora_mfu_fp8" if precision == "fp8" and has_fp8 else "lora_mfu_bf16"
    mfu, src = factor(key), source_of("factor", key)
    if method == "qlora":
        mfu *= factor("qlora_speed_vs_lora")
        src += " × " + source_of("factor", "qlora_speed_vs_lora")
    return mfu, src


def _states(method: str, params: float, g: int, sharding: str) -> tuple[float, str]:
    """Bytes of weights, gradients and optimizer states on one GPU."""
    if method == "full":
        rep, shard = {"none": (16, 0), "zero1": (4, 12), "zero2": (2, 14), "zero3": (0, 16)}[sharding]
        b = params * (rep + shard / g)
        return b, f"{params / 1e9:g}e9 × ({rep} B replicated + {shard} B / {g} GPUs) ({sharding})"
    base = 2.0 if method == "lora" else 0.5
    on_gpu = base / g if sharding == "zero3" else base
    adapters = ADAPTER_BYTES_PER_PARAM / (g if sharding != "none" else 1)
    return params * (on_gpu + adapters), (f"{params / 1e9:g}e9 × ({base:g} B frozen base{' / %d' % g if sharding == 'zero3' else ''} "
                                         f"+ {ADAPTER_BYTES_PER_PARAM:g} B adapters{' / %d' % g if sharding != 'none' else ''})")


def memory_per_gpu(job: Any, model: Any, *, sharding: str | None = None, checkpointing: bool | None = None,
                   micro_batch: int | None = None) -> dict[str, Any]:
    """Bytes one GPU of the job holds (GB), split into states, activations and logits."""
    sh = sharding or job.sharding
    ck = job.activation_checkpointing if checkpointing is None else checkpointing
    b = micro_batch or job.micro_batch_per_gpu
    s, h, layers, vocab = job.seq_len_tokens, model.hidden, model.layers, model.vocab
    params = model.params_total_b * 1e9
    states, states_text = _states(job.method, params, job.gpus, sh)
    per_layer = ACT_BYTES_PER_TOKEN_HIDDEN * s * b * h
    if ck:
        act = layers * CKPT_BYTES_PER_TOKEN_HIDDEN * s * b * h + per_layer
        act_text = f"{layers} layers × 2 B × {s} × {b} × {h} + one layer's 34 B × {s} × {b} × {h} (checkpointing)"
    else:
        act = layers * per_layer
        act_text = f"{layers} layers × 34 B × {s} tokens × {b} seqs × {h}"
    logits = s * b * vocab * 2
    total = states + act + logits
    return {
        "total_gb": total / 1e9, "states_gb": states / 1e9, "activations_gb": act / 1e9, "logits_gb": logits / 1e9,
        "sharding": sh, "checkpointing": ck, "micro_batch": b,
        "lines": [f"states {states / 1e9:,.1f} GB = {states_text}", f"activations {act / 1e9:,.1f} GB = {act_text}",
                  f"logits {logits / 1e9:,.2f} GB = {s} × {b} × vocab {vocab:,} × 2 B"],
    }


def fitting_options(job: Any, model: Any, hbm_gb: float) -> list[str]:
    """What would make a job fit its GPUs' memory, each with its per-GPU figure."""
    out = []
    for sh in ("zero1", "zero2", "zero3"):
        if ["none", "zero1", "zero2", "zero3"].index(sh) > ["none", "zero1", "zero2", "zero3"].index(job.sharding):
            m = memory_per_gpu(job, model, sharding=sh)["total_gb"]
            if m <= hbm_gb:
                out.append(f"sharding: {sh} ({m:,.1f} GB per GPU)")
                break
    if not job.activation_checkpointing:
        m = memory_per_gpu(job, model, checkpointing=True)["total_gb"]
        out.append(f"activation_checkpointing: true ({m:,.1f} GB)")
    if job.micro_batch_per_gpu > 1:
        m = memory_per_gpu(job, model, micro_batch=1)["total_gb"]
        out.append(f"micro_batch_per_gpu: 1 ({m:,.1f} GB)")
    if job.method == "full":
        out.append("method: lora or qlora")
    elif job.method == "lora":
        out.append("method: qlora")
    out.append("more GPUs with sharding: zero3, or a GPU with more memory")
    return out


def reliability(job: Any, compute_h: float, ckpt_bytes_total: float) -> dict[str, Any]:
    """Wall-clock hours with checkpoints, failures and restarts, and how they were worked out."""
    from components.hardware import factor, source_of

    rate = job.failure_rate_per_gpu_hour if job.failure_rate_per_gpu_hour is not None else factor("gpu_failure_rate_per_hour")
    rate_src = "set on the component" if job.failure_rate_per_gpu_hour is not None else source_of("factor", "gpu_failure_rate_per_hour")
    g = job.gpus
    mtbf_h = 1 / (rate * g) if rate > 0 else math.inf
    c_s = ckpt_bytes_total / g / (CHECKPOINT_GBPS_PER_GPU * 1e9)
    r_s = job.restart_min * 60
    if job.checkpoint_interval_min is not None:
        tau_s, how = job.checkpoint_interval_min * 60, "set"
    elif math.isfinite(mtbf_h):
        tau_s, how = math.sqrt(2 * c_s * mtbf_h * 3600), "Young's optimum √(2·C·MTBF)"
    else:
        tau_s, how = math.inf, "no failures"
    compute_s = compute_h * 3600
    n_ckpt = math.floor(compute_s / tau_s) if math.isfinite(tau_s) and tau_s > 0 else 0
    ckpt_s = n_ckpt * c_s
    failures = compute_s / (mtbf_h * 3600) if math.isfinite(mtbf_h) else 0.0
    lost_s = failures * (min(tau_s, compute_s) / 2 + r_s)
    wall_s = compute_s + ckpt_s + lost_s
    return {
        "wall_h": wall_s / 3600, "mtbf_h": mtbf_h, "failures": failures, "checkpoint_s": c_s,
        "checkpoint_interval_s": tau_s, "checkpoints": n_ckpt, "effective": compute_s / wall_s if wall_s else 1.0,
        "acquisition_h": job.gpu_acquisition_h, "rate_source": rate_src,
        "line": (f"failures: {rate:.3g}/GPU-h × {g} GPUs → MTBF {mtbf_h:,.1f} h, {failures:.3g} expected; checkpoint "
                 f"{ckpt_bytes_total / g / 1e9:,.2f} GB/GPU at {CHECKPOINT_GBPS_PER_GPU:.3g} GB/s = {c_s:.3g} s every "
                 f"{tau_s / 60 if math.isfinite(tau_s) else math.inf:,.3g} min ({how}); restart {job.restart_min:g} min → "
                 f"{wall_s / 3600:.3g} h wall for {compute_h:.3g} h of compute ({compute_s / wall_s:.1%} effective)"
                 + (f"; + {job.gpu_acquisition_h:g} h to acquire the GPUs (not billed)" if job.gpu_acquisition_h else "")),
    }
