"""Lowering: one transformer layer x shape x plan -> the Ops one rank executes.

Forward of a pre-norm layer on one rank (Megatron-LM; Shoeybi et al. 2019, Fig. 3):
norm -> QKV (column-parallel: heads split over tp) -> RoPE -> attention core -> output
projection (row-parallel) -> TP all-reduce -> residual; then norm -> FFN up (column) ->
activation -> FFN down (row) -> TP all-reduce -> residual. With sequence parallelism
(Korthikanti et al. 2022, Sec. 4.2.2) each all-reduce becomes a reduce-scatter after the row
GEMM plus an all-gather before the next column GEMM, and norms/residuals run on s/tp tokens.
Context parallelism splits the sequence over cp ranks; ring attention (Liu et al. 2023) passes
K/V blocks around the ring in cp-1 point-to-point steps, and load-balanced (zig-zag) causal
chunks give every rank 1/cp of the attention work. Expert parallelism spreads the experts over
ep ranks with an all-to-all dispatch before and a combine after the experts (Lepikhin et al.
2020, GShard); experts are also split over tp (expert TP = TP). Every MoE layer permutes its
tokens into per-expert buffers before the experts and back after them (dispatch / combine
gathers, Megatron-core token dispatcher), with or without ep.

Backward (``lower_layer_backward``) mirrors it: every GEMM has a ``bwd_input`` (dX = dY W^T)
and a ``bwd_weight`` (dW = X^T dY) op of the same FLOPs, kept apart so zero-bubble schedules
(Qi et al. 2023) can delay the weight gradients; each collective has its conjugate (all-reduce
-> all-reduce, all-gather <-> reduce-scatter, all-to-all -> all-to-all; the ring-attention
backward passes K/V and dK/dV). Recomputation ops (pass ``recompute``) come first: ``full``
reruns the whole forward, ``selective`` the attention core unless flash attention already
recomputes it inside its backward.

Attention: with flash attention (Dao et al. 2022) the kernel skips masked blocks (causal
halving) and never writes the scores; without it (the math path: QK^T GEMM, fused masked
softmax, AV GEMM, as Megatron-LM in 2021) the GPU computes the whole masked rectangle and
streams the s^2 scores through HBM four times (write S, read S, write P, read P).

Bytes: compute ops carry HBM bytes read + written (GEMM: A, B and C once each); comm ops carry
the NCCL buffer size per rank (all-gather / reduce-scatter: the full, gathered buffer), which
``sim.costs.comm.collective_time`` converts to bus traffic. FLOPs of the lowered ops summed over
tp ranks equal ``sim.costs.flops.forward_flops`` (same GEMM list, same conventions).
Results are cached per (model, layer kind, shape, layer-relevant plan fields).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from sim.costs.attention import attention_backward_factor, attention_core_flops, head_dims
from sim.costs.flops import (
    ACT_FLOPS,
    NORM_FLOPS,
    ROPE_FLOPS,
    Gemm,
    attention_gemms,
    expert_slots,
    layer_gemms,
)
from sim.costs.lowering_io import (
    DTYPE_BYTES,
    LayerKey,
    backward_of,
    comm,
    dtype_bytes,
    elementwise,
    layer_key,
    lower_embedding,
    lower_embedding_backward,
    lower_head,
    lower_head_backward,
)
from sim.errors import PlanError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan, Shape

__all__ = [
    "DTYPE_BYTES", "LayerKey", "dtype_bytes", "layer_key", "lower_embedding",
    "lower_embedding_backward", "lower_head", "lower_head_backward", "lower_layer",
    "lower_layer_backward", "local_tokens",
]


@dataclass(frozen=True)
class _Ctx:
    model: ModelConfig
    layer: int
    shape: Shape
    key: LayerKey
    t: int  # tokens on this rank entering the layer (after the cp split)
    t_sp: int  # tokens of norms/residuals (t/tp under sequence parallelism)
    db: float  # bytes per element


def local_tokens(shape: Shape, cp: int) -> int:
    if shape.seq % cp:
        raise PlanError(f"cp={cp} must divide the sequence length {shape.seq} "
                        "(context parallelism splits the sequence evenly)")
    return shape.batch * shape.seq // cp


def _check_tp(model: ModelConfig, tp: int) -> None:
    if model.n_heads % tp:
        raise PlanError(f"tp={tp} must divide n_heads={model.n_heads} of '{model.name}'")


def _split_gemm(g: Gemm, tp: int) -> tuple[float, int, int]:
    """(m, n, k) of one tp rank's share of ``g``: column-parallel splits n, row-parallel k."""
    if g.split == "col":
        return g.m, g.n // tp, g.k
    if g.split == "row":
        return g.m, g.n, g.k // tp
    return g.m, g.n, g.k


