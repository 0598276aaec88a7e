"""Load imbalance: what a skewed router costs in step time, and what balancing buys back.

Lesson 1 (mixture-of-experts). Concepts: the router's softmax can favour a few experts; under
expert parallelism every expert sits on its own GPU and the layer waits for the busiest one, so
the step slows by about the max/mean expert load. An auxiliary load-balancing loss (Shazeer et
al. 2017; Fedus et al. 2021, Eq. 4) pushes routing back toward uniform; a capacity factor caps
the busiest expert instead, by dropping its overflow tokens. Mixtral-8x7B on 8 H100s (EP8),
one training step simulated by the discrete-event engine with routing drawn from a Zipf skew.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

import hardware
from sim.costs.moe import route, zipf_shares
from sim.des import simulate_train
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "load imbalance: router skew vs step time, aux loss, capacity"
REFUTES = ("params-equal-compute",)

MODEL = "mixtral-8x7b"
SYSTEM = "dgx-h100"
GPUS = 8
SEQ_LEN = 4096  # tokens per sequence
GLOBAL_BATCH = 16  # sequences per step
ZIPF_SKEWS = (0.0, 0.25, 0.5, 1.0, 1.5)  # router skew s (0 = uniform: a well-balanced router)
CAPPED_CAPACITY = 1.25  # capacity factor of the "cap instead of balance" rows
SEED = 1


def plan() -> ParallelPlan:
    return ParallelPlan(tp=1, dp=GPUS, ep=GPUS, zero=2, micro_batch=1, global_batch=GLOBAL_BATCH,
                        seq_len=SEQ_LEN, recompute="full")


def row(model, cluster, s: float, cf) -> dict:
    m = replace(model, moe=replace(model.moe, capacity_factor=cf))
    routing = "uniform" if s == 0 else "zipf"
    r = simulate_train(m, plan(), cluster, seed=SEED, routing=routing, zipf_s=s).to_dict()
    mr = r["moe_routing"]
    return {"zipf_s": s, "capacity_factor": "dropless" if cf is None else cf,
            "max_over_mean_load": mr["mean_imbalance"],
            "dropped_pct": 100 * mr["mean_dropped_fraction"], "step_time_s": r["step_time_s"],
            "mfu_pct": 100 * r["mfu"]}


def run() -> Result:
    model, cluster = get_model(MODEL), hardware.Cluster.for_gpus(SYSTEM, GPUS)
    rows = [row(model, cluster, s, None) for s in ZIPF_SKEWS]
    rows += [row(model, cluster, s, CAPPED_CAPACITY) for s in ZIPF_SKEWS[1:]]
    table = pd.DataFrame(rows)
    base = table.step_time_s.iloc[0]
    table["slowdown_vs_uniform"] = table.step_time_s / base
    free = table[table.capacity_factor == "dropless"].set_index("zipf_s")
    capped = table[table.capacity_factor != "dropless"].set_index("zipf_s")
    s1 = 1.0
    n = {"base": base, "step_s1": free.loc[s1, "step_time_s"], "imb_s1": free.loc[s1, "max_over_mean_load"],
         "slow_s1": free.loc[s1, "slowdown_vs_uniform"], "slow_max": free.slowdown_vs_uniform.iloc[-1],
         "cap_slow_s1": capped.loc[s1, "slowdown_vs_uniform"], "cap_drop_s1": capped.loc[s1, "dropped_pct"],
         "imb_0": free.loc[0.0, "max_over_mean_load"]}
    loads = {f"zipf s={s}": route(model, SEQ_LEN, zipf_shares(model.moe.n_experts, s)).loads
             for s in (0.0, 0.5, 1.0)}
    cfg = {"model": MODEL, "system": SYSTEM, "gpus": GPUS, "plan": plan().to_dict(), "seed": SEED}
    return Result(table, n, takeaway(n), cfg, {
        "expert_loads.png": lambda: charts.expert_load_histogram(
            {k: list(v) for k, v in loads.items()},
            title=f"{MODEL}: tokens per expert, one {SEQ_LEN}-token sequence, "
                  f"top-{model.moe.top_k}",
            capacity=int(np.ceil(CAPPED_CAPACITY * SEQ_LEN * model.moe.top_k
                                 / model.moe.n_experts)),
            capacity_label=f"capacity at factor {CAPPED_CAPACITY}"),
        "step_vs_skew.png": lambda: charts.line_chart(
            list(ZIPF_SKEWS), {"dropless": list(free.step_time_s),
                               f"capacity factor {CAPPED_CAPACITY}":
                                   [base, *capped.step_time_s]},
            title=f"{MODEL} step time vs router skew ({SYSTEM} x{GPUS}, EP{GPUS}, simulated)",
            xlabel="router skew (Zipf exponent s)", ylabel="step time (s)")})


def takeaway(n: dict) -> str:
    return (f"With a uniform router the busiest of {MODEL}'s experts carries "
            f"{n['imb_0']:.2f}x the mean load and a step takes {n['base']:.2f} s. A router "
            f"skewed like Zipf(1) loads the busiest expert {n['imb_s1']:.1f}x the mean and the "
            f"simulated step takes {n['step_s1']:.2f} s ({n['slow_s1']:.2f}x; "
            f"{n['slow_max']:.2f}x at the strongest skew): the total parameters did not change, "
            f"but the slowest expert sets the pace. That slowdown is what an auxiliary balancing "
            f"loss buys back. Capping capacity at {CAPPED_CAPACITY} instead limits it to "
            f"{n['cap_slow_s1']:.2f}x by dropping {n['cap_drop_s1']:.0f}% of the routed tokens.")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
