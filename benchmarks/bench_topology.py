"""How fast is a 16,384-GPU cluster to build and to query?

Measures, per system (CPU seconds of this process, best of 3, so other load on the machine is
excluded): constructing ``Cluster.for_gpus(system, 16384)``, building its (compact) networkx
graph, one point-to-point bandwidth query, the ring bandwidth of a data-parallel group that
spans every node (all 8 such groups running at once) and an all-to-all over a 64-rank
expert-parallel group (256 such groups at once). Target: construction well under a second.

    .venv/bin/python benchmarks/bench_topology.py [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from hardware import Cluster

SYSTEMS = ("dgx-h100", "gb200-nvl72", "dgx-v100", "mi300x-8")
N_GPUS = 16384


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def measure(name: str) -> dict:
    probe = Cluster.for_gpus(name, 8)
    n = N_GPUS // probe.gpus_per_node * probe.gpus_per_node  # whole nodes (72 for NVL72)
    fresh = lambda: Cluster.for_gpus(name, n)  # noqa: E731
    c = fresh()
    dp = list(range(0, n, c.gpus_per_node))
    ep = list(range(64))
    return {
        "system": name, "n_gpus": n,
        "build_s": best_of(fresh),
        "graph_s": best_of(lambda: fresh().graph),
        "graph_edges": c.graph.number_of_edges(),
        "bandwidth_query_s": best_of(lambda: c.bandwidth(0, n - 1)),
        "ring_dp_s": best_of(lambda: fresh().ring_bandwidth(dp)),
        "all_to_all_ep64_s": best_of(lambda: fresh().all_to_all_bandwidth(ep), repeat=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    rows = [measure(name) for name in SYSTEMS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'system':<12} {'GPUs':>6} {'build':>9} {'graph':>8} {'edges':>6} {'p2p':>9} "
          f"{'ring(dp)':>9} {'a2a(ep64)':>9}")
    for r in rows:
        print(f"{r['system']:<12} {r['n_gpus']:>6} {r['build_s'] * 1e3:>7.3f}ms "
              f"{r['graph_s']:>7.3f}s {r['graph_edges']:>6} {r['bandwidth_query_s'] * 1e6:>7.1f}us"
              f" {r['ring_dp_s']:>8.3f}s {r['all_to_all_ep64_s']:>8.3f}s")


if __name__ == "__main__":
    main()
