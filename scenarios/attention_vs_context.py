"""Attention cost vs context length: full, sliding-window, dilated and linear attention.

Lesson 2 (long-context-and-efficient-attention). Concepts: the quadratic attention bottleneck
(every query scores every earlier key), sliding-window attention ~ s*W (Beltagy et al. 2020;
Mistral 7B), dilated/strided attention (Child et al. 2019), linear attention O(s*d^2)
(Katharopoulos et al. 2020). The same Llama-3-8B body is priced with each attention pattern.
"""

from __future__ import annotations

import pandas as pd

from sim.costs.flops import forward_flops
from sim.model import AttentionConfig, get_model
from sim.plan import Shape
from sim.plots import charts
from sim.report import Result, publish

LESSON = "long-context-and-efficient-attention"
TOPIC = "attention FLOPs vs context: full, sliding-window, dilated, linear"
REFUTES = ("long-context-is-just-longer-training", "flash-and-kv-solve-long-context")

MODEL = "llama3-8b"
CONTEXTS = (1024, 4096, 16384, 65536, 131072)  # tokens per sequence
WINDOW = 4096  # sliding-window size (tokens), as in Mistral 7B
DILATION = 8  # dilated attention: every 8th key
VARIANTS = {
    "full": AttentionConfig(kind="full"),
    f"sliding window {WINDOW}": AttentionConfig(kind="sliding_window", window=WINDOW),
    f"dilated d={DILATION}": AttentionConfig(kind="dilated", dilation=DILATION),
    "linear": AttentionConfig(kind="linear"),
}


def row(model, variant: str, ctx: int) -> dict:
    f = forward_flops(model.with_(attention=VARIANTS[variant]), Shape(batch=1, seq=ctx))
    return {"variant": variant, "context": ctx,
            "attention_tflop_per_seq": f.attention / 1e12,
            "forward_gflop_per_token": f.total / ctx / 1e9,
            "attention_share_pct": 100 * f.attention / f.total}


def run() -> Result:
    model = get_model(MODEL)
    table = pd.DataFrame([row(model, v, c) for v in VARIANTS for c in CONTEXTS])
    get = table.set_index(["variant", "context"])
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    n = {f"{k}_{c}": get.loc[(v, c), col] for k, v in
         (("full", "full"), ("swa", f"sliding window {WINDOW}"),
          ("dil", f"dilated d={DILATION}"), ("lin", "linear"))
         for c in (lo, hi) for col in ["forward_gflop_per_token"]}
    n["full_share_hi"] = get.loc[("full", hi), "attention_share_pct"]
    n["full_attn_growth"] = (get.loc[("full", hi), "attention_tflop_per_seq"]
                             / get.loc[("full", lo), "attention_tflop_per_seq"])
    return Result(table, n, takeaway(n), {"model": model.name, "variants": {
        k: v.__dict__ for k, v in VARIANTS.items()}},
        {"attention_flops.png": lambda: curves(table, "attention_tflop_per_seq",
                                               "attention TFLOPs per sequence (log scale)"),
         "flops_per_token.png": lambda: curves(table, "forward_gflop_per_token",
                                               "forward GFLOPs per token (log scale)")})


def takeaway(n: dict) -> str:
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    return (f"Going from {lo} to {hi} tokens ({hi // lo}x longer) multiplies full attention's "
            f"FLOPs per sequence by {n['full_attn_growth']:.0f}x, and the forward cost per token "
            f"of {MODEL} rises from {n[f'full_{lo}']:.1f} to {n[f'full_{hi}']:.1f} GFLOPs, with "
            f"attention {n['full_share_hi']:.0f}% of the work. A {WINDOW}-token sliding window "
            f"holds it at {n[f'swa_{hi}']:.1f} GFLOPs, linear attention at {n[f'lin_{hi}']:.1f}, "
            f"while dilation by {DILATION} only divides the quadratic term "
            f"({n[f'dil_{hi}']:.1f}): long context is a compute problem that only a different "
            "attention pattern changes.")


def curves(table: pd.DataFrame, col: str, ylabel: str):
    series = {v: list(table[table.variant == v][col]) for v in VARIANTS}
    return charts.line_chart(list(CONTEXTS), series, logx=True, logy=True, ylabel=ylabel,
                             title=f"{MODEL}: cost vs context length",
                             xlabel="context length (tokens, log scale)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
