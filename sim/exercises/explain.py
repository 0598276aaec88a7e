"""Diagnoses: which named mistake a wrong answer is, computed rather than guessed from a band.

Each exercise's solver (``sim.exercises.solution``) computes, from the givens, the number a
learner gets by making each mistake it knows (counting multiply-adds, forgetting the fp32
master weights, pricing the mean expert load, GB for GiB...). A wrong answer is diagnosed as
the mistake whose number it matches within the exercise's tolerance (the closest when several
do); a mistake whose number is itself within tolerance of the right answer can never fire.
Anything else gets an honest "too high / too low by X%" next to the worked breakdown. This
module holds the mistakes' messages and the misconception (lesson-plan id, or None for a plain
technical slip) each one reveals.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.report.lesson import MISCONCEPTIONS


@dataclass(frozen=True)
class Mistake:
    id: str
    misconception: str | None
    message: str


def _m(id_: str, message: str, misconception: str | None = None) -> Mistake:
    return Mistake(id_, misconception, message)


_PDS = "parallelism-is-data-splitting"
_PEC = "params-equal-compute"
_FKV = "flash-and-kv-solve-long-context"
_LCT = "long-context-is-just-longer-training"

CATALOGUE: tuple[Mistake, ...] = (
    _m("flops-vs-macs", "You counted multiply-adds (MACs), not FLOPs. One multiply-add is 2 "
       "FLOPs, so an (m x k) @ (k x n) GEMM costs 2mkn FLOPs."),
    _m("causal-ignored", "You ignored the causal mask: each query attends only to earlier keys, "
       "which halves the (query, key) pairs."),
    _m("gb-vs-gib", "You divided by 10^9 (GB) where the question asks for GiB (2^30 bytes, 7.4% "
       "more): 1 GiB = 1.074 GB. For MiB the gap is 2^20 vs 10^6 bytes (4.9%)."),
    _m("sparse-peak", "You divided by the 2:4 structured-sparsity peak, twice the dense peak. "
       "Dense GEMMs run against the dense bf16 peak, and reach only part of it."),
    _m("peak-not-achieved", "You divided by the full dense peak. Real kernels reach only part of "
       "it; the prompt gives the achieved fraction."),
    _m("nvlink-not-nic", "You priced it at NVLink speed. Once the GPUs span nodes, part of every "
       "all-reduce must cross the NICs, tens of GB/s per GPU."),
    _m("flat-ring-over-nic", "You priced a flat ring through the NICs. A hierarchical all-reduce "
       "reduce-scatters over NVLink inside each node, all-reduces only a 1/g shard across nodes "
       "(each GPU on its own NIC), then all-gathers over NVLink."),
    _m("bidirectional-bandwidth", "You used the bidirectional bandwidth (H100 NVLink '900 GB/s' "
       "is 450 GB/s each way). A GPU sends and receives at the same time; each direction has "
       "half the datasheet figure."),
    _m("ring-factor-forgotten", "You sent the buffer once. A ring all-reduce is a reduce-scatter "
       "then an all-gather: each GPU sends 2(n-1)/n of the buffer."),
    _m("forgot-master-weights", "You forgot the fp32 master weights. Mixed-precision Adam keeps "
       "bf16 weights (2 B) + bf16 grads (2 B) + fp32 master copy (4 B) + two fp32 moments (8 B) "
       "= 16 bytes per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1).", _PDS),
    _m("dp-replicates", "You split the model over the data-parallel GPUs. Data (and context) "
       "parallelism split the *data*; every GPU still holds the full weights, gradients and "
       "optimizer state. Only ZeRO, TP and PP divide those.", _PDS),
    _m("forgot-sharding", "You priced the unsharded model state. ZeRO-1 shards the optimizer "
       "over dp, ZeRO-2 also the gradients, ZeRO-3 also the weights; TP splits each layer, PP "
       "splits the layers.", _PDS),
    _m("zero3-for-zero2", "You sharded the weights too: that is ZeRO-3. ZeRO-2 shards only the "
       "optimizer state and the gradients; every GPU keeps all bf16 weights.", _PDS),
    _m("zero2-for-zero3", "You kept the full bf16 weights on every GPU: that is ZeRO-2. ZeRO-3 "
       "shards the weights as well (gathering each layer just before use).", _PDS),
    _m("zero1-for-zero2", "You sharded only the optimizer state: that is ZeRO-1. ZeRO-2 shards "
       "the gradients as well.", _PDS),
    _m("flat-scaling", "You assumed throughput per GPU stays flat, as if every gather hid "
       "behind compute. At a fixed global batch each GPU computes fewer sequences while it "
       "still gathers every layer's full weights per micro-batch (and pays each call's "
       "latency), so the communication that was hidden comes out.", _PDS),
    _m("cp-not-splitting", "You kept the whole sequence's activations on every GPU. Context "
       "parallelism splits the sequence: each GPU holds the activations of seq/cp tokens (and "
       "exchanges K/V blocks in a ring); it does not touch the model state.", _PDS),
    _m("tp-forward-only", "You counted only the forward all-reduces. The backward pass needs "
       "the mirror image: two more all-reduces per layer (of the input gradients) (Shoeybi et "
       "al. 2019, Sec. 3).", _PDS),
    _m("ensemble-count", "You multiplied a whole dense model by the number of experts. Experts "
       "are FFN sub-networks inside each block; attention, embeddings and norms are shared, one "
       "copy.", "moe-is-ensemble"),
    _m("active-for-total", "That is the *active* count. Every expert exists (and must be stored), "
       "even though each token uses only top-k of them.", _PEC),
    _m("total-not-active", "You counted the total parameters. A token runs through only its "
       "top-k experts (plus shared ones and attention), so compute follows the active "
       "parameters.", _PEC),
    _m("forgot-shared-experts", "You forgot the shared experts: every token runs through them "
       "in addition to its top-k routed experts (DeepSeekMoE, Dai et al. 2024).", _PEC),
    _m("budget-by-total", "You divided the budget by ~6 x total parameters. Training FLOPs per "
       "token follow the active parameters, so a MoE model sees far more tokens per FLOP.", _PEC),
    _m("weights-by-active", "You stored only the active parameters. Every expert must be "
       "resident, since any token may route to it: memory follows total parameters, compute "
       "active ones.", _PEC),
    _m("mean-expert-load", "You priced the mean expert load. Experts of a layer run in parallel "
       "and the layer waits for the busiest one, so a skewed router sets the pace at max, not "
       "mean."),
    _m("whole-step-scaled", "You scaled the whole step by the imbalance. Only the expert FFNs "
       "wait for the busiest expert; attention and the rest of the step do not care about the "
       "router."),
    _m("no-drops", "You assumed nothing is dropped: capacity C = ceil(cf * T * k / E) slots per "
       "expert; a skewed router sends popular experts more than C and the overflow is dropped "
       "(it skips the expert)."),
    _m("no-padding", "You assumed only real tokens are computed: a capacity-based kernel "
       "computes all E x C slots, padding the empty ones, so a capacity factor above 1 buys "
       "headroom with wasted compute."),
    _m("ignored-bubble", "You ignored the pipeline bubble. While the pipeline fills and drains, "
       "stages idle for (p-1) micro-batch slots: bubble/useful = (p-1)/m for GPipe and 1F1B "
       "(Narayanan et al. 2021, Sec. 2.2).", _PDS),
    _m("bubble-over-useful", "You gave bubble/useful time, (p-1)/m. The share of the *step* is "
       "bubble/(useful + bubble) = (p-1)/(m+p-1)."),
    _m("ignored-queueing", "You priced one prefill in isolation. At the 99th percentile a request "
       "waits behind others; queueing delay grows steeply as the server nears saturation."),
    _m("decode-as-compute", "You priced decode by FLOPs / peak. Decoding is memory-bound: every "
       "step streams all the weights and the whole KV cache from HBM for a handful of FLOPs each."),
    _m("ignored-kv-reads", "You counted only the weight reads. Every decode step also reads each "
       "sequence's cached K and V, which at long context and large batch rivals the weights.",
       _FKV),
    _m("linear-not-quadratic", "You scaled attention linearly. Full attention pairs every token "
       "with every earlier one: n times the context is ~n^2 times the attention FLOPs.", _LCT),
    _m("per-token-constant", "Training longer sequences is not the same work per token. Each "
       "token attends to all earlier ones, so FLOPs per token grow with the context length.",
       _LCT),
    _m("prefill-linear", "You scaled the short prompt's time linearly. The attention part of "
       "prefill grows quadratically, and the KV cache does nothing for it: there is nothing "
       "cached yet.", _FKV),
    _m("prefill-all-quadratic", "You scaled the whole prefill quadratically. Only the attention "
       "core pairs tokens; the projections and FFN grow linearly with the prompt."),
    _m("quadratic-for-linear", "Linear attention keeps a running state instead of scoring all "
       "pairs; its cost grows linearly with context.", _FKV),
    _m("full-for-sparse", "You priced full causal attention. A sliding window attends at most w "
       "keys per query (dilated: every d-th key; Child et al. 2019), so the cost grows as n*w, "
       "not n^2.", _FKV),
    _m("kv-for-linear", "You priced a KV cache growing with the context. Linear attention keeps a "
       "fixed (d_k x d_v) state per head, the same size at any length (Katharopoulos et al. "
       "2020, Eq. 6)."),
    _m("forgot-v", "You cached only K: both K and V are cached, 2 x n_kv_heads x head_dim values "
       "per token per layer."),
    _m("mha-not-gqa", "You cached K and V for every query head. GQA/MQA cache only n_kv_heads "
       "heads (Shazeer 2019; Ainslie et al. 2023) and MLA a compressed latent (DeepSeek-AI "
       "2024, Sec. 2.1); that is their whole point.", _FKV),
    _m("forgot-rope-key", "You cached only the latent: MLA also caches the decoupled RoPE key "
       "(qk_rope_head_dim values per token per layer), since RoPE cannot be absorbed into the "
       "latent projection."),
    _m("batch-ignores-weights", "You gave all of HBM to the KV cache. The weights (and the "
       "runtime reserve) occupy HBM first; only what is left holds KV cache."),
    _m("batch-with-mha", "You sized the KV cache as if every query head were cached; GQA shares "
       "K/V over groups of heads."),
    _m("flash-cuts-flops", "You removed the attention FLOPs. Flash attention does not reduce "
       "FLOPs (its backward even recomputes the scores); it tiles the computation so the n x n "
       "matrix is never stored (Dao et al. 2022, Sec. 3).", _FKV),
    _m("korthikanti-5as2", "You used Korthikanti et al.'s 5as^2 bytes per layer (scores, softmax "
       "output and dropout mask of a GPT layer with dropout). This model trains without "
       "dropout and the math path saves one bf16 probability matrix per head: a s^2 x 2 bytes.",
       None),
    _m("n-fold-saving", "'O(n^2) -> O(n)' does not mean n-fold less memory: only the attention "
       "matrix goes away; the O(n) activations (projections, FFN) were there all along.", _FKV),
    _m("flash-memory-same", "Standard attention stores the n x n probability matrix per head for "
       "the backward pass; flash keeps O(n). That memory, not compute, is what it saves.", _FKV),
    _m("comm-share-small", "Each GPU's all-reduce traffic stays ~2x the gradient bytes however "
       "many GPUs join, while its compute per step shrinks: the communication share grows with "
       "scale.", _PDS),
    _m("static-equals-continuous", "A static batch holds every slot until its longest output "
       "finishes; continuous batching refills a slot the moment a sequence ends."),
    _m("spec-ideal", "You took the ideal speedup. Not every draft token is accepted (expected "
       "tokens per round (1 - a^(k+1)) / (1 - a), Leviathan et al. 2023, Eq. 1), and the draft "
       "model runs k times per round."),
    _m("spec-no-draft-cost", "You forgot the draft model's cost: it runs k times per round, "
       "before the target verifies."),
    _m("prefill-interference", "Colocated, every prefill that joins an iteration stalls all "
       "decodes in it; disaggregation moves prefills to other GPUs."),
)
MISTAKES = {m.id: m for m in CATALOGUE}


def diagnose(answer: float, expected: float, tolerance: float, mistakes: dict) -> dict:
    """Diagnosis of ``answer`` (SI) against the simulator's ``expected`` (SI).

    ``mistakes`` maps a mistake id to the number (SI) a learner making it gets. Returns
    ``{"kind", "signature", "misconception", "message", "mistake_value", "also"}``; ``also``
    lists other mistakes that give the very same number (their messages are appended).
    """
    ratio = answer / expected
    if abs(ratio - 1) <= tolerance:
        return {"kind": "correct", "signature": "correct", "misconception": None,
                "message": "Correct: within tolerance of the simulator.", "mistake_value": None,
                "also": []}
    hit = _closest(answer, expected, tolerance, mistakes)
    if hit is not None:
        m = MISTAKES[hit]
        also = [k for k, v in mistakes.items() if k != hit and _same(v, mistakes[hit])]
        message = " ".join([m.message] + [f"(Or: {MISTAKES[k].message})" for k in also])
        return {"kind": "mistake", "signature": m.id, "misconception": m.misconception,
                "message": message, "mistake_value": mistakes[hit], "also": also}
    side = "low" if ratio < 1 else "high"
    off = abs(ratio - 1) * 100
    return {"kind": f"too-{side}", "signature": f"too-{side}", "misconception": None,
            "message": (f"Too {side} by {off:.0f}% ({ratio:.2f}x the simulator's answer), and "
                        "not the number any mistake we know of gives; compare your steps with "
                        "the worked solution and the breakdown."),
            "mistake_value": None, "also": []}


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def _closest(answer: float, expected: float, tolerance: float, mistakes: dict) -> str | None:
    """The mistake whose number is nearest the answer (ties: the solver's first)."""
    best, best_err = None, float("inf")
    for mid, value in mistakes.items():
        if value < 0 or abs(value / expected - 1) <= tolerance:
            continue  # a "mistake" that gives the right answer cannot be diagnosed
        err = abs(answer / value - 1) if value else (0.0 if answer == 0 else float("inf"))
        if err <= tolerance and err < best_err:
            best, best_err = mid, err
    return best


def check_catalogue() -> None:
    """Every mistake names a known misconception (used by tests)."""
    for m in CATALOGUE:
        assert m.misconception is None or m.misconception in MISCONCEPTIONS, m.id
