"""How long does one explorer update take in the lesson lab (server side, over HTTP)?

Moves each analytic explorer's main control through values not seen before (a cache miss:
the CLI command really runs) and back (a hit), timing each request through the ASGI app with
Starlette's TestClient; the browser adds a 120 ms debounce and the drawing. Target: an
analytic update answers in under 300 ms on this 2-core machine.

    .venv/bin/python benchmarks/bench_lab.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from starlette.testclient import TestClient

from sim.cli.lab.app import create_app

MOVES = {  # explorer route -> the base options and the control moved through its values
    "/api/explore/attention": ({"model": "llama3-8b", "contexts": "1024,2048,4096,8192,16384,"
                                "32768,65536,131072"}, "window", (512, 1024, 2048, 8192, 16384)),
    "/api/explore/kv": ({"model": "llama3-70b", "tp": 8}, "batch", (1, 2, 4, 8, 16)),
    "/api/explore/moe": ({"model": "mixtral-8x7b"}, "experts", (4, 16, 32, 64, 128)),
    "/api/train": ({"model": "llama3-70b", "system": "dgx-h100", "gpus": 64, "tp": 8, "pp": 4,
                    "global_batch": 256, "seq": 4096, "recompute": "selective",
                    "sequence_parallel": True}, "global_batch", (64, 128, 512, 1024)),
}


def timed(client: TestClient, route: str, body: dict) -> float:
    t0 = time.perf_counter()
    r = client.post(route, json=body)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed


def bench() -> dict:
    out = {}
    with TestClient(create_app()) as client:
        client.get("/api/exercises")  # imports and parser built once, as in a running lab
        for route, (base, key, values) in MOVES.items():
            cold = [timed(client, route, {**base, key: v}) for v in values]
            warm = [timed(client, route, {**base, key: v}) for v in values]
            out[route] = {"control": key, "cold_ms_median": 1e3 * statistics.median(cold),
                          "cold_ms_max": 1e3 * max(cold),
                          "warm_ms_median": 1e3 * statistics.median(warm)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    res = bench()
    if ap.parse_args().json:
        print(json.dumps(res, indent=2))
        return
    for route, r in res.items():
        print(f"{route:26s} {r['control']:8s} cold median {r['cold_ms_median']:6.1f} ms, "
              f"max {r['cold_ms_max']:6.1f} ms; cached {r['warm_ms_median']:5.1f} ms")
    worst = max(r["cold_ms_max"] for r in res.values())
    print(f"slowest uncached update: {worst:.0f} ms (target < 300 ms)")


if __name__ == "__main__":
    main()
