"""The discrepancy catalogue: each signature fires on a planted wrong answer of its kind, and a
learner's typical mistakes (computed from the prompt's own numbers) get the right diagnosis."""

from __future__ import annotations

import pytest

from sim.costs.kvcache import kv_cache_bytes_per_token
from sim.exercises import check, get_exercise, load_all, show
from sim.exercises.answer import model_of
from sim.exercises.explain import CATALOGUE, explain, match
from sim.exercises.registry import get_query
from sim.model import count_params, get_model

EXERCISES = load_all()


def _planted_ratio(sig, tolerance: float) -> float:
    hi = sig.hi if sig.hi != float("inf") else sig.lo * 3
    ratio = (max(sig.lo, 1e-3) + hi) / 2
    if abs(ratio - 1) <= tolerance:  # a band touching 1 is probed at its far edge
        ratio = max(sig.lo, 1e-3) * 1.01 if sig.lo > 1 else sig.hi * 0.99
    return ratio


def _reachable(sig):
    """(exercise, ratio) where ``sig`` is the first matching rule (no earlier rule shadows it)."""
    for ex in EXERCISES.values():
        kind = get_query(ex.quantity).kind
        ratio = _planted_ratio(sig, ex.tolerance)
        if kind in sig.kinds and match(kind, ratio) is sig:
            return ex, ratio
    raise AssertionError(f"signature {sig.id} is shadowed for every exercise of its kinds")


@pytest.mark.parametrize("sig", CATALOGUE, ids=[s.id for s in CATALOGUE])
def test_each_signature_fires_on_a_planted_answer_of_its_kind(sig):
    ex, ratio = _reachable(sig)
    out = check(ex, ratio * check(ex, 1.0, None)["expected"], None)
    assert (out["signature"], out["correct"]) == (sig.id, False)
    assert out["misconception"] == sig.misconception
    assert out["explanation"].startswith(sig.message)


def test_a_correct_answer_says_so_and_unmatched_ratios_fall_back_to_low_or_high():
    assert explain("training_memory", 1.02, True)[0] == "correct"
    assert explain("training_memory", 0.6, False)[0] == "too-low"
    assert explain("decode_time", 1.7, False)[0] == "too-high"
    assert match("no-such-kind", 0.5) is None


def _params(ex_id: str, seed=None) -> tuple:
    out = show(get_exercise(ex_id), seed)
    return out["params"], out["givens"]


def _diagnose(ex_id: str, answer: float, seed=None) -> tuple[str, str | None]:
    out = check(get_exercise(ex_id), answer, seed)
    return out["signature"], out["misconception"]


def test_forgetting_fp32_master_weights_is_three_quarters_of_adam_memory():
    p, _ = _params("adam-memory")
    n = count_params(model_of(p)).total
    assert _diagnose("adam-memory", 12 * n / 2**30)[0] == "forgot-master-weights"
    assert _diagnose("adam-memory", 16 * n / 2**30)[0] == "correct"


def test_dividing_the_model_state_by_the_dp_degree_is_the_data_splitting_misconception():
    p, _ = _params("dp-memory-70b")
    n = count_params(model_of(p)).total
    assert _diagnose("dp-memory-70b", 16 * n / p["dp"] / 2**30) == (
        "dp-replicates", "parallelism-is-data-splitting")
    assert _diagnose("dp-memory-70b", 16 * n / 2**30)[0] == "correct"


def test_unsharded_memory_under_zero_and_tp_pp_is_flagged_as_forgotten_sharding():
    for ex_id in ("zero-memory", "tp-pp-memory"):
        p, _ = _params(ex_id)
        n = count_params(model_of(p)).total
        assert _diagnose(ex_id, 16 * n / 2**30)[0] == "forgot-sharding"


def test_moe_total_params_as_an_ensemble_of_dense_models():
    dense = count_params(get_model("mistral-7b")).total  # the Mixtral body as a dense model
    assert _diagnose("moe-total-params", 8 * dense / 1e9) == ("ensemble-count", "moe-is-ensemble")