def _qkv_n(model: ModelConfig, tp: int) -> int:
    """Output width of the QKV GEMM per rank; KV heads are replicated when tp > n_kv_heads
    (Megatron-LM GQA), so each rank keeps at least one KV head."""
    kv_heads = max(1, model.n_kv_heads // tp)
    return model.q_dim // tp + 2 * kv_heads * model.head_dim


def _gemm_op(c: _Ctx, name: str, kind: str, m: float, n: int, k: int, count: int) -> Op:
    flops = 2.0 * m * n * k  # multiply-add = 2 FLOPs
    nbytes = (m * k + k * n + m * n) * c.db  # read A and B, write C
    return Op(name, kind, flops, nbytes, "fwd", c.layer, mnk=(math.ceil(m), n, k), count=count)


def _gemm_ops(c: _Ctx, g: Gemm) -> list[Op]:
    tp, kind = c.key.tp, g.kind
    if g.name == "qkv":
        return [_gemm_op(c, "qkv", kind, g.m, _qkv_n(c.model, tp), g.k, 1)]
    m, n, k = _split_gemm(g, tp)
    if not g.expert:
        return [_gemm_op(c, g.name, kind, m, n, k, g.count)]
    local = g.count // c.key.ep  # experts on this rank
    m_mean = m * c.key.ep  # every ep rank sends its share of each expert's tokens
    hot = _hot_expert_m(c, m_mean)
    if hot == m_mean:
        return [_gemm_op(c, g.name, kind, m_mean, n, k, local)]
    ops = [_gemm_op(c, f"{g.name}_hot", kind, hot, n, k, 1)]
    return ops + ([_gemm_op(c, g.name, kind, m_mean, n, k, local - 1)] if local > 1 else [])


def _hot_expert_m(c: _Ctx, m_mean: float) -> float:
    """Busiest expert's tokens: mean * imbalance when dropless; with a capacity factor every
    expert computes its C slots whatever the skew (overflow is dropped; sim.costs.moe)."""
    if c.model.moe.capacity_factor is not None:
        return m_mean
    return m_mean * c.key.imbalance


def _attention_op(c: _Ctx) -> Op:
    m, s = c.model, c.shape
    d_qk, d_v = head_dims(m)
    heads = m.n_heads // c.key.tp
    kv_heads = max(1, m.n_kv_heads // c.key.tp) if m.mla is None else heads
    # flash skips fully masked blocks; the math path computes the masked rectangle too
    conv = "clustersim" if c.key.flash else "torch"
    flops = s.batch * attention_core_flops(m, s.seq, s.kv_len, convention=conv) / (
        c.key.tp * c.key.cp)
    keys = s.batch * (s.kv_len + s.seq)
    if m.attention.kind == "sliding_window":
        keys = s.batch * min(m.attention.window, s.kv_len + s.seq)
    q_o = c.t * heads * (d_qk + d_v)  # read Q, write O
    kv = keys * kv_heads * (d_qk + d_v)  # read K and V (all keys: ring attention sees them all)
    elems = q_o + kv
    if m.attention.kind == "linear":
        elems = c.t * heads * (d_qk + d_v) + c.t * kv_heads * (d_qk + d_v)
    elif not c.key.flash:  # math path materialises scores and probabilities: ~4 passes
        elems += 4 * flops / (2 * (d_qk + d_v))
    nbytes = elems * c.db + _dropout_score_bytes(m, s, c.key, flops)
    seqs = ((s.batch, s.seq // c.key.cp, s.kv_len),)  # this rank's query block per sequence
    scores = 0.0 if c.key.flash or m.attention.kind == "linear" else flops / (2 * (d_qk + d_v))
    return Op("attention", "attention", flops, nbytes, "fwd", c.layer, seqs=seqs, scores=scores)


def _dropout_score_bytes(m: ModelConfig, s: Shape, key: LayerKey, flops: float) -> float:
    """HBM bytes of dropout on the materialised probabilities (math path, training): read P,
    write P' and a 1-byte keep mask (torch fused dropout; Megatron-LM 2021 CoreAttention
    applies --attention-dropout to the softmax output). Its backward reads dP' and the mask
    and writes dP: the same bytes again."""
    if key.flash or not m.dropout or s.phase != "train" or m.attention.kind == "linear":
        return 0.0
    d_qk, d_v = head_dims(m)
    scores = flops / (2 * (d_qk + d_v))  # b * heads * (computed) s^2 on this rank
    return scores * (2 * dtype_bytes(key.dtype) + 1)


def _residual_bytes(c: _Ctx) -> float:
    """Residual add of t_sp x h: read x and the residual, write the sum; with hidden dropout
    (Megatron-LM fused bias-dropout-add, 2021) also write a 1-byte keep mask."""
    mask = 1.0 if c.model.dropout and c.shape.phase == "train" else 0.0
    return c.t_sp * c.model.hidden * (3 * c.db + mask)


def _rope_width(m: ModelConfig, tp: int) -> int:
    """Elements of Q and K per token that RoPE rotates on one rank (MLA: the rope dims only,
    the shared rope key replicated; DeepSeek-V2 Sec. 2.1.3)."""
    if m.mla is not None:
        return m.n_heads // tp * m.mla.qk_rope_head_dim + m.mla.qk_rope_head_dim
    return m.q_dim // tp + max(1, m.n_kv_heads // tp) * m.head_dim


def _attention_block(c: _Ctx) -> list[Op]:
    m, key, h = c.model, c.key, c.model.hidden
    ops = [elementwise(c.layer, "attn_norm", "norm", c.t_sp * h * NORM_FLOPS[m.norm],
                       2 * c.t_sp * h * c.db)]
    ops += _sp_gather(c, "attn")
    gemms = attention_gemms(m, c.t)
    ops += [op for g in gemms if g.name != "attn_out" for op in _gemm_ops(c, g)]
    if m.position.kind == "rope":
        width = _rope_width(m, key.tp)
        ops.append(elementwise(c.layer, "rope", "elementwise", ROPE_FLOPS * c.t * width,
                               2 * c.t * width * c.db))
    if key.cp > 1:
        ops.append(_cp_exchange(c))
    ops.append(_attention_op(c))
    ops += [op for g in gemms if g.name == "attn_out" for op in _gemm_ops(c, g)]
    ops += _tp_reduce(c, "attn")
    ops.append(elementwise(c.layer, "attn_residual", "elementwise", c.t_sp * h,
                           _residual_bytes(c)))
    return ops


def _cp_exchange(c: _Ctx) -> Op:
    """K/V exchange of context parallelism: ring attention passes this rank's K/V block in
    cp-1 p2p steps (Liu et al. 2023); the stack's ``cp_comm = "all_gather"`` gathers all cp
    blocks in one collective before the attention (Llama 3, Sec. 3.3.2: cheap under GQA,
    exposed on the critical path)."""
    m, key = c.model, c.key
    d_qk, d_v = head_dims(m)
    kv_heads = m.n_heads // key.tp if m.mla is not None else max(1, m.n_kv_heads // key.tp)
    kv_bytes = c.t * kv_heads * (d_qk + d_v) * c.db  # this rank's K and V block
    if key.cp_all_gather:
        return comm(c.layer, "cp_kv_all_gather", "collective", "all_gather", "cp",
                    kv_bytes * key.cp)  # the gathered buffer (sim.costs.comm convention)
    return comm(c.layer, "cp_kv_exchange", "p2p", "send_recv", "cp", kv_bytes,
                count=key.cp - 1)


def _sp_gather(c: _Ctx, where: str) -> list[Op]:
    if c.key.tp == 1 or not c.key.sp:
        return []
    return [comm(c.layer, f"sp_{where}_all_gather", "collective", "all_gather", "tp",
                 c.t * c.model.hidden * c.db)]


def _tp_reduce(c: _Ctx, where: str) -> list[Op]:
    if c.key.tp == 1:
        return []
    nbytes = c.t * c.model.hidden * c.db
    if c.key.sp:
        return [comm(c.layer, f"sp_{where}_reduce_scatter", "collective", "reduce_scatter",
                     "tp", nbytes)]
    return [comm(c.layer, f"tp_{where}_all_reduce", "collective", "all_reduce", "tp", nbytes)]


def _act_op(c: _Ctx, name: str, up: Op) -> Op:
    inner = up.mnk[1] // (2 if c.model.ffn_kind == "swiglu" else 1)
    m = up.flops / (2 * up.mnk[1] * up.mnk[2])
    reads = 3 if c.model.ffn_kind == "swiglu" else 2  # gate+up in, product out
    return Op(name, "elementwise", ACT_FLOPS[c.model.ffn_kind] * m * inner,
              reads * m * inner * c.db, "fwd", c.layer, count=up.count)


def _ffn_ops(c: _Ctx, gemms: list[Gemm]) -> list[Op]:
    ops: list[Op] = []
    for g in gemms:
        for op in _gemm_ops(c, g):
            ops.append(op)
            if g.name.endswith("_up"):
                ops.append(_act_op(c, op.name.replace("_up", "_act"), op))
    return ops


def _permute_ops(c: _Ctx) -> tuple[Op, Op]:
    """Token permutation around the experts: dispatch gathers each kept (token, expert) slot's
    hidden vector into its expert's contiguous buffer, combine weights the expert outputs by
    their router probabilities and scatter-adds them back to token order; each reads and writes
    slots x h elements (indices and probabilities: ~1/h of that, omitted). Pure data movement,
    so 0 FLOPs: the FLOP totals stay those of ``sim.costs.flops``."""
    # 2 passes of slots*h: Megatron-core moe_utils.permute/unpermute; MegaBlocks Sec. 3 (2023)
    nbytes = 2 * expert_slots(c.model, c.t, padding=False) * c.model.hidden * c.db
    return (elementwise(c.layer, "moe_dispatch_permute", "elementwise", 0.0, nbytes),
            elementwise(c.layer, "moe_combine_unpermute", "elementwise", 0.0, nbytes))


def _moe_block(c: _Ctx) -> list[Op]:
    gemms = [g for g in layer_gemms(c.model, True, c.t) if g.kind == "router" or g.expert
             or g.name.startswith("shared")]
    router = [op for g in gemms if g.kind == "router" for op in _gemm_ops(c, g)]
    experts = _ffn_ops(c, [g for g in gemms if g.expert])
    shared = _ffn_ops(c, [g for g in gemms if g.name.startswith("shared")])
    dispatch, combine = _permute_ops(c)
    if c.key.ep == 1:
        return router + [dispatch] + experts + [combine] + shared
    slots = next(g for g in gemms if g.expert).m * c.model.moe.n_experts
    nbytes = slots * c.model.hidden * c.db  # every routed slot's hidden vector, to its expert
    a2a = [comm(c.layer, f"ep_{n}", "collective", "all_to_all", "ep", nbytes)
           for n in ("dispatch", "combine")]
    return router + [dispatch, a2a[0]] + experts + [a2a[1], combine] + shared


def _mlp_block(c: _Ctx, moe_layer: bool) -> list[Op]:
    m, h = c.model, c.model.hidden
    ops = [elementwise(c.layer, "mlp_norm", "norm", c.t_sp * h * NORM_FLOPS[m.norm],
                       2 * c.t_sp * h * c.db)]
    ops += _sp_gather(c, "mlp")
    if moe_layer:
        ops += _moe_block(c)
    else:
        ops += _ffn_ops(c, [g for g in layer_gemms(m, False, c.t) if g.name.startswith("mlp")])
    ops += _tp_reduce(c, "mlp")
    ops.append(elementwise(c.layer, "mlp_residual", "elementwise", c.t_sp * h,
                           _residual_bytes(c)))
    return ops


@lru_cache(maxsize=16384)
def _forward(model, layer: int, shape: Shape, key: LayerKey) -> tuple[Op, ...]:
    _check_tp(model, key.tp)
    moe_layer = model.is_moe_layer(layer)
    if moe_layer and model.moe.n_experts % key.ep:
        raise PlanError(f"ep={key.ep} must divide n_experts={model.moe.n_experts}")
    t = local_tokens(shape, key.cp)
    if key.sp and t % key.tp:
        raise PlanError(f"tp={key.tp} must divide the {t} tokens per rank for sequence "
                        "parallelism (choose micro-batch x seq divisible by tp)")
    c = _Ctx(model, layer, shape, key, t, t // key.tp if key.sp else t, dtype_bytes(key.dtype))
    return tuple(_attention_block(c) + _mlp_block(c, moe_layer))


def lower_layer(model: ModelConfig, layer: int, shape: Shape, plan: ParallelPlan, *,
                imbalance: float = 1.0) -> list[Op]:
    """Forward ops of transformer layer ``layer`` on one rank (see module docstring).
    ``imbalance`` (max/mean expert load, ``sim.costs.moe``) makes one local expert the hot one."""
    return list(_forward(model, layer, shape, layer_key(plan, imbalance)))


def _recompute_ops(fwd: tuple[Op, ...], key: LayerKey) -> list[Op]:
    if key.recompute == "full":
        return [replace(op, pass_="recompute") for op in fwd]
    if key.recompute == "selective" and not key.flash:
        return [replace(op, pass_="recompute") for op in fwd if op.kind == "attention"]
    return []


@lru_cache(maxsize=16384)
def _backward(model, layer: int, shape: Shape, key: LayerKey) -> tuple[Op, ...]:
    fwd = _forward(model, layer, shape, key)
    bwd_in, bwd_w = [], []
    for op in reversed(fwd):
        a, b = backward_of(op, attention_backward_factor(key.flash))
        if op.kind == "attention":  # backward_of doubles the bytes; dropout's only repeat once
            extra = _dropout_score_bytes(model, shape, key, op.flops)
            a = [replace(x, bytes=x.bytes - extra) for x in a]
        bwd_in += a
        bwd_w += b
    return tuple(_recompute_ops(fwd, key) + bwd_in + bwd_w + _grad_accumulate(model, layer, key))


def _grad_accumulate(model: ModelConfig, layer: int, key: LayerKey) -> list[Op]:
    """Without gradient-accumulation fusion every microbatch adds each weight gradient into
    the main-grad buffer: read grad, read and write main_grad (Megatron-LM 2021 local DDP
    ``param.main_grad.add_(param.grad.data)``; buffer in the param dtype unless
    --accumulate-allreduce-grads-in-fp32). The rank holds 1/tp of the layer (experts 1/tp*ep)."""
    if key.grad_acc_fusion:
        return []
    from sim.model.params import count_params

    lp = count_params(model).layers[layer]
    params = (lp.total - lp.experts) / key.tp + lp.experts / (key.tp * key.ep)
    return [Op("grad_accumulate", "elementwise", params, 3 * params * dtype_bytes(key.dtype),
               "bwd_weight", layer)]


def lower_layer_backward(model: ModelConfig, layer: int, shape: Shape, plan: ParallelPlan, *,
                         imbalance: float = 1.0) -> list[Op]:
    """Recompute ops (per plan.recompute), then ``bwd_input`` ops in reverse layer order, then
    ``bwd_weight`` ops (weight gradients, deferrable by zero-bubble schedules)."""
    return list(_backward(model, layer, shape, layer_key(plan, imbalance)))
