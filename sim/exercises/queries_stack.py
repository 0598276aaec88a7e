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


def _tflops(p: dict, gpus: int) -> tuple[float, dict]:
    plan = ParallelPlan(tp=1, pp=1, dp=gpus, zero=3, micro_batch=p["global_batch"] // gpus,
                        global_batch=p["global_batch"], seq_len=p["seq_len"],
                        recompute=p.get("recompute", "full"), overlap="stack")
    model, plan = apply_stack(model_of(p), plan, p["stack"])
    r = estimate_train(model, plan, cluster_of(p["system"], gpus))
    return r.tflops_per_gpu, r.time_breakdown_s


@query("zero3_scaling", "%")
def zero3_scaling_kept(p: dict) -> Answer:
    """TFLOP/s per GPU on ``gpus`` GPUs over that on ``base_gpus``, same global batch."""
    base, _ = _tflops(p, p["base_gpus"])
    tf, t = _tflops(p, p["gpus"])
    share = t["communication_exposed"] / sum(t.values())
    return Answer(tf / base, {"base_tflops_per_gpu": base, "tflops_per_gpu": tf},
                  f"{100 * share:.0f}% of the {p['gpus']}-GPU step is exposed communication",
                  givens={"base_tflops_per_gpu": round(base)}, parts_unit="TFLOP/s")
