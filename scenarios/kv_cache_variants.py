"""GQA, MQA and MLA: the KV cache vs context length, and what it does to the decode batch.

Lesson 2 (long-context-and-efficient-attention). Concepts: the KV cache grows linearly with
context and batch; grouped-query attention shares K/V across groups of heads (Ainslie et al.
2023), multi-query attention keeps one K/V head (Shazeer 2019), DeepSeek's multi-head latent
attention caches a compressed latent (DeepSeek-V2, Sec. 2.1). The same Llama-3-70B body is
served on one 8-GPU node with tensor parallelism 8; the free HBM after weights decides how many
sequences fit, and the cost model prices one decode step at that batch.
"""

from __future__ import annotations

import pandas as pd

import hardware
from sim.costs.inference import forward_time
from sim.costs.kvcache import kv_cache_bytes
from sim.model import MLAConfig, get_model
from sim.plots import charts
from sim.report import Result, publish
from sim.serving.kvcache import budget

LESSON = "long-context-and-efficient-attention"
TOPIC = "GQA/MQA/MLA KV cache vs context and decode batch size"
REFUTES = ("flash-and-kv-solve-long-context", "long-context-is-just-longer-training")

MODEL = "llama3-70b"
SYSTEM = "dgx-h100"
TP = 8  # GPUs per replica (tensor parallel)
CONTEXTS = (4096, 16384, 32768, 131072)  # tokens per sequence
MAX_BATCH = 256  # scheduler cap on concurrent sequences
BLOCK_SIZE = 16  # paged KV block (tokens)
MLA = MLAConfig(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128)


def variants(base):
    """Attention variants of one model body (MLA dims from DeepSeek-V2, Sec. 2.1)."""
    return {"MHA (64 KV heads)": base.with_(n_kv_heads=base.n_heads),
            "GQA (8 KV heads)": base,
            "MQA (1 KV head)": base.with_(n_kv_heads=1),
            "MLA (latent 512+64)": base.with_(mla=MLA)}


def row(label: str, model, cluster, ctx: int) -> dict:
    cap = budget(model, cluster, tp=TP, pp=1, ep=1, dtype="bf16", block_size=BLOCK_SIZE)
    fit = cap.tokens // ctx
    batch = min(fit, MAX_BATCH)
    step = forward_time(model, cluster, tp=TP, decode_kv_lens=[ctx] * batch) if batch else None
    return {"variant": label, "context": ctx,
            "kv_per_seq_GiB": kv_cache_bytes(model, ctx) / 2**30,
            "kv_per_seq_per_gpu_GiB": kv_cache_bytes(model, ctx, tp=TP) / 2**30,
            "max_batch": batch, "batch_limited_by": "memory" if fit < MAX_BATCH else "cap",
            "decode_step_ms": 1e3 * step.time_s if step else float("nan"),
            "decode_tokens_per_s": batch / step.time_s if step else 0.0,
            "kv_share_of_bytes_pct": 100 * step.kv_bytes / step.bytes if step else float("nan")}


def run() -> Result:
    cluster = hardware.Cluster.for_gpus(SYSTEM, TP)
    models = variants(get_model(MODEL))
    table = pd.DataFrame([row(k, m, cluster, c) for k, m in models.items() for c in CONTEXTS])
    get = table.set_index(["variant", "context"])
    hi = CONTEXTS[-1]
    labels = list(models)
    n = {f"{i}_{col}": get.loc[(v, hi), col] for i, v in enumerate(labels)
         for col in ("kv_per_seq_GiB", "kv_per_seq_per_gpu_GiB", "max_batch")}
    n["gqa_lo_batch"] = get.loc[(labels[1], CONTEXTS[0]), "max_batch"]
    n["gqa_hi_kv_share"] = get.loc[(labels[1], hi), "kv_share_of_bytes_pct"]
    cfg = {"model": MODEL, "system": SYSTEM, "tp": TP, "block_size": BLOCK_SIZE,
           "variants": {k: {"n_kv_heads": m.n_kv_heads, "mla": m.mla and m.mla.__dict__}
                        for k, m in models.items()}}
    return Result(table, n, takeaway(n, labels), cfg,
                  {"kv_cache_vs_context.png": lambda: kv_chart(table, labels),
                   "decode_batch.png": lambda: batch_chart(table, labels)})


def takeaway(n: dict, labels: list[str]) -> str:
    hi = CONTEXTS[-1]
    return (f"At {hi // 1024}K tokens one sequence of {MODEL} needs {n['0_kv_per_seq_GiB']:.0f} GiB "
            f"of KV cache with full multi-head attention, so {int(n['0_max_batch'])} fits on "
            f"{TP} GPUs; grouped-query attention cuts it to {n['1_kv_per_seq_GiB']:.0f} GiB "
            f"({int(n['1_max_batch'])} sequences, against {int(n['gqa_lo_batch'])} at "
            f"{CONTEXTS[0] // 1024}K), multi-query to {n['2_kv_per_seq_GiB']:.1f} GiB and MLA's "
            f"latent to {n['3_kv_per_seq_GiB']:.1f} GiB. Under TP{TP}, though, {_tp_note(n)}. "
            f"Even with GQA, reading the cache is "
            f"{n['gqa_hi_kv_share']:.0f}% of the bytes a decode step moves at {hi // 1024}K: KV "
            "caching avoids recomputation but its size and traffic still grow with every token.")


def _tp_note(n: dict) -> str:
    """What tensor parallelism does to each variant's per-GPU cache (compared, not assumed)."""
    def same(i):
        return "as many" if n[f"{i}_max_batch"] == n["1_max_batch"] else (
            "more" if n[f"{i}_max_batch"] > n["1_max_batch"] else "fewer")
    return (f"a single K/V head or a latent cannot be split over GPUs: each GPU holds "
            f"{n['2_kv_per_seq_per_gpu_GiB']:.1f} GiB per sequence with MQA and "
            f"{n['3_kv_per_seq_per_gpu_GiB']:.1f} GiB with MLA against "
            f"{n['1_kv_per_seq_per_gpu_GiB']:.1f} GiB with GQA, so MQA fits {same(2)} sequences "
            f"({int(n['2_max_batch'])}) and MLA {same(3)} ({int(n['3_max_batch'])})")


def kv_chart(table: pd.DataFrame, labels: list[str]):
    series = {v: list(table[table.variant == v].kv_per_seq_GiB * 2**30) for v in labels}
    return charts.kv_cache_vs_context(list(CONTEXTS), series,
                                      title=f"{MODEL} variants: bf16 KV cache of one sequence")


def batch_chart(table: pd.DataFrame, labels: list[str]):
    series = {v: list(table[table.variant == v].max_batch) for v in labels}
    return charts.grouped_bars([f"{c // 1024}K" for c in CONTEXTS], series, logy=True,
                               title=f"{MODEL} variants on {SYSTEM}, TP{TP}: sequences that fit "
                                     f"(cap {MAX_BATCH})",
                               xlabel="context length (tokens)",
                               ylabel="max decode batch (sequences, log scale)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
