"""Worked solutions of lesson 2 (long context and efficient attention), from the givens alone.

Attention core: 2 FLOPs per multiply-add, QK^T and PV each head_dim multiply-adds per (query,
key) pair: 4 x pairs x n_heads x head_dim per layer (Vaswani et al. 2017, Sec. 3.2.1); causal
pairs s(s+1)/2, a window of w keys about s w (Beltagy et al. 2020), every d-th key s^2/(2d)
(Child et al. 2019); linear attention a fixed d x d state per head (Katharopoulos et al. 2020,
Eq. 6). KV cache: K and V of n_kv_heads x head_dim per token per layer, 2 bytes each in bf16
(GQA: Ainslie et al. 2023; MLA: one latent + a RoPE key, DeepSeek-AI 2024, Sec. 2.1).
Activations: Korthikanti et al. 2022's 5as^2 is the GPT-with-dropout count.
"""

from __future__ import annotations

import math

from sim.exercises.solution import GIB, MIB, Solution, g, gib, ms, solver


def _gib_mistake(si_bytes: float, unit_bytes: float = GIB) -> float:
    decimal = 1e9 if unit_bytes == GIB else 1e6
    return si_bytes * unit_bytes / decimal


def core_flops(v, pairs: float) -> float:
    return 4 * pairs * v["n_heads"] * v["head_dim"] * v["n_layers"]


@solver("attention_growth", ("short_seq", "seq_len"))
def attention_growth(v) -> Solution:
    s, n = v["short_seq"], v["seq_len"]
    r = n * (n + 1) / (s * (s + 1))
    steps = (f"Causal pairs grow as n(n+1)/2: ({n} x {n + 1}) / ({s} x {s + 1}) = {r:.2f}",
             f"i.e. (n/s)^2 = {(n / s) ** 2:.0f} for {n / s:.0f}x the tokens")
    return Solution(r, steps, {"linear-not-quadratic": n / s},
                    f"{n / s:.0f}x the context costs {r:.0f}x the attention FLOPs.")


@solver("linear_attention_growth", ("short_seq", "seq_len"))
def linear_growth(v) -> Solution:
    r = v["seq_len"] / v["short_seq"]
    steps = ("Each token updates and reads a fixed-size state: constant work per token",
             f"Growth = tokens ratio = {v['seq_len']} / {v['short_seq']} = {r:.1f}")
    return Solution(r, steps, {"quadratic-for-linear": r * r},
                    f"{r:.0f}x the context for {r:.0f}x the cost, against {r * r:.0f}x for "
                    "softmax attention; the price is expressiveness (a fixed-size memory).")


@solver("attention_share", ("seq_len", "n_layers", "n_heads", "head_dim", "matmul_params"))
def attention_share(v) -> Solution:
    s = v["seq_len"]
    core = core_flops(v, s * (s + 1) / 2)
    mats = 2 * v["matmul_params"] * s
    share = core / (core + mats)
    steps = (f"Attention core: 4 x s(s+1)/2 x {v['n_heads']} x {v['head_dim']} x "
             f"{v['n_layers']} = {g(core)} FLOPs",
             f"Matmuls: 2 x {g(v['matmul_params'])} matmul parameters x {s} tokens = {g(mats)}",
             f"Share = {g(core)} / {g(core + mats)} = {100 * share:.1f}%")
    doubled = 2 * core / (2 * core + mats)
    return Solution(share, steps, {"causal-ignored": doubled},
                    f"At {s} tokens attention is {100 * share:.0f}% of the forward: the quadratic "
                    "term is the bottleneck, not the parameters.")


def _full(v) -> float:
    s = v["seq_len"]
    return core_flops(v, s * (s + 1) / 2)


