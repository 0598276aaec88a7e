"""Worked solutions of lesson 1 (mixture-of-experts), from the prompt's givens alone.

Parameter counts: a SwiGLU FFN has 3 hidden x inner matrices (Shazeer 2020, Eq. 6); attention
q/o are hidden x (n_heads head_dim), k/v hidden x (n_kv_heads head_dim). FLOPs: 2 per
multiply-add, so 2 per parameter per token for the matmuls, and the causal attention core
2 x 2 x n_heads x head_dim x (s+1)/2 per token per layer (Vaswani et al. 2017; Kaplan et al.
2020, Table 1). Training is 3x the forward (backward = 2x, Kaplan et al. 2020, Sec. 2.1).
Capacity C = ceil(cf T k / E) (Lepikhin et al. 2020, GShard, Sec. 2.2).
"""

from __future__ import annotations

import math

from sim.exercises.solution import GIB, Solution, g, solver


def _gib_mistake(si_bytes: float) -> float:
    """The SI value of an answer computed in GB but labelled GiB."""
    return si_bytes * GIB / 1e9


@solver("params_active", ("params", "n_moe_layers", "n_experts", "top_k", "expert_params",
                              "n_shared_experts", "shared_expert_params"))
def active_params(v) -> Solution:
    idle_per_layer = (v["n_experts"] - v["top_k"]) * v["expert_params"]
    idle = v["n_moe_layers"] * idle_per_layer
    active = v["params"] - idle
    shared = v["n_moe_layers"] * v["n_shared_experts"] * v["shared_expert_params"]
    steps = (f"Idle routed experts per MoE layer: (E - k) x expert = ({v['n_experts']} - "
             f"{v['top_k']}) x {g(v['expert_params'])} = {g(idle_per_layer)}",
             f"Over {v['n_moe_layers']} MoE layers: {g(idle)} parameters a token skips",
             f"Active = total - idle = {g(v['params'])} - {g(idle)} = {g(active)} "
             f"({100 * active / v['params']:.0f}% of the total)")
    mistakes = {"total-not-active": float(v["params"])}
    if shared:
        mistakes["forgot-shared-experts"] = active - shared
    return Solution(active, steps, mistakes, f"Per-token compute follows these {active / 1e9:.1f}B "
                    f"parameters: the model stores {v['params'] / active:.1f}x what a token uses.")


def _attn_params(v) -> int:
    h, hd = v["hidden"], v["head_dim"]
    return 2 * h * v["n_heads"] * hd + 2 * h * v["n_kv_heads"] * hd  # q, o + k, v


@solver("params_total", ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab",
                             "n_experts", "top_k", "expert_ffn_hidden", "n_shared_experts",
                             "shared_ffn_hidden"))
def total_params(v) -> Solution:
    h, n_layers = v["hidden"], v["n_layers"]
    attn = _attn_params(v)
    expert = 3 * h * v["expert_ffn_hidden"]
    shared = v["n_shared_experts"] * 3 * h * v["shared_ffn_hidden"]
    layer = attn + v["n_experts"] * expert + shared + h * v["n_experts"] + 2 * h
    emb = 2 * v["vocab"] * h + h  # input table + LM head (untied) + final norm
    total = n_layers * layer + emb
    dense = n_layers * (attn + expert + shared + 2 * h) + emb  # one expert as a dense FFN
    active = total - n_layers * (v["n_experts"] - v["top_k"]) * expert
    steps = (f"Attention per layer: 2 x hidden x (n_heads + n_kv_heads) x head_dim = {g(attn)}",
             f"Experts per layer: {v['n_experts']} x 3 x {h} x {v['expert_ffn_hidden']} = "
             f"{g(v['n_experts'] * expert)}" + (f", shared experts {g(shared)}" if shared else ""),
             f"Router {g(h * v['n_experts'])} and two norms {g(2 * h)}: layer = {g(layer)}",
             f"{n_layers} layers = {g(n_layers * layer)}; embedding + LM head + final norm = "
             f"{g(emb)}",
             f"Total = {g(total)} = {total / 1e9:.2f}B")
    return Solution(total, steps, {"ensemble-count": v["n_experts"] * dense,
                                   "active-for-total": active},
                    f"Only the FFN is replicated: {v['n_experts']} experts make the model "
                    f"{total / dense:.1f}x a dense model of the same shape, not "
                    f"{v['n_experts']}x.")


def attn_flops_per_token(v, seq: int, prefix: str = "") -> float:
    """Causal attention core per token, all layers: 2 x 2 x heads x head_dim x (s+1)/2 x L."""
    return (2 * 2 * v[prefix + "n_heads"] * v[prefix + "head_dim"] * (seq + 1) / 2
            * v[prefix + "n_layers"])


