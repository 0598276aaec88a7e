"""Worked solutions of lesson 3's serving exercises, from the givens alone.

Speculative decoding: expected tokens per verification (1 - a^(k+1)) / (1 - a) for i.i.d.
acceptance a (Leviathan et al. 2023, Eq. 1), a round costing one target pass over k+1
positions plus k draft steps. Static batching: a batch lasts as long as its longest output;
the expected maximum of B draws from U(lo, hi) is lo + (hi - lo) B / (B + 1). Colocated
decodes: a request decoding for T seconds meets rate x T prefills, so its time per token is
d / (1 - rate x P) (a fixed point; Agrawal et al. 2024, Sarathi-Serve, Sec. 2 on generation
stalls). These are mean-value models: the p99 tails and the batching details the serving
simulator resolves are the residual each prompt quotes.
"""

from __future__ import annotations

from sim.exercises.solution import Solution, ms, solver


@solver("spec_speedup", ("accept", "k", "t_target_ms", "t_draft_ms", "t_verify_ms"))
def spec_speedup(v) -> Solution:
    a, k = v["accept"], v["k"]
    tokens = (1 - a ** (k + 1)) / (1 - a)
    round_ms = v["t_verify_ms"] + k * v["t_draft_ms"]
    speedup = tokens * v["t_target_ms"] / round_ms
    steps = (f"Tokens per round: (1 - {a}^{k + 1}) / (1 - {a}) = {tokens:.2f}",
             f"Round: verify {v['t_verify_ms']:.2f} ms + {k} x draft {v['t_draft_ms']:.2f} ms = "
             f"{round_ms:.2f} ms, i.e. {round_ms / tokens:.2f} ms per token",
             f"Speedup = {v['t_target_ms']:.2f} / {round_ms / tokens:.2f} = {speedup:.2f}x")
    verdict = ("speculation wins" if speedup > 1.02 else
               "speculation loses here" if speedup < 0.98 else "speculation breaks even here")
    ideal = (k + 1) * v["t_target_ms"] / round_ms
    return Solution(speedup, steps, {"spec-ideal": ideal,
                                     "spec-no-draft-cost": tokens * v["t_target_ms"]
                                     / v["t_verify_ms"]},
                    f"{speedup:.2f}x: {verdict} (acceptance {a}, k = {k}).")


@solver("batching_speedup", ("max_batch", "out_lo", "out_hi"), residual=("sim_adds", 1.0))
def batching(v) -> Solution:
    b, lo, hi = v["max_batch"], v["out_lo"], v["out_hi"]
    mean = (lo + hi) / 2
    longest = lo + (hi - lo) * b / (b + 1)
    est = longest / mean
    x = est + v["sim_adds"]
    steps = (f"Mean output = ({lo} + {hi}) / 2 = {mean:.0f} tokens",
             f"A static batch of {b} lasts its longest output: {lo} + {hi - lo} x {b}/{b + 1} = "
             f"{longest:.0f} steps, each slot busy {mean:.0f} of them",
             f"Continuous batching keeps slots full: speedup ~ {longest:.0f} / {mean:.0f} = "
             f"{est:.2f}x",
             f"The simulation (arrivals, prefills, partly filled batches) adds "
             f"{v['sim_adds']:+.2f}x: {x:.2f}x")
    return Solution(x, steps, {"static-equals-continuous": 1.0},
                    f"{x:.2f}x the tokens per second from the same GPU, by refilling slots.",
                    f"arrival gaps, prefills and partly filled batches: {v['sim_adds']:+.2f}x")


@solver("ttft_p99", ("prefill_ms", "queue_p99_ms"), residual=("share_ms", 1e-3))
def ttft(v) -> Solution:
    t = (v["prefill_ms"] + v["queue_p99_ms"] + v["share_ms"]) / 1e3
    steps = (f"Wait in the queue (p99): {v['queue_p99_ms']:.0f} ms",
             f"+ the prefill itself: {v['prefill_ms']:.0f} ms",
             f"+ sharing iterations with running decodes: {v['share_ms']:.0f} ms",
             f"= {ms(t)}")
    return Solution(t, steps, {"ignored-queueing": v["prefill_ms"] / 1e3},
                    f"One user in a hundred waits {ms(t)} for a first token, "
                    f"{1e3 * t / v['prefill_ms']:.1f}x the prefill alone.",
                    f"decode iterations sharing the GPU with the prefill: {v['share_ms']:.0f} ms")


def _stalled(d_ms: float, p_ms: float, rate: float) -> float:
    """Mean time per output token when prefills arriving at ``rate`` interrupt decodes."""
    return d_ms / (1 - rate * p_ms / 1e3)


@solver("tpot_p99", ("decode_ms", "prefill_ms", "rate"), residual=("tail_ms", 1e-3))
def tpot(v) -> Solution:
    mean = _stalled(v["decode_ms"], v["prefill_ms"], v["rate"])
    t = (mean + v["tail_ms"]) / 1e3
    busy = v["rate"] * v["prefill_ms"] / 1e3
    steps = (f"Prefills take rate x P = {v['rate']} x {v['prefill_ms']:.0f} ms = {100 * busy:.0f}% "
             "of the GPU's time",
             f"Mean time per token = d / (1 - {busy:.2f}) = {v['decode_ms']:.2f} / "
             f"{1 - busy:.2f} = {mean:.2f} ms",
             f"The p99 request meets more prefills than the mean: +{v['tail_ms']:.2f} ms = "
             f"{ms(t)}")
    return Solution(t, steps, {"prefill-interference": v["decode_ms"] / 1e3},
                    f"p99 TPOT {ms(t)} vs {v['decode_ms']:.1f} ms undisturbed: prefills stall "
                    "every decode that shares their iteration.",
                    f"the p99 tail over the mean: {v['tail_ms']:.2f} ms")


@solver("disagg_gain", ("decode_ms", "prefill_ms", "rate", "dis_decode_ms"),
        residual=("sim_adds", 1.0))
def disagg(v) -> Solution:
    co = _stalled(v["decode_ms"], v["prefill_ms"], v["rate"] / 2)
    est = co / v["dis_decode_ms"]
    x = est + v["sim_adds"]
    steps = (f"Colocated: each of 2 replicas takes rate/2 = {v['rate'] / 2} prefills/s: "
             f"TPOT ~ {v['decode_ms']:.2f} / (1 - {v['rate'] / 2} x {v['prefill_ms'] / 1e3:.3f}) "
             f"= {co:.2f} ms",
             f"Disaggregated: the decode GPU never prefills; its iterations (twice the batch) "
             f"take {v['dis_decode_ms']:.2f} ms",
             f"Ratio ~ {co:.2f} / {v['dis_decode_ms']:.2f} = {est:.2f}; the p99 tails add "
             f"{v['sim_adds']:+.2f}: {x:.2f}x")
    return Solution(x, steps, {"prefill-interference": 1.0},
                    f"Disaggregation cuts p99 TPOT {x:.2f}x with the same two GPUs.",
                    f"p99 tails of both setups: {v['sim_adds']:+.2f}x")