@solver("sliding_window_flops", ("n_layers", "n_heads", "head_dim", "seq_len", "window"))
def sliding_window(v) -> Solution:
    s, w = v["seq_len"], v["window"]
    pairs = w * s - w * (w - 1) / 2  # sum over positions of min(p+1, w)
    f = core_flops(v, pairs)
    steps = (f"Pairs: the first w queries see 1..w keys, the rest w each: w s - w(w-1)/2 = "
             f"{g(pairs)}",
             f"FLOPs = 4 x pairs x {v['n_heads']} x {v['head_dim']} x {v['n_layers']} = {g(f)} "
             f"= {f / 1e12:.2f} TFLOP")
    return Solution(f, steps, {"full-for-sparse": _full(v), "flops-vs-macs": f / 2},
                    f"{100 * f / _full(v):.0f}% of full causal attention: cost linear in s, "
                    f"at the price of a {w}-token receptive field per layer.")


@solver("dilated_flops", ("n_layers", "n_heads", "head_dim", "seq_len", "dilation"))
def dilated(v) -> Solution:
    s, d = v["seq_len"], v["dilation"]
    pairs = s * (s + 1) / 2 / d
    f = core_flops(v, pairs)
    steps = (f"Pairs: every {d}-th of the s(s+1)/2 causal pairs = {g(pairs)}",
             f"FLOPs = 4 x pairs x {v['n_heads']} x {v['head_dim']} x {v['n_layers']} = {g(f)} "
             f"= {f / 1e12:.2f} TFLOP")
    return Solution(f, steps, {"full-for-sparse": _full(v), "flops-vs-macs": f / 2},
                    f"{d}x cheaper, still quadratic: dilation alone does not change the "
                    "complexity class.")


@solver("per_token_growth", ("matmul_params", "n_layers", "n_heads", "head_dim", "short_seq",
                             "seq_len"))
def per_token_growth(v) -> Solution:
    def per_token(s: int) -> float:
        attn = 4 * (s + 1) / 2 * v["n_heads"] * v["head_dim"] * v["n_layers"]
        return 6 * v["matmul_params"] + 3.5 * attn  # flash: backward 2.5x the forward core

    a, b = per_token(v["short_seq"]), per_token(v["seq_len"])
    steps = (f"Per token: 6 x {g(v['matmul_params'])} matmul parameters + 3.5 x attention core "
             "(forward 1 + flash backward 2.5)",
             f"At {v['short_seq']}: {g(a)} FLOPs; at {v['seq_len']}: {g(b)} FLOPs",
             f"Growth = {b / a:.3f}")
    return Solution(b / a, steps, {"per-token-constant": 1.0},
                    f"Each token of the extension costs {b / a:.2f}x a pretraining token: the RoPE "
                    "rescale is free, the attention is not.")


def _kv(v, per_token_layer: float) -> float:
    return per_token_layer * v["n_layers"] * v["seq_len"] * v["batch"]


@solver("kv_cache", ("n_layers", "n_heads", "n_kv_heads", "head_dim", "seq_len", "batch"))
def kv_cache(v) -> Solution:
    per = 2 * v["n_kv_heads"] * v["head_dim"] * 2
    total = _kv(v, per)
    steps = (f"Per token per layer: K and V x {v['n_kv_heads']} heads x {v['head_dim']} x 2 bytes "
             f"= {per} bytes",
             f"x {v['n_layers']} layers x {v['seq_len']} tokens x {v['batch']} = {g(total)} bytes "
             f"= {gib(total)}")
    mha = _kv(v, 2 * v["n_heads"] * v["head_dim"] * 2)
    return Solution(total, steps, {"mha-not-gqa": mha, "forgot-v": total / 2,
                                   "gb-vs-gib": _gib_mistake(total)},
                    f"{v['n_heads'] / v['n_kv_heads']:.0f}x smaller than caching every query "
                    f"head ({gib(mha)}).")


@solver("kv_cache_mla", ("n_layers", "n_heads", "head_dim", "kv_lora_rank", "qk_rope_head_dim",
                         "seq_len", "batch"))
