"""Step-level communication of the analytic backend: data-parallel gradient sync (ZeRO 0-3)
and pipeline point-to-point, with their exposed part under ``overlap = max | sum``.

Data parallelism (per step, per rank; S = gradient bytes of the rank's parameters):
- ZeRO-0: one all-reduce of S over the dp x cp group (CP ranks hold identical weights).
- ZeRO-1 (Megatron distributed optimizer): reduce-scatter S, then all-gather the updated
  weights (same volume as one all-reduce; Rajbhandari et al. 2020, Sec. 7.2.1).
- ZeRO-2: gradients live sharded, so every microbatch's gradients are reduce-scattered
  (DeepSpeed stage 2), plus one weight all-gather per step.
- ZeRO-3: every microbatch all-gathers the weights for the forward and again for the backward
  and reduce-scatters the gradients: 1.5x ZeRO-0's volume per microbatch (ibid., Sec. 7.2.2).
Expert weights are reduced the same way over the expert-data-parallel group (dp/ep ranks).
Gradients go out in buckets (Megatron-Core DDP: max(40M, 1M * dp) elements), each bucket a
collective of its own; with ``overlap="max"`` the reduction hides behind the backward pass of
the last microbatch and the weight all-gather behind the next forward
(``--overlap-grad-reduce`` / ``--overlap-param-gather``), except the last bucket, which
cannot overlap. With ``overlap="sum"`` all of it is exposed.

Pipeline: each microbatch crosses every stage boundary twice (activations forward, their
gradients backward), ``v`` times with interleaving; the message is b * (s/cp) * h elements
divided by tp (scatter/gather optimisation, Narayanan et al. 2021, Sec. 4.1). With
``overlap="max"`` only the 2(p-1) hops of the pipeline fill and drain are exposed; with
``"sum"`` every hop is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sim.costs.comm import collective_time, group_ranks
from sim.dtypes import dtype_bytes
from sim.schedules import get_schedule


@dataclass(frozen=True)
class CommCost:
    total: float  # seconds of communication issued per step on one rank
    exposed: float  # seconds of it on the critical path


def bucket_bytes(dp: int, grad_bytes: int) -> float:
    # Megatron-Core DistributedDataParallel default bucket: max(40M, 1M * dp) elements
    return max(40_000_000, 1_000_000 * dp) * grad_bytes


def bucketed_time(kind: str, total_bytes: float, ranks, cluster, bucket: float) -> tuple[float, float]:
    """(time of all buckets, time of the last bucket) for ``total_bytes`` sent in buckets."""
    if total_bytes <= 0 or len(ranks) < 2:
        return 0.0, 0.0
    return _bucketed(kind, total_bytes, tuple(ranks), cluster, bucket)


@lru_cache(maxsize=65536)
def _bucketed(kind, total_bytes, ranks, cluster, bucket) -> tuple[float, float]:
    full, rest = divmod(total_bytes, bucket)
    t_full = collective_time(kind, bucket, ranks, cluster) if full else 0.0
    t_rest = collective_time(kind, rest, ranks, cluster) if rest else 0.0
    return full * t_full + t_rest, (t_rest or t_full)


def _hide(t: float, last: float, window: float, overlap: str) -> float:
    """Exposed part of ``t`` overlapped with ``window`` seconds of compute."""
    return t if overlap == "sum" else max(last, t - window)


@lru_cache(maxsize=65536)
def _sync_parts(zero: int, overlap: str, grad_bytes: int, params: float, ranks: tuple,
                cluster, t_fwd: float, t_bwd: float) -> tuple[CommCost, CommCost]:
    """(once per step, per microbatch) parts of one parameter set's DP sync."""
    size, bucket, ov = params * grad_bytes, bucket_bytes(len(ranks), grad_bytes), overlap
    ar, ar_last = bucketed_time("all_reduce", size, ranks, cluster, bucket)
    rs, rs_last = bucketed_time("reduce_scatter", size, ranks, cluster, bucket)
    ag, ag_last = bucketed_time("all_gather", size, ranks, cluster, bucket)
    none = CommCost(0.0, 0.0)
    if zero == 0:
        return CommCost(ar, _hide(ar, ar_last, t_bwd, ov)), none
    gather = CommCost(ag, _hide(ag, ag_last, t_fwd, ov))
    scatter = CommCost(rs, _hide(rs, rs_last, t_bwd, ov))
    if zero == 1:
        return CommCost(rs + ag, scatter.exposed + gather.exposed), none
    if zero == 2:
        return gather, scatter
    exposed = _hide(ag, ag_last, t_fwd, ov) + _hide(ag + rs, rs_last, t_bwd, ov)
    return none, CommCost(2 * ag + rs, exposed)


