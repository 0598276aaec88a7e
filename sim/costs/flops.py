"""FLOP counts of a transformer pass: the conventions every other cost builds on.

Conventions (stated once, used everywhere):

- A multiply-add is 2 FLOPs: an (m x k) @ (k x n) GEMM costs ``2*m*n*k`` (Kaplan et al. 2020,
  Sec. 2.1; Narayanan et al. 2021, Sec. 5.1). Biases are not counted.
- Backward of a matmul = 2x its forward (input gradient and weight gradient, one GEMM each).
  Backward of the attention core = 2.5x forward with flash attention (the scores are recomputed:
  5 bmms vs 2, as ``torch.utils.flop_counter`` counts sdpa backward), 2x without.
- Causal masking halves the attention FLOPs when ``causal_halving=True`` (kernels skip masked
  blocks); ``False`` counts the dense rectangle like Megatron-LM's Eq. 3. See
  ``sim.costs.attention`` for the windowed, dilated and linear patterns.
- Elementwise work (norms, residual adds, RoPE, activations, softmax) is an op-count estimate
  (RMSNorm 4 and LayerNorm 7 FLOPs/element, residual add 1, RoPE 3, SiLU*gate 5, GELU 8,
  softmax 5 per score); it is tiny next to the GEMMs and is memory-bound anyway.
- MoE: the router is a ``hidden x E`` GEMM; each token runs ``top_k`` routed experts plus the
  shared experts. With a capacity factor the kernels compute ``E*C`` slots (padding when
  ``C`` exceeds the routed load, drops when below; ``sim.costs.moe``); ``padding=False`` counts
  only useful slots (for model FLOPs / MFU).
- Phases: ``train`` and ``prefill`` process ``seq`` tokens per sequence after ``kv_len``
  cached tokens (0 unless chunked prefill); ``decode`` processes ``seq`` new tokens against a
  KV cache of ``kv_len``. The LM head runs on every token in training and decode, and only on
  the last token of each sequence in prefill (the one whose logits are sampled).
- ``convention="torch"`` counts what ``torch.utils.flop_counter.FlopCounterMode`` reports for
  a straightforward PyTorch implementation: every ``mm``/``bmm`` (projections, router, experts
  on the tokens routed to them, LM head, attention via sdpa or explicit matmuls), no causal
  halving, no elementwise work, no embedding.

Model FLOPs per step exclude recomputation; hardware FLOPs include it (Chowdhery et al. 2022,
PaLM, App. B: MFU vs HFU).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

from sim.costs.attention import (
    attention_backward_factor,
    attention_core_flops,
    softmax_flops,
)
from sim.costs.moe import capacity
from sim.errors import ConfigError
from sim.model.config import ModelConfig
from sim.plan import ParallelPlan, Shape

NORM_FLOPS = {"rmsnorm": 4, "layernorm": 7}  # per element, op-count estimate (see docstring)
ACT_FLOPS = {"swiglu": 5, "gelu": 8}  # per FFN-inner element
ROPE_FLOPS = 3  # x*cos + rotate(x)*sin per element (Su et al. 2021, Eq. 34)
FIELDS = ("matmul", "attention", "elementwise", "router", "embedding", "lm_head")


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a layer, unsplit. ``m`` may be fractional (mean tokens per expert).
    ``split`` says how tensor parallelism cuts it: "col" splits n, "row" splits k,
    "none" replicates it (routers, MLA down-projections)."""

    name: str
    m: float
    n: int
    k: int
    count: int = 1
    split: str = "col"
    kind: str = "matmul"  # or "router"
    expert: bool = False

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.count  # multiply-add = 2 FLOPs