def kv_cache_mla(v) -> Solution:
    per = (v["kv_lora_rank"] + v["qk_rope_head_dim"]) * 2
    total = _kv(v, per)
    steps = (f"Per token per layer: latent {v['kv_lora_rank']} + RoPE key "
             f"{v['qk_rope_head_dim']} values x 2 bytes = {per} bytes",
             f"x {v['n_layers']} layers x {v['seq_len']} tokens x {v['batch']} = {g(total)} bytes "
             f"= {gib(total)}")
    mha = _kv(v, 2 * v["n_heads"] * v["head_dim"] * 2)
    return Solution(total, steps, {"mha-not-gqa": mha,
                                   "forgot-rope-key": _kv(v, v["kv_lora_rank"] * 2),
                                   "gb-vs-gib": _gib_mistake(total)},
                    f"{mha / total:.0f}x smaller than full multi-head K and V ({gib(mha)}).")


@solver("linear_state", ("n_layers", "n_heads", "head_dim", "n_kv_heads", "seq_len"))
def linear_state(v) -> Solution:
    d = v["head_dim"]
    per_layer = v["n_heads"] * (d * d + d) * 2
    total = per_layer * v["n_layers"]
    steps = (f"Per head: a {d} x {d} state + a {d}-vector normaliser, 2 bytes each = "
             f"{(d * d + d) * 2} bytes",
             f"x {v['n_heads']} heads x {v['n_layers']} layers = {g(total)} bytes = "
             f"{total / MIB:.2f} MiB, at any context length")
    kv = 2 * v["n_kv_heads"] * d * 2 * v["n_layers"] * v["seq_len"]
    return Solution(total, steps, {"kv-for-linear": kv,
                                   "gb-vs-gib": _gib_mistake(total, MIB)},
                    f"Constant in the context: a softmax model's KV cache would be "
                    f"{kv / MIB:.0f} MiB at {v['seq_len']} tokens.")


@solver("max_decode_batch", ("hbm_gib", "reserve_pct", "params", "tp", "n_layers", "n_heads",
                             "n_kv_heads", "head_dim", "seq_len"))
def max_batch(v) -> Solution:
    hbm = v["hbm_gib"] * GIB
    usable = hbm * (1 - v["reserve_pct"] / 100)
    weights = 2 * v["params"] / v["tp"]
    per_seq = 2 * v["n_kv_heads"] * v["head_dim"] * 2 * v["n_layers"] * v["seq_len"] / v["tp"]
    n = math.floor((usable - weights) / per_seq)
    steps = (f"Usable HBM per GPU: {v['hbm_gib']:.0f} GiB x (1 - {v['reserve_pct']:.0f}%) = "
             f"{gib(usable)}",
             f"Weights per GPU: 2 bytes x {g(v['params'])} / TP{v['tp']} = {gib(weights)}",
             f"KV per sequence per GPU: 2 x {v['n_kv_heads']} x {v['head_dim']} x 2 bytes x "
             f"{v['n_layers']} layers x {v['seq_len']} / {v['tp']} = {gib(per_seq)}",
             f"Batch = floor(({gib(usable)} - {gib(weights)}) / {gib(per_seq)}) = {n}")
    mha = per_seq * v["n_heads"] / v["n_kv_heads"]
    mistakes = {"batch-ignores-weights": float(math.floor(usable / per_seq)),
                "batch-with-mha": float(math.floor((usable - weights) / mha))}
    return Solution(float(n), steps, mistakes,
                    f"At {v['seq_len']} tokens only {n} sequences fit: long context is a memory "
                    "problem at decode time, whatever flash attention does for the prefill.")


