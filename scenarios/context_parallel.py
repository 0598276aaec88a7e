"""Context parallelism for 128K-token training: memory per GPU and step time vs CP degree.

Lesson 2 (long-context-and-efficient-attention), with Lesson 3's parallelism. Concepts: at
long sequence length activations, not weights, fill the GPU, and attention's quadratic FLOPs
dominate the step; context parallelism splits each sequence over cp GPUs and passes K/V blocks
around a ring (ring attention, Liu et al. 2023), hiding the exchange behind attention compute.
Llama-3-8B at 131,072 tokens with tensor parallelism 8, priced by the analytic backend.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.analytic import estimate_train
from sim.costs.flops import forward_flops
from sim.model import get_model
from sim.plan import ParallelPlan, Shape
from sim.plots import charts
from sim.report import Result, publish

LESSON = "long-context-and-efficient-attention"
TOPIC = "context parallelism for 128K training"
REFUTES = ("long-context-is-just-longer-training", "flash-and-kv-solve-long-context")

MODEL = "llama3-8b"
SYSTEM = "dgx-h100"
SEQ_LEN = 131072  # tokens per training sequence
SHORT_SEQ = 8192  # reference sequence length for "just train longer"
TP = 8
CP_DEGREES = (1, 2, 4, 8, 16)
RECOMPUTE = ("selective", "full")
GLOBAL_BATCH = 4  # sequences per step (one data-parallel replica)


def row(model, cp: int, recompute: str) -> tuple[dict, object]:
    plan = ParallelPlan(tp=TP, cp=cp, dp=1, micro_batch=1, global_batch=GLOBAL_BATCH,
                        seq_len=SEQ_LEN, recompute=recompute, sequence_parallel=True)
    r = estimate_train(model, plan, hardware.Cluster.for_gpus(SYSTEM, TP * cp))
    cp_s = r.extras["communication_by_group_s"].get("cp", 0.0)
    return {"cp": cp, "gpus": TP * cp, "recompute": recompute,
            "memory_GiB": r.memory_per_gpu_bytes / 2**30,
            "activations_GiB": r.memory_breakdown_bytes["activations"] / 2**30, "fits": r.fits,
            "step_time_s": r.step_time_s, "mfu_pct": 100 * r.mfu,
            "cp_exchange_s": cp_s,
            "comm_exposed_s": r.time_breakdown_s["communication_exposed"]}, r


def run() -> Result:
    model = get_model(MODEL)
    pairs = [row(model, cp, rc) for rc in RECOMPUTE for cp in CP_DEGREES]
    table = pd.DataFrame([p[0] for p in pairs])
    sel = table[table.recompute == "selective"].set_index("cp")
    full = table[table.recompute == "full"].set_index("cp")
    fits = sel[sel.fits]
    long_f = forward_flops(model, Shape(1, SEQ_LEN))
    short_f = forward_flops(model, Shape(1, SHORT_SEQ))
    n = {"cp1_mem": sel.loc[1, "memory_GiB"], "cp1_act": sel.loc[1, "activations_GiB"],
         "cap": hardware.get_system(SYSTEM).accelerator.memory_bytes / 2**30,
         "first_cp": int(fits.index[0]) if len(fits) else 0,
         "first_mfu": float(fits.mfu_pct.iloc[0]) if len(fits) else 0.0,
         "full_fits": bool(full.loc[1, "fits"]), "full_mfu": full.loc[1, "mfu_pct"],
         "top_mfu": sel.loc[CP_DEGREES[-1], "mfu_pct"],
         "top_step": sel.loc[CP_DEGREES[-1], "step_time_s"],
         "attn_share": 100 * long_f.attention / long_f.total,
         "per_token_ratio": (long_f.total / SEQ_LEN) / (short_f.total / SHORT_SEQ)}
    sel_results = [p[1] for p in pairs if p[0]["recompute"] == "selective"]
    cfg = {"model": MODEL, "system": SYSTEM, "seq_len": SEQ_LEN, "tp": TP,
           "global_batch": GLOBAL_BATCH, "cp_degrees": list(CP_DEGREES)}
    return Result(table, n, takeaway(n), cfg, {
        "memory.png": lambda: charts.memory_breakdown(
            [f"CP{c}" for c in CP_DEGREES], [r.memory_breakdown_bytes for r in sel_results],
            title=f"{MODEL} at {SEQ_LEN // 1024}K tokens: memory per GPU (TP{TP}, selective "
                  "recompute)", capacity_bytes=n["cap"] * 2**30,
            xlabel="context-parallel degree")})


def takeaway(n: dict) -> str:
    full = "fits" if n["full_fits"] else "still does not fit"
    fit = (f"Full recomputation {full} on {TP} GPUs but drops MFU to {n['full_mfu']:.0f}%; "
           + (f"context parallelism fits from CP{n['first_cp']} at {n['first_mfu']:.0f}% MFU"
              if n["first_cp"] else "no context-parallel degree in the sweep fits"))
    return (f"Training {MODEL} on {SEQ_LEN // 1024}K-token sequences is not 'the same run with "
            f"longer sequences': each token costs {n['per_token_ratio']:.1f}x the FLOPs it costs "
            f"at {SHORT_SEQ // 1024}K, {n['attn_share']:.0f}% of it attention, and with TP{TP} "
            f"alone a GPU needs {n['cp1_mem']:.0f} GiB ({n['cp1_act']:.0f} GiB of activations) "
            f"against {n['cap']:.0f} GiB. {fit}, and CP{CP_DEGREES[-1]} keeps {n['top_mfu']:.0f}% "
            f"MFU while cutting the step to {n['top_step']:.1f} s.")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
