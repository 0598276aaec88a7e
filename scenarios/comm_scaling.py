"""Communication share as the cluster grows: MFU vs GPUs at a fixed global batch.

Lesson 3 (training-and-serving-at-scale). Concepts: communication overhead is the key
constraint of parallel training. With the global batch fixed (strong scaling), every extra GPU
gets less compute per step while the gradient all-reduce stays the same size, and collectives
leave the NVLink island for the slower scale-out network; model-parallel plans also shrink
their micro-batch count, so the pipeline bubble grows. The analytic backend prices each point
with overlap of communication and compute (``max``) and without it (``sum``), bracketing the
truth.
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
TOPIC = "communication share and MFU vs number of GPUs"
REFUTES = ("parallelism-is-data-splitting",)

SYSTEM = "dgx-h100"
SEQ_LEN = 4096  # tokens per sequence
GLOBAL_BATCH = 512  # sequences per step, fixed while the cluster grows
SERIES = {  # label -> (model, tp, pp, gpu counts)
    "llama3-8b, DP + ZeRO-1": ("llama3-8b", 1, 1, (32, 64, 128, 256, 512)),
    "llama3-70b, TP8 PP4 + DP": ("llama3-70b", 8, 4, (32, 64, 128, 256, 512)),
}
OVERLAPS = ("max", "sum")  # perfect overlap vs none
GPU_COUNTS = SERIES[next(iter(SERIES))][3]


def point(label: str, gpus: int, overlap: str) -> dict:
    name, tp, pp, _ = SERIES[label]
    plan = ParallelPlan(tp=tp, pp=pp, dp=gpus // (tp * pp), zero=1, micro_batch=1,
                        global_batch=GLOBAL_BATCH, seq_len=SEQ_LEN, recompute="selective",
                        sequence_parallel=tp > 1, overlap=overlap)
    r = estimate_train(get_model(name), plan, hardware.Cluster.for_gpus(SYSTEM, gpus))
    t = r.time_breakdown_s
    return {"series": label, "gpus": gpus, "overlap": overlap, "step_time_s": r.step_time_s,
            "mfu_pct": 100 * r.mfu, "comm_share_pct": 100 * t["communication_exposed"] / r.step_time_s,
            "bubble_share_pct": 100 * t["pipeline_bubble"] / r.step_time_s, "fits": r.fits}


def run() -> Result:
    table = pd.DataFrame([point(s, g, o) for s, v in SERIES.items() for g in v[3] for o in OVERLAPS])
    n = {}
    for i, (s, v) in enumerate(SERIES.items()):
        sel = table[(table.series == s) & (table.overlap == "max")].set_index("gpus")
        lo, hi = v[3][0], v[3][-1]
        n |= {f"{i}_lo": lo, f"{i}_hi": hi, f"{i}_mfu_lo": sel.loc[lo, "mfu_pct"],
              f"{i}_mfu_hi": sel.loc[hi, "mfu_pct"], f"{i}_comm_lo": sel.loc[lo, "comm_share_pct"],
              f"{i}_comm_hi": sel.loc[hi, "comm_share_pct"],
              f"{i}_bubble_hi": sel.loc[hi, "bubble_share_pct"]}
        none = table[(table.series == s) & (table.overlap == "sum")].set_index("gpus")
        n[f"{i}_comm_hi_sum"] = none.loc[hi, "comm_share_pct"]
        n[f"{i}_over_lo"] = sel.loc[lo, "comm_share_pct"] + sel.loc[lo, "bubble_share_pct"]
        n[f"{i}_over_hi"] = sel.loc[hi, "comm_share_pct"] + sel.loc[hi, "bubble_share_pct"]
    cfg = {"system": SYSTEM, "seq_len": SEQ_LEN, "global_batch": GLOBAL_BATCH,
           "series": {k: {"model": v[0], "tp": v[1], "pp": v[2], "gpus": list(v[3])}
                      for k, v in SERIES.items()}}
    return Result(table, n, takeaway(n), cfg, {"mfu_vs_gpus.png": lambda: mfu_chart(table),
                                               "comm_share.png": lambda: share_chart(table)})


def takeaway(n: dict) -> str:
    names = list(SERIES)
    return (f"At a fixed batch of {GLOBAL_BATCH} sequences, {names[0]} falls from "
            f"{n['0_mfu_lo']:.0f}% MFU on {n['0_lo']} GPUs to {n['0_mfu_hi']:.0f}% on "
            f"{n['0_hi']}, as exposed communication grows from {n['0_comm_lo']:.0f}% to "
            f"{n['0_comm_hi']:.0f}% of the step ({n['0_comm_hi_sum']:.0f}% if nothing overlaps). "
            f"{names[1]} goes from {n['1_mfu_lo']:.0f}% to {n['1_mfu_hi']:.0f}% MFU between "
            f"{n['1_lo']} and {n['1_hi']} GPUs, with communication at {n['1_comm_hi']:.0f}% and "
            f"the pipeline bubble at {n['1_bubble_hi']:.0f}% of the step at the largest size. The "
            f"share of the step that is not compute grows from {n['0_over_lo']:.0f}% to "
            f"{n['0_over_hi']:.0f}% and from {n['1_over_lo']:.0f}% to {n['1_over_hi']:.0f}%: "
            "more GPUs buy less and less, and how much depends on how well communication "
            "hides behind compute.")


def mfu_chart(table: pd.DataFrame):
    sel = table[table.overlap == "max"]
    mfu = {s: list(sel[sel.series == s].mfu_pct / 100) for s in SERIES}
    return charts.scaling_curve(GPU_COUNTS, mfu, title=f"MFU vs GPUs on {SYSTEM}, global batch {GLOBAL_BATCH}")


def share_chart(table: pd.DataFrame):
    series = {f"{s} ({o} overlap)": list(table[(table.series == s) & (table.overlap == o)]
                                         .comm_share_pct) for s in SERIES for o in OVERLAPS}
    return charts.line_chart(GPU_COUNTS, series, logx=True,
                             title=f"Exposed communication share on {SYSTEM} "
                                   "(perfect vs no overlap)",
                             xlabel="GPUs (log scale)", ylabel="share of step time (%)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
