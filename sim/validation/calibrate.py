"""Calibration: microbenchmark this machine and write a catalog-format system profile.

Every microbenchmark (``sim.validation.microbench``) runs in ONE batch under the measurement
protocol of ``sim.validation.protocol`` (fixed threads, warm-up, round-robin interleaving of
all cases, each timing paired with a reference GEMM, lower-quantile estimator; Chen & Revels
2016), which also measures every validation case, so both sides share one time scale: the
reference GEMM's estimate here, set with ``protocol.set_scale``.

The simulator prices a GEMM with the roofline of ``sim.costs.timing``: compute at
``peak * matmul_efficiency(F) * d / (d + matmul_half_dim)`` (d = smallest GEMM dimension),
memory at ``memory_bandwidth * matmul_memory_bandwidth``. The hot GEMM grid is fitted for R,
the per-call cost b and the small-dimension half point h together (``sim.validation.matmul_fit``:
the per-row roofline); ``peak = R``, ``matmul_max = 1``, ``half_flops = (b - overhead) * R``.
The remaining knobs:

- memory bandwidth: copy and add over 1-16 MiB (best = the profile's bandwidth, median / best
  the elementwise efficiency); R-row GEMMs over cold weights = the GEMM operand efficiency;
- GEMV (one-row GEMM): ``t = gemv_row_s * N + bytes / W`` fitted over cold N x K shapes, W
  over the best bandwidth = ``gemv_memory_bandwidth`` (BLAS GEMV: one dot product per output
  row, so short-and-many rows cost more than the bytes say);
- per-op overhead: a full-width reference block (hidden 256; forward + backward on 8 tokens,
  no-grad forward on 1): measured time minus the roofline time the fitted model gives its
  lowered ops, over the number of ops the lowering prices (pooled over both); eager PyTorch
  spends several aten dispatches and Python calls per simulated op. Earlier profiles used a
  hidden-8 block (the op count is right there, but the per-op cost of full-width tensors is
  not);
- ``repeat_call_s``: the reference grouped linear over 16 vs 1 tiny expert slices, the slope
  per slice over its 3 GEMM calls (fwd, dX, dW), less their roofline time;
- the reference server's per-iteration overhead outside model forwards (``serving.
  iteration_overhead`` on the small serving model and workloads of its own): recorded for a
  software stack of the reference implementation, not a hardware knob;
- attention: eager attention at six shapes (head dims 32-128, 64-512 tokens), fitted as
  ``t = F / (peak a) + B / (bandwidth w) + c`` (nonnegative least squares on relative error;
  F the bmm FLOPs, B the bytes of the score passes, ``sim.costs.timing.SCORE_PASSES``): on a
  CPU the two bmms and the score passes (scale, mask, softmax) are separate kernels one after
  another, so their times add;
  a = ``attention_max``, w = ``attention_memory_bandwidth``, c (the call's own dispatch) is
  left to the per-op overhead. Before: one ``attention_max`` = median achieved / peak over
  three shapes, which moved 0.19-0.30 between runs and priced d=64 attention ~1.5x slow;
- communication: ``torch.distributed`` all-reduce on gloo between 2 local processes over
  sizes 4 KiB-8 MiB; ring all-reduce over n=2 costs ``2 alpha + S / B`` (NCCL bus-bandwidth
  convention, ``sim.costs.comm``), so a two-point fit gives alpha and B;
- node contention: the same full-width block in both gloo processes at once vs in one alone
  (CPU time): the slowdown two workers sharing the machine's cores and caches cause each
  other, written as a second profile for runs that keep both workers busy (``-busy.toml``).

On a 1-thread CPU run every figure is the process's own CPU time (``sim.validation.clock``).
The profile is a ``hardware.System`` whose "GPUs" are the 2 local processes (one node); it is
written with ``hardware.to_toml`` and can be passed to every command as ``--system FILE``.
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sim.validation import microbench as mb
from sim.validation import protocol
from sim.validation.clock import now
from sim.validation.matmul_fit import fit_affine, fit_matmul, small_dim_factor

__all__ = ["calibrate", "fit_affine", "fit_gemv", "median_time", "time_matmul", "Calibration"]

MATMUL_GRID = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512),
               (1024, 1024, 1024), (256, 1024, 256), (1024, 256, 1024), (128, 512, 2048),
               (2048, 128, 512), (64, 2048, 256), (512, 128, 128), (1024, 512, 256),
               # few-row GEMMs of decode and small micro-batches (rows x a wide weight)
               (1, 1024, 256), (1, 2048, 512), (4, 1024, 256), (4, 2048, 512),
               (16, 1376, 512), (16, 2048, 512), (32, 2048, 512), (64, 2048, 512),
               (128, 1376, 512)]
QUICK_GRID = MATMUL_GRID[:4] + MATMUL_GRID[9:11] + [MATMUL_GRID[i] for i in (13, 15, 17)]
ALLREDUCE_SIZES = [4 << 10, 64 << 10, 512 << 10, 2 << 20, 8 << 20]
ROUNDS = {"quick": 5, "full": 9}


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


@dataclass(frozen=True)
class Calibration:
    device: str
    threads: int
    peak_fp32: float
    peak_bf16: float
    matmul_fixed_s: float
    kernel_overhead_s: float  # per simulated op, pooled over the two full-width blocks
    inference_overhead_s: float  # per simulated op, no-grad block alone (reported)
    aten_op_overhead_s: float  # per simulated op, forward+backward block alone (reported)
    memory_bandwidth: float  # best elementwise (copy/add) bandwidth over 1-16 MiB
    memory_efficiency: float  # median / best elementwise bandwidth
    attention_max: float  # bmm rate of eager attention / peak
    link_bandwidth: float
    link_latency: float
    matmul_points: tuple  # ((m, n, k, seconds), ...)
    allreduce_points: tuple  # ((bytes, seconds), ...)
    matmul_half_dim: float = 0.0  # h of the small-dimension term d / (d + h)
    gemm_memory_efficiency: float | None = None  # cold 2-16-row GEMM weight stream / bandwidth
    gemv_memory_efficiency: float | None = None  # cold one-row GEMM (GEMV) stream / bandwidth
    matmul_fit_rms_log_error: float = 0.0  # of the fitted GEMM model over the grid
    gemv_row_s: float = 0.0  # per output row of a GEMV
    repeat_call_s: float = 0.0  # per extra BLAS call of a repeated op (MoE expert slice)
    node_contention: float = 1.0  # slowdown of each of 2 workers busy at once
    attention_memory_bandwidth: float = 0.0  # eager attention's score passes / bandwidth
    reference_s: float = 0.0  # the reference GEMM's estimate: the shared time scale
    # the reference server's own seconds per iteration outside model forwards (Python
    # scheduling, KV-slot bookkeeping); recorded for the reference-implementation stack
    reference_iteration_overhead_s: float = 0.0
    spreads: dict = field(default_factory=dict)  # microbenchmark -> (median - low) / low
    loadavg: tuple = ()  # 1-minute load average at start and end
    machine: str = platform.processor() or platform.machine()
    torch_version: str = torch.__version__

    @property
    def matmul_half_flops(self) -> float:
        return max(self.matmul_fixed_s - self.kernel_overhead_s, 0.0) * self.peak_fp32


def bf16_peak(device: str, fallback: float, n: int = 1024) -> float:
    """Throughput of an n^3 bf16 matmul (the CLI's default dtype), or ``fallback``."""
    try:
        return float(2 * n**3) / time_matmul(n, n, n, device, torch.bfloat16, repeats=3)
    except RuntimeError:
        return fallback


def fit_gemv(shapes, times) -> tuple[float, float]:
    """(seconds per output row c, bytes/s W) of ``t = c N + 4 N K / W`` over one-row GEMMs of
    N x K fp32 weights; least squares on relative error, c >= 0."""
    n = np.array([s[0] for s in shapes], dtype=float)
    nbytes = np.array([4.0 * s[0] * s[1] for s in shapes])
    t = np.asarray(times, dtype=float)
    (c, inv_w), *_ = np.linalg.lstsq(np.stack([n / t, nbytes / t], 1), np.ones_like(t),
                                     rcond=None)
    if c < 0 or inv_w <= 0:  # no per-row cost visible: bytes alone
        c, inv_w = 0.0, float(np.sum(nbytes / t) / np.sum((nbytes / t) ** 2))
    return float(c), float(1.0 / inv_w)


def _batch(device: str, quick: bool) -> dict:
    """Every microbenchmark of the calibration, one dict (``sim.validation.microbench``)."""
    pool = torch.randn(mb.POOL_BYTES // 4, device=device)
    cases = mb.matmul_cases(QUICK_GRID if quick else MATMUL_GRID, device)
    cases |= mb.elementwise_cases((1, 4) if quick else (1, 4, 16), device)
    cases |= mb.stream_cases(pool, mb.STREAM_ROWS, device)
    cases |= mb.gemv_cases(pool, mb.QUICK_GEMV if quick else mb.GEMV_SHAPES, device)
    cases |= mb.attention_cases(device, quick)
    cases |= mb.block_cases(device) | mb.grouped_cases(device)
    return cases


def _bandwidths(t: dict) -> dict:
    ew = [mb.elementwise_bytes(k) / v for k, v in t.items() if k.split()[0] in ("copy", "add")]
    best = max(ew)
    n = 2048
    streams = [4.0 * mb.sweep_weights(n, n) * n * n / t[f"stream rows={r}"]
               for r in mb.STREAM_ROWS]
    shapes = [tuple(int(x) for x in k.split()[1].split("x")) for k in t if k.startswith("gemv")]
    per_weight = [t[f"gemv {n}x{k}"] / mb.sweep_weights(n, k) for n, k in shapes]
    row_s, gemv_bw = fit_gemv(shapes, per_weight)
    return {"memory_bandwidth": best, "memory_efficiency": statistics.median(ew) / best,
            "gemm_memory_efficiency": min(1.0, statistics.median(streams) / best),
            "gemv_memory_efficiency": min(1.0, gemv_bw / best), "gemv_row_s": row_s}


def _matmul(t: dict) -> tuple[tuple, object]:
    points = tuple((*(int(x) for x in k.split()[1].split("x")), v) for k, v in t.items()
                   if k.startswith("mm "))
    return points, fit_matmul(points)


def fit_attention(flops, nbytes, times, peak: float = float("inf")
                  ) -> tuple[float, float, float]:
    """(FLOP/s, bytes/s, fixed s) of ``t = F / R + B / W + c``, nonnegative least squares on
    relative error (each row divided by its time), R at most ``peak`` (the bmms are GEMMs:
    when the free fit lets the bytes term take their time, R = peak and W, c are refitted);
    a term the data cannot see is 0 (inf)."""
    from scipy.optimize import nnls

    t = np.asarray(times, dtype=float)
    f, b = np.asarray(flops, float), np.asarray(nbytes, float)
    (inv_r, inv_w, c), _ = nnls(np.stack([f / t, b / t, 1.0 / t], 1), np.ones_like(t))
    if inv_r * peak < 1:
        inv_r = 1.0 / peak
        (inv_w, c), _ = nnls(np.stack([b / t, 1.0 / t], 1), 1.0 - f * inv_r / t)
    return (1.0 / inv_r if inv_r > 0 else float("inf"),
            1.0 / inv_w if inv_w > 0 else float("inf"), float(c))


def _attention(t: dict, peak: float, bandwidth: float) -> dict:
    names = [k for k in t if k.startswith("attention")]
    rate, bw, _ = fit_attention([mb.attention_flops(k) for k in names],
                                [mb.attention_score_bytes(k) for k in names], [t[k] for k in names],
                                peak)
    return {"attention_max": min(1.0, rate / peak),
            "attention_memory_bandwidth": min(1.0, bw / bandwidth)}


def _repeat_call(t: dict, fit) -> float:
    """Seconds per extra BLAS call: the grouped linear's slope per expert slice (3 calls:
    forward, dX, dW) less the roofline time of those 3 tiny GEMMs."""
    lo, hi = mb.GROUPED
    slope = (t[f"grouped {hi}"] - t[f"grouped {lo}"]) / (hi - lo)
    w, r = mb.GROUPED_WIDTH, mb.GROUPED_ROWS
    work = 3 * 2.0 * r * w * w / (fit.rate * small_dim_factor(r, fit.half_dim))
    return max((slope - work) / 3, 0.0)


def calibrate(device: str = "cpu", threads: int = 1, quick: bool = False) -> Calibration:
    """Run every microbenchmark (module docstring) with ``threads`` intra-op threads."""
    from sim.validation.clock import default_clock, set_clock

    torch.set_num_threads(threads)
    set_clock(default_clock(device, threads))
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    protocol.set_scale(None)
    ref_s = protocol.reference_estimate(device)
    protocol.set_scale(ref_s)
    timed = protocol.interleaved(_batch(device, quick), rounds=ROUNDS["quick" if quick else
                                                                       "full"], device=device)
    t = {k: v[""].seconds for k, v in timed.items()}
    points, fit = _matmul(t)
    bands = _bandwidths(t)
    cal = Calibration(
        device=device, threads=threads, peak_fp32=fit.rate,
        peak_bf16=bf16_peak(device, fit.rate, 256 if quick else 1024),
        matmul_fixed_s=fit.fixed_s, kernel_overhead_s=0.0, inference_overhead_s=0.0,
        aten_op_overhead_s=0.0, link_bandwidth=1.0,
        link_latency=0.0, matmul_points=points, allreduce_points=(),
        matmul_half_dim=fit.half_dim, matmul_fit_rms_log_error=fit.rms_log_error,
        repeat_call_s=_repeat_call(t, fit), reference_s=ref_s,
        spreads={k: v[""].spread for k, v in timed.items()}, **bands,
        **_attention(t, fit.rate, bands["memory_bandwidth"]))
    cal = _with_overhead(cal, t)
    return _with_gloo(cal, threads, quick, load0)


def _with_overhead(cal: Calibration, t: dict) -> Calibration:
    from sim.validation.overhead import block_overhead
    from sim.validation.serving import iteration_overhead

    pooled, train, infer = block_overhead(cal, t["block train"], t["block infer"])
    rate = protocol.paired_rate(cal.device)
    loop = protocol.low([iteration_overhead(cal.device, seed) for seed in (1, 2, 3)]) * rate
    return replace(cal, kernel_overhead_s=pooled, aten_op_overhead_s=train,
                   inference_overhead_s=infer, reference_iteration_overhead_s=loop)


def _with_gloo(cal: Calibration, threads: int, quick: bool, load0: float) -> Calibration:
    from sim.validation.allreduce import measure_allreduce, measure_contention

    sizes = ALLREDUCE_SIZES[:3] if quick else ALLREDUCE_SIZES
    bw, alpha, ar_points = measure_allreduce(sizes, threads, repeats=5 if quick else 15)
    contention = measure_contention(threads, rounds=5 if quick else 9)
    return replace(cal, link_bandwidth=bw, link_latency=alpha, allreduce_points=ar_points,
                   node_contention=contention, loadavg=(load0, os.getloadavg()[0]))