@dataclass(frozen=True)
class FlopBreakdown:
    matmul: float = 0.0
    attention: float = 0.0
    elementwise: float = 0.0
    router: float = 0.0
    embedding: float = 0.0
    lm_head: float = 0.0

    @property
    def total(self) -> float:
        return sum(getattr(self, f) for f in FIELDS)

    def __add__(self, other: FlopBreakdown) -> FlopBreakdown:
        return FlopBreakdown(*(getattr(self, f) + getattr(other, f) for f in FIELDS))

    def scaled(self, factor: float) -> FlopBreakdown:
        return FlopBreakdown(*(getattr(self, f) * factor for f in FIELDS))

    def only(self, include: tuple[str, ...] | None) -> FlopBreakdown:
        if include is None:
            return self
        bad = set(include) - set(FIELDS)
        if bad:
            raise ConfigError(f"unknown FLOP categories {sorted(bad)}; use some of {FIELDS}")
        return FlopBreakdown(*(getattr(self, f) if f in include else 0.0 for f in FIELDS))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"total": self.total}


# --- the GEMMs of one layer ---------------------------------------------------------------------
def attention_gemms(model: ModelConfig, t: float) -> list[Gemm]:
    h = model.hidden
    if model.mla is None:
        return [Gemm("qkv", t, model.q_dim + 2 * model.kv_dim, h),
                Gemm("attn_out", t, h, model.q_dim, split="row")]
    m, heads = model.mla, model.n_heads  # DeepSeek-V2 Sec. 2.1.2, Eqs. 9-14
    q_out = heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
    gemms = ([Gemm("q_a", t, m.q_lora_rank, h, split="none"), Gemm("q_b", t, q_out, m.q_lora_rank)]
             if m.q_lora_rank else [Gemm("q", t, q_out, h)])
    return gemms + [
        Gemm("kv_a", t, m.kv_lora_rank + m.qk_rope_head_dim, h, split="none"),
        Gemm("kv_b", t, heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank),
        Gemm("attn_out", t, h, heads * m.v_head_dim, split="row"),
    ]


def _ffn_gemms(model: ModelConfig, prefix: str, m: float, inner: int, count: int = 1,
               expert: bool = False) -> list[Gemm]:
    h = model.hidden
    up = 2 * inner if model.ffn_kind == "swiglu" else inner  # SwiGLU: gate+up fused (Shazeer 2020)
    return [Gemm(f"{prefix}_up", m, up, h, count, "col", expert=expert),
            Gemm(f"{prefix}_down", m, h, inner, count, "row", expert=expert)]


def expert_slots(model: ModelConfig, tokens: int, *, padding: bool = True) -> float:
    """Expert slots a MoE layer computes for ``tokens`` uniformly routed tokens."""
    m = model.moe
    routed = tokens * m.top_k
    cap = capacity(m.capacity_factor, tokens, m.top_k, m.n_experts)
    if cap is None:
        return routed
    return m.n_experts * cap if padding else min(routed, m.n_experts * cap)


def _moe_gemms(model: ModelConfig, t: int, padding: bool) -> list[Gemm]:
    m = model.moe
    gemms = [Gemm("router", t, m.n_experts, model.hidden, split="none", kind="router")]
    per_expert = expert_slots(model, t, padding=padding) / m.n_experts
    gemms += _ffn_gemms(model, "expert", per_expert, m.expert_ffn_hidden, m.n_experts, True)
    if m.n_shared_experts:
        gemms += _ffn_gemms(model, "shared", t, m.shared_hidden, m.n_shared_experts)
    return gemms


@lru_cache(maxsize=4096)
def layer_gemms(model: ModelConfig, moe_layer: bool, tokens: int,
                padding: bool = True) -> tuple[Gemm, ...]:
    """All GEMMs of one (dense or MoE) layer processing ``tokens`` tokens, unsplit."""
    gemms = attention_gemms(model, tokens)
    if moe_layer:
        return tuple(gemms + _moe_gemms(model, tokens, padding))
    return tuple(gemms + _ffn_gemms(model, "mlp", tokens, model.ffn_hidden))


def rope_width(model: ModelConfig) -> int:
    """Elements of Q and K per token that RoPE rotates (MLA: only the decoupled rope dims,
    per head for Q plus one shared rope key; DeepSeek-V2 Sec. 2.1.3)."""
    if model.mla is not None:
        return (model.n_heads + 1) * model.mla.qk_rope_head_dim
    return model.q_dim + model.kv_dim


