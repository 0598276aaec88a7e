"""``tiny-*`` presets: one small config per architectural feature, for the PyTorch validation
harness (``sim.validation``), which builds each as a real ``torch.nn.Module`` and compares
measured FLOPs / activation memory / parameter counts against ``sim.costs`` and
``sim.model.params``.

They are small enough that a forward + backward at sequence length 64-128 runs on one CPU core
in well under a second, yet every dimension is distinct (hidden != ffn != vocab != head_dim x
heads) so that a swapped dimension in a formula changes the answer. Each differs from
``tiny-llama`` (the base) in one feature only, except ``tiny-gpt`` which is the GPT-2 recipe.
"""

from __future__ import annotations

from dataclasses import replace

from sim.model.config import (
    AttentionConfig,
    MLAConfig,
    ModelConfig,
    MoEConfig,
    PositionConfig,
)

_SRC = "clustersim tiny config for the validation harness (not a published model)"

TINY_LLAMA = ModelConfig(
    name="tiny-llama", vocab_size=384, hidden=64, n_layers=2, n_heads=4, n_kv_heads=2,
    head_dim=16, ffn_hidden=176, ffn_kind="swiglu", norm="rmsnorm",
    position=PositionConfig(kind="rope", rope_theta=10000.0, max_positions=256),
    source=_SRC + "; Llama recipe: RMSNorm, SwiGLU, RoPE, GQA (4 query / 2 KV heads)",
)

TINY_GPT = ModelConfig(
    name="tiny-gpt", vocab_size=384, hidden=64, n_layers=2, n_heads=4, n_kv_heads=4,
    head_dim=16, ffn_hidden=256, ffn_kind="gelu", norm="layernorm", tied_embeddings=True,
    position=PositionConfig(kind="learned", max_positions=256), qkv_bias=True,
    linear_bias=True, source=_SRC + "; GPT-2 recipe: learned positions, LayerNorm, GELU, biases",
)


def _variant(name: str, note: str, **changes) -> ModelConfig:
    return replace(TINY_LLAMA, name=name, source=f"{_SRC}; tiny-llama with {note}", **changes)


TINY_PRESETS: tuple[ModelConfig, ...] = (
    TINY_GPT,
    TINY_LLAMA,
    _variant("tiny-mqa", "multi-query attention (1 KV head)", n_kv_heads=1),
    _variant("tiny-moe", "4 softmax top-2 experts + 1 shared expert, capacity factor 1.25",
             moe=MoEConfig(n_experts=4, top_k=2, expert_ffn_hidden=96, n_shared_experts=1,
                           router="softmax_topk", capacity_factor=1.25)),
    _variant("tiny-swa", "sliding-window attention of 16 tokens",
             attention=AttentionConfig(kind="sliding_window", window=16)),
    _variant("tiny-linear", "linear attention (feature dim = head_dim)",
             attention=AttentionConfig(kind="linear", linear_feature_dim=16)),
    _variant("tiny-dilated", "dilated (strided) attention, every 2nd key",
             attention=AttentionConfig(kind="dilated", dilation=2)),
    _variant("tiny-mla", "DeepSeek multi-head latent attention (q and kv low rank)",
             n_kv_heads=4, head_dim=24,
             mla=MLAConfig(kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16,
                           v_head_dim=16, q_lora_rank=48)),
)
