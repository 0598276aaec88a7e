"""Calibration: microbenchmark this machine and write a catalog-format system profile.

The simulator prices a GEMM with the roofline of ``sim.costs.timing``: compute at
``peak * matmul_efficiency(F) * d / (d + matmul_half_dim)`` (d = smallest GEMM dimension),
memory at ``memory_bandwidth * matmul_memory_bandwidth``. We time fp32 matmuls over a grid of
shapes (square, rectangular and few-row ones as in decode; median of 11 repeats, fixed thread
count) and fit R, the per-call cost b and the small-dimension half point h together
(``sim.validation.matmul_fit``: the per-row roofline); ``peak = R``, ``matmul_max = 1`` and
``half_flops = (b - overhead) * R``. The remaining knobs are measured directly:

- memory bandwidth: copy and add over 1-16 MiB working sets (``elementwise_bandwidth``); the
  best is the profile's bandwidth, median / best the elementwise efficiency; the cold weight
  stream of 2-16-row GEMMs and of one-row GEMMs (GEMV) over it are the GEMM and GEMV operand
  efficiencies (measured apart: on a CPU an in-cache add streams ~10x faster than a GEMM
  reads a cold weight);
- per-op overhead: the reference transformer block at ~zero FLOPs (hidden 8, one token),
  forward + backward, divided by the number of compute ops the lowering prices for it
  (eager PyTorch spends several aten dispatches and Python calls per simulated op); the
  no-grad figure and a single aten op's cost are recorded too; median of 3 rounds of 101
  repeats, so one noisy round does not move it;
- attention_max: eager attention (two bmms + softmax) at a few shapes, achieved / peak;
- communication: ``torch.distributed`` all-reduce on gloo between 2 local processes over
  sizes 4 KiB-8 MiB; ring all-reduce over n=2 costs ``2 alpha + S / B`` (NCCL bus-bandwidth
  convention, ``sim.costs.comm``), so a linear fit gives the link latency alpha and B.

On a 1-thread CPU run every figure is the process's own CPU time (``sim.validation.clock``),
so neighbours' load does not enter the profile except through shared caches and SMT.
The profile is a ``hardware.System`` whose "GPUs" are the 2 local processes (one node); it is
written with ``hardware.to_toml`` and can be passed to every command as ``--system FILE``.
"""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass

import torch

from sim.validation.clock import now
from sim.validation.matmul_fit import (
    cold_stream_bandwidth,
    elementwise_bandwidth,
    fit_affine,
    fit_matmul,
)

__all__ = ["calibrate", "fit_affine", "median_time", "time_matmul", "Calibration"]

MATMUL_GRID = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512),
               (1024, 1024, 1024), (256, 1024, 256), (1024, 256, 1024), (128, 512, 2048),
               (2048, 128, 512), (64, 2048, 256), (512, 128, 128), (1024, 512, 256),
               # few-row GEMMs of decode and small micro-batches (rows x a wide weight)
               (1, 1024, 256), (1, 2048, 512), (4, 1024, 256), (4, 2048, 512),
               (16, 1376, 512), (16, 2048, 512), (32, 2048, 512), (64, 2048, 512),
               (128, 1376, 512)]
QUICK_GRID = MATMUL_GRID[:4] + MATMUL_GRID[9:11] + [MATMUL_GRID[i] for i in (13, 15, 17)]
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


def time_matmul(m: int, n: int, k: int, device: str, dtype=torch.float32, repeats=11) -> float:
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    return median_time(lambda: torch.mm(a, b), device, repeats, warmup=1)


REFERENCE_GEMM = (256, 256, 256)


def paired_ratio(fn, device: str, repeats: int = 15, warmup: int = 2) -> tuple[float, list]:
    """(median of t(fn) / t(reference GEMM), the reference times): each run of ``fn`` is timed
    back to back with ``REFERENCE_GEMM``, so a slow phase of a shared machine slows both
    halves of a pair alike and cancels in the ratio."""
    a, b = (torch.randn(REFERENCE_GEMM[0], REFERENCE_GEMM[2], device=device) for _ in range(2))
    ratios, refs = [], []
    for i in range(warmup + repeats):
        t_fn = median_time(fn, device, repeats=1, warmup=0)
        t_ref = median_time(lambda: torch.mm(a, b), device, repeats=1, warmup=0)
        if i >= warmup:
            ratios.append(t_fn / t_ref)
            refs.append(t_ref)
    return statistics.median(ratios), refs


def paired_time(fn, device: str, ref_s: float, repeats: int = 15, warmup: int = 2) -> float:
    """Load-normalised seconds of ``fn()``: ``paired_ratio`` scaled by ``ref_s``, the matmul
    grid's median paired reference time, so knobs measured at different moments (overhead,
    attention, the matmul grid) share one time scale."""
    return paired_ratio(fn, device, repeats, warmup)[0] * ref_s


