"""Closed forms of the pipeline bubble and of the step-level DP / PP communication."""

import pytest
from test_costs_comm import FlatCluster  # same directory (pytest prepend import mode)

from sim.costs.analytic_comm import (
    bucket_bytes,
    data_parallel_cost,
    p2p_message_bytes,
    pipeline_p2p_cost,
)
from sim.costs.analytic_pipeline import bubble_fraction, bubble_time
from sim.costs.comm import collective_time
from sim.model.config import ModelConfig
from sim.plan import ParallelPlan


@pytest.mark.parametrize("p, m", [(2, 8), (4, 16), (8, 64), (16, 128)])
def test_1f1b_and_gpipe_bubble_fraction_is_p_minus_1_over_m(p, m):
    assert bubble_fraction("1f1b", p, m) == (p - 1) / m
    assert bubble_fraction("gpipe", p, m) == (p - 1) / m


@pytest.mark.parametrize("v", [2, 3, 4])
def test_interleaving_divides_the_bubble_by_v(v):
    assert bubble_fraction("interleaved", 8, 32, v) == pytest.approx(7 / (32 * v))
    assert bubble_time("interleaved", 8, v, 1.0, 1.0, 1.0) == pytest.approx(7 * 3 / v)


def test_zb_h1_bubble_is_a_third_of_1f1b_when_passes_are_equal():
    assert bubble_time("zb-h1", 4, 1, 1.0, 1.0, 1.0) == pytest.approx(3.0)  # (p-1)(F+B-W)
    assert bubble_time("1f1b", 4, 1, 1.0, 1.0, 1.0) == pytest.approx(9.0)  # (p-1)(F+B+W)
    assert bubble_fraction("zb-h1", 4, 12) == pytest.approx(3 / (12 * 3))


def test_no_pipeline_no_bubble():
    assert bubble_time("1f1b", 1, 1, 5.0, 5.0, 5.0) == 0.0
    assert bubble_fraction("interleaved", 1, 4, 2) == 0.0


MODEL = ModelConfig(name="m", vocab_size=32000, hidden=4096, n_layers=8, n_heads=32,
                    n_kv_heads=8, head_dim=128, ffn_hidden=11008)


def _plan(**kw):
    return ParallelPlan(**{**dict(tp=8, dp=4, global_batch=32, seq_len=4096), **kw})


def test_zero0_sum_exposes_one_bucketed_all_reduce():
    c = FlatCluster()
    params = 1e9  # 2 GB of bf16 gradients = 50 buckets of 40M elements
    cost = data_parallel_cost(_plan(overlap="sum"), c, params, 0, 1.0, 1.0)
    one = collective_time("all_reduce", bucket_bytes(4, 2), [0, 8, 16, 24], c)
    assert cost.total == pytest.approx(25 * one)
    assert cost.exposed == cost.total


def test_zero0_max_hides_all_but_the_last_bucket_behind_backward():
    c = FlatCluster()
    cost = data_parallel_cost(_plan(overlap="max"), c, 1e9, 0, 1.0, 10.0)
    one = collective_time("all_reduce", bucket_bytes(4, 2), [0, 8, 16, 24], c)
    assert cost.exposed == pytest.approx(one)  # backward window (10 s) covers the rest


def test_zero3_moves_one_and_a_half_times_zero0_per_microbatch():
    c = FlatCluster(a_inter=0.0)  # pure bandwidth: volumes compare exactly
    z0 = data_parallel_cost(_plan(zero=0, overlap="sum"), c, 1e9, 0, 0, 0).total
    z3 = data_parallel_cost(_plan(zero=3, overlap="sum"), c, 1e9, 0, 0, 0).total
    m = _plan().n_microbatches
    assert z3 / z0 == pytest.approx(1.5 * m)


def test_pp_p2p_sum_exposes_every_hop_and_max_only_fill_and_drain():
    c = FlatCluster()
    plan = _plan(pp=4, dp=1, global_batch=16, overlap="sum", sequence_parallel=True)
    msg = 4096 * 4096 * 2 / 8
    assert p2p_message_bytes(MODEL, plan) == msg
    t = collective_time("send_recv", msg, [0, 8], c)
    assert pipeline_p2p_cost(MODEL, plan, c).exposed == pytest.approx(16 * 2 * t)
    maxed = pipeline_p2p_cost(MODEL, _plan(pp=4, dp=1, global_batch=16), c)
    assert maxed.exposed == pytest.approx(2 * 3 * t)