def data_parallel_parts(plan, cluster, dense_params: float, expert_params: float,
                        t_fwd: float, t_bwd: float) -> tuple[CommCost, CommCost]:
    """Gradient/weight sync of one rank holding ``dense_params`` + ``expert_params`` (already
    divided by tp/ep), as (once per step, per microbatch); ``t_fwd``/``t_bwd`` are one
    microbatch's pass times on its stage (the compute that hides the sync)."""
    args = (plan.zero, plan.overlap, plan.optimizer.grad_bytes)
    fixed, per_mb = _sync_parts(*args, dense_params, tuple(group_ranks(plan, "dp_cp")), cluster,
                                t_fwd, t_bwd)
    if expert_params > 0:
        f2, m2 = _sync_parts(*args, expert_params, tuple(group_ranks(plan, "edp")), cluster,
                             t_fwd, t_bwd)
        fixed = CommCost(fixed.total + f2.total, fixed.exposed + f2.exposed)
        per_mb = CommCost(per_mb.total + m2.total, per_mb.exposed + m2.exposed)
    return fixed, per_mb


def data_parallel_cost(plan, cluster, dense_params: float, expert_params: float,
                       t_fwd: float, t_bwd: float) -> CommCost:
    """The whole step's DP sync: once-per-step part + m x the per-microbatch part."""
    fixed, per_mb = data_parallel_parts(plan, cluster, dense_params, expert_params, t_fwd, t_bwd)
    m = plan.n_microbatches
    return CommCost(fixed.total + m * per_mb.total, fixed.exposed + m * per_mb.exposed)