def test_counting_total_instead_of_active_parameters():
    p, _ = _params("moe-active-params")
    c = count_params(model_of(p))
    assert _diagnose("moe-active-params", c.total / 1e9) == (
        "total-not-active", "params-equal-compute")
    assert _diagnose("moe-flops-per-token", 2 * c.total / 1e9)[0] == "total-not-active"
    _, g = _params("moe-vs-dense-compute")
    assert _diagnose("moe-vs-dense-compute", g["total_ratio"])[0] == "total-not-active"
    assert _diagnose("moe-serving-memory", 2 * c.active / 2**30)[0] == "weights-by-active"
    budget = 6 * c.total
    p, _ = _params("moe-chinchilla-tokens")
    assert _diagnose("moe-chinchilla-tokens", p["budget_flops"] / budget / 1e9)[0] == \
        "budget-by-total"


def test_router_multiply_adds_are_half_the_flops():
    m = get_model("mixtral-8x7b")
    macs = m.hidden * m.moe.n_experts * m.n_moe_layers
    assert _diagnose("moe-router-flops", macs / 1e6)[0] == "flops-vs-macs"
    assert _diagnose("moe-router-flops", 2 * macs / 1e6)[0] == "correct"


def test_mean_instead_of_max_expert_load():
    _, g = _params("moe-imbalance-step")
    assert _diagnose("moe-imbalance-step", g["balanced_step_ms"] / 1e3)[0] == "mean-expert-load"
    assert _diagnose("moe-imbalance", 1.0)[0] == "mean-expert-load"
    assert _diagnose("moe-capacity-drops", 0.0)[0] == "no-drops"
    assert _diagnose("moe-capacity-padding", 1.0)[0] == "no-padding"


def test_linear_scaling_of_quadratic_attention_and_vice_versa():
    p, _ = _params("attention-quadratic")
    n = p["seq_len"] / p["short_seq"]
    assert _diagnose("attention-quadratic", n)[1] == "long-context-is-just-longer-training"
    assert _diagnose("attention-quadratic", n * n)[0] == "correct"
    assert _diagnose("linear-attention-growth", n * n)[0] == "quadratic-for-linear"
    assert _diagnose("linear-attention-growth", n)[0] == "correct"
    assert _diagnose("context-extension-cost", 1.0)[0] == "per-token-constant"
    p, g = _params("long-prefill")
    linear = g["short_ms"] * p["seq_len"] / p["short_seq"]
    assert _diagnose("long-prefill", linear) == ("prefill-linear",
                                                 "flash-and-kv-solve-long-context")


def test_flash_attention_misconceptions():
    assert _diagnose("flash-flops", 0.5) == ("flash-cuts-flops", "flash-and-kv-solve-long-context")
    assert _diagnose("flash-flops", 1.0)[0] == "correct"
    assert _diagnose("flash-memory", 1.0)[0] == "flash-memory-same"


def test_kv_cache_mistakes():
    p, _ = _params("gqa-kv-cache")
    m = model_of(p)
    per_head = 2 * m.head_dim * 2 * m.n_layers * p["seq_len"] * p["batch"]  # K+V, bf16
    assert _diagnose("gqa-kv-cache", per_head * m.n_kv_heads / 2**30)[0] == "correct"
    assert _diagnose("gqa-kv-cache", per_head * m.n_heads / 2**30)[0] == "mha-not-gqa"
    assert _diagnose("gqa-kv-cache", per_head * m.n_kv_heads / 2 / 2**30)[0] == "forgot-v"
    p, _ = _params("mla-kv-cache")
    mla = model_of(p)
    mha = 2 * mla.n_heads * 128 * 2 * mla.n_layers * p["seq_len"] / 2**30
    assert _diagnose("mla-kv-cache", mha)[0] == "mha-not-gqa"
    p, _ = _params("linear-attention-state")
    full = kv_cache_bytes_per_token(get_model(p["model"])) * p["seq_len"] / 2**20
    assert _diagnose("linear-attention-state", full)[0] == "kv-for-linear"


