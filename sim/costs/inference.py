"""Cost of one serving iteration: a batch mixing prefill chunks and decode tokens.

Continuous batching (Yu et al. 2022, Orca; Agrawal et al. 2024, Sarathi-Serve) runs every
scheduled sequence through the model together. The linear layers see all ``T`` new tokens of
the iteration as one GEMM, so their weights are read from HBM once per iteration whatever the
batch; attention is per sequence, each query block against its own context, reading that
sequence's KV cache. That is why decode at small batch is memory-bound (weights + KV read,
~2 FLOPs per weight byte) and a long prefill is compute-bound.

Per layer the ops are the training lowering's (``sim.costs.lowering.lower_layer`` on one
sequence of ``T`` tokens: GEMMs, norms, activations, TP all-reduces, EP all-to-alls) with the
attention core replaced by the per-sequence attention of the mix. On MoE layers only the experts
that some token was routed to are read: ``E * (1 - (1 - k/E)^T)`` of them in expectation under
uniform routing (``sim.costs.moe.expected_experts_touched``). With ``ep > 1`` the given batch is
one data-parallel attention replica's; ``ep`` such replicas run in lockstep and share experts.

Pipeline parallelism (stages as in training: the first ``n_layers % pp`` stages hold one extra
layer): one iteration passes through the ``pp`` stages in turn, so its latency
is the sum of the stages plus ``pp-1`` activation sends; ``stage_time_s`` (the slowest stage)
bounds the throughput when iterations are pipelined.

Each op is priced by the roofline (``sim.costs.timing.op_time``); collectives by
``sim.costs.comm.collective_time`` on the cluster (an ``Accelerator`` alone suffices when
nothing is communicated).
Reuse: everything but the attention op depends on the token count (or the sequence count)
alone, so it is priced once per count by the replica's ``ReplicaPricer``
(``sim.costs.inference_replica``, kept in the ``CostContext`` table "forward_time") and a call
prices its attention op and adds the records in the ops' order, with the same expressions as
one pass over the list (docs/design-serving.md, "Pricing a corner"). The sequences travel as
runs of equal neighbours (``_runs``): a call costs O(distinct neighbours), not O(sequences).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, reduce
from itertools import groupby, repeat
from operator import add

from hardware.types import Accelerator
from sim.costs.attention import attention_core_flops, head_dims
from sim.costs.context import CostContext
from sim.costs.inference_replica import ReplicaPricer
from sim.costs.kvcache import cached_tokens, kv_bytes_per_token_layer, linear_state_bytes
from sim.costs.lowering import dtype_bytes
from sim.errors import ConfigError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan


@dataclass(frozen=True)
class StepCost:
    """One serving iteration on one model replica (tp x pp [x ep] GPUs)."""

    time_s: float
    flops: float  # per GPU
    bytes: float  # HBM bytes per GPU
    weight_bytes: float  # of which weights read
    kv_bytes: float  # of which KV cache (or linear-attention state) read/written
    compute_s: float  # sum over ops of the FLOP-limited time
    memory_s: float  # sum over ops of the bandwidth-limited time
    comm_s: float
    stage_time_s: float
    tokens: int

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s >= self.compute_s else "compute"

    @property
    def breakdown(self) -> dict:
        return {"weights_read_bytes": self.weight_bytes, "kv_read_bytes": self.kv_bytes,
                "compute_s": self.compute_s, "memory_s": self.memory_s, "comm_s": self.comm_s}

    def to_dict(self) -> dict:
        return dict(self.__dict__) | {"bound": self.bound}


# --- the per-sequence attention of the mix ------------------------------------------------------
# An iteration's sequences travel as runs (new tokens, context, how many) of equal neighbours,
# in order (``_runs``): a serving grid corner is a few prefill chunks and n equal decodes, so
# every per-sequence term is computed once per run, never per sequence.
def _attention_ops(model: ModelConfig, runs, tp: int, db: float, layer: int,
                   name: str) -> tuple[Op, float]:
    """One batched attention op over the sequences ``runs`` and its KV bytes."""
    flops, kv, qo = _attention_sums(model, runs, tp, db)
    return _attention_op(model, runs, flops, kv + qo, layer, name), kv


def _attention_op(model: ModelConfig, runs, flops: float, nbytes: float, layer: int,
                  name: str = "attention") -> Op:
    d_qk, d_v = head_dims(model)
    counts: dict[tuple[int, int], int] = {}  # identical (new tokens, context) priced together
    for q, c, n in runs:
        counts[q, c] = counts.get((q, c), 0) + n
    grouped = tuple([(n, q, c) for (q, c), n in sorted(counts.items())])
    # score elements if run eagerly (the CPU reference; a GPU profile ignores them)
    scores = 0.0 if model.attention.kind == "linear" else flops / (2 * (d_qk + d_v))
    return Op(name, "attention", flops, nbytes, "fwd", layer, seqs=grouped, scores=scores)


def _attention_sums(model: ModelConfig, runs, tp: int, db: float) -> tuple[float, float, float]:
    """(FLOPs, KV bytes, Q/O bytes) summed sequence by sequence in order: a run's terms are
    computed once and its n equal terms added one by one (``reduce``; n * x would round
    differently), so the sums are those of the plain loop over the sequences, bit for bit."""
    flops = kv = qo = 0.0
    for q_len, ctx, n in runs:
        f, dkv, dqo = _sequence_terms(model, q_len, ctx, tp, db)
        flops = reduce(add, repeat(f, n), flops)
        kv = reduce(add, repeat(dkv, n), kv)
        qo = reduce(add, repeat(dqo, n), qo)
    return flops, kv, qo


@lru_cache(maxsize=65536)
def _sequence_terms(model: ModelConfig, q_len: int, ctx: int, tp: int,
                    db: float) -> tuple[float, int | float, int | float]:
    """One sequence's attention FLOPs, KV bytes (cache or linear-attention state, read and
    written) and Q/O bytes on one tp rank (cached: a serving run's corners repeat a few
    hundred (new tokens, context) pairs)."""
    d_qk, d_v = head_dims(model)
    kv = (cached_tokens(model, ctx + q_len) * kv_bytes_per_token_layer(model, db, tp)
          + 2 * linear_state_bytes(model, db, tp))
    return (attention_core_flops(model, q_len, ctx) / tp, kv,
            q_len * (model.n_heads // tp) * (d_qk + d_v) * db)


def _runs(prefill_lens, prefill_ctx, decode_kv_lens) -> list[tuple[int, int, int]]:
    """The iteration's sequences as runs (new tokens, context, how many) of equal neighbours,
    in order: the prefill chunks, then the decodes (one new token each); checked."""
    prefill_ctx = tuple(prefill_ctx) or (0,) * len(prefill_lens)
    if len(prefill_ctx) != len(prefill_lens):
        raise ConfigError(f"prefill_ctx has {len(prefill_ctx)} entries for "
                          f"{len(prefill_lens)} prefill chunks; give one context per chunk")
    runs = [(q, c, len(list(run)))
            for (q, c), run in groupby(zip(prefill_lens, prefill_ctx, strict=True))]
    runs += [(1, c, len(list(run))) for c, run in groupby(decode_kv_lens)]
    if any(q <= 0 or c < 0 for q, c, _ in runs):
        raise ConfigError("prefill lengths must be positive and contexts/KV lengths >= 0")
    return runs


def _replica(model: ModelConfig, cluster_or_accelerator, plan: ParallelPlan) -> ReplicaPricer:
    """The cost context's ``ReplicaPricer`` of ``plan`` (table "forward_time"); a fresh one for a
    hand-built (unhashable) Accelerator, which then prices without reuse."""
    try:
        memo = CostContext.of(model, cluster_or_accelerator).memo("forward_time")
    except TypeError:
        memo = {}
    got = memo.get(plan)
    if got is None:
        if isinstance(cluster_or_accelerator, Accelerator):
            cluster, acc = None, cluster_or_accelerator
        else:
            cluster, acc = cluster_or_accelerator, cluster_or_accelerator.accelerator
        got = memo[plan] = ReplicaPricer(model, cluster, acc, plan)
    return got


@lru_cache(maxsize=256)
def _plan(tp: int, pp: int, ep: int, dtype: str, stack) -> ParallelPlan:
    """One replica's plan (``ep`` attention groups in lockstep); cached, so its hash, which
    keys the context's memo, is computed once."""
    return ParallelPlan(tp=tp, pp=pp, dp=ep, ep=ep, dtype=dtype, global_batch=ep, stack=stack)


