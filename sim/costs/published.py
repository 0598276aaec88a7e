"""Published training runs, and how our analytic estimate compares with them.

Two sources, each with its own FLOP convention (we convert our predicted step time into the
paper's convention before comparing, so the comparison is of step time, not of bookkeeping):

- Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM" (SC'21), Table 1: GPT models of 1.7B-1T parameters on Selene (DGX A100 80GB,
  8 GPUs/node, 8x HDR 200 Gb/s InfiniBand), vocabulary 51,200, sequence 2048, mixed precision,
  full activation recomputation. Reported "achieved teraFLOP/s per GPU" counts FLOPs with
  their Eq. 3, F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h)), which *includes* the recomputation
  forward pass (4 forward-equivalents for the transformer, 3 for the logits) and counts the
  full (unmasked) attention rectangle. Micro-batch size, schedule and DDP implementation per
  row are not in the table; they are in the paper's artifact, Megatron-LM
  ``examples/sc21/run_table_1.sh`` (MBS 16/16/16/8/4/2/2/1/1/1; the interleaved schedule with
  5/5/3/1 layers per virtual stage for 76B-530B; ``DDP=torch`` for 1.7B-18B, ``local`` above;
  ``--activations-checkpoint-method uniform``), which we follow. No flash
  attention (it appeared in 2022; Megatron then materialised the attention scores) and
  ``overlap="sum"`` (2021 Megatron-LM's local DDP all-reduced gradients after the backward
  pass; the ``DDP=torch`` rows overlap them under ``overlap="stack"``: see ``TORCH_DDP``),
  dropout 0.1 on attention probabilities and residual branches (Megatron-LM defaults) and
  no gradient-accumulation fusion (a main_grad add per microbatch).
- Llama Team, Meta 2024, "The Llama 3 Herd of Models", Table 4: Llama 3 405B pre-training on
  up to 16K H100 80GB (8 GPUs/server, NVLink; 400 Gb/s RoCE per GPU). Reported "TFLOPs/GPU"
  with BF16 MFU = TFLOPs / 989 TFLOP/s. Sec. 3.3.2 defines MFU as Chowdhery et al. (2023)
  (PaLM, Appendix B): 6N + 12 L H Q T FLOPs per token, whose attention term counts the full
  T x T score rectangle (no causal halving). We divide those FLOPs by our step time
  (``palm_mfu_flops``); at 131K tokens the attention term is 57% of them, so comparing with
  clustersim's causal model FLOPs instead (as before) put that row 23% slow on bookkeeping
  alone. Batch size per DP group as in the table;
  we assume micro-batch 1, the interleaved schedule with 2 virtual stages (V is not
  published) and ZeRO-1 (the paper's FSDP shards optimizer state and gradients without
  resharding weights; gradient sharding with pp > 1 is rejected by our plan check). No
  activation recomputation: "we could pre-train Llama 3 on sequences of 8K tokens without
  activation checkpointing" (Sec. 3.3.2); the 128K CP rows are assumed the same.
"""

from __future__ import annotations

from dataclasses import dataclass

SC21_SYSTEM = "dgx-a100-80gb"
LLAMA3_SYSTEM = "dgx-h100"

SC21 = "Narayanan et al. 2021 (SC'21) Table 1"
LLAMA3 = "Llama 3 (2024) Table 4"


@dataclass(frozen=True)
class PublishedRun:
    source: str
    model: str  # clustersim preset
    gpus: int
    tp: int
    pp: int
    cp: int
    dp: int
    global_batch: int
    seq: int
    reported_tflops: float  # per GPU, in the paper's convention
    convention: str  # "megatron-eq3", "palm-mfu" or "model-flops"
    system: str
    schedule: str = "1f1b"
    virtual_stages: int = 1
    recompute: str = "full"
    zero: int = 0
    micro_batch: int = 1
    ddp: str = "local"  # Megatron-LM --DDP-impl: "local" (after the backward) or "torch"


def _sc21(model, tp, pp, gpus, batch, tflops, mbs, layers_per_chunk=0, ddp="local"):
    from sim.model import get_model

    v = get_model(model).n_layers // pp // layers_per_chunk if layers_per_chunk else 1
    return PublishedRun(SC21, model, gpus, tp, pp, 1, gpus // (tp * pp), batch, 2048, tflops,
                        "megatron-eq3", SC21_SYSTEM, "interleaved" if v > 1 else "1f1b", v,
                        micro_batch=mbs, ddp=ddp)