@solver("forward_flops_per_token", ("active", "params", "n_layers", "n_heads", "head_dim", "seq_len"))
def flops_per_token(v) -> Solution:
    mat = 2 * v["active"]
    attn = attn_flops_per_token(v, v["seq_len"])
    total = mat + attn
    steps = (f"Matmuls: 2 FLOPs per active parameter = 2 x {g(v['active'])} = {g(mat)}",
             f"Attention core: 2 x 2 x {v['n_heads']} x {v['head_dim']} x ({v['seq_len']}+1)/2 "
             f"x {v['n_layers']} layers = {g(attn)}",
             f"Total = {g(total)} FLOPs = {total / 1e9:.1f} GFLOP per token")
    return Solution(total, steps, {"total-not-active": 2 * v["params"] + attn,
                                   "flops-vs-macs": total / 2},
                    f"{total / 1e9:.1f} GFLOP per token, the cost of a "
                    f"{v['active'] / 1e9:.0f}B dense model, not a {v['params'] / 1e9:.0f}B one.")


@solver("flops_ratio", ("active", "n_layers", "n_heads", "head_dim", "dense_active",
                              "dense_n_layers", "dense_n_heads", "dense_head_dim", "seq_len",
                              "total_ratio"))
def moe_vs_dense(v) -> Solution:
    s = v["seq_len"]
    a = 2 * v["active"] + attn_flops_per_token(v, s)
    b = 2 * v["dense_active"] + attn_flops_per_token(v, s, "dense_")
    steps = (f"MoE: 2 x {g(v['active'])} active + attention {g(a - 2 * v['active'])} = {g(a)} "
             "FLOPs per token",
             f"Dense: 2 x {g(v['dense_active'])} + attention {g(b - 2 * v['dense_active'])} = "
             f"{g(b)} FLOPs per token",
             f"Ratio = {a / b:.3f}")
    return Solution(a / b, steps, {"total-not-active": v["total_ratio"]},
                    f"{v['total_ratio']:.1f}x the parameters for {a / b:.2f}x the compute per "
                    "token: bigger without getting (much) slower.")


@solver("router_flops_per_token", ("hidden", "n_experts", "n_moe_layers"))
def router_flops(v) -> Solution:
    per_layer = 2 * v["hidden"] * v["n_experts"]
    total = per_layer * v["n_moe_layers"]
    steps = (f"One gate GEMV per MoE layer: 2 x hidden x n_experts = 2 x {v['hidden']} x "
             f"{v['n_experts']} = {g(per_layer)} FLOPs",
             f"x {v['n_moe_layers']} MoE layers = {g(total)} FLOPs = {total / 1e6:.2f} MFLOP")
    return Solution(total, steps, {"flops-vs-macs": total / 2},
                    "A rounding error next to the experts' GFLOPs per token: routing is cheap; "
                    "its cost is in load balance and communication.")


def _capacity(v) -> tuple[int, int]:
    slots = v["tokens"] * v["top_k"]
    return slots, math.ceil(v["capacity_factor"] * slots / v["n_experts"])


@solver("moe_dropped_fraction", ("tokens", "top_k", "n_experts", "capacity_factor", "loads"))
def dropped(v) -> Solution:
    slots, cap = _capacity(v)
    over = [max(load - cap, 0) for load in v["loads"]]
    frac = sum(over) / slots
    steps = (f"Routed slots = tokens x top_k = {v['tokens']} x {v['top_k']} = {slots}",
             f"C = ceil({v['capacity_factor']} x {slots} / {v['n_experts']}) = {cap}",
             f"Overflow per expert max(L - C, 0): {over}; dropped = {sum(over)}",
             f"Dropped share = {sum(over)} / {slots} = {100 * frac:.2f}%")
    return Solution(frac, steps, {"no-drops": 0.0},
                    f"{100 * frac:.1f}% of the token-slots skip their expert this step; the "
                    "auxiliary loss or a larger capacity factor is what buys them back.")


@solver("moe_compute_per_routed", ("tokens", "top_k", "n_experts", "capacity_factor"))
def padding(v) -> Solution:
    slots, cap = _capacity(v)
    ratio = v["n_experts"] * cap / slots
    steps = (f"C = ceil({v['capacity_factor']} x {v['tokens']} x {v['top_k']} / "
             f"{v['n_experts']}) = {cap}",
             f"Computed slots = E x C = {v['n_experts'] * cap}; real slots = {slots}",
             f"Computed per real = {ratio:.3f}")
    return Solution(ratio, steps, {"no-padding": 1.0},
                    f"{100 * (ratio - 1):.0f}% of the expert FLOPs are padding: headroom for "
                    "skew paid in compute.")


