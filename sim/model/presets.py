"""Built-in model presets: published dense and MoE decoders, Megatron-LM's GPT sweep, and the
``tiny-*`` family for the PyTorch validation harness (``sim.model.tiny``).

Every preset copies its shape from a primary source named in ``source`` (paper table, model card
or the released ``config.json``); ``tests/test_model_presets.py`` checks each one's parameter
count against the published figure. Families share small constructors so that a preset is one
readable line of numbers.
"""

from __future__ import annotations

from sim.errors import UnknownNameError
from sim.model.config import (
    AttentionConfig,
    MLAConfig,
    ModelConfig,
    MoEConfig,
    PositionConfig,
)
from sim.model.tiny import TINY_PRESETS

HF = "https://huggingface.co/"


def gpt(name: str, *, vocab: int, hidden: int, layers: int, heads: int, ctx: int,
        source: str, tied: bool = True) -> ModelConfig:
    """GPT-2/GPT-3/Megatron GPT: learned positions, LayerNorm, GELU with a 4h FFN, biases on
    every projection, tied LM head (Radford et al. 2019; Brown et al. 2020, Sec. 2.1)."""
    return ModelConfig(
        name=name, vocab_size=vocab, hidden=hidden, n_layers=layers, n_heads=heads,
        n_kv_heads=heads, head_dim=hidden // heads, ffn_hidden=4 * hidden, ffn_kind="gelu",
        norm="layernorm", tied_embeddings=tied,
        position=PositionConfig(kind="learned", max_positions=ctx),
        qkv_bias=True, linear_bias=True, source=source,
    )


def llama(name: str, *, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int,
          ffn: int, ctx: int, theta: float, source: str, scaling: str | None = None,
          scaling_factor: float = 1.0, **extra) -> ModelConfig:
    """Llama-style decoder: RMSNorm, SwiGLU, RoPE, GQA, untied head, no biases
    (Touvron et al. 2023; Dubey et al. 2024, Table 3)."""
    pos = PositionConfig(kind="rope", rope_theta=theta, rope_scaling=scaling,
                         rope_scaling_factor=scaling_factor, max_positions=ctx)
    return ModelConfig(
        name=name, vocab_size=vocab, hidden=hidden, n_layers=layers, n_heads=heads,
        n_kv_heads=kv_heads, head_dim=hidden // heads, ffn_hidden=ffn, position=pos,
        source=source, **extra,
    )


