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
    exposed = total if plan.overlap == "sum" else 2 * (plan.pp - 1) * t_msg
    return CommCost(total, exposed)


