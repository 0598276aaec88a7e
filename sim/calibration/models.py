"""Shapes of the models profiled in the measured kernel tables (Vidur's model list), for
lowering their layer ops. Presets where clustersim has them; the rest copy the released
``config.json`` named in each ``source``."""

from __future__ import annotations

from sim.errors import UnknownNameError
from sim.model import get_model
from sim.model.config import ModelConfig, PositionConfig
from sim.model.presets import HF, llama

PRESET = {
    "meta-llama/Llama-2-7b-hf": "llama2-7b", "meta-llama/Llama-2-70b-hf": "llama2-70b",
    "meta-llama/Meta-Llama-3-8B": "llama3-8b", "meta-llama/Meta-Llama-3-70B": "llama3-70b",
    "L2A": "llama2-7b", "L3A": "llama3-8b",  # the attention table's tags
}


def _extra() -> dict[str, ModelConfig]:
    return {
        "Qwen/Qwen-72B": llama(
            "qwen-72b", vocab=152064, hidden=8192, layers=80, heads=64, kv_heads=64,
            ffn=24576, ctx=32768, theta=1e6, qkv_bias=True,
            source=f"{HF}Qwen/Qwen-72B config.json (intermediate_size 49152 = gate + up)"),
        "codellama/CodeLlama-34b-Instruct-hf": llama(
            "codellama-34b", vocab=32000, hidden=8192, layers=48, heads=64, kv_heads=8,
            ffn=22016, ctx=16384, theta=1e6,
            source=f"{HF}codellama/CodeLlama-34b-Instruct-hf config.json"),
        "internlm/internlm-20b": llama(
            "internlm-20b", vocab=103168, hidden=5120, layers=60, heads=40, kv_heads=40,
            ffn=13824, ctx=4096, theta=1e4, source=f"{HF}internlm/internlm-20b config.json"),
        "microsoft/phi-2": ModelConfig(
            name="phi-2", vocab_size=51200, hidden=2560, n_layers=32, n_heads=32,
            n_kv_heads=32, head_dim=80, ffn_hidden=10240, ffn_kind="gelu", norm="layernorm",
            position=PositionConfig(kind="rope", rope_theta=1e4, max_positions=2048),
            qkv_bias=True, linear_bias=True,
            source=f"{HF}microsoft/phi-2 config.json (partial rotary 0.4 not modelled: rope "
                   "rotates all head dims here)"),
    }


_EXTRA = _extra()


def profiled_model(name: str) -> ModelConfig:
    """ModelConfig of a model named as in the measured tables (HF id or attention tag)."""
    if name in PRESET:
        return get_model(PRESET[name])
    if name in _EXTRA:
        return _EXTRA[name]
    return get_model(name)  # a preset name or config.json path; UnknownNameError otherwise


def known_models() -> list[str]:
    return sorted(set(PRESET) | set(_EXTRA))


__all__ = ["UnknownNameError", "known_models", "profiled_model"]
