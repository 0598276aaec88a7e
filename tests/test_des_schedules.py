"""Pipeline schedules: bubble fractions and live activations from the simulated timeline."""

import pytest

from sim.des.schedules import build_schedule, max_live_microbatches
from sim.des.synthetic import bubble_fraction, run_uniform
from sim.errors import PlanError

GRID = [(p, m) for p in (2, 4, 8) for m in (1, 3, 8, 16) if m >= 1]


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize("p,m", GRID)
def test_bubble_fraction_is_p_minus_1_over_m_plus_p_minus_1(schedule, p, m):
    assert bubble_fraction(schedule, p, m) == pytest.approx((p - 1) / (m + p - 1), rel=1e-9)


@pytest.mark.parametrize("p,m,v", [(2, 4, 2), (4, 8, 2), (4, 8, 4), (8, 16, 2), (4, 4, 3)])
def test_interleaved_bubble_shrinks_by_v(p, m, v):
    frac = bubble_fraction("interleaved", p, m, v)
    # bubble / useful work = (p-1)/(v*m) (Narayanan et al. 2021, Sec. 2.2.2)
    assert frac / (1 - frac) == pytest.approx((p - 1) / (v * m), rel=1e-9)


@pytest.mark.parametrize("p,m", [(2, 4), (4, 8), (8, 16)])
def test_zb_h1_bubble_is_p_minus_1_times_f_plus_b_minus_w(p, m):
    # Qi et al. 2024, Sec. 3: ZB-H1 bubble (p-1)(T_F + T_B - T_W); here T_F = T_B = T_W = 1
    frac = bubble_fraction("zb-h1", p, m, t_fwd=1.0, t_bwd=2.0, t_w=1.0)
    assert frac == pytest.approx((p - 1) / (3 * m + p - 1), rel=1e-9)


def test_1f1b_keeps_at_most_p_microbatches_alive_on_stage_0_and_gpipe_keeps_m():
    p, m = 4, 12
    one = build_schedule("1f1b", p, m)
    gp = build_schedule("gpipe", p, m)
    assert [max_live_microbatches(t) for t in one] == [4, 3, 2, 1]
    assert [max_live_microbatches(t) for t in gp] == [12] * 4


@pytest.mark.parametrize("schedule,expected", [("1f1b", 4), ("gpipe", 12)])
def test_simulated_hbm_peak_on_stage_0_counts_live_microbatches(schedule, expected):
    _, gpus = run_uniform(schedule, 4, 12)
    assert gpus[0].hbm.peak == expected  # one byte of activations per microbatch


def test_interleaved_needs_microbatches_divisible_by_pp():
    with pytest.raises(PlanError, match="divisible by pp"):
        build_schedule("interleaved", 4, 6, 2)
