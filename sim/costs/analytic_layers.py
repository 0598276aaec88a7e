"""Per-microbatch time of one transformer layer (and of the embedding / LM head) on one rank,
priced from the lowering's Ops: compute ops with the roofline ``sim.costs.timing.op_time``,
communication ops with ``sim.costs.comm.collective_time`` over the op's group.

What makes this fast enough for plan search is the cache: a layer's cost depends only on the
model, whether the layer is MoE, and the plan fields that change its per-rank shape or its
groups (micro-batch, sequence, tp, cp, ep, sequence parallelism, recomputation, dtype, flash
attention, gradient-accumulation fusion), never on dp, pp, ZeRO, the global batch or the schedule. A sweep over those
re-prices nothing.

Communication on the critical path: TP collectives and EP all-to-alls block the next op
(Megatron-LM without TP/EP comm overlap), so they are always exposed. The context-parallel KV
exchange of ring attention runs while the previous KV block is being attended (Liu et al.
2023, Ring Attention, Sec. 3), so with ``overlap="max"`` only what exceeds the attention
compute is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sim.costs import stack_effects
from sim.costs.comm import collective_time, group_ranks
from sim.costs.context import CostContext, LayerKey
from sim.plan import Shape

_PASS_OF = {"fwd": "fwd", "bwd": "bwd_input", "bwd_input": "bwd_input",
            "bwd_weight": "bwd_weight", "recompute": "recompute"}


@dataclass(frozen=True)
class PartCost:
    """Seconds per microbatch of one model part on one rank."""

    fwd: float = 0.0
    bwd_input: float = 0.0
    bwd_weight: float = 0.0
    recompute: float = 0.0
    attention: float = 0.0  # forward+backward attention-core compute (hides CP exchange)
    comm: dict = field(default_factory=dict)  # group -> seconds issued per microbatch

    @property
    def compute(self) -> float:
        return self.fwd + self.bwd_input + self.bwd_weight + self.recompute

    def comm_exposed(self, overlap: str, stack=None) -> float:
        if overlap == "stack" and stack is not None:
            return self._stack_exposed(stack)
        cp = self.comm.get("cp", 0.0)
        hidden_cp = cp if overlap == "sum" else max(0.0, cp - self.attention)
        return sum(t for g, t in self.comm.items() if g != "cp") + hidden_cp

    def _stack_exposed(self, stack) -> float:
        """TP collectives block unless the stack overlaps them with the GEMMs around them
        (TransformerEngine userbuffers); the ring CP exchange hides behind attention, an
        all-gathered one does not (Llama 3, Sec. 3.3.2); whatever is hidden slows the
        compute beside it by the stack's ``overlap_slowdown``."""
        s, out = stack.overlap_slowdown, 0.0
        ring = stack.cp_comm == "ring"
        for g, t in self.comm.items():
            window = (self.compute if g == "tp" and stack.tp_comm_overlap
                      else self.attention if g == "cp" and ring else 0.0)
            hid = min(t, window)
            out += t - hid + s * hid
        return out

    def __add__(self, o: PartCost) -> PartCost:
        comm = dict(self.comm)
        for g, t in o.comm.items():
            comm[g] = comm.get(g, 0.0) + t
        return PartCost(self.fwd + o.fwd, self.bwd_input + o.bwd_input,
                        self.bwd_weight + o.bwd_weight, self.recompute + o.recompute,
                        self.attention + o.attention, comm)

    def scaled(self, k: float) -> PartCost:
        return PartCost(self.fwd * k, self.bwd_input * k, self.bwd_weight * k,
                        self.recompute * k, self.attention * k,
                        {g: t * k for g, t in self.comm.items()})


ZERO = PartCost()


def plan_key(plan) -> LayerKey:
    """The plan fields a layer's per-rank cost depends on (see module docstring)."""
    return LayerKey.of(plan)


def canonical_plan(plan):
    """A plan with only the layer-relevant fields of ``plan`` (cache representative)."""
    return replace(plan, pp=1, dp=plan.ep, zero=0, global_batch=plan.ep * plan.micro_batch,
                   schedule="1f1b", virtual_stages=1, overlap="max")