def test_sparse_attention_priced_as_full():
    for ex_id in ("sliding-window-flops", "dilated-attention-flops"):
        _, g = _params(ex_id)
        assert _diagnose(ex_id, g["full_tflop"])[0] == "full-for-sparse"


def test_bandwidth_conventions_half_and_nic():
    p, g = _params("allreduce-nvlink")
    n, size = p["gpus"], p["gbytes"] * 1e9
    naive = 2 * (n - 1) / n * size / (g["bidir_gbps"] * 1e9)
    assert _diagnose("allreduce-nvlink", 1e3 * naive)[0] == "bidirectional-bandwidth"
    p, g = _params("allreduce-cross-node")
    n, size = p["gpus"], p["gbytes"] * 1e9
    nvlink = 2 * (n - 1) / n * size / (g["bidir_gbps"] / 2 * 1e9)
    assert _diagnose("allreduce-cross-node", 1e3 * nvlink)[0] == "nvlink-not-nic"


def test_pricing_with_the_sparse_datasheet_peak_is_half_the_time():
    _, g = _params("prefill-compute")
    dense = g["tflop_per_gpu"] / (g["sparse_tflops"] / 2 * g["achieved_pct"] / 100)
    assert _diagnose("prefill-compute", 1e3 * dense)[0] == "correct"
    assert _diagnose("prefill-compute", 1e3 * dense / 2)[0] == "sparse-peak"


def test_ignoring_the_pipeline_bubble():
    _, g = _params("pipeline-step")
    assert _diagnose("pipeline-step", g["microbatches"] * g["t_mb_ms"] / 1e3) == (
        "ignored-bubble", "parallelism-is-data-splitting")
    assert _diagnose("bubble-schedules", 0.0)[0] == "ignored-bubble"


def test_decode_priced_by_weights_only_or_by_flops():
    ex = get_exercise("decode-kv-reads")
    out = check(ex, 1.0, None)
    parts = out["breakdown"]["parts"]
    weights_only = 1e3 * (parts["hbm_weights_s"] + parts["hbm_other_s"])
    assert _diagnose("decode-kv-reads", weights_only)[0] == "ignored-kv-reads"
    p, _ = _params("decode-memory-bound")
    peak = 989.4e12  # H100 SXM dense bf16 (NVIDIA H100 datasheet)
    by_flops = peak * p["tp"] / (2 * count_params(model_of(p)).active)
    assert _diagnose("decode-memory-bound", by_flops)[0] == "decode-throughput-as-compute"


def test_serving_latency_mistakes():
    _, g = _params("ttft-queueing")
    assert _diagnose("ttft-queueing", g["prefill_ms"])[0] == "ignored-queueing"
    _, g = _params("colocated-tpot")
    assert _diagnose("colocated-tpot", g["decode_ms"])[0] == "prefill-interference"
    assert _diagnose("disaggregation", 1.0)[0] == "prefill-interference"
    assert _diagnose("continuous-batching", 1.0)[0] == "static-equals-continuous"
    p, _ = _params("speculative-decoding")
    a, k = p["accept"], p["k"]
    assert _diagnose("speculative-decoding", (1 - a ** (k + 1)) / (1 - a))[0] == "spec-ideal"
    assert _diagnose("comm-share", 0.0)[0] == "comm-share-small"


def test_a_flat_ring_through_the_nics_is_slower_than_the_hierarchical_all_reduce():
    p, g = _params("allreduce-cross-node")
    n, size = p["gpus"], p["gbytes"] * 1e9
    flat = 2 * (n - 1) / n * size / (g["nic_gbit"] / 8 * 1e9)
    assert _diagnose("allreduce-cross-node", 1e3 * flat)[0] == "flat-ring-over-nic"
