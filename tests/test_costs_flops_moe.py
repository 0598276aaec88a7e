"""MoE routing arithmetic and its FLOPs: capacity, padding, drops, imbalance, shared experts."""

from __future__ import annotations

import numpy as np
import pytest

from sim.costs.flops import expert_slots, forward_flops
from sim.costs.moe import (
    capacity,
    dropped_fraction,
    expected_experts_touched,
    expert_loads,
    imbalance_factor,
    route,
    zipf_shares,
)
from sim.errors import ConfigError
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import Shape


def moe_model(n_experts=8, top_k=2, cf=None, shared=0, **kw) -> ModelConfig:
    moe = MoEConfig(n_experts=n_experts, top_k=top_k, expert_ffn_hidden=256,
                    n_shared_experts=shared, capacity_factor=cf, **kw)
    return ModelConfig(name="moe", vocab_size=1000, hidden=128, n_layers=4, n_heads=4,
                       n_kv_heads=4, head_dim=32, ffn_hidden=512, moe=moe)


def test_capacity_is_ceil_of_cf_tokens_k_over_experts():
    assert capacity(1.25, 1000, 2, 8) == 313  # ceil(1.25 * 2000 / 8) = ceil(312.5)
    assert capacity(None, 1000, 2, 8) is None
    with pytest.raises(ConfigError, match="capacity_factor"):
        capacity(0.0, 10, 1, 2)


def test_uniform_loads_are_balanced_and_sum_to_slots():
    loads = expert_loads(1001, 8, 2)
    assert loads.sum() == 2002 and loads.max() - loads.min() <= 1
    assert list(loads) == [251, 251, 250, 250, 250, 250, 250, 250]


def test_skewed_loads_drop_overflow_and_pad_the_rest():
    m = moe_model(n_experts=2, top_k=1, cf=1.0)
    r = route(m, 10, shares=[0.7, 0.3])
    assert r.loads == (7, 3) and r.capacity == 5
    assert r.processed == 8 and r.computed == 10 and r.padding == 2
    assert r.dropped_fraction == pytest.approx(0.2)
    assert r.imbalance == pytest.approx(1.4)
    assert r.max_computed == 5


def test_dropless_routing_paces_at_the_busiest_expert():
    r = route(moe_model(n_experts=2, top_k=1), 10, shares=[0.7, 0.3])
    assert r.capacity is None and r.dropped_fraction == 0 and r.max_computed == 7


def test_sampled_loads_are_reproducible_with_a_seeded_generator():
    a = expert_loads(4096, 64, 6, zipf_shares(64, 1.2), rng=np.random.default_rng(7))
    b = expert_loads(4096, 64, 6, zipf_shares(64, 1.2), rng=np.random.default_rng(7))
    assert np.array_equal(a, b) and a.sum() == 4096 * 6


def test_zipf_shares_are_normalised_and_skewed():
    s = zipf_shares(4, 1.0)
    assert s.sum() == pytest.approx(1.0)
    assert s[0] / s[3] == pytest.approx(4.0)
    assert np.allclose(zipf_shares(5, 0.0), 0.2)
    perm = zipf_shares(4, 1.0, rng=np.random.default_rng(0))
    assert sorted(perm) == sorted(s)


def test_imbalance_and_drop_helpers():
    assert imbalance_factor(np.array([30, 10, 10, 10])) == pytest.approx(2.0)
    assert dropped_fraction(np.array([30, 10, 10, 10]), 15) == pytest.approx(15 / 60)
    assert dropped_fraction(np.array([30, 10]), None) == 0.0


def test_bad_share_vector_is_a_typed_error():
    with pytest.raises(ConfigError, match="one per expert"):
        expert_loads(10, 4, 1, [0.5, 0.5])


def test_capacity_above_one_pads_the_expert_flops():
    t = 1024  # 1024 * 2 / 8 = 256 slots per expert, integral
    dropless = forward_flops(moe_model(), Shape(1, t)).matmul
    padded = forward_flops(moe_model(cf=2.0), Shape(1, t)).matmul
    useful = forward_flops(moe_model(cf=2.0), Shape(1, t), padding=False).matmul
    expert = 4 * 2 * (t * 2) * 128 * 256 * 3  # 4 layers, 2 FLOPs, slots, h, f, 3 matrices
    assert padded - dropless == pytest.approx(expert)  # twice the slots computed
    assert useful == pytest.approx(dropless)


def test_capacity_below_one_drops_slots():
    m = moe_model(cf=0.5)
    assert expert_slots(m, 1024) == 8 * 128
    assert expert_slots(m, 1024, padding=False) == 8 * 128


def test_router_and_shared_expert_flops_are_exact():
    t = 64
    f = forward_flops(moe_model(shared=2), Shape(1, t))
    base = forward_flops(moe_model(), Shape(1, t))
    assert f.router == 4 * 2 * t * 128 * 8  # layers x 2 x T x h x E
    assert f.matmul - base.matmul == 4 * 2 * 2 * t * 128 * 256 * 3  # 2 shared SwiGLU FFNs


def test_expected_experts_touched_by_one_token_is_top_k():
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2.0)
    assert expected_experts_touched(8, 2, 10_000) == pytest.approx(8.0)
    assert expected_experts_touched(8, 2, 0) == 0.0
