"""Load a Hugging Face ``config.json`` (a local file, or a directory holding one) as a
``ModelConfig``.

Supported ``model_type`` values: llama, mistral, mixtral, qwen2, qwen2_moe, deepseek_v2,
deepseek_v3, gpt2. Each reader maps the transformers config fields to ours. Fields that fix the
model's shape (sizes, layer and head counts, expert counts) are required: a missing one is a
``ModelError`` naming it. Optional fields fall back to the default of the matching
``transformers`` config class (e.g. ``num_key_value_heads`` -> ``num_attention_heads``,
``tie_word_embeddings`` -> False for Llama-family configs, True for GPT-2), so the counts equal
the checkpoint's. Settings clustersim cannot represent (Qwen2's per-layer sliding window,
DeepSeek's ``moe_layer_freq > 1``, biases on MLA projections) are rejected, not approximated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sim.errors import ModelError
from sim.model.config import (
    AttentionConfig,
    MLAConfig,
    ModelConfig,
    MoEConfig,
    PositionConfig,
)

_MISSING = object()
MAX_FILE_BYTES = 4 << 20  # published config.json files are a few KiB
# Upper bounds on shape fields: far above every published model (DeepSeek-V3: 61 layers,
# 7168 hidden, 256 experts; Llama 3.1 405B: 126 layers, 16384 hidden, 128K vocabulary),
# low enough that parameter counting and lowering stay instant and allocation-free.
LIMITS = {"num_hidden_layers": 4096, "n_layer": 4096, "hidden_size": 1 << 18,
          "n_embd": 1 << 18, "num_attention_heads": 4096, "n_head": 4096,
          "num_key_value_heads": 4096, "head_dim": 1 << 14, "vocab_size": 1 << 24,
          "intermediate_size": 1 << 22, "moe_intermediate_size": 1 << 22, "n_inner": 1 << 22,
          "shared_expert_intermediate_size": 1 << 22, "num_local_experts": 1 << 16,
          "num_experts": 1 << 16, "n_routed_experts": 1 << 16, "num_experts_per_tok": 1 << 16,
          "n_shared_experts": 1 << 10, "max_position_embeddings": 1 << 27, "n_positions": 1 << 27,
          "sliding_window": 1 << 27}
POSITIVE = {"num_hidden_layers", "n_layer", "hidden_size", "n_embd", "num_attention_heads",
            "n_head", "vocab_size", "intermediate_size", "moe_intermediate_size",
            "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
            "max_position_embeddings", "n_positions", "kv_lora_rank", "v_head_dim"}


class _Fields:
    """Typed access to one config dict; errors name the file, the model_type and the field."""

    def __init__(self, raw: dict, where: str):
        self.raw, self.where = raw, where
        self.model_type = raw.get("model_type", "?")

    def _fail(self, msg: str, key: str | None = None) -> ModelError:
        return ModelError(f"{self.where} (model_type '{self.model_type}'): {msg}",
                          field=f"{self.where}: {key}" if key else self.where)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw.get(key, default)
        if value is _MISSING:
            raise self._fail(f"missing field '{key}' (required to size the model)", key)
        return value

    def int(self, key: str, default: Any = _MISSING) -> int | None:
        value = self.get(key, default)
        if value is None and default is None:
            return None
        lo, hi = (1 if key in POSITIVE else 0), LIMITS.get(key, 1 << 24)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._fail(f"field '{key}' must be an integer from {lo} to {hi}, "
                             f"got {_short(value)}", key)
        return value

    def float(self, key: str, default: float, lo: float, hi: float) -> float:
        """A finite number in (lo, hi]."""
        value = self.get(key, default)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and lo < value <= hi)
        if not ok:
            raise self._fail(f"field '{key}' must be a finite number in ({lo:g}, {hi:g}], "
                             f"got {_short(value)}", key)
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(f"field '{key}' must be true or false, got {_short(value)}", key)
        return value

    def text(self, key: str, default: str) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self._fail(f"field '{key}' must be a string, got {_short(value)}", key)
        return value

    def reject(self, key: str, bad: bool, why: str) -> None:
        if bad:
            raise self._fail(f"field '{key}'={self.raw.get(key)!r} is not supported: {why}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rope(f: _Fields, default_theta: float, default_ctx: int) -> PositionConfig:
    scaling = f.get("rope_scaling", None) or {}
    if not isinstance(scaling, dict):
        raise f._fail(f"field 'rope_scaling' must be an object or null, got {_short(scaling)}",
                      "rope_scaling")
    kind = scaling.get("rope_type", scaling.get("type")) if scaling else None
    if kind is not None and not isinstance(kind, str):
        raise f._fail(f"field 'rope_scaling.rope_type' must be a string, got {_short(kind)}",
                      "rope_scaling")
    factor = _Fields(scaling, f.where).float("factor", 1.0, 0.0, 1e6) if scaling else 1.0
    return PositionConfig(
        kind="rope", rope_theta=f.float("rope_theta", default_theta, 0.0, 1e12),
        rope_scaling=kind, rope_scaling_factor=factor,
        max_positions=f.int("max_position_embeddings", default_ctx),
    )


def _core(f: _Fields, name: str, source: str) -> dict:
    """Fields every Llama-family config (llama, mistral, mixtral, qwen2, qwen2_moe) shares."""
    hidden, heads = f.int("hidden_size"), f.int("num_attention_heads")
    if heads == 0 or hidden % heads and "head_dim" not in f.raw:
        raise f._fail(f"num_attention_heads={heads} must divide hidden_size={hidden} "
                      "(or give head_dim)")
    return dict(
        name=name, source=source, vocab_size=f.int("vocab_size"), hidden=hidden,
        n_layers=f.int("num_hidden_layers"), n_heads=heads,
        n_kv_heads=f.int("num_key_value_heads", None) or heads,
        head_dim=f.int("head_dim", None) or hidden // heads,
        ffn_hidden=f.int("intermediate_size"), ffn_kind="swiglu", norm="rmsnorm",
        tied_embeddings=f.flag("tie_word_embeddings", False),
    )


def _window(f: _Fields, default: int | None) -> AttentionConfig:
    window = f.int("sliding_window", default)
    if window:
        return AttentionConfig(kind="sliding_window", window=window)
    return AttentionConfig()


def _llama(f: _Fields, name: str, source: str) -> ModelConfig:
    # LlamaConfig: attention_bias puts a bias on q, k, v *and* o; mlp_bias on the FFN.
    attn_bias, mlp_bias = f.flag("attention_bias", False), f.flag("mlp_bias", False)
    f.reject("attention_bias", attn_bias != mlp_bias,
             "clustersim models q/k/v/o and FFN biases together; set both or neither")
    return ModelConfig(**_core(f, name, source), position=_rope(f, 1e4, 2048),
                       qkv_bias=attn_bias, linear_bias=attn_bias)


def _mistral(f: _Fields, name: str, source: str) -> ModelConfig:
    # MistralConfig defaults: sliding_window 4096, rope_theta 1e4, 4096*32 positions.
    return ModelConfig(**_core(f, name, source), position=_rope(f, 1e4, 4096 * 32),
                       attention=_window(f, 4096))


def _mixtral(f: _Fields, name: str, source: str) -> ModelConfig:
    core = _core(f, name, source)
    moe = MoEConfig(n_experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"),
                    expert_ffn_hidden=core["ffn_hidden"])
    return ModelConfig(**core, position=_rope(f, 1e6, 4096 * 32), attention=_window(f, None),
                       moe=moe)


def _qwen2_common(f: _Fields) -> None:
    f.reject("use_sliding_window", f.flag("use_sliding_window", False),
             "Qwen2 applies the window only to some layers (max_window_layers)")


def _qwen2(f: _Fields, name: str, source: str) -> ModelConfig:
    _qwen2_common(f)  # Qwen2Attention: q/k/v always have a bias, o_proj none
    return ModelConfig(**_core(f, name, source), position=_rope(f, 1e4, 32768), qkv_bias=True)


def _qwen2_moe(f: _Fields, name: str, source: str) -> ModelConfig:
    _qwen2_common(f)
    f.reject("mlp_only_layers", bool(f.get("mlp_only_layers", [])),
             "a list of dense layers cannot be expressed as all / every_k / first_k_dense")
    step = f.int("decoder_sparse_step", 1)
    shared = f.int("shared_expert_intermediate_size")
    moe = MoEConfig(
        n_experts=f.int("num_experts"), top_k=f.int("num_experts_per_tok"),
        expert_ffn_hidden=f.int("moe_intermediate_size"), n_shared_experts=1 if shared else 0,
        shared_expert_ffn_hidden=shared or None, shared_expert_gate=bool(shared),
        layer_pattern="all" if step <= 1 else "every_k", every_k=max(step, 1),
    )
    return ModelConfig(**_core(f, name, source), position=_rope(f, 1e6, 32768), qkv_bias=True,
                       moe=moe)


def _deepseek_moe(f: _Fields) -> MoEConfig:
    first_k, freq = f.int("first_k_dense_replace", 0), f.int("moe_layer_freq", 1)
    f.reject("moe_layer_freq", freq != 1,
             "DeepSeek's 'layer % freq == 0' pattern is not modelled (only 1)")
    v3 = f.model_type == "deepseek_v3"
    return MoEConfig(
        n_experts=f.int("n_routed_experts"), top_k=f.int("num_experts_per_tok"),
        expert_ffn_hidden=f.int("moe_intermediate_size"),
        n_shared_experts=f.int("n_shared_experts", None) or 0,
        layer_pattern="first_k_dense" if first_k else "all", first_k_dense=first_k,
        router="sigmoid_topk" if f.text("scoring_func", "softmax") == "sigmoid" else "softmax_topk",
        # V3's aux-loss-free balancing keeps one bias per expert (V3 report, Sec. 2.1.2)
        router_bias=f.text("topk_method", "noaux_tc" if v3 else "greedy") == "noaux_tc",
    )


def _deepseek(f: _Fields, name: str, source: str) -> ModelConfig:
    f.reject("attention_bias", f.flag("attention_bias", False), "MLA biases are not modelled")
    mla = MLAConfig(
        kv_lora_rank=f.int("kv_lora_rank"), qk_rope_head_dim=f.int("qk_rope_head_dim"),
        qk_nope_head_dim=f.int("qk_nope_head_dim"), v_head_dim=f.int("v_head_dim"),
        q_lora_rank=f.int("q_lora_rank", None),
    )
    core = _core(f, name, source)
    core.update(n_kv_heads=core["n_heads"], head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim)
    moe = _deepseek_moe(f) if f.int("n_routed_experts", None) else None
    return ModelConfig(**core, position=_rope(f, 1e4, 2048), mla=mla, moe=moe)


def _gpt2(f: _Fields, name: str, source: str) -> ModelConfig:
    hidden, heads = f.int("n_embd"), f.int("n_head")
    f.reject("activation_function", not f.text("activation_function", "gelu_new")
             .startswith("gelu"), "GPT-2 blocks are modelled with a GELU MLP")
    if heads == 0 or hidden % heads:
        raise f._fail(f"n_head={heads} must divide n_embd={hidden}")
    return ModelConfig(
        name=name, source=source, vocab_size=f.int("vocab_size"), hidden=hidden,
        n_layers=f.int("n_layer"), n_heads=heads, n_kv_heads=heads, head_dim=hidden // heads,
        ffn_hidden=f.int("n_inner", None) or 4 * hidden, ffn_kind="gelu", norm="layernorm",
        tied_embeddings=f.flag("tie_word_embeddings", True),  # PretrainedConfig default
        position=PositionConfig(kind="learned", max_positions=f.int("n_positions")),
        qkv_bias=True, linear_bias=True,
    )


READERS = {
    "llama": _llama, "mistral": _mistral, "mixtral": _mixtral, "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe, "deepseek_v2": _deepseek, "deepseek_v3": _deepseek, "gpt2": _gpt2,
}


def from_hf_dict(raw: dict, name: str, where: str = "config.json") -> ModelConfig:
    """Convert an already-parsed config dict; ``where`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: expected a JSON object at the top level")
    mt = raw.get("model_type")
    if mt is None:
        raise ModelError(f"{where}: missing field 'model_type' (one of {', '.join(READERS)})",
                         field=f"{where}: model_type")
    if not isinstance(mt, str) or mt not in READERS:
        raise ModelError(f"{where}: unsupported model_type {_short(mt)}; clustersim reads "
                         f"{', '.join(READERS)} (or pick a preset: clustersim model list)",
                         field=f"{where}: model_type")
    f = _Fields(raw, where)
    try:
        return READERS[mt](f, name, f"Hugging Face config.json ({where})")
    except ModelError as exc:
        if exc.field is None:  # raised by ModelConfig's own checks: name the file
            raise ModelError(f"{where}: {exc}", field=where) from None
        raise


def _config_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ModelError(f"no Hugging Face config.json at '{path}'", field=str(path))
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ModelError(f"{p}: {p.stat().st_size} bytes is not a config.json (those are a "
                         f"few KiB; the limit is {MAX_FILE_BYTES})", field=str(p))
    return p


def load_hf_config(path: str | Path) -> ModelConfig:
    """Read ``path`` (a config.json, or a directory holding one) as a ``ModelConfig`` named
    after its directory (or file stem when the file is not called config.json)."""
    p = _config_file(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ModelError(f"{p}: not valid JSON ({why}); give a Hugging Face "
                         "config.json", field=str(p)) from None
    name = p.parent.name if p.name == "config.json" else p.stem
    return from_hf_dict(raw, name or p.stem, str(p))