def _price(ops, plan, cluster, acc) -> PartCost:
    from sim.costs.timing import op_time

    times = dict.fromkeys(("fwd", "bwd_input", "bwd_weight", "recompute"), 0.0)
    comm: dict[str, float] = {}
    attention = 0.0
    st = plan.stack
    comm_by_pass: dict[str, float] = {}
    for op in ops:
        if op.is_comm:
            ranks = group_ranks(plan, op.group)
            t = _comm_time(op, ranks, cluster, st) * op.count
            comm[op.group] = comm.get(op.group, 0.0) + t
            key = _PASS_OF.get(op.pass_, "fwd")
            comm_by_pass[key] = comm_by_pass.get(key, 0.0) + t
            continue
        t = op_time(op, acc, plan.dtype, stack_effects.attention_kernel(st))
        if st is not None:
            t = stack_effects.op_factor(op, st, plan.flash_attention, acc) * t
        times[_PASS_OF.get(op.pass_, "fwd")] += t
        if op.kind == "attention" and op.pass_ != "recompute":
            attention += t
    if st is not None:
        for pass_, extra in stack_effects.unfused_extra(ops, st, acc).items():
            times[pass_] += extra
        times = stack_effects.eager_floor(ops, times, _PASS_OF, st.launch_overhead_s,
                                          comm_by_pass)
    return PartCost(attention=attention, comm=comm, **times)


def _comm_time(op, ranks, cluster, stack) -> float:
    if stack is None:
        return collective_time(op.collective, op.bytes, ranks, cluster)
    from sim.costs.analytic_overlap import coll_time

    return coll_time(op.collective, op.bytes, tuple(ranks), cluster, stack.collective_algorithms)


def _layer_cost(model, layer: int, plan, cluster) -> PartCost:
    from sim.costs.lowering import lower_layer, lower_layer_backward

    shape = Shape(plan.micro_batch, plan.seq_len, "train")
    fwd = lower_layer(model, layer, shape, plan)
    bwd = lower_layer_backward(model, layer, shape, plan)  # recompute ops included
    return _price(list(fwd) + list(bwd), plan, cluster, cluster.accelerator)


def layer_cost(model, layer: int, plan, cluster, ctx: CostContext | None = None) -> PartCost:
    """Cost of transformer layer ``layer`` per microbatch on one rank (memoised per layer kind
    and ``LayerKey`` in the ``CostContext``)."""
    ctx = ctx or CostContext.of(model, cluster)
    key = LayerKey.of(plan, model.is_moe_layer(layer))
    table = ctx.memo("layer_cost")
    cost = table.get(key)
    if cost is None:
        cost = table[key] = _layer_cost(model, layer, canonical_plan(plan), cluster)
    return cost


def _ends_cost(model, plan, cluster) -> tuple[PartCost, PartCost]:
    from sim.costs import lowering

    shape = Shape(plan.micro_batch, plan.seq_len, "train")
    acc = cluster.accelerator
    emb = list(lowering.lower_embedding(model, shape, plan))
    head = list(lowering.lower_head(model, shape, plan))
    emb_b = _backward_of(lowering, "lower_embedding_backward", model, shape, plan)
    head_b = _backward_of(lowering, "lower_head_backward", model, shape, plan)
    return _price(emb + emb_b, plan, cluster, acc), _price(head + head_b, plan, cluster, acc)


def _backward_of(lowering, name, model, shape, plan) -> list:
    fn = getattr(lowering, name, None)
    return list(fn(model, shape, plan)) if fn else []


def ends_cost(model, plan, cluster, ctx: CostContext | None = None) -> tuple[PartCost, PartCost]:
    """(embedding on the first stage, LM head + loss on the last stage) per microbatch."""
    ctx = ctx or CostContext.of(model, cluster)
    return ctx.cached("ends_cost", LayerKey.of(plan),
                      lambda: _ends_cost(model, canonical_plan(plan), cluster))
