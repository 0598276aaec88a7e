"""Static vs continuous batching under rising load: throughput and tail latency.

Lesson 3 (training-and-serving-at-scale). Concepts: static batching runs a batch until its
longest request finishes, so slots of finished requests sit idle; continuous (iteration-level)
batching (Orca, Yu et al. 2022) lets finished sequences leave and waiting ones join at every
iteration. With output lengths that vary, the gap grows with load. Llama-3-8B on one H100,
Poisson arrivals, simulated by the serving engine at each arrival rate.
"""

from __future__ import annotations

import pandas as pd

from sim.plots import charts
from sim.plots.serving import static_vs_continuous
from sim.report import Result, publish
from sim.serving import simulate_serving

LESSON = "training-and-serving-at-scale"
TOPIC = "static vs continuous batching under load"
REFUTES = ()

MODEL = "llama3-8b"
SYSTEM = "dgx-h100"
POLICIES = ("static", "continuous")
ARRIVAL_RATES = (2, 5, 10, 20, 40)  # requests per second
NUM_REQUESTS = 300
MAX_BATCH = 32  # sequences per batch, both policies
PROMPT_TOKENS = "512"
OUTPUT_TOKENS = "uniform:16:1024"  # output lengths vary: static batches wait for the longest
SEED = 0
TIMELINE_RATE = 10  # requests per second of the side-by-side KV/batch-over-time chart


def row(policy: str, rate: float, keep: dict) -> dict:
    r = simulate_serving(num_requests=NUM_REQUESTS, arrival_rate=rate, policy=policy,
                         prompt_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS,
                         max_batch=MAX_BATCH, model=MODEL, system=SYSTEM, seed=SEED)
    s = r.summary
    if rate == TIMELINE_RATE:
        keep[policy] = r
    return {"policy": policy, "arrival_rate_rps": rate,
            "throughput_tokens_per_s": s["throughput_tokens_per_s"],
            "ttft_p99_s": s["ttft_s"]["p99"], "e2e_p99_s": s["e2e_s"]["p99"],
            "tpot_p50_ms": 1e3 * s["tpot_s"]["p50"], "mean_batch": float(s["batch_size_mean"]),
            "saturated": bool(s["saturated"])}


def run() -> Result:
    kept: dict = {}
    table = pd.DataFrame([row(p, r, kept) for p in POLICIES for r in ARRIVAL_RATES])
    get = table.set_index(["policy", "arrival_rate_rps"])
    hi = ARRIVAL_RATES[-1]
    sat = {p: [r for r in ARRIVAL_RATES if get.loc[(p, r), "saturated"]] for p in POLICIES}
    n = {"thr_s": get.loc[("static", hi), "throughput_tokens_per_s"],
         "thr_c": get.loc[("continuous", hi), "throughput_tokens_per_s"],
         "e2e_s": get.loc[("static", hi), "e2e_p99_s"], "e2e_c": get.loc[("continuous", hi), "e2e_p99_s"],
         "sat_s": min(sat["static"], default=0), "sat_c": min(sat["continuous"], default=0),
         "batch_s": get.loc[("static", hi), "mean_batch"],
         "batch_c": get.loc[("continuous", hi), "mean_batch"]}
    cfg = {"model": MODEL, "system": SYSTEM, "max_batch": MAX_BATCH, "prompt_tokens": PROMPT_TOKENS,
           "output_tokens": OUTPUT_TOKENS, "num_requests": NUM_REQUESTS, "seed": SEED}
    return Result(table, n, takeaway(n), cfg, {
        "throughput_latency.png": lambda: chart(table),
        "over_time.png": lambda: static_vs_continuous(
            kept["static"], kept["continuous"],
            title=f"{MODEL} at {TIMELINE_RATE} req/s: KV cache and batch over time")})


def _sat(rate) -> str:
    return f"saturates at {rate} req/s" if rate else "keeps up at every rate tried"


def takeaway(n: dict) -> str:
    hi = ARRIVAL_RATES[-1]
    return (f"At {hi} requests/s continuous batching delivers {n['thr_c']:.0f} output tokens/s "
            f"against {n['thr_s']:.0f} for static batching ({n['thr_c'] / n['thr_s']:.1f}x), "
            f"with a p99 end-to-end latency of {n['e2e_c']:.1f} s against {n['e2e_s']:.1f} s. "
            f"Static batching {_sat(n['sat_s'])} and continuous batching {_sat(n['sat_c'])}: "
            f"static batches keep finished requests' slots idle until the longest output is "
            f"done (mean {n['batch_s']:.1f} running sequences vs {n['batch_c']:.1f}).")


def chart(table: pd.DataFrame):
    curves = {p: (list(table[table.policy == p].throughput_tokens_per_s),
                  list(table[table.policy == p].e2e_p99_s)) for p in POLICIES}
    return charts.throughput_latency(curves, latency_label="p99 end-to-end latency (s, log scale)",
                                     title=f"{MODEL}: static vs continuous batching "
                                           f"({', '.join(map(str, ARRIVAL_RATES))} req/s)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
