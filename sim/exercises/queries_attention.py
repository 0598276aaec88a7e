"""Lesson 2 (long-context-and-efficient-attention) queries.

Attention FLOPs count the attended (query, key) pairs of each pattern (full causal, sliding
window, dilated, linear) via ``sim.costs.flops.forward_flops``; KV-cache and linear-attention
state bytes come from ``sim.costs.kvcache``; the decode batch that fits from the serving
simulator's KV budget (``sim.serving.kvcache.budget``); flash attention's effect on memory and
FLOPs from the analytic training estimate; prefill times from ``sim.costs.inference``.
"""

from __future__ import annotations

from sim.costs.analytic import estimate_train
from sim.costs.flops import forward_flops
from sim.costs.inference import forward_time
from sim.costs.kvcache import kv_bytes_per_token_layer, kv_cache_bytes, linear_state_bytes
from sim.exercises.answer import Answer, cluster_of, dominant, model_of, step_parts, versus
from sim.exercises.queries_moe import train_flops_per_token
from sim.exercises.registry import query
from sim.plan import ParallelPlan, Shape
from sim.serving.kvcache import budget


def _attn(model, seq: int) -> float:
    return forward_flops(model, Shape(1, seq, "prefill")).attention


def _growth(p: dict) -> Answer:
    model = model_of(p)
    a, b = _attn(model, p["short_seq"]), _attn(model, p["seq_len"])
    return Answer(b / a, {"attention_short": a, "attention_long": b},
                  f"{model.attention.kind} attention at {p['seq_len']} vs {p['short_seq']} "
                  f"tokens ({p['seq_len'] / p['short_seq']:.0f}x the tokens)", parts_unit="FLOP")


@query("attention_growth", "x")
def attention_growth(p: dict) -> Answer:
    """Attention-core FLOPs at ``seq_len`` over those at ``short_seq`` (one sequence)."""
    return _growth(p)


@query("linear_growth", "x")
def linear_attention_growth(p: dict) -> Answer:
    """The same ratio for a linear-attention model (state update per token, no pairs)."""
    return _growth(p)


@query("attention_share", "fraction")
def attention_share(p: dict) -> Answer:
    """Share of a prompt's forward FLOPs spent in the attention core (QK^T and PV)."""
    f = forward_flops(model_of(p), Shape(1, p["seq_len"], "prefill"))
    parts = {k: v for k, v in f.to_dict().items() if k != "total" and v}
    return Answer(f.attention / f.total, parts, dominant(parts), parts_unit="FLOP")


@query("sparse_attention_flops", "FLOP")
def attention_flops(p: dict) -> Answer:
    """Attention-core forward FLOPs of one ``seq_len`` sequence under the model's pattern."""
    model = model_of(p)
    full = _attn(model.with_(attention=model.attention.__class__()), p["seq_len"])
    a = _attn(model, p["seq_len"])
    return Answer(a, {"attention": a}, f"{100 * a / full:.1f}% of full causal attention's "
                  f"{full / 1e12:.1f} TFLOP", {"full_tflop": full / 1e12})


@query("per_token_growth", "x")
def per_token_growth(p: dict) -> Answer:
    """Training FLOPs per token at ``seq_len`` over those at ``short_seq``."""
    model = model_of(p)
    a = train_flops_per_token(model, p["short_seq"])
    b = train_flops_per_token(model, p["seq_len"])
    share = _attn(model, p["seq_len"]) / forward_flops(model, Shape(1, p["seq_len"])).total
    return Answer(b / a, {"per_token_short": a, "per_token_long": b},
                  f"attention is {100 * share:.0f}% of the forward FLOPs at {p['seq_len']} tokens",
                  parts_unit="FLOP per token")


def _kv(p: dict) -> Answer:
    model = model_of(p)
    total = kv_cache_bytes(model, p["seq_len"], p.get("batch", 1))
    per, state = kv_bytes_per_token_layer(model), linear_state_bytes(model)
    what = (f"a fixed {state / 2**20:.2f} MiB state per layer" if state else
            f"{per:.0f} bytes per token per layer")
    return Answer(total, {"kv_cache": total}, f"{what} over {model.n_layers} layers",
                  {"bytes_per_token_layer": per})


@query("kv_cache", "bytes")
def kv_cache(p: dict) -> Answer:
    """bf16 KV cache of ``batch`` sequences of ``seq_len`` tokens (whole model)."""
    return _kv(p)


@query("linear_state", "bytes")
def linear_state(p: dict) -> Answer:
    """Decode-time memory of a linear-attention model: a fixed state per layer and head."""
    return _kv(p)