def _rounds(fn, device: str, ref_s: float, rounds: int = 3, repeats: int = 51) -> float:
    """Median over ``rounds`` of ``paired_time`` (robust to one noisy round)."""
    return statistics.median(paired_time(fn, device, ref_s, repeats=repeats, warmup=5)
                             for _ in range(rounds))


def layer_overhead(device: str, ref_s: float) -> tuple[float, float]:
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
    train = _rounds(lambda: block(x, ctx).sum().backward(), device, ref_s)
    with torch.no_grad():
        infer = _rounds(lambda: block(x, ctx), device, ref_s)
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


def attention_efficiency(device: str, peak: float, quick: bool, ref_s: float) -> float:
    """Achieved / peak of eager attention (scores, softmax, AV) over a few shapes, each timed
    in pairs with the reference GEMM (``paired_time``)."""
    from sim.validation.layers import eager_attention

    shapes = [(2, 4, 128, 32), (2, 8, 256, 32)] + ([] if quick else [(4, 8, 256, 64)])
    effs = []
    for b, h, s, d in shapes:
        q, k, v = (torch.randn(b, h, s, d, device=device) for _ in range(3))
        blocked = torch.zeros(s, s, dtype=torch.bool, device=device)
        t = paired_time(lambda q=q, k=k, v=v, blocked=blocked: eager_attention(q, k, v, blocked),
                        device, ref_s)
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
    memory_bandwidth: float  # best elementwise (copy/add) bandwidth over 1-16 MiB
    memory_efficiency: float  # median / best elementwise bandwidth
    attention_max: float
    link_bandwidth: float
    link_latency: float
    matmul_points: tuple  # ((m, n, k, seconds), ...)
    allreduce_points: tuple  # ((bytes, seconds), ...)
    matmul_half_dim: float = 0.0  # h of the small-dimension term d / (d + h)
    gemm_memory_efficiency: float | None = None  # cold 2-16-row GEMM weight stream / bandwidth
    gemv_memory_efficiency: float | None = None  # cold one-row GEMM (GEMV) stream / bandwidth
    matmul_fit_rms_log_error: float = 0.0  # of the fitted GEMM model over the grid
    machine: str = platform.processor() or platform.machine()
    torch_version: str = torch.__version__

    @property
    def matmul_half_flops(self) -> float:
        return max(self.matmul_fixed_s - self.kernel_overhead_s, 0.0) * self.peak_fp32


def measure_matmuls(device: str, quick: bool) -> tuple[tuple, float]:
    """(((m, n, k, seconds), ...), reference seconds) over the grid; each shape paired with
    the reference GEMM and put on the scale of the median reference time of the whole grid
    (``paired_ratio``); every other paired knob uses the same scale."""
    grid = QUICK_GRID if quick else MATMUL_GRID
    ratios, refs = [], []
    for m, n, k in grid:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        ratio, ref = paired_ratio(lambda a=a, b=b: torch.mm(a, b), device, 7 if quick else 11)
        ratios.append(ratio)
        refs += ref
    scale = statistics.median(refs)
    return tuple((m, n, k, r * scale) for (m, n, k), r in zip(grid, ratios, strict=True)), scale


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
    points, ref_s = measure_matmuls(device, quick)
    best_bw, median_bw = elementwise_bandwidth(device, (1, 4) if quick else (1, 4, 16))
    weights = 6 if quick else 12
    gemv_eff = min(1.0, cold_stream_bandwidth(device, (1,), weights=weights) / best_bw)
    gemm_eff = min(1.0, cold_stream_bandwidth(device, (2, 4, 16), weights=weights) / best_bw)
    fit = fit_matmul(points)
    attention = attention_efficiency(device, fit.rate, quick, ref_s)  # before gloo runs
    overhead, infer_overhead = layer_overhead(device, ref_s)
    sizes = ALLREDUCE_SIZES[:3] if quick else ALLREDUCE_SIZES
    bw, alpha, ar_points = measure_allreduce(sizes, threads, repeats=5 if quick else 15)
    return Calibration(
        device=device, threads=threads, peak_fp32=fit.rate,
        peak_bf16=bf16_peak(device, fit.rate, 256 if quick else 1024),
        matmul_fixed_s=fit.fixed_s, kernel_overhead_s=overhead,
        inference_overhead_s=infer_overhead, aten_op_overhead_s=op_overhead(device),
        memory_bandwidth=best_bw, memory_efficiency=median_bw / best_bw,
        attention_max=min(1.0, attention),
        link_bandwidth=bw, link_latency=alpha, matmul_points=points, allreduce_points=ar_points,
        matmul_half_dim=fit.half_dim, gemm_memory_efficiency=gemm_eff,
        gemv_memory_efficiency=gemv_eff,
        matmul_fit_rms_log_error=fit.rms_log_error,
    )
