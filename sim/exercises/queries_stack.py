"""Lesson 3 (training-and-serving-at-scale): throughput under a software stack (issue 13).

``zero3_scaling_kept``: the TFLOP/s per GPU a ZeRO-3 run keeps when the GPU count grows at a
fixed global batch, as a fraction of the smallest run's, both priced by ``estimate_train``
under the stack's overlap physics (``overlap="stack"``: per-layer gathers with prefetch,
per-call latency, exposed reduce-scatters; ``sim.costs.analytic_overlap``).
"""

from __future__ import annotations

from sim.costs.analytic import estimate_train
from sim.exercises.answer import Answer, cluster_of, model_of
from sim.exercises.registry import query
from sim.plan import ParallelPlan
from sim.stack.apply import apply_stack


def _run(p: dict, gpus: int):
    plan = ParallelPlan(tp=1, pp=1, dp=gpus, zero=3, micro_batch=p["global_batch"] // gpus,
                        global_batch=p["global_batch"], seq_len=p["seq_len"],
                        recompute=p.get("recompute", "full"), overlap="stack")
    model, plan = apply_stack(model_of(p), plan, p["stack"])
    return estimate_train(model, plan, cluster_of(p["system"], gpus))


def _tflops(p: dict, gpus: int) -> tuple[float, dict]:
    r = _run(p, gpus)
    return r.tflops_per_gpu, r.time_breakdown_s


@query("zero3_scaling", "%")
def zero3_scaling_kept(p: dict) -> Answer:
    """TFLOP/s per GPU on ``gpus`` GPUs over that on ``base_gpus``, same global batch; givens:
    the base step, and the compute and issued communication of a step on ``gpus`` GPUs."""
    b, r = _run(p, p["base_gpus"]), _run(p, p["gpus"])
    base, tf, t = b.tflops_per_gpu, r.tflops_per_gpu, r.time_breakdown_s
    share = t["communication_exposed"] / sum(t.values())
    return Answer(tf / base, {"base_tflops_per_gpu": base, "tflops_per_gpu": tf},
                  f"{100 * share:.0f}% of the {p['gpus']}-GPU step is exposed communication",
                  givens={"base_tflops_per_gpu": round(base), "base_step_s": b.step_time_s,
                          "compute_s": t["compute"],
                          "comm_s": sum(r.extras["communication_by_group_s"].values())},
                  parts_unit="TFLOP/s")
