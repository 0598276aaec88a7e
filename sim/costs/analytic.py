"""The analytic training backend: one step's time, throughput, FLOPs and memory in closed form.

A step on the slowest pipeline stage is ``compute + exposed communication + pipeline bubble``:

- compute: ``m`` microbatches x the stage's forward + backward (+ recomputation) time per
  microbatch, each op priced by the roofline (``sim.costs.timing``), plus the optimizer
  update (a memory-bound pass over the rank's optimizer state);
- exposed communication: TP/EP collectives on the critical path of every microbatch, the CP
  KV exchange beyond the attention it hides behind, the DP/ZeRO gradient and weight sync not
  hidden behind backward/forward, and pipeline point-to-point
  (``sim.costs.analytic_comm``); ``overlap="sum"`` exposes all of it, so the two settings
  bracket the truth;
- bubble: ``(p-1)/v`` microbatch-times for GPipe/1F1B/interleaved, ZB-H1's
  ``(p-1)(T_F + T_B - T_W)`` (``sim.costs.analytic_pipeline``).

Layers are spread over stages by ``sim.plan_validation.stage_layers``; the first stage also
runs the embedding, the last the LM head and loss. MFU uses model FLOPs (no recomputation,
no MoE padding) and HFU hardware FLOPs (Chowdhery et al. 2022, PaLM, App. B), both from
``sim.costs.flops``; ``tflops_per_gpu`` is model FLOPs per second per GPU. Memory comes from
``sim.costs.memory``; a plan that does not fit is reported (``fits=False``), not raised.
"""

from __future__ import annotations

from functools import lru_cache

from sim import __version__
from sim.costs import analytic_layers as layers
from sim.costs.analytic_comm import (
    CommCost,
    data_parallel_parts,
    pipeline_p2p_cost,
    stack_data_parallel_parts,
)
from sim.costs.analytic_pipeline import bubble_time
from sim.costs.analytic_result import TrainResult
from sim.costs.stack_effects import OPTIMIZER_UNFUSED_TRAFFIC
from sim.plan_validation import resolve_plan, stage_layers, validate_plan


# Adam update touches, per parameter: read grad, master, m, v; write master, m, v, bf16 weight
# (Rajbhandari et al. 2020, ZeRO, Sec. 3.1 byte counts); memory-bound, so bytes / bandwidth.
def _optimizer_bytes_per_param(opt) -> float:
    return opt.grad_bytes + 2 * (opt.master_bytes + opt.moment_bytes) + opt.weight_bytes


def model_counts(model):
    from sim.model.params import count_params

    return count_params(model)


def _chunks(n_layers_per_chunk) -> list[tuple[int, int]]:
    """(first layer, layer count) of every pipeline chunk, in layer order."""
    out, start = [], 0
    for n in n_layers_per_chunk:
        out.append((start, n))
        start += n
    return out


def _first(model, moe: bool) -> int:
    return next(i for i in range(model.n_layers) if model.is_moe_layer(i) == moe)


def _chunk_cost(model, plan, cluster, start: int, n: int):
    n_moe = sum(model.is_moe_layer(i) for i in range(start, start + n)) if model.moe else 0
    cost = layers.ZERO
    if n - n_moe:
        cost = cost + layers.layer_cost(model, _first(model, False), plan, cluster).scaled(n - n_moe)
    if n_moe:
        cost = cost + layers.layer_cost(model, _first(model, True), plan, cluster).scaled(n_moe)
    return cost


def _chunk_params(counts, tp: int, ep: int, start: int, n: int) -> tuple[float, float]:
    """(dense, expert) parameters of layers start..start+n-1 on one rank (tp/ep sharded)."""
    lps = counts.layers[start:start + n]
    return (sum(lp.total - lp.experts for lp in lps) / tp,
            sum(lp.experts for lp in lps) / (tp * ep))


@lru_cache(maxsize=8192)
def _layout(mkey: int, ckey: int, key: tuple, pp: int, chunk_sizes: tuple) -> tuple:
    """Per stage: (PartCost per microbatch, (dense, expert) params per rank). Identical stages
    share one tuple, so the step maths runs once per distinct stage."""
    model, plan, cluster = layers._CTX[("layout", mkey, key, ckey)]
    counts = model_counts(model)
    emb, head = layers.ends_cost(model, plan, cluster)
    stages = [(layers.ZERO, (0.0, 0.0))] * pp
    for c, (start, n) in enumerate(_chunks(chunk_sizes)):
        cost, (d, e) = stages[c % pp]
        cd, ce = _chunk_params(counts, plan.tp, plan.ep, start, n)
        stages[c % pp] = (cost + _chunk_cost(model, plan, cluster, start, n), (d + cd, e + ce))
    first, last = stages[0], stages[-1]
    stages[0] = (first[0] + emb, (first[1][0] + counts.embedding / plan.tp, first[1][1]))
    last = stages[-1]
    tail = (counts.lm_head + counts.final_norm) / plan.tp
    stages[-1] = (last[0] + head, (last[1][0] + tail, last[1][1]))
    seen: dict = {}
    return tuple(seen.setdefault((s[0].compute, s[0].fwd, s[1]), s) for s in stages)


def _stages(model, plan, cluster, chunk_sizes) -> tuple:
    mkey, ckey, key = layers._ident(model), layers._ident(cluster), layers.plan_key(plan)
    ctx_key = ("layout", mkey, key, ckey)
    if ctx_key not in layers._CTX:
        layers._CTX[ctx_key] = (model, layers.canonical_plan(plan), cluster)
    return _layout(mkey, ckey, key, plan.pp, chunk_sizes)


