"""Activation memory of one transformer layer for one micro-batch on one rank.

Two references, selectable because they answer different questions:

``korthikanti`` — Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models"), Sec. 4 and Table 2, for a GPT layer (MHA, 4h GELU MLP, dropout, 16-bit
activations) with s tokens per sequence, b sequences, h hidden, a heads, t-way tensor
parallelism:

- no recomputation, TP without sequence parallelism: ``sbh(10 + 24/t + 5as/(ht))`` (Eq. 2)
- ... with sequence parallelism: ``sbh(34/t + 5as/(ht))`` (Sec. 4.2.2); t=1 gives Eq. 1
- selective recomputation drops the ``5as/(ht)`` term (Sec. 5)
- full recomputation keeps only the layer input, ``2sbh`` (``/t`` when sharded by SP)

With flash attention the ``5as^2b`` score/softmax/dropout-mask term disappears (Dao et al.
2022: scores are never materialised). Applied to other architectures (GQA, SwiGLU, MoE) this
formula is only an approximation; it is kept verbatim as the literature's baseline.

``clustersim`` — the tensors that autograd saves in our reference PyTorch implementation
(``sim.validation``, measured there with ``torch.autograd.graph.saved_tensors_hooks``): a
pre-norm layer without dropout in activation dtype ``d`` bytes, fp32 norm statistics. Saved:
the two norm inputs and outputs (``4 t_sp h d``) and their 1/rms (``2 * 4 t_sp``); Q, K, V as
fed to sdpa (``T (q_dim + 2 kv_dim)/t d``); the sdpa output (``T q_dim/t d``) plus its fp32
log-sum-exp (``4 b s a/t``) with flash, or the softmax probabilities (``a s^2 b/t d``) on the
math path; the FFN: SwiGLU saves gate, up, silu(gate) and their product (``4 T f/t d``), GELU
the pre- and post-activation (``2 T f/t d``). MoE layers save the fp32 router probabilities
(``4 T E``), each routed slot's input and output (``2 slots h d``) and expert intermediates like
a dense FFN per slot; shared experts like dense FFNs. ``T = s b`` tokens on the rank
(``s`` = seq/cp), ``t_sp = T/t`` under sequence parallelism. Selective recomputation drops the
softmax probabilities; full recomputation keeps only the layer input (``t_sp h d``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from sim.costs.attention import head_dims
from sim.costs.flops import expert_slots
from sim.costs.lowering_io import dtype_bytes
from sim.errors import ConfigError, PlanError
from sim.model.config import ModelConfig
from sim.plan import ParallelPlan

REFERENCES = ("korthikanti", "clustersim")


def _korthikanti(model: ModelConfig, s: int, b: int, t: int, sp: bool, recompute: str,
                 flash: bool) -> float:
    h, a = model.hidden, model.n_heads
    sbh = s * b * h
    if recompute == "full":
        return 2 * sbh / (t if sp else 1)  # Korthikanti et al. 2022, Table 2
    base = 34 * sbh / t if sp else sbh * (10 + 24 / t)  # Sec. 4.2.2 / Eq. 2
    scores = 0 if (recompute == "selective" or flash) else 5 * a * s * s * b / t
    return base + scores


def _ffn_saved(model: ModelConfig, tokens: float, inner: int, t: int, db: float) -> float:
    per = 4 if model.ffn_kind == "swiglu" else 2  # see module docstring
    return per * tokens * inner / t * db


def _mla_saved(model: ModelConfig, tokens: int, db: float) -> float:
    """Extra low-rank tensors of MLA: latent inputs and outputs of the q/kv norms."""
    m = model.mla
    out = 2 * tokens * m.kv_lora_rank * db + 4 * tokens
    if m.q_lora_rank:
        out += 2 * tokens * m.q_lora_rank * db + 4 * tokens
    return out


def _attention_saved(model: ModelConfig, s: int, b: int, t: int, flash: bool, keep_probs: bool,
                     db: float) -> float:
    tokens, heads = s * b, model.n_heads // t
    d_qk, d_v = head_dims(model)
    kv_heads = heads if model.mla is not None else max(1, model.n_kv_heads // t)
    saved = tokens * (heads * d_qk + kv_heads * (d_qk + d_v)) * db  # sdpa inputs
    saved += tokens * heads * d_v * db  # sdpa output = out-projection input
    if model.mla is not None:
        saved += _mla_saved(model, tokens, db)
    if flash:
        return saved + 4 * b * heads * s  # fp32 log-sum-exp per query and head
    return saved + (heads * s * s * b * db if keep_probs else 0)


def _mlp_saved(model: ModelConfig, moe_layer: bool, tokens: int, t: int, ep: int,
               db: float) -> float:
    if not moe_layer:
        return _ffn_saved(model, tokens, model.ffn_hidden, t, db)
    m = model.moe
    slots = expert_slots(model, tokens * ep) / ep  # slots this rank's experts compute
    saved = 4 * tokens * m.n_experts + 2 * slots * model.hidden * db
    saved += _ffn_saved(model, slots, m.expert_ffn_hidden, t, db)
    return saved + m.n_shared_experts * _ffn_saved(model, tokens, m.shared_hidden, t, db)


def _clustersim(model: ModelConfig, moe_layer: bool, s: int, b: int, k: _Key) -> float:
    db, t = dtype_bytes(k.dtype), k.tp
    tokens = s * b
    t_sp = tokens / t if k.sp else tokens
    if k.recompute == "full":
        return t_sp * model.hidden * db
    norms = 4 * t_sp * model.hidden * db + 2 * 4 * t_sp
    attn = _attention_saved(model, s, b, t, k.flash, k.recompute == "none", db)
    return norms + attn + _mlp_saved(model, moe_layer, tokens, t, k.ep, db)


class _Key(NamedTuple):
    tp: int
    ep: int
    sp: bool
    recompute: str
    flash: bool
    dtype: str


@lru_cache(maxsize=16384)
def _per_layer(model, moe_layer: bool, s: int, b: int, k: _Key, reference: str) -> float:
    if reference == "korthikanti":
        return _korthikanti(model, s, b, k.tp, k.sp, k.recompute, k.flash)
    return _clustersim(model, moe_layer, s, b, k)


def activation_bytes_per_layer(model: ModelConfig, plan: ParallelPlan,
                               reference: str = "clustersim", layer: int | None = None) -> float:
    """Bytes one layer keeps for the backward, per micro-batch, on one rank (module docstring).
    ``layer`` picks a dense or MoE layer (default: the last layer, MoE in MoE models)."""
    if reference not in REFERENCES:
        raise ConfigError(f"unknown activation reference '{reference}'; use one of {REFERENCES}")
    if plan.seq_len % plan.cp:
        raise PlanError(f"cp={plan.cp} must divide seq_len={plan.seq_len}")
    layer = model.n_layers - 1 if layer is None else layer
    key = _Key(plan.tp, plan.ep, plan.sequence_parallel and plan.tp > 1, plan.recompute,
               plan.flash_attention, plan.dtype)
    return _per_layer(model, model.is_moe_layer(layer), plan.seq_len // plan.cp,
                      plan.micro_batch, key, reference)


@lru_cache(maxsize=65536)
def _layers_bytes(model, kinds: tuple[tuple[int, int], ...], s: int, b: int, k: _Key,
                  reference: str) -> float:
    return sum(n * _per_layer(model, model.is_moe_layer(rep), s, b, k, reference)
               for rep, n in kinds)


def activation_bytes_of_layers(model: ModelConfig, plan: ParallelPlan,
                               kinds: tuple[tuple[int, int], ...],
                               reference: str = "clustersim") -> float:
    """Activation bytes per micro-batch of ``kinds`` = ((representative layer, count), ...),
    e.g. a pipeline stage's dense and MoE layers (one cache lookup per stage)."""
    if reference not in REFERENCES:
        raise ConfigError(f"unknown activation reference '{reference}'; use one of {REFERENCES}")
    if plan.seq_len % plan.cp:
        raise PlanError(f"cp={plan.cp} must divide seq_len={plan.seq_len}")
    key = _Key(plan.tp, plan.ep, plan.sequence_parallel and plan.tp > 1, plan.recompute,
               plan.flash_attention, plan.dtype)
    return _layers_bytes(model, kinds, plan.seq_len // plan.cp, plan.micro_batch, key,
                         reference)
