"""Invariants of the Lesson 1 (mixture-of-experts) scenarios, checked on their real numbers."""

from __future__ import annotations

import pytest

from sim.model import count_params, get_model
from sim.report.golden import cached_result


def _by(name: str, key: str):
    return cached_result(name).table.set_index(key)


def test_mixtral_is_smaller_than_an_ensemble_by_exactly_seven_shared_attention_stacks():
    t = _by("moe_not_an_ensemble", "model")
    mixtral, ensemble = t.loc["mixtral-8x7b"], t.loc["8 x mistral-7b"]
    saved = ensemble["total (B)"] - mixtral["total (B)"]
    shared = 7 * (t.loc["mistral-7b", "attention (B)"] + t.loc["mistral-7b", "embeddings + head (B)"]
                  + t.loc["mistral-7b", "norms (B)"]) - mixtral["router (B)"]
    assert saved == pytest.approx(shared, rel=1e-9)
    assert mixtral["FFN / experts (B)"] == pytest.approx(ensemble["FFN / experts (B)"], rel=1e-12)
    assert mixtral["total (B)"] * 1e9 == pytest.approx(count_params(get_model("mixtral-8x7b")).total)


def test_mixtral_active_compute_is_within_five_percent_of_llama2_13b():
    n = cached_result("moe_chinchilla").numbers
    assert n["flop_ratio"] == pytest.approx(1.0, abs=0.05)
    assert n["param_ratio"] == pytest.approx(46.70 / 13.02, rel=1e-3)


def test_dense_models_spend_about_six_flops_per_parameter_per_token():
    t = _by("moe_chinchilla", "model")
    for name in ("llama2-13b", "llama2-70b"):  # 6ND (Kaplan et al. 2020) plus attention
        assert 6.0 <= t.loc[name, "flops_per_token_per_total_param"] < 6.6
    assert t.loc["deepseek-v3", "flops_per_token_per_total_param"] < 0.5


def test_capacity_factor_bounds_the_busiest_expert_and_drops_only_overflow():
    t = cached_result("moe_capacity").table
    capped = t[t.capacity_factor != "dropless"]
    # capacity-based kernels compute C = ceil(cf*T*k/E) slots per expert, whatever the load
    assert (capped.expert_time_vs_top1 == capped.capacity_slots / (16384 / 8)).all()
    assert (t[t.capacity_factor == "dropless"].dropped_pct == 0).all()
    for k in (1, 2, 4):  # more capacity never drops more tokens
        drops = list(t[(t.top_k == k) & (t.capacity_factor != "dropless")].dropped_pct)
        assert drops == sorted(drops, reverse=True)
    dropless = t[t.capacity_factor == "dropless"].set_index("top_k").imbalance
    assert (dropless > 1.0).all()  # a skewed router never balances exactly


def test_moe_decode_reads_all_expert_weights_once_the_batch_touches_every_expert():
    t = cached_result("moe_decode").table.set_index(["model", "batch"])
    mixtral = count_params(get_model("mixtral-8x7b"))
    # bf16 weights: every parameter is streamed once per step when all 8 experts are touched
    assert t.loc[("mixtral-8x7b", 256), "weights_read_GB"] == pytest.approx(
        2 * mixtral.total / 1e9, rel=0.02)
    assert t.loc[("mixtral-8x7b", 1), "weights_read_GB"] == pytest.approx(
        2 * mixtral.active / 1e9, rel=0.02)
    # per-token compute does not depend on the batch, and matches the 13B dense model
    g = t.xs("mixtral-8x7b").gflop_per_token
    assert g.max() == pytest.approx(g.min(), rel=1e-9)
    assert g.iloc[0] == pytest.approx(t.loc[("llama2-13b", 1), "gflop_per_token"], rel=0.05)
