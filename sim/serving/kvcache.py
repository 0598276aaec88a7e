"""Paged KV cache (Kwon et al. 2023, vLLM, Sec. 4.1): the cache of one replica is a pool of
fixed-size blocks of ``block_size`` token slots, held as a SimPy ``Container`` whose level is
the number of free blocks. A sequence holding ``c`` tokens owns ceil(c / block_size) blocks;
blocks are taken when a sequence grows past a block boundary and returned when it finishes or
is preempted. The container can never go below zero or above its capacity, so "the KV cache
never exceeds its capacity" holds by construction and is also checked by the tests.

Capacity (vLLM's profiling rule): per GPU, ``gpu_memory_utilization`` x HBM (the rest is the
activation and workspace reserve, 10% by default as in vLLM's EngineArgs) minus the weights
that GPU holds (``sim.costs.memory``), divided by the KV bytes one token costs on that GPU
(``sim.costs.kvcache``: its tp shard of the KV heads, replicated when tp exceeds them, MLA's
latent whole on every rank; its pipeline stage's layers). A speculative draft model's weights
and KV share the same HBM.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sim.errors import ConfigError

if TYPE_CHECKING:
    import simpy


@dataclass(frozen=True)
class KVBudget:
    """Memory arithmetic of one replica (bytes are per GPU). With expert parallelism a
    replica is ``groups`` = ep attention groups of tp x pp GPUs, each caching its own
    sequences, so the replica's KV capacity is ``groups`` times one group's."""

    hbm_bytes: int
    reserve_bytes: float
    weights_bytes: float
    kv_bytes_per_token: float  # per GPU, target + draft
    block_size: int
    groups: int = 1

    @property
    def free_bytes(self) -> float:
        return self.hbm_bytes - self.reserve_bytes - self.weights_bytes

    @property
    def tokens(self) -> int:
        return max(0, int(self.free_bytes // self.kv_bytes_per_token)) * self.groups

    @property
    def blocks(self) -> int:
        return self.tokens // self.block_size

    def to_dict(self) -> dict:
        return {"hbm_bytes": self.hbm_bytes, "reserve_bytes": self.reserve_bytes,
                "weights_bytes": self.weights_bytes,
                "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token,
                "kv_capacity_tokens": self.tokens, "kv_capacity_blocks": self.blocks,
                "block_size": self.block_size}


def kv_bytes_per_gpu_token(model, tp: int, pp: int, dtype: str) -> float:
    """KV bytes one token costs on the busiest GPU: its stage's layers, its tp shard."""
    from sim.costs.kvcache import kv_bytes_per_token_layer
    from sim.dtypes import dtype_bytes

    per_layer = kv_bytes_per_token_layer(model, dtype_bytes(dtype), tp)
    return per_layer * -(-model.n_layers // pp)


def weights_per_gpu(model, tp: int, pp: int, ep: int, dtype: str) -> float:
    """Weights on the heaviest pipeline stage's GPU (experts sharded ep ways)."""
    from sim.costs.memory import memory_at_stage
    from sim.plan import ParallelPlan

    plan = ParallelPlan(tp=tp, pp=pp, ep=ep, dp=ep, dtype=dtype, global_batch=ep)
    return max(float(memory_at_stage(model, plan, s).weights) for s in range(pp))


def budget(model, cluster, *, tp, pp, ep, dtype, block_size, utilization=0.9,
           draft=None) -> KVBudget:
    if not 0 < utilization <= 1:
        raise ConfigError(f"--gpu-memory-utilization must be in (0, 1] (got {utilization})")
    if block_size < 1:
        raise ConfigError(f"--block-size must be >= 1 token (got {block_size})")
    hbm = cluster.accelerator.memory_bytes
    weights = weights_per_gpu(model, tp, pp, ep, dtype)
    kv = kv_bytes_per_gpu_token(model, tp, pp, dtype)
    if draft is not None:  # the draft runs on the same GPUs with the same tp and pp
        weights += weights_per_gpu(draft, tp, pp, 1, dtype)
        kv += kv_bytes_per_gpu_token(draft, tp, pp, dtype)
    if kv <= 0:
        raise ConfigError(f"model '{model.name}' keeps no per-token KV cache (linear "
                          "attention); the paged-KV serving simulator needs one")
    return KVBudget(hbm, (1 - utilization) * hbm, weights, kv, block_size, ep)


class BlockPool:
    """The KV blocks of one replica: a SimPy Container of free blocks, plus peak tracking.

    Within one scheduling decision blocks are taken and given back many times; ``take`` and
    ``give`` keep a running count and ``settle`` applies the net change to the Container once
    per iteration (one event instead of dozens), so the Container's level is exact at every
    iteration boundary and can never go negative or above capacity.
    """

    def __init__(self, env: simpy.Environment, blocks: int, block_size: int):
        import simpy  # here, not at the top: the lean engine's imports stay free of SimPy

        self.capacity, self.block_size = blocks, block_size
        self.free = simpy.Container(env, capacity=max(blocks, 1), init=max(blocks, 1))
        if blocks == 0:
            self.free.get(1)  # a zero-capacity pool: nothing can ever be allocated
        self.available = blocks  # free blocks, including unsettled takes and gives
        self.peak = 0

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    @property
    def used(self) -> int:
        return self.capacity - self.available

    def take(self, n: int) -> None:
        """Allocate ``n`` blocks now; callers check ``available`` first (never waits)."""
        if n > self.available:
            raise AssertionError(f"KV pool over-allocated: {n} > {self.available} free")
        self.available -= n
        used = self.capacity - self.available
        if used > self.peak:
            self.peak = used

    def give(self, n: int) -> None:
        self.available += n

    def take_while(self, queue: deque, need: Callable[[Any], int],
                   limit: int | None = None,
                   allow: Callable[[Any], bool] | None = None) -> list[tuple[Any, int]]:
        """Pop items off the head of ``queue`` while the blocks each needs (``need(item)``)
        fit in the free pool (and ``allow(item)``, e.g. a token budget, says yes), at most
        ``limit`` of them, and take their blocks. A head that does not fit blocks the rest
        (FCFS, as vLLM's scheduler). Returns (item, blocks)."""
        out: list[tuple[Any, int]] = []
        while queue and (limit is None or len(out) < limit):
            if allow is not None and not allow(queue[0]):
                break
            n = need(queue[0])
            if n > self.available:
                break
            self.take(n)
            out.append((queue.popleft(), n))
        return out

    def hold(self, peak_used: int, used: int) -> None:
        """Jump to ``used`` blocks in use, having peaked at ``peak_used`` on the way (a
        fast-forwarded run of reservations and releases, see ``sim.serving.fastforward``)."""
        if not used <= peak_used <= self.capacity:
            raise AssertionError(f"KV pool over-allocated: {peak_used} of {self.capacity}")
        self.peak = max(self.peak, peak_used)
        self.available = self.capacity - used

    def settle(self) -> None:
        """Apply the net change to the Container (synchronously: the level is available)."""
        delta = self.available - int(self.free.level)
        if delta > 0:
            self.free.put(delta)
        elif delta < 0:
            self.free.get(-delta)
        assert self.free.level == self.available, "KV pool and Container disagree"
