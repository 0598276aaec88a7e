"""The catalogue of discrepancy signatures: why a prediction differs from the simulator.

A wrong answer usually has a shape. Counting multiply-adds instead of FLOPs gives exactly half;
forgetting the fp32 master weights gives three quarters of the training memory; pricing a MoE
layer by its mean expert load, a pipeline without its bubble, a p99 TTFT without queueing or a
decode step without its KV-cache reads all come out low; counting total instead of active MoE
parameters comes out high. Each signature is a small rule: the quantity kinds it applies to, a
band of ratios (learner / simulator), the misconception it reveals (an id from the lesson plan,
or None for a plain technical slip) and the message. The first matching rule wins, so narrow
bands (near 0.5, 0.75, 2) come before wide ones; unmatched answers get a generic too-low /
too-high note. The simulator's breakdown (what bound it, by how much) is appended by ``check``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.report.lesson import MISCONCEPTIONS

INF = float("inf")
FLOP_KINDS = frozenset({"moe_compute", "flops", "sparse_attention_flops"})
COMM_KINDS = frozenset({"comm_time", "cross_node_comm_time"})
MEMORY_KINDS = frozenset({"training_memory", "training_memory_total"})


@dataclass(frozen=True)
class Signature:
    id: str
    kinds: frozenset
    lo: float  # ratio band [lo, hi) of learner / simulator
    hi: float
    misconception: str | None
    message: str

    def matches(self, kind: str, ratio: float) -> bool:
        return kind in self.kinds and self.lo <= ratio < self.hi


def sig(id_, kinds, lo, hi, message, misconception=None) -> Signature:
    kinds = frozenset([kinds] if isinstance(kinds, str) else kinds)
    return Signature(id_, kinds, lo, hi, misconception, message)


CATALOGUE: tuple[Signature, ...] = (
    sig("flat-scaling", "zero3_scaling", 1.6, INF,
        "Far too high: you assumed throughput per GPU stays flat, as if every gather hid behind "
        "compute. At a fixed global batch each GPU computes fewer sequences while it still "
        "gathers every layer's full weights per micro-batch (and pays each call's latency), so "
        "the communication that was hidden comes out.", "parallelism-is-data-splitting"),

    sig("flops-vs-macs", FLOP_KINDS, 0.45, 0.55,
        "About half: you counted multiply-adds, not FLOPs. One multiply-add is 2 FLOPs, so an "
        "(m x k) @ (k x n) GEMM costs 2mkn FLOPs."),
    sig("flops-doubled", FLOP_KINDS, 1.8, 2.2,
        "About double: a multiply-add counted as 4 FLOPs, or the causal mask ignored (each query "
        "attends only to earlier keys, which halves the attention pairs)."),
    sig("sparse-peak", "compute_time", 0.45, 0.55,
        "About half: you divided by the 2:4 structured-sparsity peak, twice the dense peak. "
        "Dense GEMMs run against the dense bf16 peak, and reach only part of it."),
    sig("nvlink-not-nic", "cross_node_comm_time", 0.0, 0.75,
        "Too fast: you priced it at NVLink speed (or with the bidirectional figure). Once the "
        "GPUs span nodes, part of every all-reduce must cross the NICs, tens of GB/s per GPU."),
    sig("flat-ring-over-nic", "cross_node_comm_time", 2.5, INF,
        "Too slow: you priced a flat ring through the NICs. A hierarchical all-reduce "
        "reduce-scatters over NVLink inside each node, all-reduces only a 1/g shard across nodes "
        "(each GPU on its own NIC), then all-gathers over NVLink."),
    sig("bidirectional-bandwidth", COMM_KINDS, 0.4, 0.6,
        "About half: you used a bidirectional bandwidth (H100 NVLink '900 GB/s' is 450 GB/s "
        "each way), or forgot that a ring all-reduce sends 2(n-1)/n of the buffer per GPU "
        "(reduce-scatter, then all-gather)."),
    sig("halved-per-direction", COMM_KINDS, 1.7, 2.3,
        "About double: the catalogue's bandwidths are already per direction; halving them again "
        "(or sending the buffer twice) doubles the time."),
    sig("forgot-master-weights", MEMORY_KINDS, 0.7, 0.8,
        "About 3/4: you forgot the fp32 master weights. Mixed-precision Adam keeps bf16 weights "
        "(2 B) + bf16 grads (2 B) + fp32 master copy (4 B) + two fp32 moments (8 B) = 16 bytes "
        "per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1).", "parallelism-is-data-splitting"),
    sig("dp-replicates", MEMORY_KINDS, 0.0, 0.5,
        "Far too low: you split the model over the data- (or context-) parallel GPUs. Data and "
        "context parallelism split the *data*; every GPU still holds the full weights, gradients "
        "and optimizer state of its shard of layers. Only ZeRO, TP and PP divide those.",
        "parallelism-is-data-splitting"),
    sig("forgot-sharding", MEMORY_KINDS, 1.3, INF,
        "Too high: this plan shards the model state. ZeRO-1 shards the optimizer over dp, ZeRO-2 "
        "also the gradients, ZeRO-3 also the weights; TP splits each layer, PP splits the layers.",
        "parallelism-is-data-splitting"),
    sig("ensemble-count", "moe_total_params", 1.05, 1.8,
        "Too high: you multiplied a whole dense model by the number of experts. Experts are FFN "
        "sub-networks inside each block; attention, embeddings and norms are shared, one copy.",
        "moe-is-ensemble"),
    sig("active-for-total", "moe_total_params", 0.0, 0.7,
        "Too low: that is closer to the *active* count. Every expert exists (and must be stored), "
        "even though each token uses only top-k of them.", "params-equal-compute"),
    sig("total-not-active", {"moe_compute", "moe_compute_ratio", "moe_active_params"}, 1.3, INF,
        "Too high: you counted the total parameters. A token runs through only its top-k experts "
        "(plus shared ones and attention), so compute follows the active parameters.",
        "params-equal-compute"),
    sig("budget-by-total", "moe_budget_tokens", 0.0, 0.8,
        "Too low: you divided the budget by ~6 x total parameters. Training FLOPs per token follow "
        "the active parameters, so a MoE model sees far more tokens per FLOP.",
        "params-equal-compute"),
    sig("weights-by-active", "moe_weights", 0.0, 0.8,
        "Too low: you stored only the active parameters. Every expert must be resident, since "
        "any token may route to it: memory follows total parameters, compute active ones.",
        "params-equal-compute"),
    sig("mean-expert-load", {"moe_step_time", "moe_imbalance"}, 0.0, 0.9,
        "Too low: you priced the mean expert load. Experts of a layer run in parallel and the "
        "layer waits for the busiest one, so a skewed router sets the pace at max, not mean."),
    sig("no-drops", "moe_drops", 0.0, 0.5,
        "Too low: capacity C = ceil(cf * T * k / E) slots per expert; a skewed router sends "
        "popular experts more than C and the overflow is dropped (it skips the expert)."),
    sig("no-padding", "moe_padding", 0.0, 0.95,
        "Too low: a capacity-based kernel computes all E x C slots, padding the empty ones, so a "
        "capacity factor above 1 buys headroom with wasted compute."),
    sig("ignored-bubble", {"pipeline_step_time", "bubble_fraction"}, 0.0, 0.95,
        "Too low: you ignored the pipeline bubble. While the pipeline fills and drains, stages "
        "idle for (p-1) micro-batch slots: bubble/useful = (p-1)/m for GPipe and 1F1B "
        "(Narayanan et al. 2021, Sec. 2.2).", "parallelism-is-data-splitting"),
    sig("ignored-queueing", "ttft_p99", 0.0, 0.8,
        "Too low: you priced one prefill in isolation. At the 99th percentile a request waits "
        "behind others; queueing delay grows steeply as the server nears saturation."),
    sig("decode-as-compute", "decode_time", 0.0, 0.3,
        "Far too low: you priced decode by FLOPs / peak. Decoding is memory-bound: every step "
        "streams all the weights and the whole KV cache from HBM for a handful of FLOPs each."),
    sig("ignored-kv-reads", "decode_time", 0.3, 0.95,
        "Too low: you counted only the weight reads. Every decode step also reads each "
        "sequence's cached K and V, which at long context and large batch rivals the weights.",
        "flash-and-kv-solve-long-context"),
    sig("decode-throughput-as-compute", "decode_throughput", 1.5, INF,
        "Too high: decode throughput is set by HBM bandwidth (weights + KV bytes per step), "
        "not by the FLOP peak."),
    sig("linear-not-quadratic", {"attention_growth", "attention_share"}, 0.0, 0.7,
        "Too low: you scaled attention linearly. Full attention pairs every token with every "
        "earlier one: n times the context is ~n^2 times the attention FLOPs, and at long "
        "context attention dominates the forward pass.", "long-context-is-just-longer-training"),
    sig("per-token-constant", "per_token_growth", 0.0, 0.95,
        "Too low: training longer sequences is not the same work per token. Each token attends "
        "to all earlier ones, so FLOPs per token grow with the context length.",
        "long-context-is-just-longer-training"),
    sig("prefill-linear", "long_prefill_time", 0.0, 0.9,
        "Too low: you scaled the short prompt's time linearly. The attention part of prefill "
        "grows quadratically, and the KV cache does nothing for it: there is nothing cached yet.",
        "flash-and-kv-solve-long-context"),
    sig("quadratic-for-linear", "linear_growth", 1.5, INF,
        "Too high: linear attention keeps a running state instead of scoring all pairs; its cost "
        "grows linearly with context.", "flash-and-kv-solve-long-context"),
    sig("full-for-sparse", "sparse_attention_flops", 1.5, INF,
        "Too high: you priced full causal attention. A sliding window attends at most w keys per "
        "query (dilated: every d-th key; Child et al. 2019), so the cost grows as n*w, not n^2.",
        "flash-and-kv-solve-long-context"),
    sig("kv-for-linear", "linear_state", 2.0, INF,
        "Too high: you priced a KV cache growing with the context. Linear attention keeps a fixed "
        "(d_k x d_v) state per head, the same size at any length (Katharopoulos et al. 2020, "
        "Eq. 6)."),
    sig("forgot-v", "kv_cache", 0.45, 0.55,
        "About half: both K and V are cached, 2 x n_kv_heads x head_dim values per token per "
        "layer."),
    sig("mha-not-gqa", "kv_cache", 1.5, INF,
        "Too high: you cached K and V for every query head. GQA/MQA cache only n_kv_heads heads "
        "(Shazeer 2019; Ainslie et al. 2023) and MLA a compressed latent (DeepSeek-AI 2024, "
        "Sec. 2.1); that is their whole point.",
        "flash-and-kv-solve-long-context"),
    sig("batch-ignores-weights", "max_batch", 1.2, INF,
        "Too high: the weights (and a runtime reserve) occupy HBM first; only what is left holds "
        "KV cache."),
    sig("batch-with-mha", "max_batch", 0.0, 0.6,
        "Too low: you sized the KV cache as if every query head were cached; GQA shares K/V over "
        "groups of heads."),
    sig("flash-cuts-flops", "flash_flops_ratio", 0.0, 0.9,
        "Too low: flash attention does not reduce FLOPs (its backward even recomputes the "
        "scores); it tiles the computation so the n x n matrix is never stored (Dao et al. "
        "2022, Sec. 3).",
        "flash-and-kv-solve-long-context"),
    sig("flash-memory-same", "flash_memory_ratio", 0.0, 0.6,
        "Too low: standard attention stores the n x n score and probability matrices per head "
        "for the backward pass; flash keeps O(n). That memory, not compute, is what it saves.",
        "flash-and-kv-solve-long-context"),
    sig("comm-share-small", "comm_share", 0.0, 0.6,
        "Too low: each GPU's all-reduce traffic stays ~2x the gradient bytes however many GPUs "
        "join, while its compute per step shrinks: the communication share grows with scale.",
        "parallelism-is-data-splitting"),
    sig("static-equals-continuous", "batching_speedup", 0.0, 0.8,
        "Too low: a static batch holds every slot until its longest output finishes; continuous "
        "batching refills a slot the moment a sequence ends."),
    sig("spec-ideal", "spec_speedup", 1.25, INF,
        "Too high: not every draft token is accepted (expected tokens per round "
        "(1 - a^(k+1)) / (1 - a), Leviathan et al. 2023, Eq. 1), and the draft model runs k "
        "times per round."),
    sig("spec-verify-cost", "spec_speedup", 0.0, 0.8,
        "Too low: verifying k+1 positions costs about one decode step, since decode is "
        "memory-bound (the weights are read once either way)."),
    sig("prefill-interference", {"tpot_p99", "disagg_gain"}, 0.0, 0.9,
        "Too low: colocated, every prefill that joins an iteration stalls all decodes in it; "
        "disaggregation moves prefills to other GPUs."),
)


def match(kind: str, ratio: float) -> Signature | None:
    for s in CATALOGUE:
        if s.matches(kind, ratio):
            return s
    return None


def explain(kind: str, ratio: float, correct: bool) -> tuple[str, str, str | None]:
    """(signature id, message, misconception id) for a learner/simulator ratio."""
    if correct:
        return "correct", "Within tolerance: your model of the cost matches the simulator's.", None
    s = match(kind, ratio)
    if s is not None:
        return s.id, s.message, s.misconception
    side = "low" if ratio < 1 else "high"
    return f"too-{side}", (f"Your answer is {ratio:.2f}x the simulator's ({side}); compare your "
                           "parts with the breakdown below."), None


def check_catalogue() -> None:
    """Every signature names a known misconception (used by tests)."""
    for s in CATALOGUE:
        assert s.misconception is None or s.misconception in MISCONCEPTIONS, s.id
