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
Reuse: everything but the attention op depends on the token count alone, so each layer kind's
ops are priced once per (layer, tokens, plan) into the ``CostContext`` table "forward_time"
and a call prices its attention op and adds the records in the ops' order, with the same
expressions as one pass over the list (docs/design-serving.md, "Pricing a corner").
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache, reduce
from itertools import groupby, pairwise, repeat
from operator import add
from typing import NamedTuple

from hardware.types import Accelerator
from sim.costs.attention import attention_core_flops, head_dims
from sim.costs.context import CostContext
from sim.costs.kvcache import cached_tokens, kv_bytes_per_token_layer, linear_state_bytes
from sim.costs.layout import StageLayout
from sim.costs.lowering import dtype_bytes, lower_embedding, lower_head, lower_layer
from sim.costs.moe import expected_experts_touched
from sim.costs.stack_effects import attention_kernel, op_factor
from sim.costs.timing import op_time_with_parts
from sim.errors import ConfigError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan, Shape


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
def _attention_ops(model: ModelConfig, seqs: tuple[tuple[int, int], ...], tp: int, db: float,
                   layer: int, name: str) -> tuple[Op, float]:
    """One batched attention op over ``seqs`` = ((new tokens, context), ...) and its KV bytes."""
    flops, kv, qo = _attention_sums(model, seqs, tp, db)
    return _attention_op(model, seqs, flops, kv + qo, layer, name), kv


def _attention_op(model: ModelConfig, seqs, flops: float, nbytes: float, layer: int,
                  name: str = "attention") -> Op:
    d_qk, d_v = head_dims(model)
    groups = Counter(seqs)  # identical (new tokens, context) sequences priced together
    grouped = tuple((n, q, c) for (q, c), n in sorted(groups.items()))
    # score elements if run eagerly (the CPU reference; a GPU profile ignores them)
    scores = 0.0 if model.attention.kind == "linear" else flops / (2 * (d_qk + d_v))
    return Op(name, "attention", flops, nbytes, "fwd", layer, seqs=grouped, scores=scores)


def _attention_sums(model: ModelConfig, seqs, tp: int, db: float) -> tuple[float, float, float]:
    """(FLOPs, KV bytes, Q/O bytes) summed sequence by sequence in order; each distinct
    sequence's terms are computed once and a run of equal sequences is added one by one
    (``reduce``), so the sums are those of the plain loop, bit for bit."""
    d_qk, d_v = head_dims(model)
    heads = model.n_heads // tp
    kv_tok = kv_bytes_per_token_layer(model, db, tp)
    flops = kv = qo = 0.0
    for (q_len, ctx), run in groupby(seqs):
        n = len(list(run))
        flops = reduce(add, repeat(attention_core_flops(model, q_len, ctx) / tp, n), flops)
        dkv = cached_tokens(model, ctx + q_len) * kv_tok + 2 * linear_state_bytes(model, db, tp)
        kv = reduce(add, repeat(dkv, n), kv)
        qo = reduce(add, repeat(q_len * heads * (d_qk + d_v) * db, n), qo)
    return flops, kv, qo


def _experts_touched_ops(model: ModelConfig, ops: list[Op], tokens: int, ep: int,
                         db: float) -> list[Op]:
    """Expert GEMMs re-costed so only the experts some token hit are read from HBM."""
    m = model.moe
    touched = expected_experts_touched(m.n_experts, m.top_k, tokens * ep) / ep
    count = max(1, math.ceil(touched))
    out = []
    for op in ops:
        if not op.name.startswith("expert_") or op.kind != "matmul":
            out.append(op)
            continue
        mm, n, k = op.mnk
        act = op.total_flops / (2 * n * k) * (k + n) * db  # token rows in and out
        total = act + touched * n * k * db  # weights of the touched experts
        out.append(replace(op, flops=op.total_flops / count, bytes=total / count, count=count,
                           mnk=(max(1, math.ceil(op.total_flops / (2 * n * k) / count)), n, k)))
    return out


