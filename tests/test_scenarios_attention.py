"""Invariants of the Lesson 2 (long context and efficient attention) scenarios, checked on
their real numbers against closed forms."""

from __future__ import annotations

import pytest

from sim.report.golden import cached_result


def _attn(variant: str):
    t = cached_result("attention_vs_context").table
    return t[t.variant == variant].set_index("context").attention_tflop_per_seq


def test_full_causal_attention_grows_with_the_pair_count_s_times_s_plus_1_over_2():
    a = _attn("full")
    pairs = lambda s: s * (s + 1) / 2  # noqa: E731 - causal (query, key) pairs
    assert a[131072] / a[1024] == pytest.approx(pairs(131072) / pairs(1024), rel=1e-9)


def test_sliding_window_and_linear_attention_grow_linearly_past_the_window():
    w = 4096
    swa = _attn("sliding window 4096")
    pairs = lambda s: w * (w + 1) / 2 + (s - w) * w  # noqa: E731 - min(p+1, W) summed
    assert swa[131072] / swa[65536] == pytest.approx(pairs(131072) / pairs(65536), rel=1e-9)
    lin = _attn("linear")
    assert lin[131072] / lin[1024] == pytest.approx(128.0, rel=1e-12)


def test_flash_attention_lowers_memory_but_never_the_flops():
    t = cached_result("flash_attention").table
    for _seq, g in t.groupby("seq_len"):
        std, flash = g[~g.flash_attention].iloc[0], g[g.flash_attention].iloc[0]
        assert flash.activations_GiB < std.activations_GiB
        assert flash.hardware_tflop_per_step >= std.hardware_tflop_per_step
    # the score matrix is s^2: 16x more tokens -> far more than 16x the standard activations
    std = t[~t.flash_attention].set_index("seq_len").activations_GiB
    assert std[32768] / std[2048] > 50


def test_kv_cache_of_llama3_70b_at_128k_is_40_gib_and_mha_is_8x_gqa():
    t = cached_result("kv_cache_variants").table.set_index(["variant", "context"])
    gqa = t.loc[("GQA (8 KV heads)", 131072), "kv_per_seq_GiB"]
    assert gqa == pytest.approx(131072 * 80 * 2 * 8 * 128 * 2 / 2**30)  # = 40 GiB exactly
    assert t.loc[("MHA (64 KV heads)", 131072), "kv_per_seq_GiB"] == pytest.approx(8 * gqa)
    # MLA caches (512 + 64) values per token per layer (DeepSeek-V2 Table 1)
    assert t.loc[("MLA (latent 512+64)", 131072), "kv_per_seq_GiB"] == pytest.approx(
        131072 * 80 * 576 * 2 / 2**30)


def test_longer_context_never_fits_more_sequences():
    t = cached_result("kv_cache_variants").table
    for _, g in t.groupby("variant"):
        batches = list(g.sort_values("context").max_batch)
        assert batches == sorted(batches, reverse=True)


def test_context_parallelism_divides_activations_by_the_cp_degree():
    t = cached_result("context_parallel").table
    sel = t[t.recompute == "selective"].set_index("cp").activations_GiB
    for cp in (2, 4, 8, 16):
        assert sel[cp] == pytest.approx(sel[1] / cp, rel=0.02)
    assert not t[(t.cp == 1) & (t.recompute == "selective")].fits.iloc[0]