# Narayanan et al. 2021, Table 1 (model, t, p, GPUs, batch, achieved TFLOP/s per GPU), with
# each row's micro-batch size, --num-layers-per-virtual-pipeline-stage and --DDP-impl from the
# paper's artifact, Megatron-LM examples/sc21/run_table_1.sh (MBS, the VPP flag, DDP).
RUNS: tuple[PublishedRun, ...] = (
    _sc21("megatron-gpt-1.7b", 1, 1, 32, 512, 137, 16, ddp="torch"),
    _sc21("megatron-gpt-3.6b", 2, 1, 64, 512, 138, 16, ddp="torch"),
    _sc21("megatron-gpt-7.5b", 4, 1, 128, 512, 142, 16, ddp="torch"),
    _sc21("megatron-gpt-18b", 8, 1, 256, 1024, 135, 8, ddp="torch"),
    _sc21("megatron-gpt-39b", 8, 2, 512, 1536, 138, 4),
    _sc21("megatron-gpt-76b", 8, 4, 1024, 1792, 140, 2, 5),
    _sc21("megatron-gpt-145b", 8, 8, 1536, 2304, 148, 2, 5),
    _sc21("megatron-gpt-310b", 8, 16, 1920, 2160, 155, 1, 3),
    _sc21("megatron-gpt-530b", 8, 35, 2520, 2520, 163, 1, 1),
    _sc21("megatron-gpt-1t", 8, 64, 3072, 3072, 163, 1),
    # Llama 3 Table 4: GPUs, TP, CP, PP, DP, seq, batch/DP, TFLOPs/GPU (MFU 43/41/38%)
    PublishedRun(LLAMA3, "llama3-405b", 8192, 8, 16, 1, 64, 64 * 32, 8192, 430,
                 "palm-mfu", LLAMA3_SYSTEM, "interleaved", 2, "none", 1),
    PublishedRun(LLAMA3, "llama3-405b", 16384, 8, 16, 1, 128, 128 * 16, 8192, 400,
                 "palm-mfu", LLAMA3_SYSTEM, "interleaved", 2, "none", 1),
    PublishedRun(LLAMA3, "llama3-405b", 16384, 8, 16, 16, 8, 8 * 16, 131072, 380,
                 "palm-mfu", LLAMA3_SYSTEM, "interleaved", 2, "none", 1),
)


def megatron_eq3_flops(model, batch: int, seq: int) -> float:
    """Narayanan et al. 2021, Eq. 3: FLOPs per iteration with activation recomputation."""
    n, h, v = model.n_layers, model.hidden, model.vocab_size
    return 96 * batch * seq * n * h * h * (1 + seq / (6 * h) + v / (16 * n * h))


def palm_mfu_flops(model, batch: int, seq: int) -> float:
    """Chowdhery et al. 2022 (PaLM), Appendix B: 6N + 12 L H Q T model FLOPs per token (N all
    parameters, H query heads of width Q, T the sequence: full, unmasked attention)."""
    lhq = model.n_layers * model.n_heads * model.head_dim
    return batch * seq * (6 * model.params_total + 12 * lhq * seq)


def paper_flops(run: PublishedRun, model, result) -> float:
    """FLOPs of one step of ``run`` counted as its paper counts them."""
    if run.convention == "megatron-eq3":
        return megatron_eq3_flops(model, run.global_batch, run.seq)
    if run.convention == "palm-mfu":
        return palm_mfu_flops(model, run.global_batch, run.seq)
    return result.model_flops_per_step


def run_plan(run: PublishedRun):
    from sim.plan import ParallelPlan

    return ParallelPlan(
        tp=run.tp, pp=run.pp, dp=run.dp, cp=run.cp, zero=run.zero, micro_batch=run.micro_batch,
        global_batch=run.global_batch, seq_len=run.seq, recompute=run.recompute,
        sequence_parallel=run.source == LLAMA3, schedule=run.schedule,
        virtual_stages=run.virtual_stages,
        # 2021 predates FlashAttention (Dao et al. 2022): SC'21 materialised the scores;
        # Megatron-LM then reduced gradients after the backward pass and used blocking p2p
        # (grad-reduce overlap arrived in Megatron-Core in 2023): no overlap.
        flash_attention=run.source != SC21, overlap="sum" if run.source == SC21 else "max",
        # --gradient-accumulation-fusion arrived in Megatron-LM in 2022; the 2021 local DDP
        # added every microbatch's gradients into main_grad in a separate pass
        grad_accumulation_fusion=run.source != SC21)