def _weight_bytes(ops: list[Op], db: float, model: ModelConfig, tokens: int, ep: int) -> float:
    total = 0.0
    for op in ops:
        if op.kind not in ("matmul", "router"):
            continue
        _, n, k = op.mnk
        if op.name.startswith("expert_") and model.moe is not None:
            m = model.moe
            total += expected_experts_touched(m.n_experts, m.top_k, tokens * ep) / ep * n * k * db
        else:
            total += op.count * n * k * db
    return total


# --- pricing ------------------------------------------------------------------------------------
class _Pricer:
    def __init__(self, cluster, acc: Accelerator, plan: ParallelPlan, dtype: str):
        self.cluster, self.acc, self.plan, self.dtype = cluster, acc, plan, dtype

    def comm(self, op: Op) -> float:
        if self.cluster is None:
            raise ConfigError(f"op '{op.name}' communicates over {op.group}: pass a Cluster "
                              "(hardware.Cluster.for_gpus) instead of a bare Accelerator")
        from sim.costs.comm import collective_time, group_ranks

        ranks = group_ranks(self.plan, op.group)
        st = self.plan.stack
        if st is not None:
            from sim.costs.analytic_overlap import coll_time

            return coll_time(op.collective, op.bytes, tuple(ranks), self.cluster,
                             st.collective_algorithms) * op.count
        return collective_time(op.collective, op.bytes, ranks, self.cluster) * op.count

    def record(self, op: Op) -> tuple:
        """What ``price`` adds for one op: (is_comm, time, compute_s, memory_s, FLOPs,
        HBM bytes), each term by the same expression as the sum over a list uses."""
        if op.is_comm:
            return True, self.comm(op), 0.0, 0.0, op.total_flops, 0.0
        st = self.plan.stack
        k = 1.0 if st is None else op_factor(op, st, True, self.acc)
        kern = attention_kernel(st)
        dt, tc, tm = op_time_with_parts(op, self.acc, self.dtype, kern)
        return (False, k * dt, k * tc * op.count, k * tm * op.count, op.total_flops,
                op.total_bytes)

    def price(self, ops: list[Op]) -> tuple[float, float, float, float]:
        """(time, compute_s, memory_s, comm_s) of a list of ops run back to back."""
        return _total([self.record(op) for op in ops])[0]


def _total(records) -> tuple[tuple[float, float, float, float], float, float]:
    """((time, compute_s, memory_s, comm_s), FLOPs, non-comm HBM bytes) of op records
    (``_Pricer.record``) run back to back, summed in list order."""
    t = c = mem = com = 0.0
    for is_comm, dt, dc, dm, _, _ in records:
        if is_comm:
            com += dt
        else:
            c, mem = c + dc, mem + dm
        t += dt
    return ((t, c, mem, com), sum(r[4] for r in records),
            sum(r[5] for r in records if not r[0]))


class _Layer(NamedTuple):
    """A layer kind's ops for ``tokens`` new tokens, priced once: every op's record, with
    None where the mix's attention op goes, and the weight bytes read (attention reads
    none). Everything here depends on the token count, never on the sequences."""

    records: tuple
    weights: float


def _layer(memo: dict, pricer: _Pricer, model, layer: int, tokens: int, db: float) -> _Layer:
    """The priced layer template of ``(layer, tokens, plan)``, from the context's memo."""
    key = (layer, tokens, pricer.plan)
    got = memo.get(key)
    if got is None:
        plan = pricer.plan
        ops = lower_layer(model, layer, Shape(1, tokens, "prefill"), plan)
        if model.is_moe_layer(layer):  # the attention op passes through unchanged
            ops = _experts_touched_ops(model, ops, tokens, plan.ep, db)
        got = memo[key] = _Layer(
            tuple(None if op.kind == "attention" else pricer.record(op) for op in ops),
            _weight_bytes(ops, db, model, tokens, plan.ep))
    return got


