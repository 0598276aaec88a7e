"""Invariants of the serving scenarios (Lesson 3), checked on their simulated numbers."""

from __future__ import annotations

import pytest

from sim.report.golden import cached_result


def test_speculative_tokens_per_verification_follow_the_closed_form():
    t = cached_result("speculative_decoding").table
    big = t[t.batch >= 8]  # enough draws per point for the mean to settle
    err = (big.tokens_per_verification - big.expected_tokens_per_verification).abs()
    assert (err / big.expected_tokens_per_verification).max() < 0.05


def test_speculation_helps_less_as_the_batch_grows():
    t = cached_result("speculative_decoding").table
    sel = t[(t.acceptance == 0.8) & (t.draft_tokens == 4)].set_index("batch").speedup
    assert sel[1] > sel[128]
    assert sel[1] > 1.0


def test_higher_acceptance_never_lowers_the_batch1_speedup_at_fixed_k():
    t = cached_result("speculative_decoding").table
    b1 = t[t.batch == 1]
    for _, g in b1.groupby("draft_tokens"):
        s = list(g.sort_values("acceptance").speedup)
        assert s == sorted(s)


def test_continuous_batching_beats_static_at_every_load():
    t = cached_result("serving_batching").table.set_index(["policy", "arrival_rate_rps"])
    for rate in (2, 5, 10, 20, 40):
        assert (t.loc[("continuous", rate), "throughput_tokens_per_s"]
                >= t.loc[("static", rate), "throughput_tokens_per_s"])
    assert t.loc[("continuous", 40), "throughput_tokens_per_s"] > 1.5 * t.loc[
        ("static", 40), "throughput_tokens_per_s"]


def test_disaggregation_trades_first_token_latency_for_steadier_decoding():
    n = cached_result("disaggregation").numbers
    assert n["tpot99_2"] < n["tpot99_0"]
    assert n["ttft99_2"] > n["ttft99_0"]
    assert n["kv_ms"] > 0


@pytest.mark.parametrize("name", ["serving_batching", "moe_load_imbalance"])
def test_seeded_simulations_repeat_exactly(name):
    from sim.report.scenario import load_scenario

    assert load_scenario(name).run().table.equals(cached_result(name).table)
