"""What one cost looks like as a knob moves: the numbers behind ``clustersim explore``.

Three analytic curves the lesson lab draws (``clustersim lab``), each priced by the cost model
and nothing else, so the chart, the CLI and ``clustersim train``/``serve`` agree:

- ``attention_curves``: attention FLOPs and activation memory vs context for full,
  sliding-window (Beltagy et al. 2020), dilated (Child et al. 2019) and linear attention
  (Katharopoulos et al. 2020), with and without flash attention (Dao et al. 2022): flash
  changes the bytes a layer keeps (``sim.costs.activations``) and the backward FLOPs
  (``sim.costs.attention.attention_backward_factor``), never the forward FLOPs.
- ``kv_curves``: KV-cache bytes vs context for MHA, GQA, MQA (Ainslie et al. 2023; Shazeer
  2019) and MLA (DeepSeek-V2, Sec. 2.1) variants of one model body (``sim.costs.kvcache``),
  and how many sequences fit in the HBM left after the weights (``sim.serving.kvcache.budget``).
- ``moe_compare``: a MoE model against dense bodies with its active and its total FFN width:
  parameters, forward FLOPs per token, weight bytes, one decode step's time
  (``sim.costs.inference.forward_time``) and the routing of a batch under Zipf skew with a
  capacity factor (``sim.costs.moe.route``; GShard, Lepikhin et al. 2020).
"""

from __future__ import annotations

from dataclasses import replace

from sim.errors import ConfigError

# DeepSeek-V2 MLA dimensions (DeepSeek-AI 2024, Sec. 2.1): latent 512, decoupled RoPE key 64
MLA_DIMS = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
            "v_head_dim": 128}


