"""Calibration: microbenchmark this machine and write a catalog-format system profile.

The simulator prices a GEMM of F FLOPs at ``(F + half) / (P * matmul_max) + overhead``
(``EfficiencyModel.matmul_efficiency`` inside the roofline of ``sim.costs.timing``): affine in
F. So we time fp32 matmuls over a grid of shapes (square, rectangular, and skinny ones with
few rows as in decode; median of repeats, fixed thread count) and fit ``t = F / R + b`` by
least squares on relative error (a CPU's efficiency depends on the shape, not on F alone, so
the fit is a compromise over the grid); ``R`` is the asymptotic throughput
(we set ``peak = R`` and ``matmul_max = 1``) and ``half = (b - overhead) * R``. The remaining
knobs are measured directly:

- memory bandwidth: a large tensor copy (reads + writes 2x its bytes), median of repeats;
  the efficiency applied to memory-bound ops is what a skinny GEMM (decode's weight stream)
  achieves of it;
- per-op overhead: the reference transformer block at ~zero FLOPs (hidden 8, one token),
  forward + backward, divided by the number of compute ops the lowering prices for it
  (eager PyTorch spends several aten dispatches and Python calls per simulated op); the
  no-grad figure and a single aten op's cost are recorded too;
- attention_max: eager attention (two bmms + softmax) at a few shapes, achieved / peak;
- communication: ``torch.distributed`` all-reduce on gloo between 2 local processes over
  sizes 4 KiB-8 MiB; ring all-reduce over n=2 costs ``2 alpha + S / B`` (NCCL bus-bandwidth
  convention, ``sim.costs.comm``), so a linear fit gives the link latency alpha and B.

The profile is a ``hardware.System`` whose "GPUs" are the 2 local processes (one node); it is
written with ``hardware.to_toml`` and can be passed to every command as ``--system FILE``.
"""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass

import numpy as np
import torch

from sim.validation.clock import now

MATMUL_GRID = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512),
               (1024, 1024, 1024), (256, 1024, 256), (1024, 256, 1024), (128, 512, 2048),
               (2048, 128, 512), (64, 2048, 256), (512, 128, 128), (1024, 512, 256),
               # skinny GEMMs of batched decode and small micro-batches (few rows, wide weights)
               (16, 1376, 512), (32, 2048, 512), (128, 1376, 512), (4, 4096, 1024)]
