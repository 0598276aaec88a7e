"""How fast is the training plan search? Plans per second over the whole space.

Searches Llama-3-70B on 64, 256 and 1,024 H100s (global batch 1,024 x 4,096 tokens) and
reports the space size, how many plans were legal and fit (evaluated), how many needed the
full analytic timing (priced; the others were bounded out), and plans per CPU-second of this
process (other load on the machine excluded), cold (fresh caches) and warm (second run).

    .venv/bin/python benchmarks/bench_search.py [--json] [--gpus 1024]
"""

from __future__ import annotations

import argparse
import json
import time

from hardware import Cluster, get_system
from sim.model import get_model
from sim.search import search_train

MODEL, SYSTEM, GLOBAL_BATCH, SEQ = "llama3-70b", "dgx-h100", 1024, 4096


def timed(model, cluster) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    found = search_train(model, cluster, GLOBAL_BATCH, SEQ, top=5)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"space": found.space_size, "evaluated": found.evaluated, "priced": found.priced,
            "cpu_s": cpu, "wall_s": wall, "plans_per_cpu_s": found.space_size / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--gpus", type=int, nargs="*", default=[64, 256, 1024])
    args = ap.parse_args()
    model, system = get_model(MODEL), get_system(SYSTEM)
    out = {}
    for n in args.gpus:
        cluster = Cluster.for_gpus(system, n)
        out[n] = {"cold": timed(model, cluster), "warm": timed(model, cluster)}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for n, r in out.items():
        c, w = r["cold"], r["warm"]
        print(f"{MODEL} on {n:5d} GPUs: {c['space']:8,d} plans, {c['evaluated']:7,d} feasible, "
              f"{c['priced']:6,d} timed | cold {c['cpu_s']:6.2f} CPU-s "
              f"({c['plans_per_cpu_s']:9,.0f} plans/s, wall {c['wall_s']:.1f} s) | warm "
              f"{w['cpu_s']:6.2f} CPU-s ({w['plans_per_cpu_s']:9,.0f} plans/s)")


if __name__ == "__main__":
    main()
