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

Layers and parameters are spread over stages by ``sim.costs.layout.StageLayout`` (the same
layout memory, the DES and inference read); the first stage also runs the embedding, the last
the LM head and loss. MFU uses model FLOPs (no recomputation,
no MoE padding) and HFU hardware FLOPs (Chowdhery et al. 2022, PaLM, App. B), both from
``sim.costs.flops``; ``tflops_per_gpu`` is model FLOPs per second per GPU. Memory comes from
``sim.costs.memory``; a plan that does not fit is reported (``fits=False``), not raised.
"""

from __future__ import annotations

from typing import NamedTuple

from sim import __version__
from sim.costs import analytic_layers as layers
from sim.costs.analytic_comm import (
    CommCost,
    data_parallel_parts,
    pipeline_p2p_cost,
    stack_data_parallel_parts,
)
from sim.costs.analytic_result import TrainResult
from sim.costs.context import CostContext, LayerKey, StageKey
from sim.costs.layout import StageLayout
from sim.costs.stack_effects import OPTIMIZER_UNFUSED_TRAFFIC
from sim.plan_validation import resolve_plan, validate_plan
from sim.schedules import get_schedule


# Adam update touches, per parameter: read grad, master, m, v; write master, m, v, bf16 weight
# (Rajbhandari et al. 2020, ZeRO, Sec. 3.1 byte counts); memory-bound, so bytes / bandwidth.
def _optimizer_bytes_per_param(opt) -> float:
    return opt.grad_bytes + 2 * (opt.master_bytes + opt.moment_bytes) + opt.weight_bytes


def model_counts(model):
    from sim.model.params import count_params

    return count_params(model)


class StageCost(NamedTuple):
    """One stage per microbatch: its ``PartCost``, (dense, expert) params per rank, and the
    index of the first stage with the same content (the step maths runs once per distinct)."""

    cost: layers.PartCost
    params: tuple[float, float]
    distinct: int


class LayoutKey(NamedTuple):
    layer: LayerKey
    pp: int
    virtual: int


def _chunk_cost(ctx, plan, chunk):
    cost = layers.ZERO
    for rep, n in chunk.kinds:
        cost = cost + layers.layer_cost(ctx.model, rep, plan, ctx.cluster, ctx).scaled(n)
    return cost


def _stage_costs(ctx: CostContext, plan, lay: StageLayout) -> tuple[StageCost, ...]:
    emb, head = layers.ends_cost(ctx.model, plan, ctx.cluster, ctx)
    costs = [layers.ZERO] * lay.pp
    for c in lay.chunks:
        costs[c.stage] = costs[c.stage] + _chunk_cost(ctx, plan, c)
    costs[0] = costs[0] + emb
    costs[-1] = costs[-1] + head
    seen: dict = {}
    out = []
    for st in lay.stages:
        params = (st.dense_params, st.expert_params)
        first = seen.setdefault((costs[st.stage].compute, costs[st.stage].fwd, params), st.stage)
        out.append(StageCost(costs[first], params, first))
    return tuple(out)


def stage_costs(model, plan, cluster, ctx: CostContext | None = None) -> tuple[StageCost, ...]:
    """Per stage of ``plan``'s ``StageLayout``: its cost per microbatch and its parameters."""
    ctx = ctx or CostContext.of(model, cluster)
    lay = StageLayout.of(model, plan)
    key = LayoutKey(LayerKey.of(plan), lay.pp, lay.virtual)
    return ctx.cached("stage_costs", key, lambda: _stage_costs(ctx, plan, lay))


def estimate_train(model, plan, cluster) -> TrainResult:
    """Analytic estimate of one training step of ``model`` under ``plan`` on ``cluster``."""
    from sim.costs.memory import memory_per_gpu

    plan = with_stack(resolve_plan(plan, cluster.n_gpus))
    validate_plan(model, plan, cluster.n_gpus)
    ctx = CostContext.of(model, cluster)
    stages = stage_costs(model, plan, cluster, ctx)
    n_stage = max(st.n_layers for st in StageLayout.of(model, plan).stages)  # ZeRO-3 gathers
    memo: dict = {}
    per_stage = [memo.get(s.distinct) or
                 memo.setdefault(s.distinct, _stage_step(ctx, plan, s, n_stage))
                 for s in stages]
    slow = max(range(plan.pp), key=lambda i: per_stage[i]["total"])
    mf, hf = train_flops(model, plan, cluster, ctx)
    memory = memory_per_gpu(model, plan, cluster)
    return TrainResult.build(model, plan, cluster, per_stage, slow, [s.cost for s in stages],
                             mf, hf, memory, pipeline_p2p_cost(model, plan, cluster),
                             __version__)


