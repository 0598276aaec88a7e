"""Kernel durations as GPUs run them: tiled GEMMs, memory-bound kernels, fused attention.

Each function returns ``(time_s, compute_s, memory_s)`` of ONE kernel (no launch gap; the
caller adds ``kernel_overhead_s``), from the accelerator's kernel models
(``hardware.kernel_models``, fitted to measured kernel times by ``sim.calibration``):

- GEMM (NVIDIA 'Matrix Multiplication Background User's Guide', DU-09799-001, Sec. 2-3): the
  m x n output is cut into tiles; every candidate tile shape costs ``waves x tile time`` where
  ``waves = ceil(tiles / SMs)`` (below one wave the library splits K, down to ``min_wave`` of
  a wave) and a tile does ``2 * tile_m * tile_n * (K padded to tile_k + k_overhead)`` FLOPs at
  ``peak / SMs x matmul_max x tile throughput``; the fastest tile wins (as cuBLAS's heuristic
  picks). Operand traffic streams at ``matmul_memory_bandwidth`` of HBM.
- Memory-bound kernels: bytes at the class's measured fraction of HBM bandwidth, faster when
  small against the last-level cache (the size-dependent term), never below the class's
  per-kernel floor.
- Attention (Dao 2023, FlashAttention-2, Alg. 1): prefill FLOPs padded to the (block_q x
  block_k) tiles of each sequence's causal score matrix at ``attention_max`` of peak; decode
  reads each sequence's KV cache padded to paged blocks (Kwon et al. 2023) at
  ``decode_memory_bandwidth``; a fixed cost per sequence and a per-call floor. Each fused
  kernel implementation (FlashAttention-2 over a paged cache, FlashInfer, ...) has its own
  fitted model where the data has its rows; the stack's ``attention_kernel`` selects it.

Compute and memory time (and the floor) are joined by a p-norm ``(a^p + b^p)^(1/p)`` whose
``sharpness`` p is fitted (p -> infinity is the roofline max of Williams et al. 2009; measured
kernels near the ridge point run slower than the max says).
"""

from __future__ import annotations

import math
from functools import lru_cache

from hardware.types import Accelerator
from sim.ops import Op


def pnorm(p: float, *terms: float) -> float:
    """(sum t^p)^(1/p); p <= 0 means the plain max (roofline)."""
    if p <= 0:
        return max(terms)
    top = max(terms)
    if top <= 0:
        return 0.0
    return top * sum([(t / top) ** p for t in terms]) ** (1.0 / p)


def gemm_op(m: int, n: int, k: int, dtype: str = "bf16") -> Op:
    """One m x n x k GEMM as an Op: 2mnk FLOPs, reads A and B and writes C once."""
    db = 1 if dtype == "fp8" else 4 if dtype in ("fp32", "tf32") else 2
    return Op("gemm", "matmul", 2.0 * m * n * k, (m * k + k * n + m * n) * db,
              mnk=(int(m), int(n), int(k)))


