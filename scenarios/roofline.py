"""A roofline with the model's own operations placed on it: training, prefill and decode.

Lesson 3 (training-and-serving-at-scale), building on compute-bound vs memory-bound (Module
4.3). Concepts: arithmetic intensity (FLOPs per HBM byte), the ridge point peak/bandwidth
(Williams et al. 2009), why training GEMMs are compute-bound while decode GEMMs are
memory-bound until the batch is large, and why decode attention stays memory-bound at any batch
(each sequence reads its own KV cache). Every op is one layer of Llama-3-8B on one H100 as the
cost model lowers and prices it.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.lowering import lower_layer
from sim.costs.timing import roofline_point
from sim.model import get_model
from sim.plan import ParallelPlan, Shape
from sim.plots import charts
from sim.report import Result, publish

LESSON = "training-and-serving-at-scale"
TOPIC = "roofline: which ops are compute- or memory-bound"
REFUTES = ("flash-and-kv-solve-long-context",)

MODEL = "llama3-8b"
ACCELERATOR = "h100-sxm"
SEQ_LEN = 4096  # training sequence and decode KV-cache length (tokens)
PHASES = {  # label -> shape of the pass
    "train (1 x 4096)": Shape(batch=1, seq=SEQ_LEN, phase="train"),
    "prefill (1 x 4096)": Shape(batch=1, seq=SEQ_LEN, phase="prefill"),
    "decode batch 1": Shape(batch=1, seq=1, phase="decode", kv_len=SEQ_LEN),
    "decode batch 64": Shape(batch=64, seq=1, phase="decode", kv_len=SEQ_LEN),
    "decode batch 512": Shape(batch=512, seq=1, phase="decode", kv_len=SEQ_LEN),
}
CHART_OPS = ("mlp_up", "attention", "attn_norm")  # one GEMM, the attention core, one norm


def rows(model, acc) -> list[dict]:
    out = []
    for label, shape in PHASES.items():
        ops = [op for op in lower_layer(model, 0, shape, ParallelPlan(seq_len=SEQ_LEN))
               if not op.is_comm]
        layer_time = sum(roofline_point(op, acc).time_s for op in ops)
        for op in ops:
            p = roofline_point(op, acc)
            out.append({"phase": label, "op": op.name, "kind": op.kind,
                        "intensity_flop_per_byte": p.intensity, "bound": p.bound,
                        "achieved_tflops": p.achieved_flops_per_s / 1e12,
                        "pct_of_peak": 100 * p.achieved_flops_per_s / acc.peak("bf16"),
                        "time_us": 1e6 * p.time_s, "share_of_layer_pct": 100 * p.time_s / layer_time})
    return out


def run() -> Result:
    model, acc = get_model(MODEL), hardware.get_accelerator(ACCELERATOR)
    table = pd.DataFrame(rows(model, acc))
    get = table.set_index(["phase", "op"])
    labels = [k for k in PHASES if not k.startswith("prefill")]
    n = {"ridge": acc.peak("bf16") / acc.memory_bandwidth,
         "train_gemm_pct": get.loc[(labels[0], "mlp_up"), "pct_of_peak"],
         "d1_gemm_pct": get.loc[(labels[1], "mlp_up"), "pct_of_peak"],
         "d1_gemm_ai": get.loc[(labels[1], "mlp_up"), "intensity_flop_per_byte"],
         "d64_gemm_ai": get.loc[(labels[2], "mlp_up"), "intensity_flop_per_byte"],
         "d512_gemm_ai": get.loc[(labels[3], "mlp_up"), "intensity_flop_per_byte"],
         "d512_gemm_bound": get.loc[(labels[3], "mlp_up"), "bound"],
         "d512_attn_ai": get.loc[(labels[3], "attention"), "intensity_flop_per_byte"],
         "d512_attn_share": get.loc[(labels[3], "attention"), "share_of_layer_pct"],
         "d1_attn_ai": get.loc[(labels[1], "attention"), "intensity_flop_per_byte"]}
    points = [(ph, op, r.intensity_flop_per_byte, r.achieved_tflops * 1e12)
              for (ph, op), r in get.iterrows() if op in CHART_OPS]
    cfg = {"model": model.name, "accelerator": acc.name, "peak_bf16_flops": acc.peak("bf16"),
           "memory_bandwidth": acc.memory_bandwidth, "shapes": {k: v.__dict__ for k, v in PHASES.items()}}
    return Result(table, n, takeaway(n), cfg, {"roofline.png": lambda: charts.roofline(
        acc.peak("bf16"), acc.memory_bandwidth, points,
        title=f"{MODEL} layer ops on {ACCELERATOR} (bf16)")})


def takeaway(n: dict) -> str:
    return (f"On {ACCELERATOR} the ridge sits at {n['ridge']:.0f} FLOP/byte. Training GEMMs of "
            f"{MODEL} reach {n['train_gemm_pct']:.0f}% of peak; the same GEMM at decode batch 1 "
            f"has an intensity of {n['d1_gemm_ai']:.1f} and reaches {n['d1_gemm_pct']:.1f}%: "
            f"it streams weights. Batching raises the GEMM intensity to {n['d64_gemm_ai']:.0f} at "
            f"64 sequences and {n['d512_gemm_ai']:.0f} at 512 ({n['d512_gemm_bound']}-bound), but "
            f"decode attention stays at {n['d512_attn_ai']:.0f} FLOP/byte whatever the batch, "
            f"because every sequence reads its own KV cache, and takes "
            f"{n['d512_attn_share']:.0f}% of the layer's time at batch 512: the KV cache removes "
            "recomputation, not the memory traffic of long contexts.")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