@query("max_batch", "count")
def max_decode_batch(p: dict) -> Answer:
    """Sequences of ``seq_len`` tokens whose KV cache fits beside the weights (serving budget)."""
    model, cluster = model_of(p), cluster_of(p["system"], p["tp"])
    b = budget(model, cluster, tp=p["tp"], pp=1, ep=1, dtype="bf16", block_size=16)
    n = b.tokens // p["seq_len"]
    hbm = cluster.accelerator.memory_bytes
    parts = {"weights": b.weights_bytes, "reserve": b.reserve_bytes,
             "kv_for_batch": n * p["seq_len"] * b.kv_bytes_per_token}
    return Answer(float(n), parts, dominant(parts, "of HBM per GPU"),
                  {"hbm_gib": hbm / 2**30, "reserve_pct": 100 * b.reserve_bytes / hbm},
                  parts_unit="bytes")


def _train(p: dict, flash: bool):
    plan = ParallelPlan(tp=p["tp"], dp=1, micro_batch=1, global_batch=p["global_batch"],
                        seq_len=p["seq_len"], recompute="none", sequence_parallel=True,
                        flash_attention=flash)
    return estimate_train(model_of(p), plan, cluster_of(p["system"], p["tp"]))


@query("flash_flops_ratio", "x")
def flash_flops_ratio(p: dict) -> Answer:
    """Hardware FLOPs per step with flash attention over without (flash recomputes scores)."""
    on, off = _train(p, True), _train(p, False)
    return Answer(on.hardware_flops_per_step / off.hardware_flops_per_step,
                  {"flash_flops": on.hardware_flops_per_step,
                   "standard_flops": off.hardware_flops_per_step},
                  f"model FLOPs identical ({on.model_flops_per_step / 1e15:.2f} PFLOP); flash "
                  "adds the backward's score recomputation", parts_unit="FLOP")


@query("flash_memory_ratio", "x")
def flash_memory_ratio(p: dict) -> Answer:
    """Activation memory per GPU without flash attention over with it."""
    on, off = _train(p, True), _train(p, False)
    a, b = on.memory_breakdown_bytes["activations"], off.memory_breakdown_bytes["activations"]
    return Answer(b / a, {"activations_flash": a, "activations_standard": b},
                  f"standard attention keeps the {p['seq_len']}x{p['seq_len']} probability "
                  f"matrix per head: {b / 2**30:.1f} GiB vs {a / 2**30:.1f} GiB",
                  {"act_flash_layer_mib": a / model_of(p).n_layers / 2**20}, parts_unit="bytes")


def _prefill(p: dict, seq: int):
    return forward_time(model_of(p), cluster_of(p["system"], p["tp"]), tp=p["tp"],
                        prefill_lens=(seq,))


@query("long_prefill_time", "s")
def long_prefill_time(p: dict) -> Answer:
    """Prefill of one ``seq_len`` prompt; givens: the time of a ``short_seq`` prompt."""
    long, short = _prefill(p, p["seq_len"]), _prefill(p, p["short_seq"])
    return Answer(long.time_s, step_parts(long), versus("compute", long.compute_s, "memory",
                  long.memory_s), {"short_ms": 1e3 * short.time_s,
                                   "short_attn_ms": 1e3 * _attention_time(p, short)})


def _attention_time(p: dict, step) -> float:
    """The attention core's part of the short prefill, as the serving cost model prices it:
    the same tokens as two half-length prompts run the same GEMMs but half the (query, key)
    pairs, so the attention part is twice the time the split saves."""
    half = p["short_seq"] // 2
    split = forward_time(model_of(p), cluster_of(p["system"], p["tp"]), tp=p["tp"],
                         prefill_lens=(half, p["short_seq"] - half)).time_s
    return min(max(2 * (step.time_s - split), 0.0), step.time_s)


@query("compute_time", "s")
def prefill_time(p: dict) -> Answer:
    """Prefill of one ``seq_len`` prompt (compute-bound: FLOPs over the dense bf16 peak)."""
    s = _prefill(p, p["seq_len"])
    peak = cluster_of(p["system"], p["tp"]).accelerator.peak_flops["bf16"]
    return Answer(s.time_s, step_parts(s), versus("compute", s.compute_s, "memory", s.memory_s),
                  # NVIDIA H100 datasheet: the "with sparsity" (2:4) peak is 2x the dense one
                  {"tflop_per_gpu": s.flops / 1e12, "sparse_tflops": 2 * peak / 1e12,
                   "achieved_pct": 100 * s.flops / (peak * s.time_s)})
