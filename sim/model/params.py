"""Exact parameter counts of a ``ModelConfig``.

Every weight matrix and bias of the decoder is counted the way the reference implementations
store them (Hugging Face ``transformers`` modules for Llama, Mistral, Mixtral, Qwen2(-MoE),
DeepSeek-V2/V3 and GPT-2; Megatron-LM for its GPT models):

- embedding: the token table ``vocab x hidden`` plus, for learned positions, the position table
  ``max_positions x hidden``. Sinusoidal positions and RoPE have no parameters.
- lm_head: ``vocab x hidden`` unless tied to the token embedding (then 0, no bias).
- per layer: attention (q/k/v/o projections with their biases, or MLA's low-rank projections),
  a dense FFN (GELU: up + down = 2 matrices; SwiGLU: gate + up + down = 3 matrices) or, on MoE
  layers, routed experts + shared experts + router, and the layer's norms (two pre-norms, plus
  MLA's q_a/kv_a norms). A LayerNorm has weight and bias (2 x width); an RMSNorm only a weight.
- final_norm: the norm before the LM head.

**Active parameters per token** (convention used throughout clustersim): every parameter except
the routed experts a token is not sent to, i.e. ``total - sum over MoE layers of
(n_experts - top_k) x expert_params``. The full embedding and LM-head tables count as active
(this is how Mixtral's "12.9B active" and DeepSeek-V3's "37B activated" are stated). Shared
experts, routers and dense-FFN layers are always active; a dense model has active == total.

DeepSeek-V3's multi-token-prediction (MTP) module is *not* part of ``ModelConfig``; it is
counted separately by ``mtp_module_params`` (DeepSeek-AI 2024, V3 report, Sec. 2.2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

from sim.errors import ModelError
from sim.model.config import ModelConfig


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one transformer block, by component."""

    attention: int
    ffn: int  # dense FFN (0 on MoE layers)
    experts: int  # all routed experts of the layer
    shared_experts: int
    router: int  # router weight (+ bias / shared-expert gate)
    norms: int
    expert_size: int = 0  # one routed expert (to compute the active count)
    top_k: int = 0

    @property
    def total(self) -> int:
        return (self.attention + self.ffn + self.experts + self.shared_experts
                + self.router + self.norms)

    @property
    def active(self) -> int:
        return self.total - self.experts + self.top_k * self.expert_size


@dataclass(frozen=True)
class ParamCounts:
    """Exact parameter counts; ``active`` is per token (see module docstring)."""

    total: int
    active: int
    embedding: int
    lm_head: int
    final_norm: int
    layers: tuple[LayerParams, ...]

    def per_layer(self, i: int) -> dict:
        """Components of layer ``i``: attention, ffn, experts, shared_experts, router, norms."""
        if not 0 <= i < len(self.layers):
            raise ModelError(f"layer index {i} out of range 0..{len(self.layers) - 1}")
        d = asdict(self.layers[i])
        del d["expert_size"], d["top_k"]
        return d

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.lm_head


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _norm(cfg: ModelConfig, width: int) -> int:
    # LayerNorm: gain + bias (Ba et al. 2016); RMSNorm: gain only (Zhang & Sennrich 2019).
    return width * (2 if cfg.norm == "layernorm" else 1)


def _standard_attention(cfg: ModelConfig) -> int:
    """MHA / GQA / MQA: q (q_dim), k and v (kv_dim each), output projection."""
    h = cfg.hidden
    qkv = _linear(h, cfg.q_dim, cfg.qkv_bias) + 2 * _linear(h, cfg.kv_dim, cfg.qkv_bias)
    return qkv + _linear(cfg.q_dim, h, cfg.linear_bias)


def _mla_attention(cfg: ModelConfig) -> tuple[int, int]:
    """DeepSeek-V2 MLA (DeepSeek-AI 2024, Sec. 2.1.2-2.1.3, Eqs. 9-14): returns (weights, norms).

    q: W^DQ (hidden x q_lora_rank), q_a norm, W^UQ/W^QR (q_lora_rank x heads*(nope+rope)), or a
    direct hidden x heads*(nope+rope) projection when q_lora_rank is None; kv: W^DKV and W^KR
    fused (hidden x (kv_lora_rank + rope)), kv_a norm, W^UK/W^UV (kv_lora_rank x
    heads*(nope+v)); output: heads*v x hidden.
    """
    m, h, n = cfg.mla, cfg.hidden, cfg.n_heads
    if cfg.qkv_bias or cfg.linear_bias:
        raise ModelError(f"model '{cfg.name}': MLA with projection biases is not modelled; "
                         "set qkv_bias=False and linear_bias=False")
    q_out = n * (m.qk_nope_head_dim + m.qk_rope_head_dim)
    norms = _norm(cfg, m.kv_lora_rank)
    if m.q_lora_rank:
        q = h * m.q_lora_rank + m.q_lora_rank * q_out
        norms += _norm(cfg, m.q_lora_rank)
    else:
        q = h * q_out
    kv = h * (m.kv_lora_rank + m.qk_rope_head_dim)
    kv += m.kv_lora_rank * n * (m.qk_nope_head_dim + m.v_head_dim)
    return q + kv + n * m.v_head_dim * h, norms


