"""Flash attention: a large memory saving, the same attention FLOPs.

Lesson 2 (long-context-and-efficient-attention). Concepts: standard attention writes the
s x s score and probability matrices to HBM and keeps them for the backward pass; flash
attention (Dao et al. 2022) tiles the computation in SRAM and recomputes the scores in the
backward, so activation memory becomes O(s) instead of O(s^2), but the s^2 FLOPs stay (the
backward even does more: 2.5x the forward instead of 2x). Llama-3-8B on one 8-GPU node (TP8),
priced by the analytic backend with flash attention on and off.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.analytic import estimate_train
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots import charts
from sim.report import Result, publish

LESSON = "long-context-and-efficient-attention"
TOPIC = "flash attention: memory saving vs unchanged FLOPs"
REFUTES = ("flash-and-kv-solve-long-context",)

MODEL = "llama3-8b"
SYSTEM = "dgx-h100"
TP = 8
SEQ_LENS = (2048, 8192, 16384, 32768)  # tokens per sequence
GLOBAL_BATCH = 8  # sequences per step


def row(model, cluster, seq: int, flash: bool) -> dict:
    plan = ParallelPlan(tp=TP, dp=1, micro_batch=1, global_batch=GLOBAL_BATCH, seq_len=seq,
                        recompute="none", sequence_parallel=True, flash_attention=flash)
    r = estimate_train(model, plan, cluster)
    return {"seq_len": seq, "flash_attention": flash,
            "activations_GiB": r.memory_breakdown_bytes["activations"] / 2**30,
            "memory_GiB": r.memory_per_gpu_bytes / 2**30, "fits": r.fits,
            "model_tflop_per_step": r.model_flops_per_step / 1e12,
            "hardware_tflop_per_step": r.hardware_flops_per_step / 1e12,
            "step_time_s": r.step_time_s}


def run() -> Result:
    model, cluster = get_model(MODEL), hardware.Cluster.for_gpus(SYSTEM, TP)
    table = pd.DataFrame([row(model, cluster, s, f) for s in SEQ_LENS for f in (False, True)])
    get = table.set_index(["seq_len", "flash_attention"])
    hi, lo = SEQ_LENS[-1], SEQ_LENS[0]
    n = {"act_off": get.loc[(hi, False), "activations_GiB"],
         "act_on": get.loc[(hi, True), "activations_GiB"],
         "fits_off": bool(get.loc[(hi, False), "fits"]), "fits_on": bool(get.loc[(hi, True), "fits"]),
         "flops_ratio": get.loc[(hi, True), "model_tflop_per_step"] / get.loc[(hi, False), "model_tflop_per_step"],
         "hw_ratio": get.loc[(hi, True), "hardware_tflop_per_step"] / get.loc[(hi, False), "hardware_tflop_per_step"],
         "flops_growth": (get.loc[(hi, True), "model_tflop_per_step"] / hi)
         / (get.loc[(lo, True), "model_tflop_per_step"] / lo),
         "step_on": get.loc[(hi, True), "step_time_s"], "step_off": get.loc[(hi, False), "step_time_s"],
         "cap": cluster.accelerator.memory_bytes / 2**30}
    cfg = {"model": MODEL, "system": SYSTEM, "tp": TP, "global_batch": GLOBAL_BATCH}
    return Result(table, n, takeaway(n), cfg, {
        "memory.png": lambda: lines(table, "activations_GiB", "activation memory per GPU (GiB)",
                                    "activation memory: flash vs standard", n["cap"]),
        "flops.png": lambda: lines(
            table, "hardware_tflop_per_step", "TFLOPs executed per step",
            "FLOPs per step: flash vs standard", note=(
                f"model FLOPs are equal by definition (same math); flash executes "
                f"{100 * (n['hw_ratio'] - 1):.0f}% more at {SEQ_LENS[-1] // 1024}K "
                "(its backward recomputes the scores)"))})


def takeaway(n: dict) -> str:
    hi = SEQ_LENS[-1]
    fit = {True: "fits", False: "does not fit"}
    return (f"At {hi // 1024}K tokens flash attention shrinks {MODEL}'s activations from "
            f"{n['act_off']:.0f} to {n['act_on']:.0f} GiB per GPU (the standard version "
            f"{fit[n['fits_off']]} in {n['cap']:.0f} GiB, the flash version {fit[n['fits_on']]}), "
            f"and the step gets {n['step_off'] / n['step_on']:.2f}x faster because the score matrix "
            f"no longer travels through HBM. The FLOPs do not go down: the forward pass is "
            f"identical and a step executes {n['hw_ratio']:.2f}x the standard version's FLOPs "
            f"(its backward recomputes the scores). "
            f"Per token, the work still grows {n['flops_growth']:.1f}x from {SEQ_LENS[0] // 1024}K "
            f"to {hi // 1024}K: flash attention fixes memory, not the quadratic compute.")


def lines(table: pd.DataFrame, col: str, ylabel: str, title: str, cap: float | None = None,
          note: str | None = None):
    series = {("flash" if f else "standard"): list(table[table.flash_attention == f][col])
              for f in (False, True)}
    return charts.line_chart(list(SEQ_LENS), series, logx=True,
                             title=f"{MODEL}, {SYSTEM} TP{TP}: {title}", ylabel=ylabel,
                             xlabel="sequence length (tokens, log scale)",
                             hline=(cap, "HBM capacity") if cap else None, note=note)


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