# --- elementwise ----------------------------------------------------------------------------------
def layer_elementwise_flops(model: ModelConfig, moe_layer: bool, tokens: int) -> float:
    """Norms, residual adds, RoPE and the FFN activation of one layer (softmax excluded)."""
    h = model.hidden
    flops = 2 * NORM_FLOPS[model.norm] * tokens * h + 2 * tokens * h  # 2 pre-norms, 2 residuals
    if model.position.kind == "rope":
        flops += ROPE_FLOPS * tokens * rope_width(model)
    if moe_layer:
        m = model.moe
        inner = expert_slots(model, tokens) * m.expert_ffn_hidden
        inner += tokens * m.n_shared_experts * m.shared_hidden
    else:
        inner = tokens * model.ffn_hidden
    return flops + ACT_FLOPS[model.ffn_kind] * inner


# --- forward / backward of a whole pass -----------------------------------------------------------
def _head_tokens(shape: Shape) -> int:
    return shape.batch if shape.phase == "prefill" else shape.batch * shape.seq


def _layer_forward(model: ModelConfig, moe_layer: bool, shape: Shape, causal_halving: bool,
                   convention: str, padding: bool) -> FlopBreakdown:
    t = shape.batch * shape.seq
    gemms = layer_gemms(model, moe_layer, t, padding)
    router = sum(g.flops for g in gemms if g.kind == "router")
    matmul = sum(g.flops for g in gemms) - router
    attn = shape.batch * attention_core_flops(model, shape.seq, shape.kv_len,
                                              causal_halving=causal_halving,
                                              convention=convention)
    if convention == "torch":
        return FlopBreakdown(matmul=matmul, attention=attn, router=router)
    elem = layer_elementwise_flops(model, moe_layer, t) + shape.batch * softmax_flops(
        model, shape.seq, shape.kv_len, causal_halving=causal_halving)
    return FlopBreakdown(matmul=matmul, attention=attn, elementwise=elem, router=router)


def _layer_counts(model: ModelConfig) -> tuple[int, int]:
    n_moe = model.n_moe_layers
    return model.n_layers - n_moe, n_moe


@lru_cache(maxsize=4096)
def layers_forward_flops(model: ModelConfig, shape: Shape, causal_halving: bool = True,
                         convention: str = "clustersim", padding: bool = True) -> FlopBreakdown:
    """Forward FLOPs of all transformer layers (no embedding, no head)."""
    n_dense, n_moe = _layer_counts(model)
    out = FlopBreakdown()
    if n_dense:
        out += _layer_forward(model, False, shape, causal_halving, convention, padding).scaled(
            n_dense)
    if n_moe:
        out += _layer_forward(model, True, shape, causal_halving, convention, padding).scaled(n_moe)
    return out


def head_forward_flops(model: ModelConfig, shape: Shape, convention: str = "clustersim"
                       ) -> FlopBreakdown:
    """Embedding (learned-position add) and LM head (+ final norm) forward FLOPs."""
    t, h = shape.batch * shape.seq, model.hidden
    lm_head = 2.0 * _head_tokens(shape) * h * model.vocab_size  # (t x h) @ (h x V)
    if convention == "torch":
        return FlopBreakdown(lm_head=lm_head)
    emb = float(t * h) if model.position.kind == "learned" else 0.0
    final_norm = NORM_FLOPS[model.norm] * _head_tokens(shape) * h
    return FlopBreakdown(elementwise=final_norm, embedding=emb, lm_head=lm_head)


def forward_flops(model: ModelConfig, shape: Shape, *, causal_halving: bool = True,
                  convention: str = "clustersim", padding: bool = True,
                  include: tuple[str, ...] | None = None) -> FlopBreakdown:
    """Forward FLOPs of the whole model for ``shape`` (conventions in the module docstring)."""
    if convention == "torch":
        padding = False  # a straightforward implementation runs experts on routed tokens only
    out = layers_forward_flops(model, shape, causal_halving, convention, padding)
    return (out + head_forward_flops(model, shape, convention)).only(include)


