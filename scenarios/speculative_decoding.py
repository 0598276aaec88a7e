"""Speculative decoding: speedup vs acceptance rate, draft length and batch size.

Lesson 3 (training-and-serving-at-scale). Concepts: a small draft model proposes k tokens and
the large target model verifies k+1 positions in one pass (Leviathan et al. 2023; Chen et al.
2023); with acceptance rate a, each verification yields (1 - a^(k+1)) / (1 - a) tokens on
average. Decoding a small batch is memory-bound, so verifying k+1 positions costs about as much
as one; as the batch grows the target becomes compute-bound and the advantage shrinks. Served
by the serving simulator: Llama-3-70B on 8 H100s (TP8) with Llama-3-8B as the draft.
"""

from __future__ import annotations

import pandas as pd

from sim.plots import charts
from sim.report import Result, publish
from sim.serving import simulate_serving

LESSON = "training-and-serving-at-scale"
TOPIC = "speculative decoding speedup vs acceptance, draft length, batch size"
REFUTES = ()

TARGET, DRAFT = "llama3-70b", "llama3-8b"
SYSTEM = "dgx-h100"
TP = 8
ACCEPTANCE = (0.5, 0.6, 0.7, 0.8, 0.9)  # per-token acceptance rate a
DRAFT_TOKENS = (1, 2, 4, 8)  # k
BATCHES = (1, 8, 32, 128)  # concurrent sequences for the batch sweep
SWEEP_ACCEPTANCE, SWEEP_K = 0.8, 4  # the point followed across batch sizes
PROMPT_TOKENS, OUTPUT_TOKENS = 512, 128
SEED = 0


def tpot(batch: int, k: int = 0, a: float = 0.0) -> tuple[float, float]:
    """Mean time per output token and tokens per verification of a closed batch."""
    spec = {"draft_model": DRAFT, "speculative_tokens": k, "acceptance": str(a)} if k else {}
    r = simulate_serving(num_requests=batch, arrival_rate=1e6, prompt_tokens=str(PROMPT_TOKENS),
                         output_tokens=str(OUTPUT_TOKENS), policy="continuous", max_batch=batch,
                         model=TARGET, system=SYSTEM, tp=TP, seed=SEED, **spec)
    per_step = r.summary.get("speculative", {}).get("tokens_per_verification", 1.0)
    return r.summary["tpot_s"]["mean"], per_step


def rows() -> list[dict]:
    base = {b: tpot(b)[0] for b in BATCHES}
    out = []
    grid = [(1, a, k) for a in ACCEPTANCE for k in DRAFT_TOKENS]
    grid += [(b, SWEEP_ACCEPTANCE, k) for b in BATCHES[1:] for k in DRAFT_TOKENS]
    for b, a, k in grid:
        t, per_step = tpot(b, k, a)
        out.append({"batch": b, "acceptance": a, "draft_tokens": k, "tpot_ms": 1e3 * t,
                    "baseline_tpot_ms": 1e3 * base[b], "speedup": base[b] / t,
                    "tokens_per_verification": per_step,
                    "expected_tokens_per_verification": (1 - a ** (k + 1)) / (1 - a)})
    return out


def run() -> Result:
    table = pd.DataFrame(rows())
    b1 = table[table.batch == 1]
    best = b1.loc[b1.speedup.idxmax()]
    sweep = table[(table.acceptance == SWEEP_ACCEPTANCE) & (table.draft_tokens == SWEEP_K)]
    sweep = sweep.set_index("batch")
    n = {"best_speedup": best.speedup, "best_a": best.acceptance, "best_k": int(best.draft_tokens),
         "low_a_k8": b1[(b1.acceptance == ACCEPTANCE[0]) & (b1.draft_tokens == 8)].speedup.iloc[0],
         "sweep_b1": sweep.loc[1, "speedup"], "sweep_bmax": sweep.loc[BATCHES[-1], "speedup"],
         "max_err": float((table.tokens_per_verification
                           - table.expected_tokens_per_verification).abs().max())}
    cfg = {"target": TARGET, "draft": DRAFT, "system": SYSTEM, "tp": TP, "seed": SEED}
    return Result(table, n, takeaway(n), cfg, {"speedup_heatmap.png": lambda: heat(b1),
                                               "speedup_vs_batch.png": lambda: batch(table)})


def takeaway(n: dict) -> str:
    lose = "slows decoding down" if n["sweep_bmax"] < 1 else "barely helps"
    return (f"At batch 1 speculative decoding with {DRAFT} drafting for {TARGET} is at best "
            f"{n['best_speedup']:.2f}x faster per token (a={n['best_a']}, k={n['best_k']}); with "
            f"a={ACCEPTANCE[0]} and k=8 it gives {n['low_a_k8']:.2f}x, since most drafts are "
            f"thrown away. Following a={SWEEP_ACCEPTANCE}, k={SWEEP_K} across batch sizes the "
            f"speedup goes from {n['sweep_b1']:.2f}x at batch 1 to {n['sweep_bmax']:.2f}x at "
            f"{BATCHES[-1]}: once the target is compute-bound, verifying k+1 positions costs k+1 "
            f"times as much and speculation {lose if n['sweep_bmax'] < 1.1 else 'helps less'}. "
            f"Simulated tokens per verification stay within {n['max_err']:.2f} of "
            "(1 - a^(k+1)) / (1 - a).")


def heat(b1: pd.DataFrame):
    pivot = b1.pivot(index="acceptance", columns="draft_tokens", values="speedup")
    return charts.heatmap(pivot.values, list(pivot.index), list(pivot.columns),
                          title=f"{TARGET} + {DRAFT} draft, {SYSTEM} TP{TP}: speedup at batch 1",
                          xlabel="draft tokens k", ylabel="acceptance rate a",
                          cbar_label="speedup in time per token (x; <1 loses)", center=1.0,
                          higher_is_better=True)


def batch(table: pd.DataFrame):
    sel = table[table.acceptance == SWEEP_ACCEPTANCE]
    series = {f"k={k}": [sel[(sel.batch == b) & (sel.draft_tokens == k)].speedup.iloc[0]
                         for b in BATCHES] for k in DRAFT_TOKENS}
    return charts.line_chart(list(BATCHES), series, logx=True, hline=(1.0, "no speedup"),
                             title=f"{TARGET} + {DRAFT}, {SYSTEM} TP{TP}: speedup vs batch "
                                   f"(a={SWEEP_ACCEPTANCE})",
                             xlabel="concurrent sequences (log scale)",
                             ylabel="speedup in time per token (x)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