# --DDP-impl torch (run_table_1.sh, 1.7B-18B) wraps the fp16 model in PyTorch
# DistributedDataParallel: fp16 gradients all-reduced in bucket_cap_mb = 25 MiB buckets (PyTorch
# DDP docs) as the backward produces them (Li et al. VLDB 2020, Sec. 3.2.3), during the last
# microbatch's backward (Megatron-LM 2021 schedules.py runs the others under model.no_sync()).
TORCH_DDP = {"overlap_grad_reduce": True, "bucket_elements": 25 * 2**20 // 2,
             "bucket_elements_per_rank": 0}
TORCH_DDP_SOURCE = ("Megatron-LM examples/sc21/run_table_1.sh DDP=torch; PyTorch "
                    "DistributedDataParallel bucket_cap_mb=25 over fp16 gradients; Li et al. "
                    "VLDB 2020 Sec. 3.2.3")


# Llama 3 Sec. 3.3.2: "we use an all-gather based method where we first all-gather the key
# (K) and value (V) tensors, and then compute attention output for the local query (Q)
# tensor chunk"; the all-gather latency "is exposed in the critical path".
LLAMA3_CP = {"cp_comm": "all_gather"}
LLAMA3_CP_SOURCE = "Llama 3 (2024) Sec. 3.3.2, context parallelism: K/V all-gathered, exposed"


def run_stack(run: PublishedRun):
    """The software stack ``run`` was measured with: Llama 3 under the training default with
    its all-gather context parallelism, SC'21 under ``megatron-lm-2021`` (its ``DDP=torch``
    rows with PyTorch DDP's buckets)."""
    if run.source == LLAMA3:
        return _override("megatron-core-2024", LLAMA3_CP, LLAMA3_CP_SOURCE, "llama3-cp")
    if run.ddp != "torch":
        from sim.stack import get_stack

        return get_stack("megatron-lm-2021")
    return _override("megatron-lm-2021", TORCH_DDP, TORCH_DDP_SOURCE, "torch-ddp")


def _override(name: str, knobs: dict, source: str, suffix: str):
    """Catalog stack ``name`` with ``knobs`` replaced, each citing ``source``."""
    from dataclasses import replace

    from sim.stack import get_stack, with_overrides
    from sim.stack.types import BY_NAME

    stack = with_overrides(get_stack(name), knobs)
    keys = {f"{BY_NAME[k].section}.{BY_NAME[k].key}" for k in knobs}
    src = tuple((k, source if k in keys else v) for k, v in stack.sources)
    return replace(stack, name=f"{name}+{suffix}", sources=src)


# Megatron-LM (2021) megatron/arguments.py defaults --attention-dropout 0.1 and
# --hidden-dropout 0.1; SC'21 states no override, so its GPT runs trained with dropout 0.1.
SC21_DROPOUT = 0.1


def run_model(run: PublishedRun):
    """The clustersim preset of ``run`` with the run's training dropout (Llama 3: none)."""
    from sim.model import get_model

    model = get_model(run.model)
    return model.with_(dropout=SC21_DROPOUT) if run.source == SC21 else model


def predict(run: PublishedRun) -> dict:
    """Our estimate of ``run``, with TFLOP/s per GPU in the paper's convention."""
    from hardware import Cluster, get_system
    from sim.costs.analytic import estimate_train

    model = run_model(run)
    result = estimate_train(model, run_plan(run), Cluster.for_gpus(get_system(run.system),
                                                                   run.gpus))
    tflops = paper_flops(run, model, result) / result.step_time_s / run.gpus / 1e12
    return {"predicted_tflops": tflops, "step_time_s": result.step_time_s,
            "fits": result.fits, "bottleneck": result.bottleneck}


def published_comparison():
    """Predicted vs reported TFLOP/s per GPU for every published run (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for run in RUNS:
        p = predict(run)
        err = (p["predicted_tflops"] - run.reported_tflops) / run.reported_tflops
        rows.append({"source": run.source, "model": run.model, "gpus": run.gpus, "tp": run.tp,
                     "pp": run.pp, "cp": run.cp, "dp": run.dp, "global_batch": run.global_batch,
                     "seq": run.seq, "convention": run.convention,
                     "reported_tflops": run.reported_tflops, **p, "error": err,
                     "abs_error": abs(err)})
    return pd.DataFrame(rows)
