"""DP vs TP vs PP vs ZeRO for a 70B model: memory and step time, and where each one breaks.

Lesson 3 (training-and-serving-at-scale). Concepts: data parallelism replicates the model, so
it fails as soon as weights + gradients + optimizer state (16 bytes per parameter with
mixed-precision Adam; Rajbhandari et al. 2020) exceed one GPU; ZeRO shards that state over the
data-parallel ranks at the price of more collectives; tensor parallelism splits every layer and
puts collectives on the critical path (Shoeybi et al. 2019); pipeline parallelism splits the
layers and pays a bubble (Narayanan et al. 2021). Llama-3-70B on 64 H100s, priced by the
analytic backend.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.analytic import estimate_train
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots import charts
from sim.report import Result, publish

LESSON = "training-and-serving-at-scale"
TOPIC = "DP vs TP vs PP vs ZeRO for a 70B model"
REFUTES = ("parallelism-is-data-splitting",)

MODEL = "llama3-70b"
SYSTEM = "dgx-h100"
GPUS = 64
SEQ_LEN = 4096  # tokens per sequence
GLOBAL_BATCH = 512  # sequences per step
RECOMPUTE = "full"  # activation recomputation, so that activations do not hide the lesson
PLANS = {  # label -> (tp, pp, zero)
    "DP64": (1, 1, 0),
    "DP64 ZeRO-1": (1, 1, 1),
    "DP64 ZeRO-2": (1, 1, 2),
    "DP64 ZeRO-3": (1, 1, 3),
    "TP8 DP8": (8, 1, 0),
    "TP8 DP8 ZeRO-1": (8, 1, 1),
    "PP8 DP8": (1, 8, 0),
    "TP8 PP8": (8, 8, 0),
    "TP8 PP2 DP4 ZeRO-1": (8, 2, 1),
}


def plan_for(tp: int, pp: int, zero: int) -> ParallelPlan:
    return ParallelPlan(tp=tp, pp=pp, dp=GPUS // (tp * pp), zero=zero, micro_batch=1,
                        global_batch=GLOBAL_BATCH, seq_len=SEQ_LEN, recompute=RECOMPUTE,
                        sequence_parallel=tp > 1, schedule="1f1b")


def row(label: str, model, cluster):
    r = estimate_train(model, plan_for(*PLANS[label]), cluster)
    t = r.time_breakdown_s
    return {"plan": label, "memory_GiB": r.memory_per_gpu_bytes / 2**30, "fits": r.fits,
            "step_time_s": r.step_time_s, "mfu_pct": 100 * r.mfu,
            "compute_s": t["compute"], "comm_exposed_s": t["communication_exposed"],
            "comm_issued_s": sum(r.extras["communication_by_group_s"].values()),
            "bubble_s": t["pipeline_bubble"], "bottleneck": r.bottleneck}, r


def run() -> Result:
    model, cluster = get_model(MODEL), hardware.Cluster.for_gpus(SYSTEM, GPUS)
    pairs = [row(label, model, cluster) for label in PLANS]
    table = pd.DataFrame([p[0] for p in pairs])
    results = {p[0]["plan"]: p[1] for p in pairs}
    fit = table[table.fits]
    best = fit.loc[fit.step_time_s.idxmin()] if len(fit) else None
    get = table.set_index("plan")
    n = {"dp_mem": get.loc["DP64", "memory_GiB"], "z3_mem": get.loc["DP64 ZeRO-3", "memory_GiB"],
         "z3_comm": get.loc["DP64 ZeRO-3", "comm_issued_s"],
         "z3_exposed": get.loc["DP64 ZeRO-3", "comm_exposed_s"],
         "z3_fits": bool(get.loc["DP64 ZeRO-3", "fits"]),
         "tp_mem": get.loc["TP8 DP8", "memory_GiB"],
         "pp_bubble": get.loc["TP8 PP8", "bubble_s"], "pp_step": get.loc["TP8 PP8", "step_time_s"],
         "n_fit": len(fit), "best": best.plan if best is not None else "none",
         "best_mfu": best.mfu_pct if best is not None else 0.0,
         "best_step": best.step_time_s if best is not None else 0.0,
         "capacity": cluster.accelerator.memory_bytes / 2**30}
    labels = list(PLANS)
    cfg = {"model": MODEL, "system": SYSTEM, "gpus": GPUS,
           "plans": {k: plan_for(*v).to_dict() for k, v in PLANS.items()}}
    return Result(table, n, takeaway(n), cfg, {
        "memory.png": lambda: charts.memory_breakdown(
            labels, [results[k].memory_breakdown_bytes for k in labels], xlabel="plan",
            title=f"{MODEL} training memory per GPU, {SYSTEM} x{GPUS}, seq {SEQ_LEN}",
            capacity_bytes=cluster.accelerator.memory_bytes, clip_at_capacity=2.5),
        "step_time.png": lambda: charts.stacked_bars(
            labels, {"compute": list(table.compute_s),
                     "exposed communication": list(table.comm_exposed_s),
                     "pipeline bubble": list(table.bubble_s)},
            title=f"{MODEL} step time by plan, {SYSTEM} x{GPUS} (hatched: over HBM)",
            ylabel="seconds per step", xlabel="plan", infeasible=list(~table.fits),
            infeasible_label="does not fit in HBM (hatched)")})


def takeaway(n: dict) -> str:
    z3 = "fits" if n["z3_fits"] else "still does not fit"
    return (f"Pure data parallelism needs {n['dp_mem']:.0f} GiB per GPU for {MODEL} against "
            f"{n['capacity']:.0f} GiB of HBM: splitting the data never splits the model. ZeRO-3 "
            f"shards everything down to {n['z3_mem']:.0f} GiB and {z3}, at the price of "
            f"{n['z3_comm']:.1f} s of collectives per step ({n['z3_exposed']:.1f} s not hidden "
            f"behind compute); tensor parallelism over 8 GPUs "
            f"alone still needs {n['tp_mem']:.0f} GiB; TP8 x PP8 pays {n['pp_bubble']:.1f} s of "
            f"pipeline bubble in a {n['pp_step']:.1f} s step. Of {len(PLANS)} plans "
            f"{n['n_fit']} fit, and the fastest is {n['best']} at {n['best_mfu']:.0f}% MFU "
            f"({n['best_step']:.1f} s per step): each strategy attacks a different bottleneck.")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
