"""Cheap lower bounds of a plan's ranking key, so a search times only plans that can win.

The analytic backend's step is ``compute + exposed communication + bubble`` on the slowest
pipeline stage (``sim.costs.analytic``), where a stage's compute and critical-path
communication are ``m`` microbatches x the sum of its layers' per-microbatch costs, plus
non-negative extras (embedding, LM head, optimizer, DP sync, bubble, point-to-point). The
slowest stage costs at least the average stage, so

    step_time >= m * (C + X) / pp + bubble(average stage),

with C the compute of all layers for one microbatch and X their exposed communication: the
per-layer costs come from the backend's own cached ``analytic_layers.layer_cost`` (the part
that depends only on micro-batch, tp, cp, ep, sequence parallelism and recompute), so the
bound costs a dictionary lookup. Exposure of the context-parallel exchange is
``max(0, cp - attention)`` over a stage; summing it over all layers first can only lower it
(the sum of positive parts is at least the positive part of the sum), so the bound stays
below the real value. The bubble of GPipe, 1F1B and interleaved 1F1B is linear and
increasing in the stage's per-microbatch pass times (``analytic_pipeline.bubble_time``), and
the backend stretches it by (compute + comm) / compute >= 1, so the bubble of the average
stage (layers only) is added too; ZB-H1's bubble falls as the weight-gradient pass grows, so
it is left out of the bound. Memory is known exactly before timing, so the memory objective's
bound is (memory, 0).
"""

from __future__ import annotations

from functools import lru_cache

from sim.costs import analytic_layers
from sim.costs.analytic_pipeline import bubble_time
from sim.search.space import plan_order


def _total_layers_cost(model, plan, cluster):
    n_moe = model.n_moe_layers if model.moe else 0
    total = analytic_layers.ZERO
    for moe, n in ((False, model.n_layers - n_moe), (True, n_moe)):
        if n:
            layer = next(i for i in range(model.n_layers) if model.is_moe_layer(i) == moe)
            total = total + analytic_layers.layer_cost(model, layer, plan, cluster).scaled(n)
    return total


@lru_cache(maxsize=65536)
def _per_microbatch(mkey: int, ckey: int, layer_key: tuple, overlap: str) -> tuple:
    """(compute + exposed comm, forward + recompute, input-grad, weight-grad) of all layers
    for one microbatch."""
    model, plan, cluster = _CTX[(mkey, ckey, layer_key)]
    t = _total_layers_cost(model, plan, cluster)
    return t.compute + t.comm_exposed(overlap), t.fwd + t.recompute, t.bwd_input, t.bwd_weight


_CTX: dict = {}


def step_time_lower_bound(model, plan, cluster) -> float:
    key = (id(model), id(cluster), analytic_layers.plan_key(plan))
    if key not in _CTX:
        _CTX[key] = (model, plan, cluster)
    busy, f, b, w = _per_microbatch(*key, plan.overlap)
    p = plan.pp
    bound = plan.n_microbatches * busy / p
    if plan.schedule != "zb-h1":  # linear in the stage's pass times: at least its mean
        bound += bubble_time(plan.schedule, p, plan.virtual_stages, f / p, b / p, w / p)
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
