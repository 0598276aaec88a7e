"""How fast does `clustersim op` answer? In-process (warm) seconds per query and the CPU time of
one cold `clustersim op ...` process (start-up and imports included; CPU time, so other load
on a shared machine is excluded). Target: well under a second.

    .venv/bin/python benchmarks/bench_op.py [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from sim.costs import opquery

QUERIES = {
    "matmul": lambda: opquery.matmul("a100-sxm-80gb", 4096, 4096, 4096),
    "layer": lambda: opquery.layer("llama3-8b", "h100-sxm", 2048, 2),
    "attention": lambda: opquery.attention("llama3-8b", "a100-sxm-80gb", "decode", 64, 1, 4096),
    "collective": lambda: opquery.collective("dgx-h100", "all_reduce", 2**26, 8),
    "iteration": lambda: opquery.iteration("llama3-8b", "dgx-a100-80gb", 1, [512],
                                           [1000] * 32),
}
CLI = ["op", "layer", "--model", "llama3-8b", "--accelerator", "h100-sxm", "--tokens", "2048",
       "--json"]


def warm(fn, repeats: int = 20) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def cold_cli_cpu_s() -> float:
    exe = Path(sys.executable).with_name("clustersim")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(exe), *CLI], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {f"{k}_warm_s": warm(fn) for k, fn in QUERIES.items()}
    out["cold_cli_layer_cpu_s"] = cold_cli_cpu_s()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        print(f"{k:28s} {v * 1e3:9.2f} ms")


if __name__ == "__main__":
    main()
