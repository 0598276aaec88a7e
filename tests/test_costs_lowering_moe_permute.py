"""MoE token permutation (dispatch gather / combine scatter) in the lowering: bytes, order."""

from __future__ import annotations

from sim.costs.lowering import lower_layer, lower_layer_backward
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import ParallelPlan, Shape

SHAPE = Shape(2, 1024)  # t = 2048 tokens


def moe(**kw) -> ModelConfig:
    return ModelConfig(name="moe-like", vocab_size=32000, hidden=1024, n_layers=2, n_heads=16,
                       n_kv_heads=8, head_dim=64, ffn_hidden=2816,
                       moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=1408, **kw))


def names(ops):
    return [o.name for o in ops]


def test_dispatch_and_combine_each_move_two_t_k_h_elements_in_bf16():
    ops = {o.name: o for o in lower_layer(moe(), 0, SHAPE, ParallelPlan())}
    for name in ("moe_dispatch_permute", "moe_combine_unpermute"):
        assert ops[name].bytes == 2 * 2048 * 2 * 1024 * 2 == 16_777_216  # read+write t*k*h bf16
        assert ops[name].flops == 0 and ops[name].kind == "elementwise"


def test_permutation_wraps_the_experts_and_the_all_to_all():
    ops = names(lower_layer(moe(), 0, SHAPE, ParallelPlan(ep=4, dp=4)))
    i = ops.index
    assert i("router") < i("moe_dispatch_permute") < i("ep_dispatch") < i("expert_up")
    assert i("expert_down") < i("ep_combine") < i("moe_combine_unpermute")


def test_capacity_factor_moves_only_kept_tokens():
    # capacity = ceil(0.5 * 2048 * 2 / 8) = 256 per expert -> 2048 kept slots of 4096
    ops = {o.name: o for o in lower_layer(moe(capacity_factor=0.5), 0, SHAPE, ParallelPlan())}
    assert ops["moe_dispatch_permute"].bytes == 2 * 2048 * 1024 * 2


def test_backward_prices_the_conjugate_scatter_and_gather():
    bwd = {o.name: o for o in lower_layer_backward(moe(), 0, SHAPE, ParallelPlan())}
    assert bwd["moe_dispatch_permute_bwd"].bytes == 1.5 * 16_777_216
    assert bwd["moe_combine_unpermute_bwd"].pass_ == "bwd_input"


def test_permutation_adds_no_flops_to_the_layer():
    m = moe()
    ops = lower_layer(m, 0, SHAPE, ParallelPlan())
    perm = [o for o in ops if o.name.startswith("moe_")]
    assert len(perm) == 2 and sum(o.total_flops for o in perm) == 0
