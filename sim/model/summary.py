"""Human- and JSON-friendly descriptions of a ``ModelConfig``: what kind of attention, FFN, norm
and positions it uses, and where its parameters live (by component, summed over layers).
Used by ``clustersim model show``; cost figures (FLOPs, KV cache) come from ``sim.costs``."""

from __future__ import annotations

from sim.model.config import ModelConfig
from sim.model.params import count_params

COMPONENTS = ("attention", "ffn", "experts", "shared_experts", "router", "norms")


def attention_summary(cfg: ModelConfig) -> str:
    if cfg.mla is not None:
        m = cfg.mla
        q = f"q_lora_rank {m.q_lora_rank}" if m.q_lora_rank else "direct q"
        heads = f"MLA ({cfg.n_heads} heads, kv_lora_rank {m.kv_lora_rank}, {q})"
    elif cfg.n_kv_heads == cfg.n_heads:
        heads = f"MHA ({cfg.n_heads} heads x {cfg.head_dim})"
    elif cfg.n_kv_heads == 1:
        heads = f"MQA ({cfg.n_heads} query heads, 1 KV head)"
    else:
        heads = f"GQA ({cfg.n_heads} query heads, {cfg.n_kv_heads} KV heads)"
    a = cfg.attention
    pattern = {
        "full": "full causal",
        "sliding_window": f"sliding window {a.window}",
        "dilated": f"dilated every {a.dilation}",
        "linear": "linear attention",
    }[a.kind]
    return f"{heads}, {pattern}"


def moe_summary(cfg: ModelConfig) -> dict | None:
    m = cfg.moe
    if m is None:
        return None
    return {
        "n_experts": m.n_experts, "top_k": m.top_k, "expert_ffn_hidden": m.expert_ffn_hidden,
        "n_shared_experts": m.n_shared_experts,
        "shared_expert_ffn_hidden": m.shared_hidden if m.n_shared_experts else None,
        "n_moe_layers": cfg.n_moe_layers, "router": m.router,
        "capacity_factor": m.capacity_factor,
    }


def architecture(cfg: ModelConfig) -> dict:
    pos = cfg.position
    position = pos.kind if pos.kind != "rope" else f"rope (theta {pos.rope_theta:g})"
    if pos.kind == "rope" and pos.rope_scaling:
        position += f", {pos.rope_scaling} scaling x{pos.rope_scaling_factor:g}"
    return {
        "kind": "moe" if cfg.is_moe else "dense",
        "attention": attention_summary(cfg),
        "ffn": f"{cfg.ffn_kind} ({cfg.ffn_hidden})",
        "norm": cfg.norm,
        "position": position,
        "tied_embeddings": cfg.tied_embeddings,
        "moe": moe_summary(cfg),
    }


def params_by_component(cfg: ModelConfig) -> dict:
    """Parameters summed over all layers per component, plus embedding / head / final norm."""
    c = count_params(cfg)
    out = {k: 0 for k in COMPONENTS}
    for i in range(cfg.n_layers):
        for k, v in c.per_layer(i).items():
            out[k] += v
    return out | {"embedding": c.embedding, "lm_head": c.lm_head, "final_norm": c.final_norm}


def list_row(cfg: ModelConfig) -> dict:
    c = count_params(cfg)
    return {
        "name": cfg.name, "kind": "moe" if cfg.is_moe else "dense",
        "params_total": c.total, "params_active": c.active, "n_layers": cfg.n_layers,
        "hidden": cfg.hidden, "attention": attention_summary(cfg), "source": cfg.source,
    }
