"""Lesson 1 (mixture-of-experts) queries: parameters, FLOPs, routing, imbalance, Chinchilla.

Parameter counts come from ``sim.model.params.count_params``; FLOPs from ``sim.costs.flops``
(a multiply-add is 2 FLOPs); routing (capacity, drops, padding, max/mean load) from
``sim.costs.moe.route``; the step time under a skewed router from the training DES
(``sim.des.simulate_train``), which waits for the busiest expert in every MoE layer.
"""

from __future__ import annotations

import numpy as np

from sim.costs.comm import collective_time
from sim.costs.flops import backward_flops, forward_flops
from sim.costs.moe import route, zipf_shares
from sim.des import simulate_train
from sim.exercises.answer import Answer, cluster_of, dominant, model_of
from sim.exercises.registry import query
from sim.model.params import count_params
from sim.plan import ParallelPlan, Shape
from sim.serving.kvcache import weights_per_gpu


def _param_parts(model) -> dict:
    c = count_params(model)
    parts = {"embedding + lm_head": float(c.embedding + c.lm_head)}
    for i in range(model.n_layers):
        for name, n in c.per_layer(i).items():
            parts[name] = parts.get(name, 0.0) + float(n)
    return {k: v for k, v in parts.items() if v}


@query("moe_active_params", "params")
def params_active(p: dict) -> Answer:
    """Parameters one token passes through (top-k routed + shared experts, attention, head)."""
    c = count_params(model_of(p))
    parts = {"active": float(c.active), "idle experts": float(c.total - c.active)}
    return Answer(float(c.active), parts, f"{100 * c.active / c.total:.0f}% of the "
                  f"{c.total / 1e9:.1f}B parameters run for each token")


@query("moe_total_params", "params")
def params_total(p: dict) -> Answer:
    """All parameters: attention and embeddings are shared, only the FFN is replicated."""
    parts = _param_parts(model_of(p))
    return Answer(float(count_params(model_of(p)).total), parts, dominant(parts))


def _per_token(model, seq: int):
    return forward_flops(model, Shape(1, seq, "prefill")).scaled(1.0 / seq)


@query("moe_compute", "FLOP")
def forward_flops_per_token(p: dict) -> Answer:
    """Forward FLOPs per token of a ``seq_len``-token prompt (experts: routed tokens only)."""
    f = _per_token(model_of(p), p["seq_len"])
    parts = {k: v for k, v in f.to_dict().items() if k != "total" and v}
    return Answer(f.total, parts, dominant(parts))


@query("moe_compute_ratio", "x")
def flops_ratio(p: dict) -> Answer:
    """Per-token forward FLOPs of ``model`` over those of the dense model ``dense``."""
    moe, dense = model_of(p), model_of(p, "dense")
    a, b = _per_token(moe, p["seq_len"]).total, _per_token(dense, p["seq_len"]).total
    ca, cb = count_params(moe), count_params(dense)
    return Answer(a / b, {"moe_flops_per_token": a, "dense_flops_per_token": b},
                  f"active params {ca.active / 1e9:.1f}B vs {cb.active / 1e9:.1f}B dense; "
                  f"total {ca.total / 1e9:.1f}B",
                  {"total_ratio": ca.total / cb.total, "dense_active": cb.active,
                   "dense_n_layers": dense.n_layers, "dense_n_heads": dense.n_heads,
                   "dense_head_dim": dense.head_dim}, parts_unit="FLOP per token")


@query("flops", "FLOP")
def router_flops_per_token(p: dict) -> Answer:
    """Router (gate) FLOPs per token over all MoE layers: a hidden x n_experts GEMM each."""
    f = _per_token(model_of(p), p["seq_len"])
    return Answer(f.router, {"router": f.router, "rest of the forward": f.total - f.router},
                  f"router is {100 * f.router / f.total:.2f}% of the forward FLOPs")


def _routing(p: dict):
    model = model_of(p)
    shares = zipf_shares(model.moe.n_experts, p.get("zipf_s", 0.0),
                         rng=np.random.default_rng(p.get("routing_seed", 0)))
    cf = p.get("capacity_factor")
    return model, route(model, p["tokens"], shares, capacity_factor=cf), shares


def _share_givens(shares, r) -> dict:
    top = sorted(shares, reverse=True)
    return {"capacity": r.capacity, "top_share_pct": 100 * top[0],
            "shares_pct": ", ".join(f"{100 * x:.1f}" for x in top[:8]),
            "loads": sorted((int(x) for x in r.loads), reverse=True)}


@query("moe_drops", "fraction")
def moe_dropped_fraction(p: dict) -> Answer:
    """Fraction of routed slots beyond capacity C = ceil(cf*T*k/E) (GShard Sec. 2.2)."""
    _, r, shares = _routing(p)
    routed = sum(r.loads)
    parts = {"processed": float(r.processed), "dropped": float(routed - r.processed)}
    return Answer(r.dropped_fraction, parts, f"busiest expert routed {max(r.loads)} slots "
                  f"against a capacity of {r.capacity}", _share_givens(shares, r),
                  parts_unit="slots")


