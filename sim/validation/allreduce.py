"""gloo all-reduce microbenchmark between 2 local processes, fitted to the alpha-beta model.

For a ring all-reduce over n ranks of S bytes per rank the simulator charges
``2(n-1) alpha + 2(n-1)/n * S / B`` (Patarasuk & Yuan 2009; NCCL bus-bandwidth convention,
``sim.costs.comm``); with n = 2 that is ``2 alpha + S / B``. The smallest message (latency
bound) gives alpha, the slope between the smallest and the largest gives B: a two-point fit,
which one noisy middle point (the machine is shared) cannot tilt the way it tilts a
least-squares line. Sizes are timed round-robin (protocol interleaving) and each size's
figure is the lower quantile of its calls (``protocol.low``; Chen & Revels 2016), on the wall
clock: time blocked on the peer is real time.

``measure_contention``: the same 2 processes run a full-width reference block (forward +
backward, 128 tokens) alternately alone (rank 0 while rank 1 waits at a barrier) and both at
once; rank 0's CPU-time ratio both / alone (lower quantiles) is the slowdown two workers of
this machine cause each other through shared cores, caches and memory bandwidth. Two
processes sharing two cores is part of the measured machine, so the data-parallel cases are
predicted on a profile scaled by it (``profile.busy_system``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from sim.validation.distributed import spawn


def _bench(rank: int, world: int, sizes: list[int], repeats: int) -> list[float]:
    import time

    from sim.validation.protocol import low

    bufs = [torch.ones(size // 4, dtype=torch.float32) for size in sizes]
    for buf in bufs:
        for _ in range(3):
            dist.all_reduce(buf)
    times: list[list[float]] = [[] for _ in sizes]
    for _ in range(repeats):
        for i, buf in enumerate(bufs):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            times[i].append(time.perf_counter() - t0)
    return [low(t) for t in times]


def _block_step():
    from sim.validation.layers import Context
    from sim.validation.microbench import block_config
    from sim.validation.reference import Block

    cfg = block_config()
    torch.manual_seed(0)
    block = Block(cfg, 0)
    x = torch.randn(1, 128, cfg.hidden, requires_grad=True)
    ctx = Context(cfg, 0, 128, x.device, torch.float32)
    return lambda: block(x, ctx).sum().backward()


def _contention(rank: int, world: int, rounds: int) -> float | None:
    import time

    from sim.validation.protocol import low

    work = _block_step()
    for _ in range(2):
        work()
    alone, both = [], []
    for _ in range(rounds):
        dist.barrier()
        if rank == 0:
            t0 = time.process_time()
            work()
            alone.append(time.process_time() - t0)
        dist.barrier()
        t0 = time.process_time()
        work()
        both.append(time.process_time() - t0)
    dist.barrier()
    return low(both) / low(alone) if rank == 0 else None


def measure_contention(threads: int = 1, rounds: int = 9) -> float:
    """Slowdown of each of 2 local workers when both compute at once (>= 1; module doc)."""
    return max(1.0, float(spawn(_contention, 2, rounds, threads=threads)[0]))


def fit_alpha_beta(sizes: list[int], times: list[float]) -> tuple[float, float]:
    """(bandwidth B, latency alpha) of t = 2 alpha + S / B (n = 2 ring), alpha >= 0."""
    order = np.argsort(sizes)
    s, t = np.asarray(sizes, float)[order], np.asarray(times, float)[order]
    slope = max((t[-1] - t[0]) / (s[-1] - s[0]), 1e-15)
    return float(1.0 / slope), max(float(t[0] - s[0] * slope) / 2, 0.0)


def measure_allreduce(sizes: list[int], threads: int = 1, repeats: int = 15
                      ) -> tuple[float, float, tuple]:
    """(bandwidth, alpha, ((bytes, seconds), ...)) from 2 gloo processes (rank 0's clock),
    lower quantile of ``repeats`` round-robin calls per size."""
    times = spawn(_bench, 2, sizes, repeats, threads=threads)[0]
    bw, alpha = fit_alpha_beta(sizes, times)
    return bw, alpha, tuple(zip(sizes, times, strict=True))
