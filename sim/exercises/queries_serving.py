"""Lesson 3 serving queries, answered by the SimPy serving simulator (``simulate_serving``).

Each runs a small seeded workload (tens of requests) so the whole exercise suite stays fast;
queueing, batching and speculative acceptance emerge from the simulation.
"""

from __future__ import annotations

from sim.costs.inference import forward_time
from sim.exercises.answer import Answer, cluster_of, model_of
from sim.exercises.registry import query
from sim.serving import simulate_serving


def _serve(p: dict, **over) -> dict:
    kw = {"model": p["model"], "system": p["system"], "tp": p.get("tp", 1),
          "num_requests": p["requests"], "arrival_rate": p["rate"],
          "prompt_tokens": str(p["prompt"]), "output_tokens": str(p["output"]),
          "max_batch": p.get("max_batch", 256), "seed": p.get("serve_seed", 0)}
    return simulate_serving(**(kw | over)).summary


@query("ttft_p99", "s")
def ttft_p99(p: dict) -> Answer:
    """p99 time to first token under Poisson arrivals; givens: one prompt's prefill alone."""
    s = _serve(p, policy="continuous")
    alone = forward_time(model_of(p), cluster_of(p["system"], p.get("tp", 1)),
                         tp=p.get("tp", 1), prefill_lens=(p["prompt"],)).time_s
    q = s["queueing_delay_s"]["p99"]
    return Answer(s["ttft_s"]["p99"], {"queueing_p99": q, "prefill_alone": alone},
                  f"p99 queueing {1e3 * q:.0f} ms vs {1e3 * alone:.0f} ms of prefill",
                  {"prefill_ms": 1e3 * alone, "queue_p99_ms": 1e3 * q})


@query("batching_speedup", "x")
def batching_speedup(p: dict) -> Answer:
    """Token throughput of continuous batching over static batching, same load and batch cap."""
    c = _serve(p, policy="continuous")["throughput_tokens_per_s"]
    s = _serve(p, policy="static")["throughput_tokens_per_s"]
    _, lo, hi = str(p["output"]).split(":")  # "uniform:LO:HI"
    return Answer(c / s, {"continuous_tokens_per_s": c, "static_tokens_per_s": s},
                  "static batches wait for their longest output; continuous refills slots",
                  {"out_lo": int(lo), "out_hi": int(hi)}, parts_unit="tokens/s")


def _tpot(p: dict, k: int) -> tuple[float, float]:
    spec = ({"draft_model": p["draft"], "speculative_tokens": k, "acceptance": str(p["accept"])}
            if k else {})
    s = _serve(p, policy="continuous", max_batch=p["batch"], num_requests=p["batch"],
               arrival_rate=1e6, **spec)
    return s["tpot_s"]["mean"], s.get("speculative", {}).get("tokens_per_verification", 1.0)


@query("spec_speedup", "x")
def spec_speedup(p: dict) -> Answer:
    """Mean time per output token without speculation over with it (closed batch)."""
    base, _ = _tpot(p, 0)
    spec, per_step = _tpot(p, p["k"])
    return Answer(base / spec, {"tpot_plain": base, "tpot_speculative": spec},
                  f"{per_step:.2f} tokens per verification; each round also runs the draft "
                  f"{p['k']} times", {"tokens_per_verification": per_step} | _spec_steps(p),
                  parts_unit="s")


def _spec_steps(p: dict) -> dict:
    """One plain target decode step, one draft step and one (k+1)-token verification, ms."""
    cluster, tp, b = cluster_of(p["system"], p.get("tp", 1)), p.get("tp", 1), p["batch"]
    ctx = (p["prompt"],) * b

    def fwd(name, **kw):
        return 1e3 * forward_time(model_of(p, name), cluster, tp=tp, **kw).time_s

    return {"t_target_ms": fwd("model", decode_kv_lens=ctx),
            "t_draft_ms": fwd("draft", decode_kv_lens=ctx),
            "t_verify_ms": fwd("model", prefill_lens=(p["k"] + 1,) * b, prefill_ctx=ctx)}


@query("tpot_p99", "s")
def tpot_p99(p: dict) -> Answer:
    """p99 time per output token with prefills sharing the GPU (colocated continuous batching);
    givens: a decode iteration of the same batch with no prefill in it."""
    s = _serve(p, policy="continuous")
    alone = forward_time(model_of(p), cluster_of(p["system"], p.get("tp", 1)),
                         tp=p.get("tp", 1), decode_kv_lens=(p["prompt"],) * 8).time_s
    t = s["tpot_s"]["p99"]
    return Answer(t, {"tpot_p99": t, "decode_step_alone": alone},
                  f"prefills of {p['prompt']}-token prompts stall decode iterations",
                  {"decode_ms": 1e3 * alone, "prefill_ms": 1e3 * _prefill(p)})


def _prefill(p: dict) -> float:
    return forward_time(model_of(p), cluster_of(p["system"], p.get("tp", 1)), tp=p.get("tp", 1),
                        prefill_lens=(p["prompt"],)).time_s


def _decode_alone(p: dict, batch: int) -> float:
    return forward_time(model_of(p), cluster_of(p["system"], p.get("tp", 1)), tp=p.get("tp", 1),
                        decode_kv_lens=(p["prompt"],) * batch).time_s


@query("disagg_gain", "x")
def disagg_gain(p: dict) -> Answer:
    """p99 TPOT colocated (2 replicas) over disaggregated (1 prefill + 1 decode GPU)."""
    co = _serve(p, policy="continuous", replicas=2)["tpot_s"]["p99"]
    dis = _serve(p, policy="disaggregated", prefill_replicas=1, decode_replicas=1)
    return Answer(co / dis["tpot_s"]["p99"], {"colocated": co, "disaggregated":
                  dis["tpot_s"]["p99"]}, "decode GPUs never run a prefill when disaggregated",
                  {"decode_ms": 1e3 * _decode_alone(p, 8), "prefill_ms": 1e3 * _prefill(p),
                   "dis_decode_ms": 1e3 * _decode_alone(p, 16)}, parts_unit="s")
