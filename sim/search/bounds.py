"""Cheap lower bounds of a plan's ranking key, so a search times only plans that can win.

The analytic backend's step is ``compute + exposed communication + bubble`` on the slowest
pipeline stage (``sim.costs.analytic``), where a stage's compute and critical-path
communication are ``m`` microbatches x the sum of its layers' per-microbatch costs, plus
non-negative extras (embedding, LM head, optimizer, DP sync, bubble, point-to-point). The
slowest stage costs at least the average stage, so

    step_time >= m * (C + X) / pp + bubble(average stage),

with C the compute of all layers for one microbatch and X their exposed communication: the
per-layer costs come from the backend's own memoised ``analytic_layers.layer_cost`` (the part
that depends only on micro-batch, tp, cp, ep, sequence parallelism and recompute), so the
bound costs a dictionary lookup in the shared ``CostContext``. Exposure of the context-parallel exchange is
``max(0, cp - attention)`` over a stage; summing it over all layers first can only lower it
(the sum of positive parts is at least the positive part of the sum), so the bound stays
below the real value. The bubble of GPipe, 1F1B and interleaved 1F1B is linear and
increasing in the stage's per-microbatch pass times (``PipelineSchedule.bubble_monotone``), and
the backend stretches it by (compute + comm) / compute >= 1, so the bubble of the average
stage (layers only) is added too; a schedule whose bubble falls as a pass grows (ZB-H1: the
weight-gradient pass fills it) is not monotone, so its bubble is left out of the bound. Memory is known exactly before timing, so the memory objective's
bound is (memory, 0).
"""

from __future__ import annotations

from sim.costs import analytic_layers
from sim.costs.context import CostContext, LayerKey
from sim.schedules import get_schedule
from sim.search.space import plan_order


def _total_layers_cost(model, plan, cluster):
    n_moe = model.n_moe_layers if model.moe else 0
    total = analytic_layers.ZERO
    for moe, n in ((False, model.n_layers - n_moe), (True, n_moe)):
        if n:
            layer = next(i for i in range(model.n_layers) if model.is_moe_layer(i) == moe)
            total = total + analytic_layers.layer_cost(model, layer, plan, cluster).scaled(n)
    return total


def _per_microbatch(ctx: CostContext, plan) -> tuple:
    """(compute + exposed comm, forward + recompute, input-grad, weight-grad) of all layers
    for one microbatch."""
    t = _total_layers_cost(ctx.model, plan, ctx.cluster)
    return t.compute + t.comm_exposed(plan.overlap), t.fwd + t.recompute, t.bwd_input, t.bwd_weight


def step_time_lower_bound(model, plan, cluster) -> float:
    ctx = CostContext.of(model, cluster)
    busy, f, b, w = ctx.cached("step_bound", (LayerKey.of(plan), plan.overlap),
                               lambda: _per_microbatch(ctx, plan))
    p = plan.pp
    bound = plan.n_microbatches * busy / p
    sched = get_schedule(plan.schedule)
    if sched.bubble_monotone:  # linear in the stage's pass times: at least its mean
        bound += sched.bubble_time(p, plan.virtual_stages, f / p, b / p, w / p)
    return bound


def bound_key(objective: str, model, cand) -> tuple:
    """A tuple <= the candidate's real ``objective_key`` (same layout of fields)."""
    tail = (cand.cluster.n_gpus, plan_order(cand.plan))
    if objective == "memory":
        return (cand.memory, 0.0) + tail
    t = step_time_lower_bound(model, cand.plan, cand.cluster)
    if objective == "cost":
        price = cand.cluster.system.price_per_gpu_hour
        usd = price * cand.cluster.n_gpus * t / 3600.0
        return (usd / (cand.plan.global_batch * cand.plan.seq_len) * 1e6, t) + tail
    return (t,) + tail
