"""Why ZeRO-3 and plain data parallelism fall apart at a fixed global batch.

Lesson 3 (training-and-serving-at-scale), issue 13. With the global batch fixed, every extra
GPU gets fewer sequences, so less compute per step, while the communication per GPU does not
shrink: ZeRO-3 (SC'21's comparison, DeepSpeed 2021: per-parameter gathers, prefetch one call
ahead) re-gathers every layer's weights for the forward and the backward of each
micro-batch, and plain data parallelism all-reduces the full gradient once per step. The
analytic backend prices both under their software stack (``overlap="stack"``: per-call
latency, buckets that can only be reduced once their gradients exist, contention) and under
the perfect-overlap bound ``max``, which hides all of it and stays flat.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

import hardware
from sim.costs.analytic import estimate_train
from sim.costs.analytic_overlap import coll_time
from sim.costs.comm import group_ranks
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots import charts
from sim.report import Result, publish
from sim.stack import get_stack
from sim.stack.apply import apply_stack

LESSON = "training-and-serving-at-scale"
TOPIC = "ZeRO-3 and data-parallel throughput per GPU vs GPUs at a fixed global batch"
REFUTES = ("parallelism-is-data-splitting",)

SYSTEM = "dgx-a100-80gb"
SEQ_LEN = 2048
SERIES = {  # label -> (model, zero, global batch, stack, gpu counts)
    "gpt3-175b ZeRO-3 (deepspeed-zero3-2021)": ("gpt3-175b", 3, 1536, "deepspeed-zero3-2021",
                                                 (384, 768, 1536)),
    "megatron-gpt-3.6b DP (megatron-core-2024)": ("megatron-gpt-3.6b", 0, 512,
                                                   "megatron-core-2024", (64, 128, 256, 512)),
}
OVERLAPS = ("stack", "max")


def point(label: str, gpus: int, overlap: str) -> dict:
    name, zero, gb, stack, _ = SERIES[label]
    plan = ParallelPlan(tp=1, pp=1, dp=gpus, zero=zero, micro_batch=gb // gpus,
                        global_batch=gb, seq_len=SEQ_LEN, recompute="full", overlap=overlap)
    model, plan = apply_stack(get_model(name), plan, stack)
    cluster = hardware.Cluster.for_gpus(SYSTEM, gpus)
    r = estimate_train(model, plan, cluster)
    t = r.time_breakdown_s
    calls, per_call = _calls(model, plan, cluster, get_stack(stack))
    return {"series": label, "gpus": gpus, "overlap": overlap,
            "sequences_per_gpu": gb // gpus, "tflops_per_gpu": r.tflops_per_gpu,
            "step_time_s": r.step_time_s, "compute_s": t["compute"],
            "comm_exposed_s": t["communication_exposed"],
            "comm_issued_s": r.extras["communication_by_group_s"]["dp"],
            "calls_per_step": calls, "latency_per_call_us": 1e6 * per_call,
            "latency_s": calls * per_call, "fits": r.fits}


def _calls(model, plan, cluster, stack) -> tuple[int, float]:
    """(collective calls per step, fixed latency of one call: a 1-byte call's time)."""
    from sim.costs.analytic_comm import TENSORS_PER_LAYER
    from sim.model.params import count_params

    ranks = tuple(group_ranks(replace(plan, overlap="max"), "dp"))
    algos = stack.collective_algorithms
    if plan.zero == 3:  # per micro-batch: gather (fwd), gather + reduce-scatter (bwd) per call
        per_layer = TENSORS_PER_LAYER if stack.zero3_granularity == "parameter" else 1
        calls = 3 * model.n_layers * per_layer * plan.n_microbatches
        return calls, coll_time("all_gather", 1.0, ranks, cluster, algos)
    grads = count_params(model).total * plan.optimizer.grad_bytes
    bucket = stack.bucket_bytes(len(ranks), plan.optimizer.grad_bytes) or grads
    return -(-int(grads) // int(bucket)), coll_time("all_reduce", 1.0, ranks, cluster, algos)


def run() -> Result:
    table = pd.DataFrame([point(s, g, o) for s, v in SERIES.items() for g in v[4]
                          for o in OVERLAPS])
    n = {}
    for i, (s, v) in enumerate(SERIES.items()):
        st = table[(table.series == s) & (table.overlap == "stack")].set_index("gpus")
        mx = table[(table.series == s) & (table.overlap == "max")].set_index("gpus")
        lo, hi = v[4][0], v[4][-1]
        n |= {f"{i}_lo": lo, f"{i}_hi": hi, f"{i}_tf_lo": st.loc[lo, "tflops_per_gpu"],
              f"{i}_tf_hi": st.loc[hi, "tflops_per_gpu"],
              f"{i}_max_lo": mx.loc[lo, "tflops_per_gpu"],
              f"{i}_max_hi": mx.loc[hi, "tflops_per_gpu"],
              f"{i}_exp_lo": 100 * st.loc[lo, "comm_exposed_s"] / st.loc[lo, "step_time_s"],
              f"{i}_exp_hi": 100 * st.loc[hi, "comm_exposed_s"] / st.loc[hi, "step_time_s"],
              f"{i}_calls_hi": st.loc[hi, "calls_per_step"],
              f"{i}_lat_hi": st.loc[hi, "latency_s"],
              f"{i}_call_us_lo": st.loc[lo, "latency_per_call_us"],
              f"{i}_call_us_hi": st.loc[hi, "latency_per_call_us"]}
    cfg = {"system": SYSTEM, "seq_len": SEQ_LEN,
           "series": {k: {"model": v[0], "zero": v[1], "global_batch": v[2], "stack": v[3],
                          "gpus": list(v[4])} for k, v in SERIES.items()}}
    return Result(table, n, takeaway(n), cfg, {"tflops_vs_gpus.png": lambda: chart(table)})


def takeaway(n: dict) -> str:
    z, d = list(SERIES)
    return (f"{z}: {n['0_tf_lo']:.0f} TFLOP/s per GPU on {n['0_lo']} GPUs falls to "
            f"{n['0_tf_hi']:.0f} on {n['0_hi']} at the same global batch (perfect overlap "
            f"would stay at {n['0_max_lo']:.0f}-{n['0_max_hi']:.0f}): each GPU still gathers "
            "every layer's full weights for each micro-batch, but has fewer sequences of "
            f"compute to hide them behind, so exposed communication grows from "
            f"{n['0_exp_lo']:.0f}% to {n['0_exp_hi']:.0f}% of the step; its "
            f"{n['0_calls_hi']:,.0f} calls per step (one per parameter tensor) pay "
            f"{n['0_call_us_lo']:.0f}-{n['0_call_us_hi']:.0f} us of latency each, "
            f"{n['0_lat_hi']:.1f} s in all at {n['0_hi']} GPUs. {d}: {n['1_tf_lo']:.0f} falls "
            f"to {n['1_tf_hi']:.0f} TFLOP/s per GPU from {n['1_lo']} to {n['1_hi']} GPUs (the "
            f"bound: {n['1_max_lo']:.0f} to {n['1_max_hi']:.0f}, smaller micro-batches run "
            "smaller GEMMs): gradient buckets are reduced only once the backward has produced "
            "them, so the shorter the backward the more of them stick out, exposed "
            f"communication growing from {n['1_exp_lo']:.1f}% to {n['1_exp_hi']:.1f}% of the "
            "step. At a fixed batch, more GPUs means more communication per unit of work.")


def chart(table: pd.DataFrame):
    series = {f"{s} ({o})": list(table[(table.series == s) & (table.overlap == o)]
                                  .tflops_per_gpu) for s in SERIES for o in OVERLAPS}
    xs = sorted(set(table.gpus))
    padded = {k: _on(xs, table, k) for k in series}
    return charts.line_chart(xs, padded, logx=True,
                             title="Throughput per GPU at a fixed global batch",
                             xlabel="GPUs (log scale)", ylabel="TFLOP/s per GPU")


def _on(xs, table, key) -> list:
    label, overlap = key.rsplit(" (", 1)
    sel = table[(table.series == label) & (table.overlap == overlap.rstrip(")"))]
    by = dict(zip(sel.gpus, sel.tflops_per_gpu, strict=True))
    return [by.get(x, float("nan")) for x in xs]


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