def _dense_presets() -> list[ModelConfig]:
    return [
        gpt("gpt2-124m", vocab=50257, hidden=768, layers=12, heads=12, ctx=1024,
            source=f"Radford et al. 2019; {HF}openai-community/gpt2 config.json"),
        gpt("gpt3-175b", vocab=50257, hidden=12288, layers=96, heads=96, ctx=2048,
            source="Brown et al. 2020, Table 2.1 (the alternating locally banded sparse "
                   "layers are modelled as dense; they have the same parameters)"),
        llama("llama2-7b", vocab=32000, hidden=4096, layers=32, heads=32, kv_heads=32,
              ffn=11008, ctx=4096, theta=1e4,
              source=f"Touvron et al. 2023 (Llama 2); {HF}meta-llama/Llama-2-7b-hf config.json"),
        llama("llama2-13b", vocab=32000, hidden=5120, layers=40, heads=40, kv_heads=40,
              ffn=13824, ctx=4096, theta=1e4,
              source=f"Touvron et al. 2023; {HF}meta-llama/Llama-2-13b-hf config.json"),
        llama("llama2-70b", vocab=32000, hidden=8192, layers=80, heads=64, kv_heads=8,
              ffn=28672, ctx=4096, theta=1e4,
              source=f"Touvron et al. 2023; {HF}meta-llama/Llama-2-70b-hf config.json"),
        llama("llama3-8b", vocab=128256, hidden=4096, layers=32, heads=32, kv_heads=8,
              ffn=14336, ctx=8192, theta=5e5,
              source=f"Dubey et al. 2024, Table 3; {HF}meta-llama/Meta-Llama-3-8B config.json"),
        llama("llama3-70b", vocab=128256, hidden=8192, layers=80, heads=64, kv_heads=8,
              ffn=28672, ctx=8192, theta=5e5,
              source=f"Dubey et al. 2024, Table 3; {HF}meta-llama/Meta-Llama-3-70B config.json"),
        llama("llama3-405b", vocab=128256, hidden=16384, layers=126, heads=128, kv_heads=8,
              ffn=53248, ctx=131072, theta=5e5, scaling="llama3", scaling_factor=8.0,
              source=f"Dubey et al. 2024, Table 3; {HF}meta-llama/Llama-3.1-405B config.json"),
        llama("mistral-7b", vocab=32000, hidden=4096, layers=32, heads=32, kv_heads=8,
              ffn=14336, ctx=32768, theta=1e4,
              attention=AttentionConfig(kind="sliding_window", window=4096),
              source=f"Jiang et al. 2023, Table 1; {HF}mistralai/Mistral-7B-v0.1 config.json"),
        llama("qwen2-7b", vocab=152064, hidden=3584, layers=28, heads=28, kv_heads=4,
              ffn=18944, ctx=131072, theta=1e6, qkv_bias=True,
              source=f"Yang et al. 2024 (Qwen2), Table 1; {HF}Qwen/Qwen2-7B config.json"),
    ]


def _mixtral(name: str, *, hidden: int, layers: int, heads: int, ffn: int, ctx: int,
             source: str) -> ModelConfig:
    """Mixtral: Mistral blocks whose FFN is 8 SwiGLU experts, top-2 softmax routing
    (Jiang et al. 2024, Sec. 2)."""
    return llama(name, vocab=32000, hidden=hidden, layers=layers, heads=heads, kv_heads=8,
                 ffn=ffn, ctx=ctx, theta=1e6, source=source,
                 moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=ffn))


def _deepseek(name: str, *, vocab: int, hidden: int, layers: int, heads: int, ffn: int,
              mla: MLAConfig, moe: MoEConfig, ctx: int, source: str,
              scaling_factor: float) -> ModelConfig:
    """DeepSeek-V2/V3: MLA attention, fine-grained + shared experts, first layers dense
    (DeepSeek-AI 2024, V2 Sec. 2; V3 Sec. 2.1). ``head_dim`` is the q/k head size
    (nope + rope); every head has its own K and V after decompression, so n_kv_heads =
    n_heads."""
    return ModelConfig(
        name=name, vocab_size=vocab, hidden=hidden, n_layers=layers, n_heads=heads,
        n_kv_heads=heads, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
        ffn_hidden=ffn, mla=mla, moe=moe, source=source,
        position=PositionConfig(kind="rope", rope_theta=1e4, rope_scaling="yarn",
                                rope_scaling_factor=scaling_factor, max_positions=ctx),
    )


