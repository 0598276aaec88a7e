"""Overlap as physics (issue 13): exposed communication under a software stack.

Used by the analytic backend when ``plan.overlap == "stack"``; the bounds ``max``/``sum``
stay in ``sim.costs.analytic_comm``. Every collective is priced per call with
``sim.costs.comm.collective_time`` over the algorithms the stack's library offers (NCCL picks
the fastest it has: NCCL docs, NCCL_ALGO). Four mechanisms:

- **DP gradient buckets** (PyTorch DDP, Li et al. VLDB 2020 Sec. 3.2.3; Megatron-Core DDP):
  backward produces gradients at a steady rate over the window ``W``; bucket k of n is ready
  at ``k/n * W`` and the buckets reduce one after another on one stream, so the step waits
  ``max_k(ready_k + remaining calls) - W``: the last bucket is always exposed, and when the
  calls are slow (per-call latency, many small buckets) most of them are. A stack that does
  not overlap (``overlap_grad_reduce = false``) issues all buckets after the backward.
- **Weight gathers before the forward** (distributed optimizer / ZeRO-1-2): mirror image,
  bucket k is needed at ``(k-1)/n * W_f``.
- **ZeRO-3 / FSDP per layer** (Rajbhandari et al. 2020 Sec. 7.2.2; Zhao et al. VLDB 2023,
  PyTorch FSDP, Sec. 4.2): each layer's weights are all-gathered before its forward and again
  before its backward, at most ``prefetch`` layers ahead of the compute, one call per layer or
  one per parameter tensor; each layer's gradients are reduce-scattered after its backward on
  the same stream. A layer-by-layer recurrence gives the exposed time.
- **Contention**: communication hidden behind compute still slows that compute by the stack's
  ``overlap_slowdown`` (collective kernels take SMs and HBM bandwidth; the factor's source is
  in each stack file): hidden seconds x slowdown are added to compute.
"""

from __future__ import annotations

from functools import lru_cache

from sim.costs.comm import collective_time

_ALGO_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


def coll_time(kind: str, size: float, ranks: tuple, cluster, algorithms: tuple) -> float:
    """One call of ``kind`` over ``ranks``: the fastest algorithm the stack offers."""
    if size <= 0 or len(ranks) < 2:
        return 0.0
    return _coll(kind, float(size), tuple(ranks), cluster, tuple(algorithms))


# NCCL implements tree only for all-reduce (and broadcast) and ring for all-gather and
# reduce-scatter (NCCL docs, NCCL_ALGO; PAT for all-gather arrived in 2.23, 2024)
_OFFERED = {"all_gather": ("ring", "hierarchical"), "reduce_scatter": ("ring", "hierarchical")}


@lru_cache(maxsize=65536)
def _coll(kind, size, ranks, cluster, algorithms) -> float:
    if kind not in _ALGO_KINDS:
        return collective_time(kind, size, ranks, cluster)
    usable = [a for a in algorithms if a in _OFFERED.get(kind, algorithms)] or ["ring"]
    return min(collective_time(kind, size, ranks, cluster, algorithm=a) for a in usable)


def split_buckets(total: float, bucket: float) -> tuple[int, float, float]:
    """(calls, bytes of a full bucket, bytes of the last one); bucket 0 = one call for all."""
    if total <= 0:
        return 0, 0.0, 0.0
    if bucket <= 0 or bucket >= total:
        return 1, total, total
    full, rest = divmod(total, bucket)
    return (int(full) + 1, bucket, rest) if rest else (int(full), bucket, bucket)


def reduce_exposed(n: int, t: float, t_last: float, window: float, overlapped: bool) -> float:
    """Exposed seconds of n bucket calls (n-1 of t, the last of t_last) whose gradients
    appear steadily over ``window`` (module docstring); all of them if not overlapped."""
    total = (n - 1) * t + t_last
    if n == 0:
        return 0.0
    if not overlapped:
        return total
    step = window / n  # bucket k ready at k * window / n; the last one at window
    finish = max(window + t_last, step + total, (n - 1) * step + t + t_last if n > 1 else 0.0)
    return max(t_last, finish - window)


def gather_exposed(n: int, t: float, window: float, overlapped: bool) -> float:
    """Exposed seconds of n gather calls of t each, bucket k needed at (k-1)/n * window."""
    if n == 0:
        return 0.0
    if not overlapped:
        return n * t
    return max(t, n * t - (n - 1) * window / n)


@lru_cache(maxsize=65536)
def layerwise_exposed(layers: int, gather: float, compute: float, prefetch: int,
                      scatter: float = 0.0, scatter_async: bool = True) -> float:
    """Exposed seconds of one pass over ``layers`` equal layers, each needing a ``gather``
    before its ``compute`` (issued at most ``prefetch`` layers ahead; 0: on the critical path)
    and, in the backward, a ``scatter`` after it on the same stream (blocking the compute if
    not ``scatter_async``). Returns (pass end) - layers x compute."""
    comm_free, t, issued = 0.0, 0.0, []
    ahead = max(prefetch, 0)
    for _ in range(min(ahead, layers)):  # prefetched before the pass starts
        comm_free += gather
        issued.append(comm_free)
    for layer in range(layers):
        if ahead == 0:  # gather now, on the critical path
            comm_free = max(comm_free, t) + gather
            ready = comm_free
        else:
            ready = issued[layer]
        start = max(t, ready)
        if ahead and layer + ahead < layers:  # issue the gather `ahead` layers on
            comm_free = max(comm_free, start) + gather
            issued.append(comm_free)
        t = start + compute
        if scatter:
            comm_free = max(comm_free, t) + scatter
            if not scatter_async:
                t = comm_free
    if scatter:
        t = max(t, comm_free)  # the last reduce-scatter finishes before the step ends
    return max(0.0, t - layers * compute)


def hidden(total: float, exposed: float) -> float:
    """Seconds of communication that ran beside compute (and slowed it)."""
    return max(0.0, total - exposed)