def _ends(memo: dict, pricer: _Pricer, model, tokens: int, n_seqs: int, db: float) -> tuple:
    """(parts, FLOPs, bytes, weight bytes) of the embedding and the head, from the memo."""
    key = ("ends", tokens, n_seqs, pricer.plan)
    got = memo.get(key)
    if got is None:
        plan = pricer.plan
        ops = (lower_embedding(model, Shape(1, tokens, "prefill"), plan)
               + lower_head(model, Shape(n_seqs, 1, "decode"), plan))
        got = memo[key] = (*_total([pricer.record(op) for op in ops]),
                           _weight_bytes(ops, db, model, tokens, plan.ep))
    return got


@lru_cache(maxsize=256)
def _layer_kinds(model: ModelConfig, pp: int) -> dict[int, list[int]]:
    """A representative layer of each kind (dense, MoE) -> how many of it each stage holds
    (cached: callers must not mutate it)."""
    kinds: dict[bool, int] = {}
    counts: dict[int, list[int]] = {}
    for stage, st in enumerate(StageLayout.split(model, pp).stages):
        for layer in st.layers:
            rep = kinds.setdefault(model.is_moe_layer(layer), layer)
            counts.setdefault(rep, [0] * pp)[stage] += 1
    return counts


def _seqs(prefill_lens, prefill_ctx, decode_kv_lens) -> tuple[tuple[int, int], ...]:
    prefill_ctx = tuple(prefill_ctx) or (0,) * len(prefill_lens)
    if len(prefill_ctx) != len(prefill_lens):
        raise ConfigError(f"prefill_ctx has {len(prefill_ctx)} entries for "
                          f"{len(prefill_lens)} prefill chunks; give one context per chunk")
    if min(prefill_lens, default=1) <= 0 or min((*prefill_ctx, *decode_kv_lens), default=0) < 0:
        raise ConfigError("prefill lengths must be positive and contexts/KV lengths >= 0")
    return (tuple(zip(prefill_lens, prefill_ctx, strict=True))
            + tuple(zip(repeat(1), decode_kv_lens)))


def _memo(model: ModelConfig, cluster_or_accelerator) -> dict:
    """The context's table of priced layer templates; a fresh one for a hand-built
    (unhashable) Accelerator, which then prices without reuse."""
    try:
        return CostContext.of(model, cluster_or_accelerator).memo("forward_time")
    except TypeError:
        return {}


@lru_cache(maxsize=256)
def _plan(tp: int, pp: int, ep: int, dtype: str, stack) -> ParallelPlan:
    """One replica's plan (``ep`` attention groups in lockstep); cached, so its hash, which
    keys the context's memo, is computed once."""
    return ParallelPlan(tp=tp, pp=pp, dp=ep, ep=ep, dtype=dtype, global_batch=ep, stack=stack)


def _resolve(cluster_or_accelerator):
    if isinstance(cluster_or_accelerator, Accelerator):
        return None, cluster_or_accelerator
    return cluster_or_accelerator, cluster_or_accelerator.accelerator