def _moe_presets() -> list[ModelConfig]:
    mla_v2 = MLAConfig(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                       v_head_dim=128, q_lora_rank=1536)
    return [
        _mixtral("mixtral-8x7b", hidden=4096, layers=32, heads=32, ffn=14336, ctx=32768,
                 source=f"Jiang et al. 2024; {HF}mistralai/Mixtral-8x7B-v0.1 config.json"),
        _mixtral("mixtral-8x22b", hidden=6144, layers=56, heads=48, ffn=16384, ctx=65536,
                 source=f"{HF}mistralai/Mixtral-8x22B-v0.1 config.json"),
        _deepseek("deepseek-v2-lite", vocab=102400, hidden=2048, layers=27, heads=16,
                  ffn=10944, ctx=163840, scaling_factor=40.0,
                  mla=MLAConfig(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                                v_head_dim=128, q_lora_rank=None),
                  moe=MoEConfig(n_experts=64, top_k=6, expert_ffn_hidden=1408,
                                n_shared_experts=2, layer_pattern="first_k_dense",
                                first_k_dense=1),
                  source=f"DeepSeek-AI 2024 (V2), App. B; {HF}deepseek-ai/DeepSeek-V2-Lite "
                         "config.json"),
        _deepseek("deepseek-v2", vocab=102400, hidden=5120, layers=60, heads=128, ffn=12288,
                  ctx=163840, scaling_factor=40.0, mla=mla_v2,
                  moe=MoEConfig(n_experts=160, top_k=6, expert_ffn_hidden=1536,
                                n_shared_experts=2, layer_pattern="first_k_dense",
                                first_k_dense=1),
                  source=f"DeepSeek-AI 2024 (V2), Sec. 3.1.2; {HF}deepseek-ai/DeepSeek-V2 "
                         "config.json"),
        _deepseek("deepseek-v3", vocab=129280, hidden=7168, layers=61, heads=128, ffn=18432,
                  ctx=163840, scaling_factor=40.0, mla=mla_v2,
                  moe=MoEConfig(n_experts=256, top_k=8, expert_ffn_hidden=2048,
                                n_shared_experts=1, layer_pattern="first_k_dense",
                                first_k_dense=3, router="sigmoid_topk", router_bias=True),
                  source=f"DeepSeek-AI 2024 (V3), Sec. 4.2; {HF}deepseek-ai/DeepSeek-V3 "
                         "config.json (main model; the MTP module is excluded)"),
        llama("qwen2-57b-a14b", vocab=151936, hidden=3584, layers=28, heads=28, kv_heads=4,
              ffn=18944, ctx=131072, theta=1e6, qkv_bias=True,
              moe=MoEConfig(n_experts=64, top_k=8, expert_ffn_hidden=2560,
                            n_shared_experts=1, shared_expert_ffn_hidden=20480,
                            shared_expert_gate=True),
              source=f"Yang et al. 2024 (Qwen2), Table 1; {HF}Qwen/Qwen2-57B-A14B config.json"),
    ]


# Narayanan et al. 2021 (Megatron-LM, SC'21), Table 1: (name, heads, hidden, layers).
MEGATRON_GPT_TABLE1 = (
    ("1.7b", 24, 2304, 24), ("3.6b", 32, 3072, 30), ("7.5b", 32, 4096, 36),
    ("18b", 48, 6144, 40), ("39b", 64, 8192, 48), ("76b", 80, 10240, 60),
    ("145b", 96, 12288, 80), ("310b", 128, 16384, 96), ("530b", 128, 20480, 105),
    ("1t", 160, 25600, 128),
)


def _megatron_presets() -> list[ModelConfig]:
    src = "Narayanan et al. 2021 (Megatron-LM, SC'21), Table 1; vocab 51200, seq 2048"
    return [
        gpt(f"megatron-gpt-{tag}", vocab=51200, hidden=h, layers=n, heads=a, ctx=2048,
            source=src)
        for tag, a, h, n in MEGATRON_GPT_TABLE1
    ]


PRESETS: dict[str, ModelConfig] = {
    m.name: m
    for m in (_dense_presets() + _moe_presets() + _megatron_presets() + list(TINY_PRESETS))
}


def list_models() -> list[str]:
    """Names of every built-in preset, in catalog order."""
    return list(PRESETS)


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("model", name, list(PRESETS)) from None


def get_model(name_or_path: str) -> ModelConfig:
    """A preset by name, or a Hugging Face ``config.json`` (file or directory) by path."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    from pathlib import Path

    looks_like_path = "/" in name_or_path or name_or_path.endswith(".json")
    if looks_like_path or Path(name_or_path).exists():
        from sim.model.hf import load_hf_config

        return load_hf_config(name_or_path)
    return get_preset(name_or_path)