def backward_flops(model: ModelConfig, shape: Shape, *, flash: bool = True,
                   causal_halving: bool = True, convention: str = "clustersim",
                   padding: bool = True, include: tuple[str, ...] | None = None) -> FlopBreakdown:
    """Backward FLOPs: 2x matmul/router/LM head, 2.5x (flash) or 2x attention, 1x elementwise
    (estimate), embedding gradient scatter-add of t*h."""
    f = forward_flops(model, shape, causal_halving=causal_halving, convention=convention,
                      padding=padding)
    emb = 0.0 if convention == "torch" else float(shape.batch * shape.seq * model.hidden)
    return FlopBreakdown(
        matmul=2 * f.matmul, attention=attention_backward_factor(flash) * f.attention,
        elementwise=f.elementwise, router=2 * f.router, embedding=emb, lm_head=2 * f.lm_head,
    ).only(include)


def recompute_flops(model: ModelConfig, shape: Shape, recompute: str, *, flash: bool = True,
                    causal_halving: bool = True, convention: str = "clustersim",
                    padding: bool = True) -> FlopBreakdown:
    """Extra forward work of activation recomputation (Korthikanti et al. 2022, Sec. 4-5):
    ``full`` reruns every layer's forward; ``selective`` reruns the attention core (softmax
    and score matmuls) unless flash attention, which already recomputes it inside its backward
    (counted in the 2.5x); ``none`` adds nothing."""
    if recompute == "none" or (recompute == "selective" and flash):
        return FlopBreakdown()
    layers = layers_forward_flops(model, shape, causal_halving, convention, padding)
    if recompute == "full":
        return layers
    if recompute == "selective":
        soft = 0.0 if convention == "torch" else model.n_layers * shape.batch * softmax_flops(
            model, shape.seq, shape.kv_len, causal_halving=causal_halving)
        return FlopBreakdown(attention=layers.attention, elementwise=soft)
    raise ConfigError(f"recompute='{recompute}' is not one of none, selective, full")


@lru_cache(maxsize=65536)
def _microbatch_flops(model, mb: int, seq: int, mode: str, flash: bool, recompute: bool,
                      causal_halving: bool, convention: str, padding: bool) -> FlopBreakdown:
    shape = Shape(mb, seq, "train")
    kw = dict(causal_halving=causal_halving, convention=convention, padding=padding)
    # the flash backward's score recomputation is hardware work, not model work (PaLM App. B)
    one = forward_flops(model, shape, **kw) + backward_flops(
        model, shape, flash=flash and recompute, **kw)
    if recompute:
        one += recompute_flops(model, shape, mode, flash=flash, **kw)
    return one


def step_flops(model: ModelConfig, plan: ParallelPlan, *, recompute: bool = True,
               causal_halving: bool = True, convention: str = "clustersim",
               padding: bool | None = None, include: tuple[str, ...] | None = None
               ) -> FlopBreakdown:
    """FLOPs of one training step (global batch): forward + backward (+ recomputation).
    MoE capacity is applied per micro-batch (each rank routes its own micro-batch)."""
    padding = recompute if padding is None else padding
    one = _microbatch_flops(model, plan.micro_batch, plan.seq_len, plan.recompute,
                            plan.flash_attention, recompute, causal_halving, convention, padding)
    return one.scaled(plan.global_batch / plan.micro_batch).only(include)


def model_flops_per_step(model: ModelConfig, plan: ParallelPlan, **kw) -> float:
    """Useful FLOPs of a step (no recomputation of any kind, not even flash attention's score
    recomputation, and no MoE padding): the numerator of MFU."""
    return step_flops(model, plan, recompute=False, **kw).total


def hardware_flops_per_step(model: ModelConfig, plan: ParallelPlan, **kw) -> float:
    """FLOPs the GPUs execute in a step (recomputation and MoE padding included): HFU."""
    return step_flops(model, plan, recompute=True, **kw).total