def ffn_params(cfg: ModelConfig, inner: int) -> int:
    """One FFN of inner size ``inner``: GELU 2 matrices (Vaswani et al. 2017), SwiGLU 3
    (Shazeer 2020, Eq. 6); with linear_bias, a bias on every projection's output."""
    h = cfg.hidden
    if cfg.ffn_kind == "swiglu":
        return 3 * h * inner + ((2 * inner + h) if cfg.linear_bias else 0)
    return 2 * h * inner + ((inner + h) if cfg.linear_bias else 0)


def _router(cfg: ModelConfig) -> int:
    m = cfg.moe
    # Router logits W_g: hidden x n_experts (Shazeer et al. 2017, Eq. 3); DeepSeek-V3's
    # bias-based load balancing adds one bias per expert (V3 report, Sec. 2.1.2).
    n = cfg.hidden * m.n_experts + (m.n_experts if m.router_bias else 0)
    # Qwen2-MoE gates the shared expert with a hidden x 1 sigmoid gate (HF Qwen2MoeSparseMoeBlock).
    return n + (cfg.hidden if m.shared_expert_gate else 0)


def _layer(cfg: ModelConfig, moe_layer: bool) -> LayerParams:
    if cfg.mla is not None:
        attention, extra_norms = _mla_attention(cfg)
    else:
        attention, extra_norms = _standard_attention(cfg), 0
    norms = 2 * _norm(cfg, cfg.hidden) + extra_norms
    if not moe_layer:
        return LayerParams(attention, ffn_params(cfg, cfg.ffn_hidden), 0, 0, 0, norms)
    m = cfg.moe
    expert = ffn_params(cfg, m.expert_ffn_hidden)
    shared = m.n_shared_experts * ffn_params(cfg, m.shared_hidden)
    return LayerParams(attention, 0, m.n_experts * expert, shared, _router(cfg), norms,
                       expert_size=expert, top_k=m.top_k)


def embedding_params(cfg: ModelConfig) -> int:
    """Token table, plus the learned position table (GPT-2/GPT-3, Megatron GPT)."""
    pos = cfg.position.max_positions * cfg.hidden if cfg.position.kind == "learned" else 0
    return cfg.vocab_size * cfg.hidden + pos


@lru_cache(maxsize=1024)
def count_params(cfg: ModelConfig) -> ParamCounts:
    """Exact counts for ``cfg`` (cached: configs are frozen and hashable)."""
    # every layer is one of two kinds: build each once
    kinds = {k: _layer(cfg, k) for k in ((False, True) if cfg.is_moe else (False,))}
    layers = tuple(kinds[cfg.is_moe_layer(i)] for i in range(cfg.n_layers))
    emb = embedding_params(cfg)
    head = 0 if cfg.tied_embeddings else cfg.vocab_size * cfg.hidden
    final = _norm(cfg, cfg.hidden)
    total = emb + head + final + sum(lp.total for lp in layers)
    active = emb + head + final + sum(lp.active for lp in layers)
    return ParamCounts(total, active, emb, head, final, layers)


def mtp_module_params(cfg: ModelConfig, depth: int = 1, *, with_copies: bool = True) -> int:
    """Parameters of DeepSeek-V3's multi-token-prediction modules (V3 report, Sec. 2.2.1).

    Each MTP module k has two RMSNorms (on h and on the embedding), a projection M_k of size
    2h x h, one transformer block (same as the last main-model layer) and a final norm; the
    embedding and output head are shared with the main model. The released checkpoint stores
    copies of both tables in the MTP layer (``with_copies``), which is how the report's "14B
    MTP module" is counted.
    """
    h = cfg.hidden
    block = count_params(cfg).layers[-1].total
    per_module = 2 * _norm(cfg, h) + 2 * h * h + block + _norm(cfg, h)
    if with_copies:
        per_module += 2 * cfg.vocab_size * h
    return depth * per_module
