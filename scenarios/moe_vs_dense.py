"""MoE vs dense at equal active compute: Mixtral-8x7B against Llama-2-13B on 64 H100s.

Lesson 1 (mixture-of-experts). Concepts: "bigger without getting slower": Mixtral-8x7B holds
3.6x the parameters of a 13B dense model but does about the same work per token; the price is
memory (every expert's weights, gradients and optimizer state live somewhere) and the
all-to-all that expert parallelism needs to send tokens to their experts and back (GShard,
Lepikhin et al. 2020). The analytic backend prices one training step of each configuration,
moving the expert-parallel group from inside one node to across nodes.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.analytic import estimate_train
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "MoE vs dense at equal active compute: parameters, memory, step time, all-to-all"
REFUTES = ("params-equal-compute",)

SYSTEM = "dgx-h100"
GPUS = 64
SEQ_LEN = 4096  # tokens per sequence
GLOBAL_BATCH = 256  # sequences per step
CONFIGS = {  # label -> (model, tp, ep)
    "13B dense, DP": ("llama2-13b", 1, 1),
    "Mixtral, DP (no EP)": ("mixtral-8x7b", 1, 1),
    "Mixtral, EP8 in-node": ("mixtral-8x7b", 1, 8),
    "Mixtral, TP2 x EP8 (2 nodes)": ("mixtral-8x7b", 2, 8),
    "Mixtral, TP8 x EP8 (8 nodes)": ("mixtral-8x7b", 8, 8),
}


def plan_for(tp: int, ep: int) -> ParallelPlan:
    return ParallelPlan(tp=tp, dp=GPUS // tp, ep=ep, zero=2, micro_batch=1,
                        global_batch=GLOBAL_BATCH, seq_len=SEQ_LEN, recompute="selective",
                        sequence_parallel=tp > 1)


def row(label: str, cluster) -> tuple[dict, object]:
    name, tp, ep = CONFIGS[label]
    model = get_model(name)
    r = estimate_train(model, plan_for(tp, ep), cluster)
    a2a = r.extras["communication_by_group_s"].get("ep", 0.0)
    return {"config": label, "params_total_B": model.params_total / 1e9,
            "params_active_B": model.params_active / 1e9,
            "memory_GiB": r.memory_per_gpu_bytes / 2**30, "fits": r.fits,
            "step_time_s": r.step_time_s, "mfu_pct": 100 * r.mfu,
            "all_to_all_s": a2a, "all_to_all_share_pct": 100 * a2a / r.step_time_s,
            "comm_exposed_s": r.time_breakdown_s["communication_exposed"]}, r


def run() -> Result:
    cluster = hardware.Cluster.for_gpus(SYSTEM, GPUS)
    pairs = [row(label, cluster) for label in CONFIGS]
    table = pd.DataFrame([p[0] for p in pairs])
    results = {p[0]["config"]: p[1] for p in pairs}
    get = table.set_index("config")
    labels = list(CONFIGS)
    n = {"dense_step": get.loc[labels[0], "step_time_s"], "ep_step": get.loc[labels[2], "step_time_s"],
         "far_step": get.loc[labels[4], "step_time_s"],
         "param_ratio": get.loc[labels[2], "params_total_B"] / get.loc[labels[0], "params_total_B"],
         "noep_mem": get.loc[labels[1], "memory_GiB"], "noep_fits": bool(get.loc[labels[1], "fits"]),
         "ep_mem": get.loc[labels[2], "memory_GiB"],
         "near_a2a": get.loc[labels[2], "all_to_all_share_pct"],
         "far_a2a": get.loc[labels[4], "all_to_all_share_pct"],
         "capacity_GiB": cluster.accelerator.memory_bytes / 2**30}
    cfg = {"system": SYSTEM, "gpus": GPUS, "plans": {k: plan_for(*v[1:]).to_dict()
                                                     for k, v in CONFIGS.items()}}
    return Result(table, n, takeaway(n), cfg, {
        "memory.png": lambda: charts.memory_breakdown(
            labels, [results[k].memory_breakdown_bytes for k in labels],
            title=f"Training memory per GPU ({SYSTEM} x{GPUS}, batch {GLOBAL_BATCH})",
            capacity_bytes=cluster.accelerator.memory_bytes),
        "step_time.png": lambda: charts.stacked_bars(
            labels, {k: [results[c].time_breakdown_s[k] for c in labels]
                     for k in ("compute", "communication_exposed", "pipeline_bubble")},
            title=f"Training step time ({SYSTEM} x{GPUS}, batch {GLOBAL_BATCH})",
            ylabel="seconds per step", xlabel="configuration")})


def takeaway(n: dict) -> str:
    fits = "fits" if n["noep_fits"] else "does not fit"
    ratio = n["ep_step"] / n["dense_step"]
    return (f"Mixtral-8x7B has {n['param_ratio']:.1f}x the parameters of the 13B dense model, "
            f"but with its experts spread over the 8 GPUs of a node a training step takes "
            f"{ratio:.2f}x as long ({n['ep_step']:.2f} s vs {n['dense_step']:.2f} s). The parameters still cost "
            f"memory: replicated on every GPU (no expert parallelism) Mixtral needs "
            f"{n['noep_mem']:.0f} GiB per GPU and {fits} in {n['capacity_GiB']:.0f} GiB, "
            f"sharded over 8 expert-parallel ranks {n['ep_mem']:.0f} GiB. The all-to-all is "
            f"{n['near_a2a']:.0f}% of the step inside a node but {n['far_a2a']:.0f}% when the "
            f"expert group spans 8 nodes (step {n['far_step']:.2f} s): where the experts live "
            "decides what MoE costs.")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