@solver("moe_max_over_mean", ("top_share_pct", "n_experts"))
def imbalance(v) -> Solution:
    ratio = v["top_share_pct"] / 100 * v["n_experts"]
    steps = ("Mean load = slots / E, so mean share = 1/E",
             f"max / mean = share x E = {v['top_share_pct']:.1f}% x {v['n_experts']} = "
             f"{ratio:.2f}")
    return Solution(ratio, steps, {"mean-expert-load": 1.0},
                    f"The MoE layer runs {ratio:.2f}x longer than balanced: every other expert "
                    "waits for the busiest.")


@solver("moe_step_time", ("balanced_step_ms", "expert_ms", "imbalance"))
def imbalanced_step(v) -> Solution:
    extra = (v["imbalance"] - 1) * v["expert_ms"]
    t = (v["balanced_step_ms"] + extra) / 1e3
    steps = (f"Only the expert FFNs wait for the busiest expert: {v['expert_ms']:.0f} ms of the "
             f"balanced step x ({v['imbalance']:.2f} - 1) = {extra:.0f} ms more",
             f"Step = {v['balanced_step_ms']:.0f} + {extra:.0f} = {1e3 * t:.0f} ms = {t:.3f} s")
    return Solution(t, steps, {"mean-expert-load": v["balanced_step_ms"] / 1e3,
                               "whole-step-scaled": v["balanced_step_ms"] * v["imbalance"] / 1e3},
                    f"The skewed router costs {100 * extra / v['balanced_step_ms']:.0f}% more time "
                    "per step for the same tokens.")


@solver("moe_train_tokens", ("budget_flops", "active", "params", "n_layers", "n_heads",
                              "head_dim", "seq_len"))
def budget_tokens(v) -> Solution:
    attn = 3 * attn_flops_per_token(v, v["seq_len"])
    per_token = 6 * v["active"] + attn
    tokens = v["budget_flops"] / per_token
    steps = (f"Training FLOPs per token = 6 x active + 3 x attention core = 6 x "
             f"{g(v['active'])} + {g(attn)} = {g(per_token)}",
             f"Tokens = {v['budget_flops']:.0e} / {g(per_token)} = {tokens / 1e9:.1f} billion")
    by_total = v["budget_flops"] / (6 * v["params"] + attn)
    return Solution(tokens, steps, {"budget-by-total": by_total},
                    f"{tokens / by_total:.1f}x the tokens a dense model of the same total size "
                    "could see: MoE moves the Chinchilla trade-off.")


@solver("alltoall_time", ("bytes_per_rank_MiB", "gpus", "bidir_gbps"), residual=("nccl_ms", 1e-3))
def alltoall(v) -> Solution:
    n = v["gpus"]
    sent = v["bytes_per_rank_MiB"] * 2**20 * (n - 1) / n
    bw = v["bidir_gbps"] / 2 * 1e9
    wire = sent / bw
    t = wire + v["nccl_ms"] / 1e3
    steps = (f"Each GPU keeps 1/{n} and sends (n-1)/n = {g(sent / 2**20)} MiB",
             f"Per-direction bandwidth = {v['bidir_gbps']:.0f} / 2 = {bw / 1e9:.0f} GB/s",
             f"Wire time = {g(sent)} B / {bw / 1e9:.0f} GB/s = {1e3 * wire:.3f} ms",
             f"+ NCCL's overhead {v['nccl_ms']:.3f} ms = {1e3 * t:.3f} ms")
    return Solution(t, steps, {"bidirectional-bandwidth": wire / 2 + v["nccl_ms"] / 1e3},
                    "Paid twice per MoE layer (dispatch and combine), forward and backward.",
                    f"NCCL overhead over wire speed: {v['nccl_ms']:.3f} ms")


@solver("moe_serving_weights", ("params", "active", "hbm_gib"))
def serving_weights(v) -> Solution:
    w = 2.0 * v["params"]
    steps = (f"Every expert is resident: {g(v['params'])} parameters x 2 bytes (bf16) = "
             f"{g(w)} bytes", f"= {w / GIB:.1f} GiB")
    n = math.ceil(w / (v["hbm_gib"] * GIB))
    return Solution(w, steps, {"weights-by-active": 2.0 * v["active"],
                               "gb-vs-gib": _gib_mistake(w)},
                    f"{w / GIB:.0f} GiB of weights: at least {n} GPU(s) of {v['hbm_gib']:.0f} GiB "
                    "before any KV cache, although each token touches only "
                    f"{2 * v['active'] / GIB:.0f} GiB of them.")