def forward_time(model: ModelConfig, cluster_or_accelerator, *, tp: int = 1, pp: int = 1,
                 ep: int = 1, prefill_lens=(), prefill_ctx=(), decode_kv_lens=(),
                 dtype: str = "bf16", stack=None) -> StepCost:
    """Time of one serving iteration (module docstring). Per-GPU FLOPs and bytes. A serving
    ``stack`` (sim.stack.Stack) scales attention by its kernel's speed relative to
    FlashAttention-2 and prices collectives with the algorithms its library offers
    (sim.costs.stack_effects, sim.costs.analytic_overlap)."""
    runs = _runs(prefill_lens, prefill_ctx, decode_kv_lens)
    tokens = sum(prefill_lens) + len(decode_kv_lens)
    if tokens == 0:
        return StepCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    if not 1 <= pp <= model.n_layers:
        raise ConfigError(f"pp={pp} must be between 1 and n_layers={model.n_layers}")
    rep = _replica(model, cluster_or_accelerator, _plan(tp, pp, ep, dtype, stack))
    flops, kv, qo = _attention_sums(model, runs, tp, rep.db)
    attn = rep.record(_attention_op(model, runs, flops, kv + qo, rep.attention_layer))
    s = rep.iteration(attn, kv, tokens, len(prefill_lens) + len(decode_kv_lens))
    p2p = rep.sends(tokens) if pp > 1 else 0.0
    return StepCost(s.time + p2p, s.flops, s.bytes, s.weights, s.kv, s.compute, s.memory,
                    s.comm + p2p, s.stage_time, tokens)


def attention_op(model: ModelConfig, seqs, tp: int = 1, dtype: str = "bf16",
                 name: str = "attention") -> Op:
    """The batched attention op of one serving iteration's sequences ``seqs`` = ((new tokens,
    cached context), ...) on one tensor-parallel rank (what ``forward_time`` prices)."""
    return _attention_ops(model, _runs(*_split(seqs)), tp, dtype_bytes(dtype), 0, name)[0]


def _split(seqs) -> tuple[tuple, tuple, tuple]:
    prefill = [(q, c) for q, c in seqs if q > 1]
    decode = tuple(c for q, c in seqs if q == 1)
    return tuple(q for q, _ in prefill), tuple(c for _, c in prefill), decode
