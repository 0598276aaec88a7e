"""A serving engine's software stack around the cost model's GPU time (issue 13).

One iteration of an engine takes ``max(GPU time, CPU issue time) + scheduler overhead``:
- without CUDA graphs the CPU issues every kernel through eager PyTorch, on the order of
  10 µs of dispatch per op (He 2022, "Making Deep Learning Go Brrrr From First Principles",
  overhead section; the reason vLLM added CUDA graphs), so small decode batches become
  CPU-bound; with CUDA graphs one replay issues the whole iteration;
- the scheduler's per-iteration Python time (the stack's ``scheduler_overhead_s``) runs
  between iterations and adds to each;
- an engine whose ``prefill_batching`` is "per-request" runs one forward per joining prompt
  and one for the running sequences (each forward pays its own per-op costs), where a packed
  engine runs them all in one forward (``StepTimer._per_request``).
The op count comes from the lowering of one decode layer of the replica's model.
"""

from __future__ import annotations

from functools import lru_cache

EAGER_DISPATCH_S = 10e-6  # CPU seconds per eagerly launched op (He 2022)


def iteration_time(gpu_s: float, stack, ops_per_iteration: int, scheduler: bool = True
                   ) -> float:
    """Wall time of one engine iteration (one forward) whose kernels take ``gpu_s`` on the
    GPU; ``scheduler=False`` leaves out the scheduler's time (an extra forward of the same
    iteration, ``prefill_batching = "per-request"``)."""
    if stack is None or gpu_s <= 0:
        return gpu_s
    cpu = 0.0 if stack.cuda_graphs else ops_per_iteration * EAGER_DISPATCH_S
    return max(gpu_s, cpu) + (stack.scheduler_overhead_s if scheduler else 0.0)


@lru_cache(maxsize=256)
def _ops_per_layer(model, tp: int) -> int:
    from sim.costs.lowering import lower_layer
    from sim.plan import ParallelPlan, Shape

    plan = ParallelPlan(tp=tp, global_batch=1)
    return sum(1 for op in lower_layer(model, 0, Shape(1, 1, "decode", 1), plan))


def ops_per_iteration(model, tp: int, pp: int) -> int:
    """Kernels one pipeline stage launches per iteration (layers x ops of a decode layer)."""
    return -(-model.n_layers // pp) * _ops_per_layer(model, tp)