def with_stack(plan):
    """``overlap="stack"`` without a stack follows the training default stack."""
    if plan.overlap != "stack" or plan.stack is not None:
        return plan
    from dataclasses import replace

    from sim.stack import TRAINING_DEFAULT, get_stack

    return replace(plan, stack=get_stack(TRAINING_DEFAULT))


def train_flops(model, plan, cluster, ctx: CostContext | None = None) -> tuple[float, float]:
    """(model FLOPs, hardware FLOPs) of one step of ``plan`` (``sim.costs.flops``), memoised."""
    from sim.costs.flops import hardware_flops_per_step, model_flops_per_step

    ctx = ctx or CostContext.of(model, cluster)
    return ctx.cached("flops", plan, lambda: (model_flops_per_step(model, plan),
                                              hardware_flops_per_step(model, plan)))


def optimizer_step_time(plan, cluster, params: float) -> float:
    """Seconds of the optimizer update on a rank holding ``params`` parameters (before ZeRO):
    memory-bound Adam over its (distributed-optimizer-sharded) state; an unfused optimizer
    (``plan.stack``) moves more bytes (``stack_effects.OPTIMIZER_UNFUSED_TRAFFIC``)."""
    acc, stack = cluster.accelerator, plan.stack
    shard = plan.dp * plan.cp if plan.zero >= 1 else 1  # distributed optimizer over dp x cp
    opt_bytes = params / shard * _optimizer_bytes_per_param(plan.optimizer)
    if stack is not None and not stack.fused_optimizer:
        opt_bytes *= OPTIMIZER_UNFUSED_TRAFFIC
    return opt_bytes / (acc.memory_bandwidth * acc.efficiency.memory_bandwidth)


def _stage_step(ctx, plan, stage: StageCost, n_layers: int = 1) -> dict:
    """Time components of one step on a stage (seconds): the microbatch-independent parts
    are memoised per (plan, stage), then scaled by the number of microbatches m. A stack's
    per-iteration framework overhead is counted as compute (it occupies the step like a
    kernel would)."""
    parts = ctx.cached("stage_parts", StageKey(plan, stage.distinct),
                       lambda: _stage_parts(ctx.cluster, plan, stage, n_layers))
    c_mb, comm_mb, t_opt, bubble, dp_fixed, dp_mb = parts
    if plan.stack is not None:
        t_opt += plan.stack.iteration_overhead_s
    m = plan.n_microbatches
    dp = CommCost(dp_fixed.total + m * dp_mb.total, dp_fixed.exposed + m * dp_mb.exposed)
    compute = m * c_mb + t_opt
    exposed = m * comm_mb + dp.exposed
    return {"compute": compute, "comm": exposed, "bubble": bubble, "dp": dp,
            "optimizer": t_opt, "total": compute + exposed + bubble}


def _stage_parts(cluster, plan, stage: StageCost, n_layers: int = 1):
    cost, (dense, expert) = stage.cost, stage.params
    t_opt = optimizer_step_time(plan, cluster, dense + expert)
    t_bwd = cost.bwd_input + cost.bwd_weight + cost.recompute
    if plan.overlap == "stack":
        dp_fixed, dp_mb = stack_data_parallel_parts(plan, cluster, dense, expert, cost.fwd,
                                                    t_bwd, n_layers)
    else:
        dp_fixed, dp_mb = data_parallel_parts(plan, cluster, dense, expert, cost.fwd, t_bwd)
    comm_mb = cost.comm_exposed(plan.overlap, plan.stack)
    bubble = get_schedule(plan.schedule).bubble_time(
        plan.pp, plan.virtual_stages, cost.fwd + cost.recompute, cost.bwd_input,
        cost.bwd_weight)
    bubble *= (cost.compute + comm_mb) / cost.compute if cost.compute else 1.0
    return cost.compute, comm_mb, t_opt, bubble, dp_fixed, dp_mb
