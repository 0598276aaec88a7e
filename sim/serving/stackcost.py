"""A serving engine's software stack around the cost model's GPU time (issue 13).

One iteration of an engine takes ``max(GPU time, CPU issue time) + scheduler overhead``:
- without CUDA graphs the CPU issues every kernel through eager PyTorch, on the order of
  10 µs of dispatch per op (He 2022, "Making Deep Learning Go Brrrr From First Principles",
  overhead section; the reason vLLM added CUDA graphs), so small decode batches become
  CPU-bound; with CUDA graphs one replay issues the whole iteration;
- the scheduler's per-iteration Python time (the stack's ``scheduler_overhead_s``) runs
  between iterations and adds to each.
The op count comes from the lowering of one decode layer of the replica's model.
"""

from __future__ import annotations

from functools import lru_cache

EAGER_DISPATCH_S = 10e-6  # CPU seconds per eagerly launched op (He 2022)


def iteration_time(gpu_s: float, stack, ops_per_iteration: int) -> float:
    """Wall time of one engine iteration whose kernels take ``gpu_s`` on the GPU."""
    if stack is None or gpu_s <= 0:
        return gpu_s
    cpu = 0.0 if stack.cuda_graphs else ops_per_iteration * EAGER_DISPATCH_S
    return max(gpu_s, cpu) + stack.scheduler_overhead_s


@lru_cache(maxsize=256)
def _ops_per_layer(model, tp: int) -> int:
    from sim.costs.lowering import lower_layer
    from sim.plan import ParallelPlan, Shape

    plan = ParallelPlan(tp=tp, global_batch=1)
    return sum(1 for op in lower_layer(model, 0, Shape(1, 1, "decode", 1), plan))


def ops_per_iteration(model, tp: int, pp: int) -> int:
    """Kernels one pipeline stage launches per iteration (layers x ops of a decode layer)."""
    return -(-model.n_layers // pp) * _ops_per_layer(model, tp)
