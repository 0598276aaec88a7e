"""The parallel plan and the shape of a piece of work: the second of clustersim's three inputs.

A ``ParallelPlan`` says how one training step is split over GPUs; a ``Shape`` says what one
forward (or forward+backward) pass processes. Both are plain frozen dataclasses so they hash,
cache and serialise. Rank layout follows Megatron-LM's order, innermost first:
tp, cp, dp, pp (expert-parallel groups are carved out of the data-parallel dimension).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from sim.identity import hash_once, state_without_hash
from sim.schedules import SCHEDULES

Phase = Literal["train", "prefill", "decode"]
Recompute = Literal["none", "selective", "full"]
Schedule = Literal[SCHEDULES]  # the names in the schedule registry (sim.schedules)
Overlap = Literal["max", "sum", "stack"]

RECOMPUTE_MODES = ("none", "selective", "full")


@dataclass(frozen=True)
class OptimizerConfig:
    """Bytes per parameter of each piece of training state (mixed-precision Adam by default:
    bf16 weights and grads, fp32 master weights and two fp32 moments; Rajbhandari et al. 2020,
    ZeRO, Sec. 3.1: 2 + 2 + 12 = 16 bytes/param)."""

    weight_bytes: int = 2
    grad_bytes: int = 2
    master_bytes: int = 4
    moment_bytes: int = 8  # two fp32 moments (Adam m and v)


@dataclass(frozen=True)
class ParallelPlan:
    """How a training step is parallelised. ``dp`` may be left 0 to mean gpus/(tp*pp*cp)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    cp: int = 1
    zero: int = 0
    micro_batch: int = 1
    global_batch: int = 1
    seq_len: int = 2048
    recompute: Recompute = "none"
    sequence_parallel: bool = False
    schedule: Schedule = "1f1b"
    virtual_stages: int = 1
    overlap: Overlap = "stack"
    dtype: str = "bf16"
    flash_attention: bool = True
    # weight-gradient GEMMs accumulate straight into the main-grad buffer (Megatron-LM
    # --gradient-accumulation-fusion, 2022); False: a separate main_grad.add_(grad) pass per
    # parameter and microbatch (Megatron-LM 2021 local DDP, megatron/model/distributed.py)
    grad_accumulation_fusion: bool = True
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # the software stack (sim.stack.Stack) whose overlap physics ``overlap="stack"`` follows;
    # None: no stack (the bounds max/sum only); see sim.stack.apply.apply_stack
    stack: object = None

    # hashed once: plans key the cost caches (sim.costs.context; see sim.identity)
    __hash__ = hash_once
    __getstate__ = state_without_hash

    @property
    def world_size(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def n_microbatches(self) -> int:
        return self.global_batch // (self.dp * self.micro_batch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stack"] = self.stack.name if self.stack is not None else None
        return d


@dataclass(frozen=True)
class Shape:
    """What one pass processes. ``batch`` sequences of ``seq`` new tokens each; for ``decode``
    ``seq`` is the number of new tokens per sequence (1, or k+1 when verifying speculation) and
    ``kv_len`` the tokens already in each sequence's KV cache."""

    batch: int
    seq: int
    phase: Phase = "train"
    kv_len: int = 0
