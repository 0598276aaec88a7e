"""Benchmark (issue 18): the lean serving engine's own cost, pricing excluded.

The workload of ``bench_serving_ff.py`` (Llama-2-7B on one A100 80GB, continuous batching, cap
128, Poisson arrivals, ShareGPT-mean lognormal lengths) run twice in one process on the same
``StepTimer``: the first run prices the grid corners it needs (cost model + engine), the
second finds every corner priced, so its time is the engine alone (the run loop, closed-form
decode runs, iteration log, per-request columns and summary). CPU seconds of this process
(``time.process_time``); reported, never asserted. ``--profile`` prints the engine-only
run's cProfile, sorted by internal time.

    python benchmarks/bench_serving_engine.py [--requests 100000] [--rate 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving_ff import OUTPUT, PROMPT, serve_args  # noqa: E402

from sim.cli.main import build_parser  # noqa: E402
from sim.cli.serve import config_from_args  # noqa: E402
from sim.serving import native  # noqa: E402
from sim.serving.api import build_workload, resolve, run_simulation  # noqa: E402
from sim.serving.kvcache import budget  # noqa: E402
from sim.serving.steptime import StepTimer  # noqa: E402


def setup(n: int, rate: float):
    """What ``clustersim serve`` builds for ``bench_serving_ff.serve_args`` (the CLI's
    configuration, its default serving stack included)."""
    cfg = config_from_args(build_parser("serve").parse_args(serve_args(n, rate, True)))
    cfg = cfg.validate()
    model, plan, cluster, _ = resolve(cfg)
    kv = budget(model, cluster, tp=cfg.tp, pp=cfg.pp, ep=cfg.ep, dtype=cfg.dtype,
                block_size=cfg.block_size, utilization=cfg.gpu_memory_utilization)
    timer = StepTimer(model, cluster, tp=cfg.tp, pp=cfg.pp, ep=cfg.ep, dtype=cfg.dtype,
                      stack=cfg.stack)
    return cfg, build_workload(cfg, n, rate, PROMPT, OUTPUT, "poisson"), timer, kv


def timed(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    cfg, w, timer, kv = setup(a.requests, a.rate)
    cold, first = timed(lambda: run_simulation(cfg, w, timer, kv))
    warm, second = timed(lambda: run_simulation(cfg, w, timer, kv))
    assert first.summary == second.summary
    print(json.dumps({"requests": a.requests, "rate": a.rate, "cold_cpu_s": round(cold, 3),
                      "engine_cpu_s": round(warm, 3), "pricing_cpu_s": round(cold - warm, 3),
                      "engine_us_per_request": round(warm / a.requests * 1e6, 2),
                      "iterations": second.summary["iterations"],
                      "log_rows": sum(len(log) for _, log in second.logs),
                      "load_avg_1m": round(os.getloadavg()[0], 2),
                      "compiled": native.compiled()}))
    if a.profile:
        prof = cProfile.Profile()
        prof.runcall(run_simulation, cfg, w, timer, kv)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
