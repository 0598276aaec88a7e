"""gloo all-reduce microbenchmark between 2 local processes, fitted to the alpha-beta model.

For a ring all-reduce over n ranks of S bytes per rank the simulator charges
``2(n-1) alpha + 2(n-1)/n * S / B`` (Patarasuk & Yuan 2009; NCCL bus-bandwidth convention,
``sim.costs.comm``); with n = 2 that is ``2 alpha + S / B``. The smallest message (latency
bound) gives alpha, the slope between the smallest and the largest gives B: a two-point fit,
which one noisy middle point (the machine is shared) cannot tilt the way it tilts a
least-squares line.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from sim.validation.distributed import spawn


def _bench(rank: int, world: int, sizes: list[int], repeats: int) -> list[float]:
    import statistics
    import time

    out = []
    for size in sizes:
        buf = torch.ones(size // 4, dtype=torch.float32)
        for _ in range(3):
            dist.all_reduce(buf)
        times = []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        out.append(statistics.median(times))
    return out


def fit_alpha_beta(sizes: list[int], times: list[float]) -> tuple[float, float]:
    """(bandwidth B, latency alpha) of t = 2 alpha + S / B (n = 2 ring), alpha >= 0."""
    order = np.argsort(sizes)
    s, t = np.asarray(sizes, float)[order], np.asarray(times, float)[order]
    slope = max((t[-1] - t[0]) / (s[-1] - s[0]), 1e-15)
    return float(1.0 / slope), max(float(t[0] - s[0] * slope) / 2, 0.0)


def measure_allreduce(sizes: list[int], threads: int = 1, repeats: int = 15
                      ) -> tuple[float, float, tuple]:
    """(bandwidth, alpha, ((bytes, seconds), ...)) from 2 gloo processes (rank 0's clock),
    median of ``repeats`` timed calls per size."""
    times = spawn(_bench, 2, sizes, repeats, threads=threads)[0]
    bw, alpha = fit_alpha_beta(sizes, times)
    return bw, alpha, tuple(zip(sizes, times, strict=True))
