"""KV-cache size: what each generated or prompt token leaves behind in every layer.

Standard attention caches one key and one value vector per KV head per token per layer:
``2 * n_kv_heads * head_dim * dtype_bytes`` (MHA: n_kv = n_heads; GQA: fewer; MQA: one head;
Ainslie et al. 2023). DeepSeek's MLA caches the compressed latent ``c_KV`` plus the decoupled
RoPE key instead: ``(kv_lora_rank + qk_rope_head_dim) * dtype_bytes`` (DeepSeek-V2 Sec.
2.1.2, Table 1). A sliding window of W keeps at most W tokens per layer (Mistral 7B's rolling
buffer cache), and linear attention keeps no per-token cache at all but a constant recurrent
state of ``n_heads * d_f * d_v`` values (plus the normaliser ``n_heads * d_f``) per sequence
(Katharopoulos et al. 2020, Sec. 3.4).

Under tensor parallelism each rank holds n_kv_heads/tp heads, at least one (KV heads are
replicated when tp > n_kv_heads); MLA's latent is not split over heads, so every tp rank keeps
the whole latent.
"""

from __future__ import annotations

from sim.costs.attention import head_dims, linear_feature_dim
from sim.model.config import ModelConfig


def kv_bytes_per_token_layer(model: ModelConfig, dtype_bytes: float = 2, tp: int = 1) -> float:
    """Cache bytes one token adds to one layer on one tp rank (0 for linear attention)."""
    if model.attention.kind == "linear":
        return 0
    if model.mla is not None:
        return (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * dtype_bytes
    kv_heads = max(1, model.n_kv_heads // tp)
    return 2 * kv_heads * model.head_dim * dtype_bytes  # K and V


def kv_cache_bytes_per_token(model: ModelConfig, dtype_bytes: float = 2) -> float:
    """Cache bytes one token adds across all layers (whole model, one replica)."""
    return model.n_layers * kv_bytes_per_token_layer(model, dtype_bytes)


def cached_tokens(model: ModelConfig, seq: int) -> int:
    """Tokens a layer keeps for a sequence of ``seq`` tokens (capped at the window)."""
    if model.attention.kind == "sliding_window":
        return min(seq, model.attention.window)
    return seq


def linear_state_bytes(model: ModelConfig, dtype_bytes: float = 2, tp: int = 1) -> float:
    """Recurrent state of one sequence in one linear-attention layer (0 otherwise)."""
    if model.attention.kind != "linear":
        return 0
    d_f, d_v = linear_feature_dim(model), head_dims(model)[1]
    return model.n_heads // tp * (d_f * d_v + d_f) * dtype_bytes  # S and normaliser z


def kv_cache_bytes(model: ModelConfig, seq: int, batch: int = 1, dtype_bytes: float = 2,
                   tp: int = 1) -> float:
    """Cache of ``batch`` sequences of ``seq`` tokens (per tp rank when tp > 1)."""
    per_layer = (cached_tokens(model, seq) * kv_bytes_per_token_layer(model, dtype_bytes, tp)
                 + linear_state_bytes(model, dtype_bytes, tp))
    return batch * model.n_layers * per_layer
