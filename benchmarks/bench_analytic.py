"""How many training plans per second does the analytic backend evaluate on one core?

A config search calls ``estimate_train`` in a loop over plans; this sweeps a realistic plan
grid (llama3-70b and mixtral-8x7b on DGX H100 clusters: tp, pp, zero, micro-batch, global batch,
recompute, schedule, overlap incl. the default stack) and reports legal evaluations per second, first pass (per-layer
caches cold) and second pass (warm). Target: >= 10,000 plans/s.

    .venv/bin/python benchmarks/bench_analytic.py [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from hardware import Cluster, get_system
from sim.costs.analytic import estimate_train
from sim.errors import PlanError
from sim.model import get_model
from sim.plan import ParallelPlan

GRID = dict(tp=(1, 2, 4, 8), pp=(1, 2, 4, 8), zero=(0, 1), micro_batch=(1, 2),
            global_batch=(512, 1024, 2048), recompute=("none", "selective", "full"),
            schedule=("1f1b", "interleaved"), overlap=("max", "sum", "stack"))


def plans(n_gpus: int, ep_options=(1,)):
    keys = list(GRID)
    for values in itertools.product(*GRID.values(), ep_options):
        kw = dict(zip(keys, values[:-1], strict=True))
        v = 2 if kw["schedule"] == "interleaved" else 1
        yield ParallelPlan(dp=0, ep=values[-1], seq_len=4096, virtual_stages=v,
                           sequence_parallel=kw["tp"] > 1, **kw)


def sweep(model, cluster, candidates) -> tuple[int, float]:
    """(legal plans evaluated, CPU seconds of this process: one core, other load excluded)."""
    ok, start = 0, time.process_time()
    for plan in candidates:
        try:
            estimate_train(model, plan, cluster)
            ok += 1
        except PlanError:
            pass
    return ok, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 512)
    out = {}
    for name, eps in (("llama3-70b", (1,)), ("mixtral-8x7b", (1, 8))):
        model = get_model(name)
        candidates = list(plans(512, eps))
        cold = sweep(model, cluster, candidates)
        warm = sweep(model, cluster, candidates)
        out[name] = {"plans": cold[0], "cold_plans_per_s": cold[0] / cold[1],
                     "warm_plans_per_s": warm[0] / warm[1]}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, r in out.items():
        print(f"{name:14s} {r['plans']:6d} legal plans  cold {r['cold_plans_per_s']:9,.0f}/s"
              f"  warm {r['warm_plans_per_s']:9,.0f}/s  (target 10,000/s)")


if __name__ == "__main__":
    main()
