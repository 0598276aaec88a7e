"""Time of one compute op on one accelerator: the roofline with an efficiency model.

Roofline (Williams, Waterman & Patterson 2009, CACM 52(4)): an op that does F FLOPs and moves
B bytes to and from HBM takes at least ``max(F / P, B / W)`` on a chip with peak P FLOP/s and
bandwidth W bytes/s; its arithmetic intensity ``I = F/B`` against the ridge point ``P/W``
says which limit binds. Real kernels reach only part of the spec sheet, so P and W are scaled
by the accelerator's ``EfficiencyModel``: GEMMs (and routers) by the saturating
``matmul_efficiency(F)`` (small GEMMs are launch- and tile-bound) times the wave-quantization
loss of the GEMM's output tiles on the chip's SMs (``wave_efficiency``), fused attention by
``attention_max``, HBM streaming by ``memory_bandwidth``. Non-GEMM math (norms, activations,
softmax, embedding) runs on the vector units, whose throughput is the chip's non-tensor FP32
peak (``peak_flops["fp32"]``) when the catalog lists it. Each op adds one ``kernel_overhead_s``.
Communication ops are priced by ``sim.costs.comm.collective_time`` over the cluster instead.

Accelerators whose catalog entry carries the per-architecture kernel models (``[efficiency.gemm]``,
``[efficiency.memory]``, ``[efficiency.attention]``, fitted to measured kernel times) are priced
by ``sim.costs.kernels`` instead: tiled GEMMs with wave quantisation and padding, memory-bound
kernels at their measured HBM fraction with a floor, attention with per-sequence/per-block terms.
``kernel_time`` is the kernel's duration alone (what a profiler reports); ``op_time`` adds the
launch gap ``kernel_overhead_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hardware.types import Accelerator
from sim.costs import kernels as K
from sim.dtypes import dtype_bytes
from sim.errors import ConfigError
from sim.ops import Op

TENSOR_KINDS = ("matmul", "router", "attention")


# SM counts per chip are catalog data (`compute_units` in hardware/data/accelerators).
# cuBLAS's large Tensor Core output tiles (NVIDIA 'Matrix Multiplication Background User's
# Guide', DU-09799-001, Sec. 2.3: 256x128, 128x256, 128x128 are the most efficient)
GEMM_TILES = ((256, 128), (128, 256), (128, 128))


@lru_cache(maxsize=65536)
def wave_efficiency(m: int, n: int, sms: int, count: int = 1) -> float:
    """Fraction of the last wave's SMs that have a tile (NVIDIA 'Matrix Multiplication
    Background', Sec. 3.2 wave quantization): an m x n output cut into T tiles runs in
    ceil(T / SMs) waves, so it costs as much as ceil(T / SMs) * SMs tiles. cuBLAS picks the
    tile with the least waste; below one full wave it splits K instead (no loss modelled)."""
    best = 0.0
    for tm, tn in GEMM_TILES:
        tiles = -(-m // tm) * -(-n // tn) * count
        if tiles <= sms:
            return 1.0
        best = max(best, tiles / (-(-tiles // sms) * sms))
    return best


def _matmul_efficiency(op: Op, acc: Accelerator) -> float:
    eff = acc.efficiency.matmul_efficiency(op.flops)
    if op.mnk is not None and not _is_gemv(op, acc.efficiency):
        # optional small-dimension term (1.0 unless the profile sets it); a GEMV priced by
        # its own per-row term does not pack the weight, so the GEMM packing term is not its
        eff *= acc.efficiency.small_dim_factor(min(op.mnk))
    sms = acc.compute_units  # from the hardware catalog, with its source
    if op.mnk is None or sms is None:
        return eff
    return eff * wave_efficiency(int(op.mnk[0]), int(op.mnk[1]), sms)


def _compute_rate(op: Op, acc: Accelerator, dtype: str) -> float:
    """Achievable FLOP/s for this op (peak x efficiency)."""
    eff = acc.efficiency
    if op.kind in ("matmul", "router"):
        return acc.peak(dtype) * _matmul_efficiency(op, acc)
    if op.kind == "attention":
        return acc.peak(dtype) * eff.attention_max
    return acc.peak_flops.get("fp32") or acc.peak(dtype)  # vector units: non-tensor FP32


def _check(op: Op) -> None:
    if op.is_comm:
        raise ConfigError(f"op '{op.name}' is a {op.kind} op: price it with "
                          "sim.costs.comm.collective_time over its group, not op_time")


def op_time_parts(op: Op, acc: Accelerator, dtype: str = "bf16",
                  attention_kernel: str | None = None) -> tuple[float, float]:
    """(compute seconds, memory seconds) of ONE repetition of ``op``, before overhead."""
    return _kernel_and_parts(op, acc, dtype, attention_kernel)[1:]


def _roofline_parts(op: Op, acc: Accelerator, dtype: str) -> tuple[float, float]:
    """(compute, memory) seconds of one repetition where no kernel model prices ``op``."""
    t_compute = op.flops / _compute_rate(op, acc, dtype) if op.flops > 0 else 0.0
    smallest = min(op.mnk) if op.mnk is not None else None
    # GEMMs and attention (its Q/K/V are bmm operands: decode streams the KV cache) read
    # operands; norms/activations stream what the previous op wrote
    mem_eff = acc.efficiency.memory_efficiency(op.kind in TENSOR_KINDS, smallest)
    t_memory = op.bytes / (acc.memory_bandwidth * mem_eff)
    return t_compute, t_memory


def _kernel_and_parts(op: Op, acc: Accelerator, dtype: str,
                      attention_kernel: str | None) -> tuple[float, float, float]:
    """(``kernel_time``, compute, memory of one repetition): one kernel-model evaluation."""
    _check(op)
    modelled = _kernel_model(op, acc, dtype, attention_kernel)
    if modelled is not None:
        return op.count * modelled[0], modelled[1], modelled[2]
    t_compute, t_memory = _roofline_parts(op, acc, dtype)
    kernel = op.count * (max(t_compute, t_memory) + _call_terms(op, acc.efficiency)
                         + _score_passes(op, acc, dtype))
    return kernel, t_compute, t_memory


# passes over the materialised scores of eager attention: scale, mask, softmax read + write
# (the math path's ~4 passes of sim.costs.lowering._attention_op)
SCORE_PASSES = 4


def _score_passes(op: Op, acc: Accelerator, dtype: str) -> float:
    """Optional CPU term of ONE repetition (0 unless the profile sets it): eager attention
    runs its score passes as vector kernels after the bmms, at ``attention_memory_bandwidth``
    of HBM bandwidth, so they add to the bmm time instead of overlapping it."""
    eff = acc.efficiency
    if op.kind != "attention" or eff.attention_memory_bandwidth <= 0 or op.scores <= 0:
        return 0.0
    nbytes = SCORE_PASSES * op.scores * dtype_bytes(dtype)
    return nbytes / (acc.memory_bandwidth * eff.attention_memory_bandwidth)


def _kernel_model(op: Op, acc: Accelerator, dtype: str,
                  attention_kernel: str | None = None) -> tuple[float, float, float] | None:
    """(time, compute, memory) of one repetition from the kernel models, or None when the
    accelerator has no model for this op's kind (then the roofline below prices it).
    ``attention_kernel`` (the stack's) picks the attention model fitted for that kernel."""
    e = acc.efficiency
    if (op.kind in ("matmul", "router") and e.gemm is not None and op.mnk is not None
            and acc.compute_units is not None):
        m, n, k = op.mnk
        return K.gemm_time(m, n, k, acc, dtype, op.bytes)
    if op.kind == "attention" and e.attention is not None:
        return K.attention_time(op, acc, dtype, attention_kernel)
    if op.kind not in TENSOR_KINDS and e.memory is not None:
        return K.memory_kernel_time(op.bytes, op.flops, K.memory_class(op), acc,
                                    _compute_rate(op, acc, dtype))
    return None


def kernel_time(op: Op, accelerator: Accelerator, dtype: str = "bf16",
                attention_kernel: str | None = None) -> float:
    """Seconds the kernel(s) of ``op`` run on the GPU (all ``op.count`` repetitions), without
    the launch gap: the kernel models where the catalog has them, else the roofline max of
    compute and memory time (Williams et al. 2009) plus the optional CPU per-call terms."""
    return _kernel_and_parts(op, accelerator, dtype, attention_kernel)[0]


def op_time(op: Op, accelerator: Accelerator, dtype: str = "bf16",
            attention_kernel: str | None = None) -> float:
    """Seconds for ``op`` (all ``op.count`` repetitions): ``kernel_time`` plus one kernel
    launch overhead. Repetitions (the experts of a rank) run as one grouped kernel (Gale et
    al. 2022, MegaBlocks), so they pay one launch but keep the per-GEMM efficiency of their
    size; a CPU profile may set ``repeat_call_s``, the cost of each extra BLAS call (no grouped
    kernel there)."""
    return op_time_with_parts(op, accelerator, dtype, attention_kernel)[0]


def op_time_with_parts(op: Op, accelerator: Accelerator, dtype: str = "bf16",
                       attention_kernel: str | None = None) -> tuple[float, float, float]:
    """(``op_time``, then ``op_time_parts``) of ``op`` from one kernel-model evaluation."""
    kernel, t_compute, t_memory = _kernel_and_parts(op, accelerator, dtype, attention_kernel)
    eff = accelerator.efficiency
    return (kernel + eff.kernel_overhead_s + (op.count - 1) * eff.repeat_call_s,
            t_compute, t_memory)


def _is_gemv(op: Op, eff) -> bool:
    """A one-token-row GEMM on a profile with the GEMV per-row term (CPU profiles only)."""
    return (eff.gemv_row_s > 0 and op.kind in ("matmul", "router") and op.mnk is not None
            and op.mnk[0] == 1)


def _call_terms(op: Op, eff) -> float:
    """Optional CPU term of ONE repetition (0 unless the profile sets it): a one-row GEMM
    (GEMV, BLAS Level 2; Dongarra et al. 1988) pays ``gemv_row_s`` per output row."""
    return eff.gemv_row_s * op.mnk[1] if _is_gemv(op, eff) else 0.0


def ops_time(ops, accelerator: Accelerator, dtype: str = "bf16") -> float:
    """Sum of ``op_time`` over the compute ops of ``ops`` (comm ops skipped)."""
    return sum(op_time(op, accelerator, dtype) for op in ops if not op.is_comm)


@dataclass(frozen=True)
class RooflinePoint:
    """Where an op sits on the roofline chart."""

    name: str
    intensity: float  # FLOP per HBM byte
    ridge: float  # peak FLOP/s / HBM bytes/s: intensity where the two roofs meet
    bound: str  # "compute" | "memory"
    time_s: float
    achieved_flops_per_s: float  # flops / time (what the chart plots on its y axis)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def roofline_point(op: Op, accelerator: Accelerator, dtype: str = "bf16") -> RooflinePoint:
    """Arithmetic intensity and binding roof of ``op`` (Williams et al. 2009, Fig. 1)."""
    t, t_compute, t_memory = op_time_with_parts(op, accelerator, dtype)
    intensity = op.flops / op.bytes if op.bytes > 0 else float("inf")
    ridge = accelerator.peak(dtype) / accelerator.memory_bandwidth
    achieved = op.total_flops / t if t > 0 else 0.0
    return RooflinePoint(op.name, intensity, ridge, "compute" if t_compute >= t_memory
                         else "memory", t, achieved)
