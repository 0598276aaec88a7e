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
from sim.costs.analytic_comm import data_parallel_cost, pipeline_p2p_cost
from sim.costs.analytic_pipeline import bubble_time
from sim.costs.analytic_result import TrainResult
from sim.plan_validation import resolve_plan, stage_layers, validate_plan


# Adam update touches, per parameter: read grad, master, m, v; write master, m, v, bf16 weight
# (Rajbhandari et al. 2020, ZeRO, Sec. 3.1 byte counts); memory-bound, so bytes / bandwidth.
def _optimizer_bytes_per_param(opt) -> float:
    return opt.grad_bytes + 2 * (opt.master_bytes + opt.moment_bytes) + opt.weight_bytes


@lru_cache(maxsize=4096)
def _stage_params(mkey: int, n_layers_per_chunk: tuple, pp: int, tp: int, ep: int
                  ) -> tuple[tuple[float, float], ...]:
    """(dense, expert) parameters per rank of each stage (tp/ep sharded, embedding on the
    first stage, LM head + final norm on the last)."""
    model = layers._KEEP[mkey]
    counts = model_counts(model)
    starts = _chunk_starts(n_layers_per_chunk)
    per_stage = [[0.0, 0.0] for _ in range(pp)]
    for c, (start, n) in enumerate(zip(starts, n_layers_per_chunk, strict=True)):
        for i in range(start, start + n):
            lp = counts.layers[i]
            per_stage[c % pp][0] += (lp.total - lp.experts) / tp
            per_stage[c % pp][1] += lp.experts / (tp * ep)
    per_stage[0][0] += counts.embedding / tp
    per_stage[-1][0] += (counts.lm_head + counts.final_norm) / tp
    return tuple((d, e) for d, e in per_stage)


def model_counts(model):
    from sim.model.params import count_params

    return count_params(model)


def _chunk_starts(sizes) -> list[int]:
    out, s = [], 0
    for n in sizes:
        out.append(s)
        s += n
    return out


def _stage_costs(model, plan, cluster, chunk_sizes) -> list:
    """PartCost per microbatch of every stage (all its chunks)."""
    emb, head = layers.ends_cost(model, plan, cluster)
    dense = moe = None
    starts = _chunk_starts(chunk_sizes)
    stages = [layers.ZERO] * plan.pp
    for c, (start, n) in enumerate(zip(starts, chunk_sizes, strict=True)):
        n_moe = sum(model.is_moe_layer(i) for i in range(start, start + n)) if model.moe else 0
        cost = layers.ZERO
        if n - n_moe:
            dense = dense or layers.layer_cost(model, _first(model, False), plan, cluster)
            cost = cost + dense.scaled(n - n_moe)
        if n_moe:
            moe = moe or layers.layer_cost(model, _first(model, True), plan, cluster)
            cost = cost + moe.scaled(n_moe)
        stages[c % plan.pp] = stages[c % plan.pp] + cost
    stages[0] = stages[0] + emb
    stages[-1] = stages[-1] + head
    return stages


def _first(model, moe: bool) -> int:
    return next(i for i in range(model.n_layers) if model.is_moe_layer(i) == moe)


@lru_cache(maxsize=4096)
def _flops(mkey: int, plan) -> tuple[float, float]:
    from sim.costs.flops import hardware_flops_per_step, model_flops_per_step

    model = layers._KEEP[mkey]
    return model_flops_per_step(model, plan), hardware_flops_per_step(model, plan)


def _flops_key_plan(plan):
    from dataclasses import replace

    return replace(plan, tp=1, pp=1, dp=1, ep=1, cp=1, zero=0, schedule="1f1b",
                   virtual_stages=1, overlap="max", sequence_parallel=False)


def estimate_train(model, plan, cluster) -> TrainResult:
    """Analytic estimate of one training step of ``model`` under ``plan`` on ``cluster``."""
    plan = resolve_plan(plan, cluster.n_gpus)
    validate_plan(model, plan, cluster.n_gpus)
    mkey = layers._ident(model)
    v = plan.virtual_stages if plan.schedule == "interleaved" else 1
    chunk_sizes = tuple(stage_layers(model.n_layers, plan.pp * v))
    stages = _stage_costs(model, plan, cluster, chunk_sizes)
    params = _stage_params(mkey, chunk_sizes, plan.pp, plan.tp, plan.ep)
    per_stage = [_stage_step(model, plan, cluster, s, p) for s, p in zip(stages, params, strict=True)]
    slow = max(range(plan.pp), key=lambda i: per_stage[i]["total"])
    mf, hf = _flops(mkey, _flops_key_plan(plan))
    from sim.costs.memory import memory_per_gpu

    memory = memory_per_gpu(model, plan, cluster)
    return TrainResult.build(model, plan, cluster, per_stage, slow, stages, mf, hf, memory,
                             pipeline_p2p_cost(model, plan, cluster), __version__)


def _stage_step(model, plan, cluster, cost, params) -> dict:
    """Time components of one step on a stage (seconds)."""
    m, acc = plan.n_microbatches, cluster.accelerator
    dense, expert = params
    shard = plan.dp if plan.zero >= 1 else 1
    opt_bytes = (dense + expert) / shard * _optimizer_bytes_per_param(plan.optimizer)
    t_opt = opt_bytes / (acc.memory_bandwidth * acc.efficiency.memory_bandwidth)
    t_fwd, t_bwd = cost.fwd, cost.bwd_input + cost.bwd_weight + cost.recompute
    dp = data_parallel_cost(plan, cluster, dense, expert, t_fwd, t_bwd)
    per_mb_comm = cost.comm_exposed(plan.overlap)
    bubble = bubble_time(plan.schedule, plan.pp, plan.virtual_stages,
                         cost.fwd + cost.recompute, cost.bwd_input, cost.bwd_weight)
    bubble *= (cost.compute + per_mb_comm) / cost.compute if cost.compute else 1.0
    compute = m * cost.compute + t_opt
    exposed = m * per_mb_comm + dp.exposed
    return {"compute": compute, "comm": exposed, "bubble": bubble, "dp": dp,
            "optimizer": t_opt, "total": compute + exposed + bubble}