# --- GEMM -----------------------------------------------------------------------------------------
@lru_cache(maxsize=131072)
def _gemm_compute(m: int, n: int, k: int, gemm, sms: int, rate: float) -> float:
    """Seconds of the fastest tile choice (module docstring); ``rate`` = sustained FLOP/s."""
    kp = -(-k // gemm.tile_k) * gemm.tile_k + gemm.k_overhead
    per_sm = rate / sms
    best = math.inf
    for tm, tn, rel in gemm.tiles:
        tiles = -(-m // tm) * -(-n // tn)
        waves = -(-tiles // sms) if tiles >= sms else max(tiles / sms, gemm.min_wave)
        best = min(best, waves * 2.0 * tm * tn * kp / (per_sm * rel))
    return best


def gemm_time(m: int, n: int, k: int, acc: Accelerator, dtype: str = "bf16",
              nbytes: float | None = None) -> tuple[float, float, float]:
    """(time, compute, memory) seconds of one m x n x k GEMM on ``acc`` (module docstring)."""
    e = acc.efficiency
    g = e.gemm
    db = 1 if dtype == "fp8" else 4 if dtype in ("fp32", "tf32") else 2
    nbytes = (m * k + k * n + m * n) * db if nbytes is None else nbytes
    t_mem = nbytes / (acc.memory_bandwidth * e.memory_efficiency(True, min(m, n, k)))
    sms = acc.compute_units or 1
    t_c = _gemm_compute(int(m), int(n), int(k), g, sms, acc.peak(dtype) * e.matmul_max)
    return pnorm(g.sharpness, t_c, t_mem) + g.fixed_s, t_c, t_mem


# --- memory-bound kernels -------------------------------------------------------------------------
def memory_class(op) -> str:
    """Which measured class a non-GEMM op belongs to (by the lowering's op names)."""
    if op.kind == "norm":
        return "norm"
    name = op.name
    if "rope" in name:
        return "rope"
    if name.endswith("_act") or name == "act":
        return "act"
    if "residual" in name:
        return "residual"
    return "other"


def memory_kernel_time(nbytes: float, flops: float, cls: str, acc: Accelerator,
                       vector_rate: float) -> tuple[float, float, float]:
    """(time, compute, memory) seconds of one memory-bound kernel of class ``cls``."""
    e = acc.efficiency
    mk = e.memory
    frac = mk.fraction(cls, e.memory_bandwidth)
    t_mem = nbytes / (acc.memory_bandwidth * frac) if nbytes > 0 else 0.0
    if mk.cache_bytes > 0:  # recently written bytes still in L2 (hardware.kernel_models)
        t_mem /= 1.0 + mk.cache_speedup * mk.cache_bytes / (mk.cache_bytes + nbytes)
    t_c = flops / vector_rate if flops > 0 else 0.0
    return pnorm(mk.sharpness, mk.floor(cls), t_c, t_mem), t_c, t_mem


# --- attention ------------------------------------------------------------------------------------
def _causal_pairs(q: int, ctx: int) -> int:
    return q * ctx + q * (q + 1) // 2


@lru_cache(maxsize=65536)
def padded_pairs(q: int, ctx: int, bq: int, bk: int) -> tuple[int, int]:
    """(computed pairs with block padding, exact causal pairs) of one sequence: query block i
    (rows ctx + i*bq ...) visits every key block up to its last row's position."""
    total = 0
    for start in range(0, q, bq):
        last = ctx + min(start + bq, q)  # keys visible to the block's last row
        total += bq * (-(-last // bk) * bk)
    return total, _causal_pairs(q, ctx)


def attention_padding(op, a) -> tuple[float, float, int, int]:
    """(FLOP padding factor, KV-byte padding factor, prefill seqs, decode seqs) of ``op.seqs``:
    prefill tiles padded to (block_q, block_k), the KV cache to whole kv_block pages."""
    padded = exact = 0
    n_prefill = n_decode = kv_pad = kv_tokens = 0
    for count, q, ctx in op.seqs:
        if q > 1:
            p, x = padded_pairs(q, ctx, a.block_q, a.block_k)
            padded, exact, n_prefill = padded + count * p, exact + count * x, n_prefill + count
        else:
            n_decode += count
        kv_tokens += count * (ctx + q)
        kv_pad += count * -(-(ctx + q) // a.kv_block) * a.kv_block
    return (padded / exact if exact else 1.0, kv_pad / kv_tokens if kv_tokens else 1.0,
            n_prefill, n_decode)


def attention_time(op, acc: Accelerator, dtype: str = "bf16",
                   kernel: str | None = None) -> tuple[float, float, float]:
    """(time, compute, memory) of one fused attention call over ``op.seqs``, priced by the
    model fitted for ``kernel`` (the stack's attention kernel) where the accelerator has one,
    else by its default attention model."""
    e = acc.efficiency
    a = e.attention.select(kernel)
    pad_flops, pad_bytes, n_prefill, n_decode = attention_padding(op, a)
    if not op.seqs:  # no per-sequence detail (a bare Op): one sequence, no padding
        n_prefill = 1
    rate = acc.peak(dtype) * (a.attention_max or e.attention_max)
    t_c = op.flops * pad_flops / rate if op.flops > 0 else 0.0
    t_m = op.bytes * pad_bytes / (acc.memory_bandwidth * a.decode_memory_bandwidth)
    t = pnorm(a.sharpness, a.floor_s, t_c, t_m) + n_prefill * a.prefill_seq_s \
        + n_decode * a.decode_seq_s
    return t, t_c, t_m
