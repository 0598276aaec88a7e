"""How fast the training DES simulates one step (issue 4's speed targets).

Three configurations: Llama-3-405B on 16,384 H100s (TP8 x PP16 x DP128, 1F1B, 16 microbatches
per replica, the Llama 3 paper's 8K-sequence pre-training layout; target <= ~2 s), once under
the overlap bound and once under the default software stack (``overlap="stack"``), and
Llama-3-8B on 64 H100s (TP2 x PP4 x DP8; target well under 1 s). Each is run once to warm
the cost model's caches and then timed over a few repetitions (median wall seconds). Prints
a table, or one JSON document with --json.

    .venv/bin/python benchmarks/bench_des.py [--json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hardware  # noqa: E402
from sim.des import simulate_train  # noqa: E402
from sim.model import get_model  # noqa: E402
from sim.plan import ParallelPlan  # noqa: E402

CASES = {
    "llama3-405b_16384xH100_tp8_pp16_dp128": (
        "llama3-405b", 16384,
        ParallelPlan(tp=8, pp=16, dp=128, micro_batch=1, global_batch=2048, seq_len=8192,
                     sequence_parallel=True, schedule="1f1b", zero=1)),
    "llama3-405b_16384xH100_tp8_pp16_dp128_stack": (  # the same under the default stack
        "llama3-405b", 16384,
        ParallelPlan(tp=8, pp=16, dp=128, micro_batch=1, global_batch=2048, seq_len=8192,
                     sequence_parallel=True, schedule="1f1b", zero=1, overlap="stack")),
    "llama3-8b_64xH100_tp2_pp4_dp8": (
        "llama3-8b", 64,
        ParallelPlan(tp=2, pp=4, dp=8, micro_batch=1, global_batch=128, seq_len=4096,
                     schedule="1f1b")),
}


def run_case(model_name: str, gpus: int, plan: ParallelPlan, repeat: int) -> dict:
    model = get_model(model_name)
    cluster = hardware.Cluster.for_gpus("dgx-h100", gpus)
    first = time.perf_counter()
    result = simulate_train(model, plan, cluster)
    cold = time.perf_counter() - first
    times = []
    for seed in range(repeat):
        t0 = time.perf_counter()
        simulate_train(model, plan, cluster, seed=seed)
        times.append(time.perf_counter() - t0)
    d = result.to_dict()
    return {"wall_s_median": statistics.median(times), "wall_s_cold": cold,
            "events": result.events, "step_time_s": d["step_time_s"],
            "analytic_step_time_s": d["analytic_step_time_s"],
            "bubble_fraction": d["bubble_fraction"], "mfu": d["mfu"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    out = {name: run_case(*case, args.repeat) for name, case in CASES.items()}
    if args.json:
        from sim.cli.common import emit_json

        return emit_json(out)
    for name, r in out.items():
        print(f"{name}: {r['wall_s_median']:.3f} s per simulated step (cold "
              f"{r['wall_s_cold']:.2f} s, {r['events']} events); step {r['step_time_s']:.3f} s "
              f"(analytic {r['analytic_step_time_s']:.3f} s), bubble "
              f"{r['bubble_fraction']:.3f}, MFU {r['mfu']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