@lru_cache(maxsize=8192)
def _flops(mkey: int, micro_batch: int, global_batch: int, seq: int, recompute: str,
           flash: bool, dtype: str) -> tuple[float, float]:
    from sim.costs.flops import hardware_flops_per_step, model_flops_per_step
    from sim.plan import ParallelPlan

    model = layers._KEEP[mkey]
    plan = ParallelPlan(micro_batch=micro_batch, global_batch=global_batch, seq_len=seq,
                        recompute=recompute, flash_attention=flash, dtype=dtype)
    return model_flops_per_step(model, plan), hardware_flops_per_step(model, plan)


def estimate_train(model, plan, cluster) -> TrainResult:
    """Analytic estimate of one training step of ``model`` under ``plan`` on ``cluster``."""
    from sim.costs.memory import memory_per_gpu

    plan = _with_stack(resolve_plan(plan, cluster.n_gpus))
    validate_plan(model, plan, cluster.n_gpus)
    v = plan.virtual_stages if plan.schedule == "interleaved" else 1
    sizes = _chunk_sizes(model.n_layers, plan.pp * v)
    stages = _stages(model, plan, cluster, sizes)
    n_stage = max(sizes) * v  # layers on the busiest stage (ZeRO-3 per-layer gathers)
    memo: dict = {}
    per_stage = [memo.get(id(s)) or memo.setdefault(id(s), _stage_step(plan, cluster, s, n_stage))
                 for s in stages]
    slow = max(range(plan.pp), key=lambda i: per_stage[i]["total"])
    mf, hf = _flops(layers._ident(model), plan.micro_batch, plan.global_batch, plan.seq_len,
                    plan.recompute, plan.flash_attention, plan.dtype)
    memory = memory_per_gpu(model, plan, cluster)
    return TrainResult.build(model, plan, cluster, per_stage, slow, [s[0] for s in stages],
                             mf, hf, memory, pipeline_p2p_cost(model, plan, cluster),
                             __version__)


def _with_stack(plan):
    """``overlap="stack"`` without a stack follows the training default stack."""
    if plan.overlap != "stack" or plan.stack is not None:
        return plan
    from dataclasses import replace

    from sim.stack import TRAINING_DEFAULT, get_stack

    return replace(plan, stack=get_stack(TRAINING_DEFAULT))


@lru_cache(maxsize=4096)
def _chunk_sizes(n_layers: int, chunks: int) -> tuple[int, ...]:
    return tuple(stage_layers(n_layers, chunks))


def _stage_step(plan, cluster, stage, n_layers: int = 1) -> dict:
    """Time components of one step on a stage (seconds): the microbatch-independent parts
    are cached, then scaled by the number of microbatches m. A stack's per-iteration
    framework overhead is counted as compute (it occupies the step like a kernel would)."""
    parts = _stage_parts(layers._ident(stage), layers._ident(cluster), plan.dp, plan.cp,
                         plan.tp, plan.pp, plan.ep, plan.zero, plan.overlap, plan.schedule,
                         plan.virtual_stages, plan.optimizer, plan.stack, n_layers)
    c_mb, comm_mb, t_opt, bubble, dp_fixed, dp_mb = parts
    if plan.stack is not None:
        t_opt += plan.stack.iteration_overhead_s
    m = plan.n_microbatches
    dp = CommCost(dp_fixed.total + m * dp_mb.total, dp_fixed.exposed + m * dp_mb.exposed)
    compute = m * c_mb + t_opt
    exposed = m * comm_mb + dp.exposed
    return {"compute": compute, "comm": exposed, "bubble": bubble, "dp": dp,
            "optimizer": t_opt, "total": compute + exposed + bubble}


@lru_cache(maxsize=65536)
def _stage_parts(skey, ckey, dp, cp, tp, pp, ep, zero, overlap, schedule, v, optimizer,
                 stack=None, n_layers=1):
    from sim.plan import ParallelPlan

    (cost, (dense, expert)), cluster = layers._KEEP[skey], layers._KEEP[ckey]
    plan = ParallelPlan(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, zero=zero, overlap=overlap,
                        schedule=schedule, virtual_stages=v, optimizer=optimizer, stack=stack)
    acc = cluster.accelerator
    shard = dp * cp if zero >= 1 else 1  # distributed optimizer over dp x cp
    opt_bytes = (dense + expert) / shard * _optimizer_bytes_per_param(optimizer)
    if stack is not None and not stack.fused_optimizer:
        opt_bytes *= OPTIMIZER_UNFUSED_TRAFFIC
    t_opt = opt_bytes / (acc.memory_bandwidth * acc.efficiency.memory_bandwidth)
    t_bwd = cost.bwd_input + cost.bwd_weight + cost.recompute
    if overlap == "stack":
        dp_fixed, dp_mb = stack_data_parallel_parts(plan, cluster, dense, expert, cost.fwd,
                                                    t_bwd, n_layers)
    else:
        dp_fixed, dp_mb = data_parallel_parts(plan, cluster, dense, expert, cost.fwd, t_bwd)
    comm_mb = cost.comm_exposed(overlap, stack)
    bubble = bubble_time(schedule, pp, v, cost.fwd + cost.recompute, cost.bwd_input,
                         cost.bwd_weight)
    bubble *= (cost.compute + comm_mb) / cost.compute if cost.compute else 1.0
    return cost.compute, comm_mb, t_opt, bubble, dp_fixed, dp_mb
