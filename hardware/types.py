"""Frozen dataclasses for hardware specs. Values are SI: bytes, bytes/s, FLOP/s, seconds.

Bandwidth convention (the classic factor-of-2 trap): every ``bandwidth`` field in clustersim is
**per direction** (unidirectional). NVIDIA quotes NVLink 4 on H100 as "900 GB/s", which is the
bidirectional total: 450 GB/s each way. The loader and these types only ever hold the
per-direction figure; datasheet totals are converted (and cited) in the TOML files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # hardware.kernel_models imports FrozenMap from here
    from hardware.kernel_models import (
        AttentionKernelModel,
        GemmModel,
        MemoryKernelModel,
        NcclModel,
    )

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4")


class FrozenMap(Mapping):
    """An immutable, hashable mapping (so frozen specs can key caches); equal to a plain dict
    with the same items."""

    __slots__ = ("_d", "_h")

    def __init__(self, items=()):
        self._d = dict(items)
        self._h = None

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


@dataclass(frozen=True)
class EfficiencyModel:
    """Achievable fraction of the spec sheet, kept as data so users see the gap.

    Matmul efficiency rises with problem size and saturates:
    eff(flops) = matmul_max * flops / (flops + matmul_half_flops)  (a simple saturating model;
    matmul_half_flops is the GEMM size in FLOPs at which half of matmul_max is reached).
    """

    matmul_max: float  # fraction of dense peak a large GEMM reaches
    matmul_half_flops: float  # GEMM FLOPs at which efficiency is matmul_max / 2
    attention_max: float  # fraction of peak a fused (flash) attention kernel reaches
    memory_bandwidth: float  # fraction of HBM bandwidth a streaming kernel reaches
    kernel_overhead_s: float  # fixed cost per kernel launch
    source: str = ""
    # Optional shape terms (calibrated CPU profiles; unset = 0 / None for every catalog GPU,
    # which leaves their numbers unchanged): a GEMM whose smallest dimension d is small
    # (decode's few rows) runs at d / (d + matmul_half_dim) of the F-only efficiency (same
    # saturating form in d), and its operands stream at matmul_memory_bandwidth of HBM
    # bandwidth (BLAS packing; attention's Q/K/V too) instead of the elementwise
    # memory_bandwidth; a one-row GEMM
    # (BLAS dispatches it to GEMV, no packing) at gemv_memory_bandwidth when that is set.
    matmul_half_dim: float = 0.0
    matmul_memory_bandwidth: float | None = None
    gemv_memory_bandwidth: float | None = None
    # Optional CPU call terms (calibrated CPU profiles; 0 = off for every catalog GPU): a
    # one-row GEMM (GEMV) pays gemv_row_s per output row on top of its roofline (BLAS GEMV is
    # a dot product per output row; Dongarra et al. 1988, ACM TOMS 14(1)), and an op repeated
    # count > 1 times (MoE experts) pays repeat_call_s per extra repetition (a CPU has no
    # grouped GEMM kernel: one BLAS call per expert slice; a GPU runs one grouped launch).
    gemv_row_s: float = 0.0
    repeat_call_s: float = 0.0
    # Optional CPU attention term (0 = off for every catalog GPU): eager (math-path) attention
    # on a CPU runs its two bmms (at attention_max of peak) and then its score passes (scale,
    # mask, softmax) as separate vector kernels at attention_memory_bandwidth of HBM
    # bandwidth, so the passes add to the bmm time instead of overlapping it.
    attention_memory_bandwidth: float = 0.0
    # Per-architecture kernel models (hardware.kernel_models; sim.costs.kernels prices them):
    # None keeps the saturating matmul_efficiency / flat memory_bandwidth above (CPU profiles).
    gemm: GemmModel | None = None
    memory: MemoryKernelModel | None = None
    attention: AttentionKernelModel | None = None

    def matmul_efficiency(self, flops: float) -> float:
        if self.matmul_half_flops <= 0:  # no size saturation (the tile model prices shape)
            return self.matmul_max
        return self.matmul_max * flops / (flops + self.matmul_half_flops)

    def small_dim_factor(self, smallest_dim: float) -> float:
        """d / (d + matmul_half_dim): 1.0 when the term is unset."""
        if self.matmul_half_dim <= 0:
            return 1.0
        return smallest_dim / (smallest_dim + self.matmul_half_dim)

    def memory_efficiency(self, gemm: bool, smallest_dim: float | None = None) -> float:
        """Fraction of HBM bandwidth a GEMM's operand stream (``gemm``; a GEMV when its
        smallest dimension is 1) or an elementwise op reaches; one number unless the optional
        GEMM/GEMV bandwidths are set."""
        if gemm and smallest_dim == 1 and self.gemv_memory_bandwidth is not None:
            return self.gemv_memory_bandwidth
        if gemm and self.matmul_memory_bandwidth is not None:
            return self.matmul_memory_bandwidth
        return self.memory_bandwidth


@dataclass(frozen=True)
class Accelerator:
    name: str
    vendor: str
    peak_flops: Mapping[str, float]  # dense (no sparsity) FLOP/s per dtype
    memory_bytes: int
    memory_bandwidth: float  # HBM bytes/s
    efficiency: EfficiencyModel
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kind: Literal["accelerator"] = "accelerator"
    compute_units: int | None = None  # streaming multiprocessors; None: no wave quantisation

    def peak(self, dtype: str = "bf16") -> float:
        try:
            return self.peak_flops[dtype]
        except KeyError:
            from sim.errors import HardwareError

            raise HardwareError(
                f"accelerator '{self.name}' has no {dtype} peak; it supports "
                f"{', '.join(self.peak_flops)}"
            ) from None


@dataclass(frozen=True)
class Link:
    name: str
    bandwidth: float  # bytes/s, per direction, per link (port)
    latency: float  # s, one-way, small message
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kind: Literal["link"] = "link"
    nccl: NcclModel | None = None  # how NCCL's protocols run over this link (sim.costs.nccl)


@dataclass(frozen=True)
class ScaleOut:
    """The network between nodes: a two-level fat tree (leaf/spine), optionally rail-optimised
    (NIC i of every node on leaf i's rail). ``oversubscription`` = leaf downlink bandwidth /
    uplink bandwidth (1.0 = non-blocking)."""

    topology: Literal["fat-tree", "rail-optimized", "none"]
    nodes_per_leaf: int
    oversubscription: float = 1.0
    switch_latency: float = 0.0  # s, added per switch hop beyond the first (leaf->spine->leaf)


@dataclass(frozen=True)
class System:
    name: str
    accelerator: Accelerator
    gpus_per_node: int
    intra_link: Link  # one NVLink/PCIe port
    intra_links_per_gpu: int  # ports per GPU into the node fabric
    nic_link: Link
    nics_per_node: int
    scale_out: ScaleOut
    price_per_gpu_hour: float | None = None  # USD, on-demand, with source in sources
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kind: Literal["system"] = "system"
    # "switch": every GPU has intra_links_per_gpu ports into one non-blocking switch (NVSwitch);
    # "full-mesh": every GPU pair joined by intra_links_per_gpu / (gpus_per_node - 1) ports
    # (MI300X Infinity Fabric); "mesh": explicit (gpu_a, gpu_b, n_ports) edges in intra_mesh
    # (DGX-1 hybrid cube-mesh).
    intra_topology: Literal["switch", "full-mesh", "mesh"] = "switch"
    intra_mesh: tuple[tuple[int, int, int], ...] = ()

    @property
    def intra_node_bandwidth(self) -> float:
        """Per GPU, per direction, bytes/s into the node fabric."""
        return self.intra_link.bandwidth * self.intra_links_per_gpu

    @property
    def inter_node_bandwidth(self) -> float:
        """Per GPU, per direction, bytes/s to the scale-out network (NICs shared evenly)."""
        return self.nic_link.bandwidth * self.nics_per_node / self.gpus_per_node