def forward_time(model: ModelConfig, cluster_or_accelerator, *, tp: int = 1, pp: int = 1,
                 ep: int = 1, prefill_lens=(), prefill_ctx=(), decode_kv_lens=(),
                 dtype: str = "bf16", stack=None) -> StepCost:
    """Time of one serving iteration (module docstring). Per-GPU FLOPs and bytes. A serving
    ``stack`` (sim.stack.Stack) scales attention by its kernel's speed relative to
    FlashAttention-2 and prices collectives with the algorithms its library offers
    (sim.costs.stack_effects, sim.costs.analytic_overlap)."""
    cluster, acc = _resolve(cluster_or_accelerator)
    seqs = _seqs(prefill_lens, prefill_ctx, decode_kv_lens)
    tokens = sum(prefill_lens) + (len(seqs) - len(prefill_lens))
    if tokens == 0:
        return StepCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    if not 1 <= pp <= model.n_layers:
        raise ConfigError(f"pp={pp} must be between 1 and n_layers={model.n_layers}")
    plan = _plan(tp, pp, ep, dtype, stack)
    db, pricer = dtype_bytes(dtype), _Pricer(cluster, acc, plan, dtype)
    memo = _memo(model, cluster_or_accelerator)
    flops, kv, qo = _attention_sums(model, seqs, tp, db)
    acc_ = _Sum(pp)
    for layer, per_stage in _layer_kinds(model, pp).items():
        tpl = _layer(memo, pricer, model, layer, tokens, db)
        attn = pricer.record(_attention_op(model, seqs, flops, kv + qo, layer))
        parts, f, nbytes = _total([attn if r is None else r for r in tpl.records])
        acc_.add(parts, per_stage, kv, tpl.weights, f, nbytes)
    parts, f, nbytes, weights = _ends(memo, pricer, model, tokens, len(seqs), db)
    acc_.add(parts, [0] * (pp - 1) + [1], 0.0, weights, f, nbytes)
    p2p = _pp_sends(pricer, tokens * model.hidden * db, plan) if pp > 1 else 0.0
    return StepCost(acc_.time + p2p, acc_.flops, acc_.bytes, acc_.weights, acc_.kv,
                    acc_.compute, acc_.memory, acc_.comm + p2p, max(acc_.stages), tokens)


class _Sum:
    """Per-GPU totals over the layers (averaged over the pp stages) and per-stage times."""

    def __init__(self, pp: int):
        self.pp, self.stages = pp, [0.0] * pp
        self.time = self.compute = self.memory = self.comm = 0.0
        self.flops = self.bytes = self.weights = self.kv = 0.0

    def add(self, parts, per_stage, kv: float, weights: float, flops: float,
            nbytes: float) -> None:
        """One layer kind (or the ends): ``parts`` and the ops' summed FLOPs and non-comm
        bytes, times how many of it each stage holds."""
        n, (t, c, mem, com) = sum(per_stage), parts
        self.stages = [st + k * t for st, k in zip(self.stages, per_stage, strict=True)]
        self.time, self.compute = self.time + n * t, self.compute + n * c
        self.memory, self.comm = self.memory + n * mem, self.comm + n * com
        self.flops += n * flops / self.pp
        self.bytes += n * nbytes / self.pp
        self.weights += n * weights / self.pp
        self.kv += n * kv / self.pp


def _pp_sends(pricer: _Pricer, nbytes: float, plan: ParallelPlan) -> float:
    """pp-1 activation hand-offs between consecutive stages (first tp rank of each)."""
    op = Op("pp_send", "p2p", 0.0, nbytes, collective="send_recv", group="pp")
    if pricer.cluster is None:
        raise ConfigError("pp > 1 sends activations between GPUs: pass a Cluster")
    from sim.costs.comm import collective_time, group_ranks

    ranks = group_ranks(plan, "pp")
    return sum(collective_time("send_recv", op.bytes, [a, b], pricer.cluster)
               for a, b in pairwise(ranks))


def attention_op(model: ModelConfig, seqs, tp: int = 1, dtype: str = "bf16",
                 name: str = "attention") -> Op:
    """The batched attention op of one serving iteration's sequences ``seqs`` = ((new tokens,
    cached context), ...) on one tensor-parallel rank (what ``forward_time`` prices)."""
    return _attention_ops(model, _seqs(*_split(seqs)), tp, dtype_bytes(dtype), 0, name)[0]


def _split(seqs) -> tuple[tuple, tuple, tuple]:
    prefill = [(q, c) for q, c in seqs if q > 1]
    decode = tuple(c for q, c in seqs if q == 1)
    return tuple(q for q, _ in prefill), tuple(c for _, c in prefill), decode