@query("moe_padding", "x")
def moe_compute_per_routed(p: dict) -> Answer:
    """Slots the capacity-based kernel computes (E*C) per slot actually processed."""
    _, r, shares = _routing(p)
    parts = {"processed": float(r.processed), "padding": float(r.padding)}
    return Answer(r.computed / r.processed, parts, dominant(parts, "of the computed slots"),
                  _share_givens(shares, r), parts_unit="slots")


@query("moe_imbalance", "x")
def moe_max_over_mean(p: dict) -> Answer:
    """max/mean of the routed expert loads: the busiest expert sets the layer's pace."""
    _, r, shares = _routing(p)
    mean = sum(r.loads) / len(r.loads)
    return Answer(r.imbalance, {"max_load": float(max(r.loads)), "mean_load": mean},
                  f"busiest expert {max(r.loads)} slots vs mean {mean:.0f}",
                  _share_givens(shares, r), parts_unit="slots")


def _moe_plan(p: dict) -> ParallelPlan:
    g = p["gpus"]
    return ParallelPlan(tp=1, dp=g, ep=g, zero=2, micro_batch=1, global_batch=g,
                        seq_len=p["seq_len"], recompute="full")


@query("moe_step_time", "s")
def moe_step_time(p: dict) -> Answer:
    """Training step (DES) with a Zipf(s)-skewed router; givens: the balanced step time."""
    model, cluster, plan = model_of(p), cluster_of(p["system"], p["gpus"]), _moe_plan(p)
    skew = simulate_train(model, plan, cluster, seed=p.get("routing_seed", 0), routing="zipf",
                          zipf_s=p["zipf_s"]).to_dict()
    flat = simulate_train(model, plan, cluster, seed=0, routing="uniform").to_dict()
    imb = skew["moe_routing"]["mean_imbalance"]
    return Answer(skew["step_time_s"], dict(skew["time_breakdown_s"]),
                  f"busiest expert carries {imb:.2f}x the mean load; "
                  f"{dominant(skew['time_breakdown_s'], 'of the step')}",
                  {"balanced_step_ms": 1e3 * flat["step_time_s"], "imbalance": imb,
                   "expert_ms": 1e3 * _expert_share(model, plan, flat)
                   * flat["time_breakdown_s"]["compute"]})


def _expert_share(model, plan: ParallelPlan, result: dict) -> float:
    """Share of the step's executed FLOPs in the routed experts: 2 FLOPs per parameter per
    routed slot, forward + backward (2x) + full recomputation (1x) = 4x the forward."""
    c = count_params(model)
    tokens = plan.global_batch * plan.seq_len
    expert = 2 * model.moe.top_k * c.layers[-1].expert_size * model.n_moe_layers * tokens * 4
    return expert / result["hardware_flops_per_step"]


def train_flops_per_token(model, seq: int) -> float:
    shape = Shape(1, seq, "train")
    f = forward_flops(model, shape, padding=False).total
    return (f + backward_flops(model, shape, padding=False).total) / seq


@query("moe_budget_tokens", "tokens")
def moe_train_tokens(p: dict) -> Answer:
    """Tokens a compute budget buys: C / (forward + backward FLOPs per token)."""
    model = model_of(p)
    per_token = train_flops_per_token(model, p["seq_len"])
    c = count_params(model)
    return Answer(p["budget_flops"] / per_token, {"train_flops_per_token": per_token},
                  f"{per_token / c.active:.2f} FLOPs per token per active parameter, "
                  f"{per_token / c.total:.2f} per total parameter", parts_unit="FLOP per token")


@query("comm_time", "s")
def alltoall_time(p: dict) -> Answer:
    """One expert-parallel dispatch: all-to-all of tokens*top_k hidden vectors (bf16) per rank."""
    model, cluster = model_of(p), cluster_of(p["system"], p["gpus"])
    # GShard (Lepikhin et al. 2020, Sec. 2.2): each token's hidden state goes to its k experts
    nbytes = p["tokens"] * model.moe.top_k * model.hidden * 2  # bf16: 2 bytes per value
    t = collective_time("all_to_all", nbytes, range(p["gpus"]), cluster)
    bw = cluster.all_to_all_bandwidth(list(range(p["gpus"])))
    return Answer(t, {"all_to_all": t}, f"per-direction all-to-all bandwidth "
                  f"{bw / 1e9:.0f} GB/s per GPU",
                  {"bytes_per_rank_MiB": nbytes / 2**20, "bidir_gbps": 2 * bw / 1e9})


@query("moe_weights", "bytes")
def moe_serving_weights(p: dict) -> Answer:
    """bf16 weights a single GPU must hold to serve the model (every expert resident)."""
    model = model_of(p)
    w = weights_per_gpu(model, 1, 1, 1, "bf16")
    c = count_params(model)
    return Answer(w, {"active": 2.0 * c.active, "idle experts": 2.0 * (c.total - c.active)},
                  f"{c.total / 1e9:.1f}B parameters resident, {c.active / 1e9:.1f}B used per token")