QUICK_GRID = MATMUL_GRID[:4] + MATMUL_GRID[9:11] + MATMUL_GRID[12:13]
ALLREDUCE_SIZES = [4 << 10, 64 << 10, 512 << 10, 2 << 20, 8 << 20]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device: str, repeats: int = 7, warmup: int = 2, clock: str | None = None
                ) -> float:
    """Median time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, on the harness
    clock (``sim.validation.clock``: own-process CPU time on a 1-thread CPU run, else wall)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = now(clock)
        fn()
        sync(device)
        times.append(now(clock) - t0)
    return statistics.median(times)


def time_matmul(m: int, n: int, k: int, device: str, dtype=torch.float32, repeats=7) -> float:
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    return median_time(lambda: torch.mm(a, b), device, repeats, warmup=1)


def fit_affine(flops: list[float], times: list[float]) -> tuple[float, float]:
    """Least squares on relative error of t = F / R + b: returns (R, b), b >= 0."""
    f, t = np.asarray(flops), np.asarray(times)
    a = np.stack([f / t, 1.0 / t], axis=1)
    (inv_r, b), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if b < 0:  # no fixed cost visible: fit throughput alone
        inv_r, b = float(np.sum(f * t) / np.sum(f * f)), 0.0
    return float(1.0 / inv_r), float(b)


def memory_bandwidth(device: str, nbytes: int = 128 << 20) -> float:
    """Bytes/s of a large copy (read + write)."""
    src = torch.empty(nbytes // 4, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    return 2 * nbytes / median_time(lambda: dst.copy_(src), device, repeats=5)


def gemv_bandwidth(device: str, n: int = 4096, rows=(1, 4, 16)) -> float:
    """Bytes/s of the weight stream of skinny GEMMs (``rows`` tokens x an n x n fp32 weight,
    as ``nn.Linear`` lays it out): how decode reads weights at batch 1, 4 and 16; the median
    over ``rows``. Its ratio to the copy bandwidth is the efficiency the roofline applies to
    every memory-bound op. (A single-row GEMV alone overstates it: BLAS has a fast
    matrix-vector path that batched decode does not get.)"""
    w = torch.randn(n, n, device=device)
    rates = []
    for m in rows:
        x = torch.randn(m, n, device=device)
        t = median_time(lambda x=x: torch.nn.functional.linear(x, w), device, repeats=7)
        rates.append(4 * n * n / t)
    return float(statistics.median(rates))


def layer_overhead(device: str) -> tuple[float, float]:
    """(training, inference) seconds per *simulated* op of a transformer layer with ~zero
    FLOPs (hidden 8, one token): the reference block's forward+backward time divided by the
    number of compute ops ``lower_layer`` + ``lower_layer_backward`` price for it (and the
    no-grad forward over the forward ops). Eager PyTorch issues several aten ops and Python
    calls per simulated op, so this, not one aten launch, is the fixed cost per op."""
    import dataclasses

    from sim.costs.lowering import lower_layer, lower_layer_backward
    from sim.model import get_model
    from sim.plan import ParallelPlan, Shape
    from sim.validation.layers import Context
    from sim.validation.reference import Block

    cfg = dataclasses.replace(get_model("tiny-llama"), hidden=8, n_heads=2, n_kv_heads=1,
                              head_dim=4, ffn_hidden=8)
    plan = ParallelPlan(seq_len=1, dtype="fp32", flash_attention=False)
    n_fwd = sum(o.count for o in lower_layer(cfg, 0, Shape(1, 1), plan) if not o.is_comm)
    n_bwd = sum(o.count for o in lower_layer_backward(cfg, 0, Shape(1, 1), plan) if not o.is_comm)
    block = Block(cfg, 0).to(device)
    x = torch.randn(1, 1, 8, device=device, requires_grad=True)
    ctx = Context(cfg, 0, 1, device, torch.float32)
    train = median_time(lambda: block(x, ctx).sum().backward(), device, repeats=50, warmup=5)
    with torch.no_grad():
        infer = median_time(lambda: block(x, ctx), device, repeats=50, warmup=5)
    return train / (n_fwd + n_bwd), infer / n_fwd


def op_overhead(device: str, chain: int = 64) -> float:
    """Seconds per priced op: a chain of ``chain`` 1x1 matmuls forward + backward, which the
    lowering prices as 3 GEMMs each (forward, dX, dW); the chain amortises backward()'s own
    fixed cost as a real training step does."""
    w = torch.ones(1, 1, device=device, requires_grad=True)
    x0 = torch.ones(1, 1, device=device, requires_grad=True)

    def step():
        x = x0
        for _ in range(chain):
            x = x @ w
        x.sum().backward()

    return median_time(step, device, repeats=30, warmup=3) / (3 * chain)


def attention_efficiency(device: str, peak: float, quick: bool) -> float:
    """Achieved / peak of eager attention (scores, softmax, AV) over a few shapes."""
    from sim.validation.layers import eager_attention

    shapes = [(2, 4, 128, 32), (2, 8, 256, 32)] + ([] if quick else [(4, 8, 256, 64)])
    effs = []
    for b, h, s, d in shapes:
        q, k, v = (torch.randn(b, h, s, d, device=device) for _ in range(3))
        blocked = torch.zeros(s, s, dtype=torch.bool, device=device)
        t = median_time(lambda q=q, k=k, v=v, blocked=blocked: eager_attention(q, k, v, blocked), device)
        effs.append(4 * b * h * s * s * d / t / peak)  # QK^T and AV: 2*s*s*d each per head
    return float(statistics.median(effs))


@dataclass(frozen=True)
class Calibration:
    device: str
    threads: int
    peak_fp32: float
    peak_bf16: float
    matmul_fixed_s: float
    kernel_overhead_s: float  # per simulated op, training (fwd+bwd) layer
    inference_overhead_s: float  # per simulated op, no-grad forward (reported, not used)
    aten_op_overhead_s: float  # one aten op with autograd (reported, not used)
    memory_bandwidth: float
    memory_efficiency: float  # streaming GEMV bandwidth / copy bandwidth
    attention_max: float
    link_bandwidth: float
    link_latency: float
    matmul_points: tuple  # ((m, n, k, seconds), ...)
    allreduce_points: tuple  # ((bytes, seconds), ...)
    machine: str = platform.processor() or platform.machine()
    torch_version: str = torch.__version__

    @property
    def matmul_half_flops(self) -> float:
        return max(self.matmul_fixed_s - self.kernel_overhead_s, 0.0) * self.peak_fp32


def measure_matmuls(device: str, quick: bool) -> tuple[float, float, tuple]:
    grid = QUICK_GRID if quick else MATMUL_GRID
    points = tuple((m, n, k, time_matmul(m, n, k, device)) for m, n, k in grid)
    rate, fixed = fit_affine([2 * m * n * k for m, n, k, _ in points], [p[3] for p in points])
    return rate, fixed, points


def bf16_peak(device: str, fallback: float, n: int = 1024) -> float:
    """Throughput of an n^3 bf16 matmul (the CLI's default dtype), or ``fallback``."""
    try:
        return float(2 * n**3) / time_matmul(n, n, n, device, torch.bfloat16, repeats=3)
    except RuntimeError:
        return fallback


def calibrate(device: str = "cpu", threads: int = 1, quick: bool = False) -> Calibration:
    """Run every microbenchmark (module docstring) with ``threads`` intra-op threads."""
    from sim.validation.allreduce import measure_allreduce
    from sim.validation.clock import default_clock, set_clock

    torch.set_num_threads(threads)
    set_clock(default_clock(device, threads))
    torch.manual_seed(0)
    rate, fixed, points = measure_matmuls(device, quick)
    overhead, infer_overhead = layer_overhead(device)
    sizes = ALLREDUCE_SIZES[:3] if quick else ALLREDUCE_SIZES
    bw, alpha, ar_points = measure_allreduce(sizes, threads, repeats=5 if quick else 15)
    copy_bw = memory_bandwidth(device, (32 if quick else 128) << 20)
    return Calibration(
        device=device, threads=threads, peak_fp32=rate, peak_bf16=bf16_peak(device, rate, 256 if quick else 1024),
        matmul_fixed_s=fixed, kernel_overhead_s=overhead, inference_overhead_s=infer_overhead,
        aten_op_overhead_s=op_overhead(device),
        memory_bandwidth=copy_bw,
        memory_efficiency=min(1.0, gemv_bandwidth(device, 2048 if quick else 4096) / copy_bw),
        attention_max=min(1.0, attention_efficiency(device, rate, quick)),
        link_bandwidth=bw, link_latency=alpha, matmul_points=points, allreduce_points=ar_points,
    )