@solver("flash_flops_ratio", ("matmul_params", "n_layers", "n_heads", "head_dim", "seq_len"))
def flash_flops(v) -> Solution:
    s = v["seq_len"]
    attn = 4 * (s + 1) / 2 * v["n_heads"] * v["head_dim"] * v["n_layers"]  # per token, fwd
    mats = 6 * v["matmul_params"]
    std, flash = mats + 3 * attn, mats + 3.5 * attn
    steps = (f"Per token: matmuls 6 x {g(v['matmul_params'])} = {g(mats)} FLOPs (unchanged)",
             f"Attention core forward {g(attn)}; backward 2x (standard) or 2.5x (flash "
             "recomputes QK^T)",
             f"Ratio = ({g(mats)} + 3.5 x {g(attn)}) / ({g(mats)} + 3 x {g(attn)}) = "
             f"{flash / std:.3f}")
    return Solution(flash / std, steps, {"flash-cuts-flops": mats / std},
                    "Flash attention leaves the FLOPs as they are (a little more, even): what it "
                    "saves is memory and HBM traffic.")


@solver("flash_memory_ratio", ("act_flash_layer_mib", "n_heads", "tp", "seq_len"))
def flash_memory(v) -> Solution:
    s, heads = v["seq_len"], v["n_heads"] / v["tp"]
    base = v["act_flash_layer_mib"] * MIB
    probs = heads * s * s * 2
    ratio = (base + probs) / base
    steps = (f"Standard attention also keeps the softmax probabilities: {heads:.0f} heads per GPU "
             f"x {s} x {s} x 2 bytes = {probs / MIB:.0f} MiB per layer",
             f"Ratio = ({v['act_flash_layer_mib']:.0f} + {probs / MIB:.0f}) / "
             f"{v['act_flash_layer_mib']:.0f} = {ratio:.2f}")
    kort = (base + 5 * heads * s * s) / base
    return Solution(ratio, steps, {"korthikanti-5as2": kort, "n-fold-saving": float(s),
                                   "flash-memory-same": 1.0},
                    f"Flash attention lets the same GPUs hold {ratio:.1f}x the activations' worth "
                    "of sequence: the memory wall moves, the FLOPs do not.")


@solver("long_prefill_time", ("short_ms", "short_attn_ms", "short_seq", "seq_len"))
def long_prefill(v) -> Solution:
    r = v["seq_len"] / v["short_seq"]
    q = v["seq_len"] * (v["seq_len"] + 1) / (v["short_seq"] * (v["short_seq"] + 1))
    lin = (v["short_ms"] - v["short_attn_ms"]) * r
    quad = v["short_attn_ms"] * q
    t = (lin + quad) / 1e3
    steps = (f"Linear part (projections, FFN): ({v['short_ms']:.1f} - {v['short_attn_ms']:.1f}) ms "
             f"x {r:.0f} = {lin:.0f} ms",
             f"Attention core: {v['short_attn_ms']:.1f} ms x {q:.0f} (pairs ratio) = {quad:.0f} ms",
             f"Prefill = {lin:.0f} + {quad:.0f} = {ms(t)}")
    return Solution(t, steps, {"prefill-linear": v["short_ms"] * r / 1e3,
                               "prefill-all-quadratic": v["short_ms"] * q / 1e3},
                    f"The first token of a {v['seq_len']}-token prompt waits {t:.1f} s; the KV cache "
                    "only helps the tokens after it.")


@solver("prefill_time", ("tflop_per_gpu", "sparse_tflops", "achieved_pct"))
def prefill_compute(v) -> Solution:
    dense = v["sparse_tflops"] / 2
    rate = dense * v["achieved_pct"] / 100
    t = v["tflop_per_gpu"] / rate
    steps = (f"Dense bf16 peak = sparse peak / 2 = {dense:.0f} TFLOP/s",
             f"Achieved = {v['achieved_pct']:.0f}% x {dense:.0f} = {rate:.0f} TFLOP/s",
             f"Time = {v['tflop_per_gpu']:.2f} TFLOP / {rate:.0f} TFLOP/s = {ms(t)}")
    return Solution(t, steps, {"sparse-peak": t / 2,
                               "peak-not-achieved": v["tflop_per_gpu"] / dense},
                    "Prefill is compute-bound: its time is FLOPs over the dense rate the kernels "
                    "actually reach.")
