"""One serving replica's priced op templates: what ``sim.costs.inference.forward_time`` reuses.

Everything in an iteration but its attention op depends on the token count alone (the
layers' GEMMs, norms, activations, collectives and the embedding) or on the sequence count
alone (the head), so a ``ReplicaPricer`` (one model on one plan on one cluster or accelerator,
kept in the ``CostContext`` table "forward_time") lowers and prices those ops once per count
(``_Layer``: a layer kind's op records with a hole for the attention op). A call prices only
its attention op and adds the records in the ops' order with the same expressions as one
pass over the list, so every sum is bit for bit the plain loop's: ``_fold`` carries the
running sums on from a layer's head (the records before the attention op, summed once) over
the attention record and the tail; FLOPs and bytes are ``sum()`` over the whole list in order
(``sum`` of floats is compensated from Python 3.12, so a partial sum cannot be carried on).
docs/design-serving.md, "Pricing a corner".

The ops are the training lowering's (``sim.costs.lowering``); each is priced by
``sim.costs.timing.op_time_with_parts`` times the stack's factor
(``sim.costs.stack_effects``), collectives by ``sim.costs.comm.collective_time`` (or the
stack's algorithms, ``sim.costs.analytic_overlap.coll_time``). On MoE layers only the experts
some token was routed to are read (``sim.costs.moe.expected_experts_touched``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from hardware.types import Accelerator
from sim.costs.layout import StageLayout
from sim.costs.lowering import dtype_bytes, lower_embedding, lower_head, lower_layer
from sim.costs.moe import expected_experts_touched
from sim.costs.stack_effects import attention_kernel, kind_factor
from sim.costs.timing import op_time_with_parts
from sim.errors import ConfigError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan, Shape

_ZERO = (0.0, 0.0, 0.0, 0.0)


def _total(records) -> tuple[tuple[float, float, float, float], float, float]:
    """((time, compute_s, memory_s, comm_s), FLOPs, non-comm HBM bytes) of op records
    (``ReplicaPricer.record``) run back to back, summed in list order."""
    return (_fold(_ZERO, records), sum(r[4] for r in records),
            sum(r[5] for r in records if not r[0]))


def _fold(parts, records) -> tuple[float, float, float, float]:
    """``parts`` (time, compute_s, memory_s, comm_s) with op records run after them, added
    one by one in order (so a list's sums can be carried on from those of its head)."""
    t, c, mem, com = parts
    for is_comm, dt, dc, dm, _, _ in records:
        if is_comm:
            com += dt
        else:
            c, mem = c + dc, mem + dm
        t += dt
    return t, c, mem, com


class _Layer(NamedTuple):
    """A layer kind's ops for ``tokens`` new tokens, priced once, split around the attention
    op (a hole for the mix's own): ``_fold``'s sums over the records before it, the records
    after it, the FLOPs of the ops before and after it and the bytes of the non-comm ops
    before and after it, and the weight bytes read (attention reads none)."""

    head: tuple
    tail: tuple
    flops: tuple[tuple, tuple]
    nbytes: tuple[tuple, tuple]
    weights: float

    @classmethod
    def of(cls, records: list, weights: float) -> _Layer:
        """From the layer's op records with None for its one attention op."""
        cut = records.index(None)
        before, after = records[:cut], records[cut + 1:]
        return cls(_fold(_ZERO, before), tuple(after),
                   (tuple(r[4] for r in before), tuple(r[4] for r in after)),
                   (tuple(r[5] for r in before if not r[0]),
                    tuple(r[5] for r in after if not r[0])), weights)

    def total(self, attn: tuple) -> tuple[tuple[float, float, float, float], float, float]:
        """``_total`` of the layer's records with ``attn`` (the mix's attention record) in
        the hole: the head's sums carried on over attn and the tail, and the FLOPs and
        bytes summed over the whole list in order."""
        (f0, f1), (b0, b1) = self.flops, self.nbytes
        return (_fold(self.head, (attn, *self.tail)), sum((*f0, attn[4], *f1)),
                sum((*b0, attn[5], *b1)))


class _Totals(NamedTuple):
    """Per-GPU totals of an iteration over the layers (averaged over the pp stages)."""

    time: float
    compute: float
    memory: float
    comm: float
    flops: float
    bytes: float
    weights: float
    kv: float
    stage_time: float  # the slowest stage's


def _totals(parts: list, pp: int) -> _Totals:
    """Sum the layer kinds and the ends, in order: each (parts, per-stage counts, n in all,
    KV bytes, weight bytes, FLOPs, non-comm bytes) counted n times (per stage for the
    stage times)."""
    stages = [0.0] * pp
    time = compute = memory = comm = flops = nbytes = weights = kv = 0.0
    for (t, c, mem, com), per_stage, n, dkv, w, f, b in parts:
        stages = [st + k * t for st, k in zip(stages, per_stage, strict=True)]
        time, compute, memory, comm = time + n * t, compute + n * c, memory + n * mem, \
            comm + n * com
        flops += n * f / pp
        nbytes += n * b / pp
        weights += n * w / pp
        kv += n * dkv / pp
    return _Totals(time, compute, memory, comm, flops, nbytes, weights, kv, max(stages))


class _Kind(NamedTuple):
    """A layer kind priced for a token count: its template and how many of it each stage
    holds (``n`` in all)."""

    layer: _Layer
    per_stage: tuple
    n: int


class ReplicaPricer:
    """Prices one model replica (``plan``: tp, pp, ep, dtype, stack) on one cluster (or a
    bare accelerator, when nothing is communicated) and keeps what it priced: the layer
    kinds per token count, the embedding per token count, the head per sequence count and
    the embedding and head together per (tokens, sequences)."""

    def __init__(self, model: ModelConfig, cluster, acc: Accelerator, plan: ParallelPlan):
        self.model, self.cluster, self.acc, self.plan = model, cluster, acc, plan
        self.dtype, self.db = plan.dtype, dtype_bytes(plan.dtype)
        self.kernel = attention_kernel(plan.stack)  # picks the accelerator's attention model
        self.factors: dict[str, float] = {}  # op kind -> the stack's time multiplier
        kinds = _layer_kinds(model, plan.pp)
        self.kinds = tuple((layer, tuple(per), sum(per)) for layer, per in kinds.items())
        self.attention_layer = self.kinds[0][0]  # the attention op's (its cost has no layer)
        self.last = (0,) * (plan.pp - 1) + (1,)  # the ends: embedding and head on one stage
        self.tables: dict[str, dict] = {"layers": {}, "ends": {}, "lowered": {}, "sends": {}}

    # --- one op --------------------------------------------------------------------------------
    def record(self, op: Op) -> tuple:
        """What a pass over a list of ops adds for ``op``: (is_comm, time, compute_s,
        memory_s, FLOPs, HBM bytes), each term by the same expression as ``_total`` sums."""
        if op.is_comm:
            return True, self.comm(op), 0.0, 0.0, op.total_flops, 0.0
        k = self.factors.get(op.kind) or self.factor(op.kind)
        dt, tc, tm = op_time_with_parts(op, self.acc, self.dtype, self.kernel)
        return (False, k * dt, k * tc * op.count, k * tm * op.count, op.total_flops,
                op.total_bytes)

    def factor(self, kind: str) -> float:
        """The stack's multiplier on ops of ``kind`` (``op_factor``), kept per kind."""
        st = self.plan.stack
        got = self.factors[kind] = 1.0 if st is None else kind_factor(kind, st, True, self.acc)
        return got

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

    # --- one iteration -------------------------------------------------------------------------
    def iteration(self, attn: tuple, kv: float, tokens: int, n_seqs: int) -> _Totals:
        """The totals of an iteration of ``tokens`` new tokens over ``n_seqs`` sequences whose
        attention op's record is ``attn`` (``kv``: its KV bytes, per layer)."""
        parts = []
        for layer, per_stage, n in self.layers(tokens):
            t, f, nbytes = layer.total(attn)
            parts.append((t, per_stage, n, kv, layer.weights, f, nbytes))
        t, f, nbytes, weights = self.ends(tokens, n_seqs)
        parts.append((t, self.last, 1, 0.0, weights, f, nbytes))
        return _totals(parts, self.plan.pp)

    def layers(self, tokens: int) -> tuple[_Kind, ...]:
        """The layer kinds priced for ``tokens`` new tokens."""
        table = self.tables["layers"]
        got = table.get(tokens)
        if got is None:
            got = table[tokens] = tuple(_Kind(self._layer(layer, tokens), per, n)
                                        for layer, per, n in self.kinds)
        return got

    def _layer(self, layer: int, tokens: int) -> _Layer:
        model, plan = self.model, self.plan
        ops = lower_layer(model, layer, Shape(1, tokens, "prefill"), plan)
        if model.is_moe_layer(layer):  # the attention op passes through unchanged
            ops = _experts_touched_ops(model, ops, tokens, plan.ep, self.db)
        return _Layer.of([None if op.kind == "attention" else self.record(op) for op in ops],
                         _weight_bytes(ops, self.db, model, tokens, plan.ep))

    def ends(self, tokens: int, n_seqs: int) -> tuple:
        """(parts, FLOPs, bytes, weight bytes) of the embedding then the head."""
        table = self.tables["ends"]
        got = table.get((tokens, n_seqs))
        if got is None:
            emb_ops, emb = self._lowered(lower_embedding, Shape(1, tokens, "prefill"))
            head_ops, head = self._lowered(lower_head, Shape(n_seqs, 1, "decode"))
            got = table[tokens, n_seqs] = (
                *_total(emb + head),
                _weight_bytes(emb_ops + head_ops, self.db, self.model, tokens, self.plan.ep))
        return got

    def _lowered(self, lower, shape: Shape) -> tuple[list, list]:
        """``lower(model, shape, plan)``'s ops and their records (the embedding depends on
        the tokens only, the head on the sequences only)."""
        table = self.tables["lowered"]
        got = table.get((lower, shape))
        if got is None:
            ops = lower(self.model, shape, self.plan)
            got = table[lower, shape] = (ops, [self.record(op) for op in ops])
        return got

    def sends(self, tokens: int) -> float:
        """pp-1 activation hand-offs of ``tokens`` tokens between consecutive stages (first
        tp rank of each)."""
        table = self.tables["sends"]
        got = table.get(tokens)
        if got is None:
            nbytes = tokens * self.model.hidden * self.db
            got = table[tokens] = _pp_sends(self.cluster, nbytes, self.plan)
        return got


def _pp_sends(cluster, nbytes: float, plan: ParallelPlan) -> float:
    op = Op("pp_send", "p2p", 0.0, nbytes, collective="send_recv", group="pp")
    if cluster is None:
        raise ConfigError("pp > 1 sends activations between GPUs: pass a Cluster")
    from sim.costs.comm import collective_time, group_ranks

    ranks = group_ranks(plan, "pp")
    return sum(collective_time("send_recv", op.bytes, [a, b], cluster)
               for a, b in pairwise(ranks))


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
