"""MoE at decode time: equal compute per token, but the weights read grow with the batch.

Lesson 1 (mixture-of-experts), meeting Lesson 3's serving. Concepts: decoding is memory-bound,
so its time is set by the bytes read, not the FLOPs; one token touches top-k experts, but a
batch of tokens touches the union of their experts, E * (1 - (1 - k/E)^T) of them for T tokens
routed uniformly, and soon every expert's weights are streamed from HBM each step. Mixtral-8x7B
is set beside Llama-2-13B (about the same active parameters) and Mistral-7B (Mixtral's own
attention and KV cache with a single FFN), each on two H100s (TP2), one decode step priced by
the serving cost model at every batch size.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.inference import forward_time
from sim.costs.moe import expected_experts_touched
from sim.model import get_model
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "MoE decode: experts touched and weights read vs batch size"
REFUTES = ("params-equal-compute",)

MODELS = ("mistral-7b", "llama2-13b", "mixtral-8x7b")
SYSTEM = "dgx-h100"
TP = 2
BATCHES = (1, 4, 16, 64, 256)  # sequences decoding together
KV_LEN = 2048  # tokens already in each sequence's KV cache


def row(name: str, cluster, batch: int) -> dict:
    model = get_model(name)
    s = forward_time(model, cluster, tp=TP, decode_kv_lens=[KV_LEN] * batch)
    touched = (expected_experts_touched(model.moe.n_experts, model.moe.top_k, batch)
               if model.moe else 0.0)
    return {"model": name, "batch": batch, "step_ms": 1e3 * s.time_s,
            "tokens_per_s": batch / s.time_s, "gflop_per_token": s.flops * TP / batch / 1e9,
            "weights_read_GB": s.weight_bytes * TP / 1e9, "kv_read_GB": s.kv_bytes * TP / 1e9,
            "experts_touched_per_layer": touched, "bound": s.bound}


def run() -> Result:
    cluster = hardware.Cluster.for_gpus(SYSTEM, TP)
    table = pd.DataFrame([row(m, cluster, b) for m in MODELS for b in BATCHES])
    get = table.set_index(["model", "batch"])
    lo, mid, hi = BATCHES[0], 16, BATCHES[-1]
    n = {f"{k}_{b}_{col}": get.loc[(m, b), col]
         for k, m in (("moe", "mixtral-8x7b"), ("dense", "llama2-13b"), ("small", "mistral-7b"))
         for b in (lo, mid, hi) for col in ("step_ms", "weights_read_GB", "kv_read_GB",
                                             "gflop_per_token", "experts_touched_per_layer")}
    cfg = {"models": list(MODELS), "system": SYSTEM, "tp": TP, "kv_len": KV_LEN}
    return Result(table, n, takeaway(n), cfg, {
        "step_time.png": lambda: curves(table, "step_ms", "decode step time (ms, log scale)"),
        "weights_read.png": lambda: curves(table, "weights_read_GB",
                                           "weights read per step (GB, log scale)")})


def takeaway(n: dict) -> str:
    lo, mid, hi = BATCHES[0], 16, BATCHES[-1]
    ratio = n[f"moe_{mid}_step_ms"] / n[f"dense_{mid}_step_ms"]
    kv = ("its multi-head KV cache" if n[f"dense_{hi}_kv_read_GB"] > n[f"moe_{hi}_kv_read_GB"]
          else "its KV cache")
    last = ("the dense 13B is the slower one, held back by " + kv
            + f" ({n[f'dense_{hi}_kv_read_GB']:.0f} GB read per step against "
            f"{n[f'moe_{hi}_kv_read_GB']:.0f} GB)"
            if n[f"dense_{hi}_step_ms"] > n[f"moe_{hi}_step_ms"] else
            "Mixtral is still the slower one")
    return (f"Per token Mixtral-8x7B computes {n[f'moe_{lo}_gflop_per_token']:.1f} GFLOPs, "
            f"like Llama-2-13B's {n[f'dense_{lo}_gflop_per_token']:.1f}, and at batch {lo} it "
            f"reads {n[f'moe_{lo}_weights_read_GB']:.1f} GB of weights and decodes "
            f"{_pace(n[f'moe_{lo}_step_ms'] / n[f'dense_{lo}_step_ms'])} "
            f"({n[f'moe_{lo}_step_ms']:.1f} vs {n[f'dense_{lo}_step_ms']:.1f} ms). At batch "
            f"{mid} its tokens touch {n[f'moe_{mid}_experts_touched_per_layer']:.1f} of 8 experts "
            f"per layer, every step streams {n[f'moe_{mid}_weights_read_GB']:.0f} GB, and a step "
            f"takes {ratio:.1f}x the dense model's: the 47B parameters are paid for in bandwidth "
            f"even though the compute matches a 13B model. At batch {hi} {last}.")


def _pace(ratio: float) -> str:
    if abs(ratio - 1) < 0.15:
        return "about as fast"
    return "faster" if ratio < 1 else "slower"


def curves(table: pd.DataFrame, col: str, ylabel: str):
    series = {m: list(table[table.model == m][col]) for m in MODELS}
    return charts.line_chart(list(BATCHES), series, logx=True, logy=True, ylabel=ylabel,
                             title=f"Decode on {SYSTEM}, TP{TP} (KV cache {KV_LEN} tokens)",
                             xlabel="sequences in the batch (log scale)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
