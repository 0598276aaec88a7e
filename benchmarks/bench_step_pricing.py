"""Benchmark (issue 18): the cost of pricing one serving grid corner with the cost model.

A serving run prices every grid corner its iterations touch once (``StepTimer._price`` ->
``sim.costs.inference.forward_time``). This script runs the workload of
``bench_serving_ff.py`` (Llama-2-7B, one A100 80GB, default serving stack, ShareGPT-like
lengths) in-process, records the corners the run priced (wrapping ``StepTimer._price``), then
prices the same corners again with a fresh ``StepTimer`` and an empty cost context, and
reports seconds per corner (decode-only and mixed separately) and whether every re-priced
value equals the run's bit for bit; then prices them once more on the same, now warm, cost
context (``warm``: the per-corner work without building layer templates). Reported, never
asserted.

    python benchmarks/bench_step_pricing.py [--requests 100000] [--rate 4] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving_ff import serve_args  # noqa: E402

from sim.serving.steptime import StepTimer  # noqa: E402


def corners(n: int, rate: float) -> tuple[list, dict, StepTimer]:
    """The grid corners a ``clustersim serve`` run prices, their prices and its timer."""
    from sim.cli.main import main

    seen: dict = {}
    original = StepTimer._price

    def record(self, key):
        seen["timer"] = self
        return original(self, key)

    StepTimer._price = record
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(serve_args(n, rate, True))
    finally:
        StepTimer._price = original
    timer = seen["timer"]
    return list(timer.cache), dict(timer.cache), timer


def reprice(keys: list, like: StepTimer) -> tuple[float, dict, StepTimer]:
    """Seconds to price ``keys`` cold (fresh timer, empty cost context), the prices and the
    timer."""
    from sim.costs.context import _context

    _context.cache_clear()
    t = StepTimer(like.model, like.hw, **{k: v for k, v in like.kw.items() if k != "stack"},
                  stack=like.stack)
    start = time.perf_counter()
    out = {k: t._cached(k) for k in keys}
    return time.perf_counter() - start, out, t


def reprice_warm(keys: list, timer: StepTimer) -> float:
    """Seconds to price ``keys`` again on ``timer`` with its corner cache emptied: the cost
    context keeps the layer templates, so this is the per-corner work alone."""
    timer.cache.clear()
    start = time.perf_counter()
    for k in keys:
        timer._cached(k)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    keys, priced, timer = corners(args.requests, args.rate)
    row = {"requests": args.requests, "rate": args.rate, "corners": len(keys),
           "run_calls": timer.calls}
    for name, part in (("all", keys), ("decode", [k for k in keys if k[0] == 0]),
                       ("mixed", [k for k in keys if k[0] != 0])):
        secs, out, cold = reprice(part, timer)
        row[f"{name}_corners"] = len(part)
        row[f"{name}_s"] = round(secs, 3)
        row[f"{name}_us_per_corner"] = round(secs / max(len(part), 1) * 1e6, 1)
        row[f"{name}_identical"] = all(out[k] == priced[k] for k in part)
        warm = reprice_warm(part, cold)
        row[f"{name}_warm_us_per_corner"] = round(warm / max(len(part), 1) * 1e6, 1)
        row[f"{name}_calls"] = cold.calls  # cost-model calls (the run's: run_calls)
    row["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(row, indent=1 if args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
