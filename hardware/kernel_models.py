"""Per-architecture kernel and collective efficiency models, as data (frozen dataclasses).

These are the optional sub-tables of an accelerator's ``[efficiency]`` (``gemm``, ``memory``,
``attention``) and of a link's ``[nccl]`` table. The pricing formulas that read them live in
``sim.costs.kernels`` (compute kernels) and ``sim.costs.nccl`` (collectives); the values in the
catalog are fitted by ``sim.calibration`` to the published measurements in ``../shared/data``
(see each TOML's sources). Units are SI (s, bytes); fractions are of the spec-sheet figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.types import FrozenMap

MEMORY_CLASSES = ("norm", "act", "rope", "residual")
# fused attention kernels a model can be fitted for: sim.stack.types.ATTENTION_KERNELS without
# the unfused math path (tests/test_attention_backends.py checks the two lists agree)
ATTENTION_BACKENDS = ("fa1", "fa2", "fa2-paged", "fa3", "flashinfer")


@dataclass(frozen=True)
class GemmModel:
    """Tiled GEMM on a chip of SMs (NVIDIA 'Matrix Multiplication Background User's Guide',
    DU-09799-001, Sec. 2-3: output tiles, wave quantisation, K padded to the tile depth).

    ``tiles``: (tile_m, tile_n, relative throughput) candidates the library may pick; the
    fastest is used. ``tile_k``: K is padded to a multiple of it. ``k_overhead``: per-tile
    prologue/epilogue in K-elements of work. ``min_wave``: below one wave the library splits K
    (split-K), but a GEMM never takes less than this fraction of one wave's time.
    ``sharpness``: p of the p-norm that joins compute and memory time (infinity = roofline max).
    ``fixed_s``: a per-kernel fixed time added to it (fill, drain, epilogue sync).
    """

    tiles: tuple[tuple[int, int, float], ...]
    tile_k: int = 32
    k_overhead: float = 0.0
    min_wave: float = 0.0
    sharpness: float = 0.0  # 0: plain roofline max
    fixed_s: float = 0.0  # per-GEMM fixed time inside the kernel (prologue, ramp, tail)


@dataclass(frozen=True)
class MemoryKernelModel:
    """Memory-bound kernels (norm, activation, rope, residual add): each class streams at its own
    measured fraction of HBM bandwidth and has its own per-kernel floor. The size-dependent
    term is the last-level cache: a kernel whose bytes are small against ``cache_bytes`` runs
    up to ``1 + cache_speedup`` times faster (its input was just written and is still in L2):
    ``t = B / (BW x fraction) / (1 + cache_speedup x cache_bytes / (cache_bytes + B))``,
    joined with the floor by a p-norm of ``sharpness``."""

    fractions: FrozenMap  # class -> fraction of HBM bandwidth (MEMORY_CLASSES)
    floors: FrozenMap  # class -> seconds
    floor_s: float = 0.0  # kernels of no measured class
    cache_bytes: float = 0.0
    cache_speedup: float = 0.0
    sharpness: float = 0.0

    def fraction(self, cls: str, default: float) -> float:
        return self.fractions.get(cls, default)

    def floor(self, cls: str) -> float:
        return self.floors.get(cls, self.floor_s)


@dataclass(frozen=True)
class AttentionKernelModel:
    """Fused (flash) attention: prefill FLOPs padded to (block_q x block_k) tiles of each
    sequence's causal score matrix (Dao 2023, FlashAttention-2, Alg. 1 tiling) at
    ``attention_max`` of peak; decode streams each sequence's KV cache padded to ``kv_block``
    tokens (Kwon et al. 2023, PagedAttention) at ``decode_memory_bandwidth`` of HBM. Every
    sequence adds a fixed cost (prefill / decode), and a call never takes less than ``floor_s``.

    One model measures one kernel implementation (``kernel``, a value of the stack's
    ``attention_kernel``); ``backends`` holds the models of other implementations fitted on the
    same GPU ([efficiency.attention.<backend>] sub-tables). ``attention_max`` None: the
    accelerator's ``[efficiency] attention_max``."""

    block_q: int = 128
    block_k: int = 64
    kv_block: int = 16
    prefill_seq_s: float = 0.0
    decode_seq_s: float = 0.0
    decode_memory_bandwidth: float = 1.0
    floor_s: float = 0.0
    sharpness: float = 0.0
    kernel: str = "fa2"
    attention_max: float | None = None
    backends: tuple = ()  # ((backend, AttentionKernelModel), ...), sorted by backend

    def own(self, kernel: str | None) -> AttentionKernelModel | None:
        """The model fitted for ``kernel`` itself (this one or a backend's), else None."""
        if kernel is None or kernel == self.kernel:
            return self
        return dict(self.backends).get(kernel)

    def select(self, kernel: str | None) -> AttentionKernelModel:
        """The model that prices ``kernel``: its own where fitted, else this default one."""
        return self.own(kernel) or self


@dataclass(frozen=True)
class NcclModel:
    """How NCCL runs collectives over one link class (NCCL's tuner model, src/graph/tuning.cc:
    per protocol a base latency, a per-step latency and a bandwidth efficiency; the library
    picks the fastest protocol per call). Two regimes are kept: ``ll`` (low-latency, small
    messages) and ``simple`` (bulk). ``nvls_bandwidth`` (fraction of the link) is set where
    the switch reduces in-network (NVLink SHARP on NVSwitch gen 3); 0 = not available."""

    ll_latency_s: float
    ll_step_s: float
    ll_bandwidth: float
    simple_latency_s: float
    simple_step_s: float
    simple_bandwidth: float
    nvls_bandwidth: float = 0.0
    nvls_latency_s: float = 0.0
    group_half: float = 0.0  # bandwidth share n / (n + group_half) of an n-rank group
    # send/recv runs on NCCL's p2p transport (src/transport/p2p.cc), not the ring: one copy
    # to one peer, no ring steps, no group share; 0 = priced as a one-step ring (Simple)
    p2p_latency_s: float = 0.0
    p2p_bandwidth: float = 0.0
