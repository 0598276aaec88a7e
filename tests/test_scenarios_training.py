"""Invariants of the Lesson 3 training scenarios, checked on their real numbers."""

from __future__ import annotations

import pytest

from sim.report.golden import cached_result


def test_simulated_bubble_is_p_minus_1_over_m_plus_p_minus_1_for_gpipe_and_1f1b():
    t = cached_result("pipeline_bubbles").table
    p = 4
    for s in ("gpipe", "1f1b"):
        for _, r in t[t.schedule == s].iterrows():
            assert r.bubble_simulated == pytest.approx((p - 1) / (r.microbatches + p - 1), abs=1e-12)


def test_interleaving_divides_the_bubble_ratio_by_v_and_zb_h1_by_three():
    t = cached_result("pipeline_bubbles").table.set_index(["schedule", "microbatches"])

    def ratio(schedule, m):  # bubble / useful time, from the simulated idle share
        frac = t.loc[(schedule, m), "bubble_simulated"]
        return frac / (1 - frac)

    for m in (4, 8, 16, 32):
        assert ratio("interleaved", m) == pytest.approx(ratio("1f1b", m) / 2, rel=1e-9)
        # ZB-H1 with T_F = T_B = T_W: bubble (p-1)(T_F+T_B-T_W) vs (p-1)(T_F+T_B+T_W)
        assert ratio("zb-h1", m) == pytest.approx(ratio("1f1b", m) / 3, rel=1e-9)


def test_gpipe_keeps_m_microbatches_alive_and_1f1b_at_most_p():
    t = cached_result("pipeline_bubbles").table
    g, o = t[t.schedule == "gpipe"], t[t.schedule == "1f1b"]
    assert list(g.live_activations_stage0) == list(g.microbatches)
    assert list(o.live_activations_stage0) == [4, 4, 4, 4]
