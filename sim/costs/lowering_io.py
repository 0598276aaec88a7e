"""Lowering helpers and the model's two ends: the token embedding and the LM head + loss.

Both ends are vocabulary-parallel under tensor parallelism (Shoeybi et al. 2019, Sec. 3):
each tp rank holds V/tp rows of the table. The embedding looks up its shard and all-reduces
the partial rows (reduce-scatter under sequence parallelism). The head multiplies by its V/tp
columns; the cross-entropy then all-reduces three per-token fp32 scalars (max logit, sum of
exps, target logit) instead of gathering the logits (Megatron-LM
``vocab_parallel_cross_entropy``); in serving (prefill/decode) the logits of the sampled
tokens are all-gathered instead. Backward of a matmul is split into ``bwd_input`` and
``bwd_weight`` ops of equal FLOPs; elementwise backward is estimated at the forward's FLOPs and
1.5x its bytes (reads the input and the output gradient, writes the input gradient).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from sim.costs.flops import NORM_FLOPS
from sim.dtypes import DTYPE_BYTES, dtype_bytes  # noqa: F401 (re-exported)
from sim.errors import PlanError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan, Shape

_CONJUGATE = {"all_reduce": "all_reduce", "all_gather": "reduce_scatter",
              "reduce_scatter": "all_gather", "all_to_all": "all_to_all",
              "send_recv": "send_recv", "broadcast": "broadcast"}


class LayerKey(NamedTuple):
    """The plan fields a layer's per-rank ops depend on (the lowering's cache key)."""

    tp: int
    cp: int
    ep: int
    sp: bool
    recompute: str
    flash: bool
    dtype: str
    imbalance: float = 1.0
    grad_acc_fusion: bool = True
    cp_all_gather: bool = False  # the stack all-gathers K/V for context parallelism


def layer_key(plan: ParallelPlan, imbalance: float = 1.0) -> LayerKey:
    sp = plan.sequence_parallel and plan.tp > 1
    stack = getattr(plan, "stack", None)
    gather = stack is not None and stack.cp_comm == "all_gather"
    return LayerKey(plan.tp, plan.cp, plan.ep, sp, plan.recompute, plan.flash_attention,
                    plan.dtype, imbalance, plan.grad_accumulation_fusion, gather)


def comm(layer: int, name: str, kind: str, collective: str, group: str, nbytes: float,
         count: int = 1, pass_: str = "fwd") -> Op:
    return Op(name, kind, 0.0, nbytes, pass_, layer, collective=collective, group=group,
              count=count)


def elementwise(layer: int, name: str, kind: str, flops: float, nbytes: float) -> Op:
    return Op(name, kind, flops, nbytes, "fwd", layer)


def backward_of(op: Op, attention_factor: float) -> tuple[list[Op], list[Op]]:
    """(bwd_input ops, bwd_weight ops) of one forward op (module docstring)."""
    if op.is_comm:
        nbytes = 2 * op.bytes if op.group == "cp" else op.bytes  # ring attn: K/V and dK/dV
        return [replace(op, name=f"{op.name}_bwd", collective=_CONJUGATE[op.collective],
                        bytes=nbytes, pass_="bwd_input")], []
    if op.kind in ("matmul", "router"):
        m, n, k = op.mnk
        dx = replace(op, name=f"{op.name}_dx", pass_="bwd_input", mnk=(m, k, n))
        dw = replace(op, name=f"{op.name}_dw", pass_="bwd_weight", mnk=(k, n, m))
        return [dx], [dw]
    if op.kind == "attention":
        return [replace(op, name="attention_bwd", flops=op.flops * attention_factor,
                        bytes=2 * op.bytes, scores=2 * op.scores, pass_="bwd_input")], []
    return [replace(op, name=f"{op.name}_bwd", bytes=1.5 * op.bytes, pass_="bwd_input")], []


def _tokens(shape: Shape, plan: ParallelPlan) -> int:
    if shape.seq % plan.cp:
        raise PlanError(f"cp={plan.cp} must divide the sequence length {shape.seq}")
    return shape.batch * shape.seq // plan.cp


def _sp(plan: ParallelPlan) -> bool:
    return plan.sequence_parallel and plan.tp > 1


# --- embedding --------------------------------------------------------------------------------
def lower_embedding(model: ModelConfig, shape: Shape, plan: ParallelPlan) -> list[Op]:
    """Token (+ learned position) embedding lookup on one rank, vocab-parallel over tp."""
    t, h, db = _tokens(shape, plan), model.hidden, dtype_bytes(plan.dtype)
    learned = model.position.kind == "learned"
    ops = [Op("embedding", "embedding", float(t * h) if learned else 0.0,
              (3 if learned else 2) * t * h * db, "fwd", -1)]
    if plan.tp > 1:
        coll = "reduce_scatter" if _sp(plan) else "all_reduce"
        ops.append(comm(-1, f"embedding_{coll}", "collective", coll, "tp", t * h * db))
    return ops


def lower_embedding_backward(model: ModelConfig, shape: Shape, plan: ParallelPlan) -> list[Op]:
    """Gradient of the embedding: (SP: all-gather of dX), then a scatter-add into the table."""
    t, h, db = _tokens(shape, plan), model.hidden, dtype_bytes(plan.dtype)
    ops = []
    if _sp(plan):
        ops.append(comm(-1, "embedding_all_gather_bwd", "collective", "all_gather", "tp",
                        t * h * db, pass_="bwd_input"))
    ops.append(Op("embedding_grad", "embedding", float(t * h), 3 * t * h * db, "bwd_weight", -1))
    return ops


# --- head + loss --------------------------------------------------------------------------------
def _head_tokens(shape: Shape, t: int) -> int:
    return shape.batch if shape.phase == "prefill" else t


def lower_head(model: ModelConfig, shape: Shape, plan: ParallelPlan) -> list[Op]:
    """Final norm, LM head (V/tp columns per rank) and, in training, the vocab-parallel loss."""
    t, h, db, tp = _tokens(shape, plan), model.hidden, dtype_bytes(plan.dtype), plan.tp
    t_sp = t // tp if _sp(plan) else t
    v = model.vocab_size // tp
    ops = [Op("final_norm", "norm", NORM_FLOPS[model.norm] * t_sp * h, 2 * t_sp * h * db,
              "fwd", -1)]
    if _sp(plan):
        ops.append(comm(-1, "head_all_gather", "collective", "all_gather", "tp", t * h * db))
    m = _head_tokens(shape, t)
    ops.append(Op("lm_head", "matmul", 2.0 * m * v * h, (m * h + h * v + m * v) * db, "fwd", -1,
                  mnk=(m, v, h)))
    if shape.phase == "train":
        ops.append(Op("loss", "elementwise", 5.0 * m * v, 2 * m * v * db, "fwd", -1))
        if tp > 1:  # max, sum-exp and target logit per token, fp32
            ops.append(comm(-1, "loss_all_reduce", "collective", "all_reduce", "tp", 4 * m,
                            count=3))  # three separate all-reduces, as Megatron-LM issues them
    elif tp > 1:
        ops.append(comm(-1, "logits_all_gather", "collective", "all_gather", "tp",
                        m * model.vocab_size * db))
    return ops


def lower_head_backward(model: ModelConfig, shape: Shape, plan: ParallelPlan) -> list[Op]:
    """Loss gradient, LM head dX/dW, the conjugate TP collective on dX, final-norm backward."""
    fwd = {op.name: op for op in lower_head(model, shape, plan)}
    t, h, db = _tokens(shape, plan), model.hidden, dtype_bytes(plan.dtype)
    bwd_in: list[Op] = []
    if "loss" in fwd:
        bwd_in += backward_of(fwd["loss"], 1.0)[0]
    dx, dw = backward_of(fwd["lm_head"], 1.0)
    bwd_in += dx
    if plan.tp > 1:
        coll = "reduce_scatter" if _sp(plan) else "all_reduce"
        bwd_in.append(comm(-1, f"head_{coll}_bwd", "collective", coll, "tp", t * h * db,
                           pass_="bwd_input"))
    bwd_in += backward_of(fwd["final_norm"], 1.0)[0]
    return bwd_in + dw
