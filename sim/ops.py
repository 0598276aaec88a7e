"""Op: the unit of work both backends consume.

The lowering (``sim.costs.lowering``) turns model x shape x plan into a list of Ops per layer
per rank. Compute ops carry FLOPs and HBM bytes moved; communication ops carry the payload per
rank, the collective kind and the parallel group it runs over. The analytic backend prices each
with ``sim.costs.timing``; the SimPy engine schedules the same Ops on streams and links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OpKind = Literal[
    "matmul", "attention", "elementwise", "norm", "embedding", "router", "collective", "p2p"
]
Pass = Literal["fwd", "bwd", "bwd_input", "bwd_weight", "recompute", "optimizer"]
Collective = Literal[
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv", "broadcast"
]
Group = Literal["tp", "cp", "dp", "ep", "pp", "world"]

COMPUTE_KINDS = ("matmul", "attention", "elementwise", "norm", "embedding", "router")
COMM_KINDS = ("collective", "p2p")


@dataclass(frozen=True)
class Op:
    name: str
    kind: OpKind
    flops: float = 0.0
    bytes: float = 0.0  # HBM bytes read+written (compute) or payload bytes per rank (comm)
    pass_: Pass = "fwd"
    layer: int = -1  # -1: not inside a transformer layer (embedding, head, optimizer)
    collective: Collective | None = None
    group: Group | None = None
    mnk: tuple[int, int, int] | None = None  # GEMM dims, for the matmul-efficiency model
    count: int = 1  # identical repetitions (e.g. per expert); flops/bytes are per repetition
    # attention only: the sequences of the call as (how many, new tokens, cached context)
    # groups, for the per-sequence and per-block terms of sim.costs.kernels.attention_time
    seqs: tuple[tuple[int, int, int], ...] = ()
    # attention only: score elements an eager (math-path) attention materialises (0: fused
    # kernel), for the optional CPU attention term of sim.costs.timing
    scores: float = 0.0

    @property
    def is_comm(self) -> bool:
        return self.kind in COMM_KINDS

    @property
    def total_flops(self) -> float:
        return self.flops * self.count

    @property
    def total_bytes(self) -> float:
        return self.bytes * self.count