def p2p_message_bytes(model, plan) -> float:
    # activation of one microbatch at a stage boundary: b * (s/cp) * h elements, 1/tp per rank
    elements = plan.micro_batch * (plan.seq_len // plan.cp) * model.hidden
    return elements * dtype_bytes(plan.dtype) / plan.tp


def pipeline_p2p_cost(model, plan, cluster) -> CommCost:
    if plan.pp <= 1:
        return CommCost(0.0, 0.0)
    ranks = group_ranks(plan, "pp")
    t_msg = collective_time("send_recv", p2p_message_bytes(model, plan), ranks[:2], cluster)
    v = get_schedule(plan.schedule).chunks(plan)
    total = plan.n_microbatches * 2 * v * t_msg
    if plan.overlap == "stack" and plan.stack is not None:
        return CommCost(total, stack_p2p_exposed(plan, total, t_msg))
    exposed = total if plan.overlap == "sum" else 2 * (plan.pp - 1) * t_msg
    return CommCost(total, exposed)


# --- overlap = "stack": the software stack's overlap physics (sim.costs.analytic_overlap) -------
def stack_data_parallel_parts(plan, cluster, dense_params: float, expert_params: float,
                              t_fwd: float, t_bwd: float, layers: int) -> tuple[CommCost, CommCost]:
    """As ``data_parallel_parts`` under ``plan.stack``: buckets, per-layer ZeRO-3 gathers with
    the stack's prefetch, per-call pricing, contention slowdown folded into the exposed part."""
    from sim.costs.comm import group_ranks

    st, gb = plan.stack, plan.optimizer.grad_bytes
    sets = [(dense_params, tuple(group_ranks(plan, "dp_cp")))]
    if expert_params > 0:
        sets.append((expert_params, tuple(group_ranks(plan, "edp"))))
    sets = tuple((p, r) for p, r in sets if p > 0 and len(r) > 1)
    if not sets:
        return CommCost(0.0, 0.0), CommCost(0.0, 0.0)
    return _stack_sync(plan.zero, st, gb, sets, cluster, t_fwd, t_bwd, max(layers, 1))


@lru_cache(maxsize=65536)
def _stack_sync(zero, st, gb, sets, cluster, t_fwd, t_bwd, layers):
    from sim.costs.analytic_overlap import gather_exposed, reduce_exposed

    s = st.overlap_slowdown
    if zero == 3:
        return CommCost(0.0, 0.0), _zero3(st, gb, sets, cluster, t_fwd, t_bwd, layers)
    fixed, per_mb = [0.0, 0.0], [0.0, 0.0]
    for params, ranks in sets:
        size = params * gb
        kind = "all_reduce" if zero == 0 else "reduce_scatter"
        n, t, t_last = _calls(kind, size, st, ranks, cluster, gb)
        red = ((n - 1) * t + t_last, reduce_exposed(n, t, t_last, t_bwd, st.overlap_grad_reduce))
        target = per_mb if zero == 2 else fixed
        _add(target, red, s)
        if zero >= 1:
            n, t, _ = _calls("all_gather", size, st, ranks, cluster, gb)
            _add(fixed, (n * t, gather_exposed(n, t, t_fwd, st.overlap_param_gather)), s)
    return CommCost(*fixed), CommCost(*per_mb)


def _calls(kind, size, st, ranks, cluster, gb) -> tuple[int, float, float]:
    from sim.costs.analytic_overlap import coll_time, split_buckets

    # buckets are counted in elements (Megatron-Core DDP, DeepSpeed reduce_bucket_size) and
    # ``size`` in bytes: elements x gradient bytes, as the DES does (sim.des.dataparallel)
    n, b, last = split_buckets(size, st.bucket_bytes(len(ranks), gb))
    algos = st.collective_algorithms
    return n, coll_time(kind, b, ranks, cluster, algos), coll_time(kind, last, ranks, cluster,
                                                                 algos)


def _add(acc: list, cost: tuple[float, float], slowdown: float) -> None:
    total, exposed = cost
    acc[0] += total
    acc[1] += exposed + slowdown * max(0.0, total - exposed)


# Parameter tensors per transformer layer when ZeRO-3 gathers per parameter: QKV, output
# projection, two MLP matrices and two norms, each a weight and a bias (GPT-2/Megatron GPT
# layer, Radford et al. 2019): 12 calls (DeepSpeed 2021 partition_parameters.py gathers each).
TENSORS_PER_LAYER = 12


def _zero3(st, gb, sets, cluster, t_fwd, t_bwd, layers) -> CommCost:
    from sim.costs.analytic_overlap import coll_time, layerwise_exposed

    calls = TENSORS_PER_LAYER if st.zero3_granularity == "parameter" else 1
    ag = rs = 0.0
    for params, ranks in sets:
        size = params * gb / layers / calls  # one call's full (unsharded) buffer
        ag += calls * coll_time("all_gather", size, ranks, cluster, st.collective_algorithms)
        rs += calls * coll_time("reduce_scatter", size, ranks, cluster,
                                st.collective_algorithms)
    d = st.zero3_prefetch
    fwd = layerwise_exposed(layers, ag, t_fwd / layers, d)
    bwd = layerwise_exposed(layers, ag, t_bwd / layers, d, rs, st.overlap_grad_reduce)
    total = layers * (2 * ag + rs)
    exposed = fwd + bwd
    return CommCost(total, exposed + st.overlap_slowdown * max(0.0, total - exposed))


def stack_p2p_exposed(plan, total: float, t_msg: float) -> float:
    """Pipeline p2p under ``plan.stack``: asynchronous sends expose only the 2(p-1) hops of
    fill and drain (plus contention on the rest); blocking ones expose every hop."""
    st = plan.stack
    if not st.pp_async_p2p:
        return total
    fill = min(total, 2 * (plan.pp - 1) * t_msg)
    return fill + st.overlap_slowdown * (total - fill)