def _positive(flag: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{flag} {value}: must be a positive number")


def _contexts(contexts) -> list[int]:
    out = [int(c) for c in contexts]
    if not out:
        raise ConfigError("--contexts: give at least one context length in tokens, e.g. 4096")
    for c in out:
        _positive("--contexts", c)
    return out


# --- attention -------------------------------------------------------------------------------
def attention_variants(window: int, dilation: int) -> dict:
    from sim.model import AttentionConfig

    _positive("--window", window)
    _positive("--dilation", dilation)
    return {"full": AttentionConfig(kind="full"),
            f"sliding window {window}": AttentionConfig(kind="sliding_window", window=window),
            f"dilated d={dilation}": AttentionConfig(kind="dilated", dilation=dilation),
            "linear": AttentionConfig(kind="linear")}


def _attention_point(model, ctx: int) -> dict:
    from sim.costs.activations import activation_bytes_per_layer
    from sim.costs.attention import attention_backward_factor
    from sim.costs.flops import forward_flops
    from sim.plan import ParallelPlan, Shape

    f = forward_flops(model, Shape(batch=1, seq=ctx))
    plan = ParallelPlan(micro_batch=1, global_batch=1, seq_len=ctx, recompute="none")
    row = {"context": ctx, "attention_forward_flop": f.attention,
           "forward_flop_per_token": f.total / ctx,
           "attention_share": f.attention / f.total}
    for flash, tag in ((True, "flash"), (False, "standard")):
        # training attention FLOPs = forward x (1 + backward/forward ratio)
        row[f"attention_train_flop_{tag}"] = f.attention * (1 + attention_backward_factor(flash))
        row[f"activation_bytes_per_layer_{tag}"] = activation_bytes_per_layer(
            model, replace(plan, flash_attention=flash))
    return row


def attention_curves(model_name: str, contexts, window: int, dilation: int) -> dict:
    from sim.model import get_model

    base = get_model(model_name)
    variants = attention_variants(window, dilation)
    series = {label: [_attention_point(base.with_(attention=att), c) for c in _contexts(contexts)]
              for label, att in variants.items()}
    return {"explorer": "attention", "model": base.name, "window": window,
            "dilation": dilation, "contexts": _contexts(contexts), "units": {
                "attention_forward_flop": "FLOP per sequence",
                "attention_train_flop_flash": "FLOP per sequence (forward + backward)",
                "forward_flop_per_token": "FLOP per token",
                "activation_bytes_per_layer_flash": "bytes per layer per sequence"},
            "series": series}


# --- KV cache --------------------------------------------------------------------------------
def kv_variants(base) -> dict:
    from sim.model import MLAConfig

    return {f"MHA ({base.n_heads} KV heads)": base.with_(n_kv_heads=base.n_heads, mla=None),
            f"GQA ({base.n_kv_heads} KV heads)": base,
            "MQA (1 KV head)": base.with_(n_kv_heads=1, mla=None),
            "MLA (latent 512+64)": base.with_(mla=MLAConfig(**MLA_DIMS))}


def _kv_series(model, cluster, contexts, batch: int, tp: int) -> dict:
    from sim.costs.kvcache import kv_cache_bytes
    from sim.serving.kvcache import budget

    cap = budget(model, cluster, tp=tp, pp=1, ep=1, dtype="bf16", block_size=16)
    return {"kv_bytes_per_token": kv_cache_bytes(model, 1), "weights_bytes_per_gpu":
            cap.weights_bytes, "free_bytes_per_gpu": max(0.0, cap.free_bytes),
            "points": [{"context": c, "kv_bytes": kv_cache_bytes(model, c, batch),
                        "kv_bytes_per_gpu": kv_cache_bytes(model, c, batch, tp=tp),
                        "max_sequences": cap.tokens // c} for c in contexts]}


def kv_curves(model_name: str, system: str, tp: int, contexts, batch: int) -> dict:
    from hardware import Cluster, get_system
    from sim.model import get_model

    _positive("--tp", tp)
    _positive("--batch", batch)
    base = get_model(model_name)
    if base.mla is not None:
        raise ConfigError(f"--model {model_name}: already uses MLA; pick a model with standard "
                          "attention (e.g. llama3-70b) to compare MHA/GQA/MQA/MLA")
    cluster = Cluster.for_gpus(get_system(system), tp)
    ctx = _contexts(contexts)
    series = {label: _kv_series(m, cluster, ctx, batch, tp)
              for label, m in kv_variants(base).items()}
    return {"explorer": "kv", "model": base.name, "system": system, "tp": tp, "batch": batch,
            "hbm_bytes_per_gpu": cluster.accelerator.memory_bytes, "contexts": ctx,
            "units": {"kv_bytes": "bytes (all layers, whole batch)",
                      "kv_bytes_per_gpu": "bytes per GPU", "max_sequences": "sequences"},
            "series": series}


# --- MoE vs dense ----------------------------------------------------------------------------
def moe_variants(base, experts: int, top_k: int, capacity_factor: float | None) -> dict:
    """The MoE model with the chosen router, and dense bodies whose FFN width equals its
    active experts (same FLOPs per token) and all its experts (same parameters)."""
    from sim.model.config import MoEConfig

    if base.moe is None:
        raise ConfigError(f"--model {base.name}: not a MoE model; pick one from `clustersim "
                          "model list` whose kind is moe (e.g. mixtral-8x7b)")
    if not 1 <= top_k <= experts:
        raise ConfigError(f"--top-k {top_k}: must be between 1 and --experts {experts}")
    if capacity_factor is not None and not capacity_factor > 0:
        raise ConfigError(f"--capacity-factor {capacity_factor}: must be > 0 (0 means dropless)")
    moe: MoEConfig = replace(base.moe, n_experts=experts, top_k=top_k,
                             capacity_factor=capacity_factor)
    shared = moe.n_shared_experts * moe.shared_hidden
    return {f"MoE {experts} experts, top-{top_k}": base.with_(moe=moe),
            "dense, same active FFN": base.with_(moe=None,
                                                 ffn_hidden=top_k * moe.expert_ffn_hidden + shared),
            "dense, same total FFN": base.with_(moe=None,
                                                ffn_hidden=experts * moe.expert_ffn_hidden + shared)}


def _moe_row(label: str, model, cluster, tp: int, batch: int, context: int) -> dict:
    from sim.costs.flops import forward_flops
    from sim.costs.inference import forward_time
    from sim.plan import Shape

    step = forward_time(model, cluster, tp=tp, decode_kv_lens=[context] * batch)
    f = forward_flops(model, Shape(batch=1, seq=context))
    return {"variant": label, "params_total": model.params_total,
            "params_active": model.params_active,
            "forward_flop_per_token": f.total / context,
            "weight_bytes": 2 * model.params_total,  # bf16: 2 bytes per parameter
            "decode_step_s": step.time_s, "decode_tokens_per_s": batch / step.time_s}


def _routing(model, tokens: int, zipf_s: float) -> dict:
    from sim.costs.moe import route, zipf_shares

    r = route(model, tokens, zipf_shares(model.moe.n_experts, zipf_s))
    mean = tokens * model.moe.top_k / model.moe.n_experts
    return {"tokens": tokens, "zipf_s": zipf_s, "expert_loads": list(r.loads),
            "capacity": r.capacity, "imbalance": r.imbalance,
            "dropped_fraction": r.dropped_fraction,
            "busiest_expert_over_mean": r.max_computed / mean}


def moe_compare(model_name: str, system: str, tp: int, experts: int, top_k: int,
                capacity_factor: float | None, zipf_s: float, batch: int, context: int,
                tokens: int) -> dict:
    from hardware import Cluster, get_system
    from sim.model import get_model

    for flag, v in (("--tp", tp), ("--batch", batch), ("--context", context),
                    ("--tokens", tokens)):
        _positive(flag, v)
    if zipf_s < 0:
        raise ConfigError(f"--zipf-s {zipf_s}: must be >= 0 (0 is a uniform router)")
    variants = moe_variants(get_model(model_name), experts, top_k, capacity_factor)
    cluster = Cluster.for_gpus(get_system(system), tp)
    rows = [_moe_row(k, m, cluster, tp, batch, context) for k, m in variants.items()]
    return {"explorer": "moe", "model": model_name, "system": system, "tp": tp,
            "experts": experts, "top_k": top_k, "capacity_factor": capacity_factor,
            "batch": batch, "context": context,
            "units": {"params_total": "parameters", "forward_flop_per_token": "FLOP per token",
                      "weight_bytes": "bytes (bf16)", "decode_step_s": "s",
                      "decode_tokens_per_s": "tokens/s", "expert_loads": "token slots"},
            "rows": rows, "routing": _routing(next(iter(variants.values())), tokens, zipf_s)}
