"""Lowering a layer to per-rank Ops: TP/SP/CP/EP splits, comm ops, backward and recompute."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.costs.flops import forward_flops, layers_forward_flops
from sim.costs.lowering import (
    lower_embedding,
    lower_embedding_backward,
    lower_head,
    lower_head_backward,
    lower_layer,
    lower_layer_backward,
)
from sim.errors import PlanError
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import ParallelPlan, Shape

SHAPE = Shape(2, 1024)


def llama(**kw) -> ModelConfig:
    base = dict(name="llama-like", vocab_size=32000, hidden=1024, n_layers=4, n_heads=16,
                n_kv_heads=8, head_dim=64, ffn_hidden=2816)
    return ModelConfig(**(base | kw))


def moe(**kw) -> ModelConfig:
    return llama(moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=1408, **kw))


def core_flops(ops) -> float:
    return sum(o.total_flops for o in ops if o.kind in ("matmul", "attention", "router"))


def by_name(ops):
    return {o.name: o for o in ops}


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
@pytest.mark.parametrize("sp", [False, True])
def test_tp_ranks_together_do_the_layer_forward_flops(tp, sp):
    m = llama()
    ops = lower_layer(m, 0, SHAPE, ParallelPlan(tp=tp, sequence_parallel=sp))
    f = layers_forward_flops(m, SHAPE)
    assert core_flops(ops) * tp == pytest.approx((f.matmul + f.attention) / m.n_layers, rel=1e-12)


def test_qkv_gemm_is_column_split_and_out_projection_row_split():
    m = llama()
    ops = by_name(lower_layer(m, 0, SHAPE, ParallelPlan(tp=4)))
    assert ops["qkv"].mnk == (2048, (1024 + 2 * 512) // 4, 1024)
    assert ops["attn_out"].mnk == (2048, 1024, 1024 // 4)
    assert ops["mlp_up"].mnk == (2048, 2 * 2816 // 4, 1024)
    assert ops["qkv"].bytes == (2048 * 1024 + 1024 * 512 + 2048 * 512) * 2


def test_tensor_parallel_all_reduces_become_gather_scatter_with_sequence_parallel():
    m = llama()
    plain = [o for o in lower_layer(m, 0, SHAPE, ParallelPlan(tp=4)) if o.is_comm]
    seq = [o for o in lower_layer(m, 0, SHAPE, ParallelPlan(tp=4, sequence_parallel=True))
           if o.is_comm]
    assert [o.collective for o in plain] == ["all_reduce", "all_reduce"]
    assert [o.collective for o in seq] == ["all_gather", "reduce_scatter"] * 2
    assert all(o.group == "tp" and o.bytes == 2048 * 1024 * 2 for o in plain + seq)


def test_no_comm_ops_without_parallelism():
    assert not [o for o in lower_layer(llama(), 0, SHAPE, ParallelPlan()) if o.is_comm]


def test_sequence_parallel_shards_norms_over_tp():
    ops = by_name(lower_layer(llama(), 0, SHAPE, ParallelPlan(tp=4, sequence_parallel=True)))
    assert ops["attn_norm"].flops == 2048 // 4 * 1024 * 4  # RMSNorm 4 FLOPs/element


def test_context_parallel_ring_exchanges_kv_and_splits_attention():
    m = llama()
    one = by_name(lower_layer(m, 0, SHAPE, ParallelPlan()))
    ops = by_name(lower_layer(m, 0, SHAPE, ParallelPlan(cp=4)))
    kv = ops["cp_kv_exchange"]
    assert (kv.kind, kv.collective, kv.group, kv.count) == ("p2p", "send_recv", "cp", 3)
    assert kv.bytes == 2 * 256 * 2 * 512 * 2  # b x s/cp x (K and V) x kv_dim x bf16
    assert ops["attention"].flops == pytest.approx(one["attention"].flops / 4)
    assert ops["qkv"].mnk[0] == 512


def test_expert_parallel_dispatch_and_combine_all_to_all():
    m = moe()
    ops = lower_layer(m, 0, SHAPE, ParallelPlan(ep=4, dp=4))
    a2a = [o for o in ops if o.collective == "all_to_all"]
    assert [o.name for o in a2a] == ["ep_dispatch", "ep_combine"]
    assert all(o.bytes == 2048 * 2 * 1024 * 2 and o.group == "ep" for o in a2a)  # T k h bytes
    up = by_name(ops)["expert_up"]
    assert up.count == 2 and up.mnk == (2048 * 2 * 4 // 8, 2 * 1408, 1024)


def test_expert_parallel_rank_does_the_same_expert_work_as_one_rank():
    m = moe()
    one = core_flops(lower_layer(m, 0, SHAPE, ParallelPlan()))
    four = core_flops(lower_layer(m, 0, SHAPE, ParallelPlan(ep=4, dp=4)))
    assert four == pytest.approx(one, rel=1e-12)


def test_imbalance_makes_one_expert_hot():
    m = moe()
    ops = by_name(lower_layer(m, 0, SHAPE, ParallelPlan(ep=4, dp=4), imbalance=1.5))
    assert ops["expert_up_hot"].mnk[0] == 3072 and ops["expert_up_hot"].count == 1  # 1.5 x 2048
    assert ops["expert_up"].count == 1 and ops["expert_up"].mnk[0] == 2048


def test_backward_splits_input_and_weight_gradients():
    m, plan = llama(), ParallelPlan(tp=2, sequence_parallel=True)
    fwd = lower_layer(m, 1, SHAPE, plan)
    bwd = lower_layer_backward(m, 1, SHAPE, plan)
    gemm = sum(o.total_flops for o in fwd if o.kind == "matmul")
    assert sum(o.total_flops for o in bwd if o.pass_ == "bwd_weight") == gemm
    assert sum(o.total_flops for o in bwd if o.pass_ == "bwd_input" and o.kind == "matmul") == gemm
    attn_f = by_name(fwd)["attention"].flops
    assert by_name(bwd)["attention_bwd"].flops == 2.5 * attn_f
    assert by_name(bwd)["qkv_dw"].mnk == (1024, 1024, 2048)  # dW = X^T dY
    comm = [o.collective for o in bwd if o.is_comm]
    assert comm == ["all_gather", "reduce_scatter"] * 2  # conjugates, reversed
    passes = [o.pass_ for o in bwd]
    assert passes.index("bwd_weight") > max(i for i, p in enumerate(passes) if p == "bwd_input")


def test_full_recompute_replays_the_forward_and_selective_only_without_flash():
    m = llama()
    fwd = lower_layer(m, 0, SHAPE, ParallelPlan(recompute="full"))
    bwd = lower_layer_backward(m, 0, SHAPE, ParallelPlan(recompute="full"))
    rec = [o for o in bwd if o.pass_ == "recompute"]
    assert [o.name for o in rec] == [o.name for o in fwd]
    assert not [o for o in lower_layer_backward(m, 0, SHAPE, ParallelPlan(recompute="selective"))
                if o.pass_ == "recompute"]
    sel = lower_layer_backward(m, 0, SHAPE, ParallelPlan(recompute="selective",
                                                         flash_attention=False))
    assert [o.name for o in sel if o.pass_ == "recompute"] == ["attention"]


def test_head_and_embedding_are_vocab_parallel():
    m, plan = llama(), ParallelPlan(tp=4)
    head = by_name(lower_head(m, SHAPE, plan))
    assert head["lm_head"].flops == 2 * 2048 * 1024 * 8000
    assert (head["loss_all_reduce"].bytes, head["loss_all_reduce"].count) == (4 * 2048, 3)
    emb = lower_embedding(m, SHAPE, plan)
    assert [o.collective for o in emb if o.is_comm] == ["all_reduce"]
    hb = lower_head_backward(m, SHAPE, plan)
    assert sum(o.flops for o in hb if o.pass_ == "bwd_weight") == head["lm_head"].flops
    assert lower_embedding_backward(m, SHAPE, plan)[-1].pass_ == "bwd_weight"


def test_lowered_whole_model_matches_forward_flops_at_tp1():
    m, plan = llama(), ParallelPlan()
    ops = [o for i in range(m.n_layers) for o in lower_layer(m, i, SHAPE, plan)]
    ops += lower_head(m, SHAPE, plan)
    f = forward_flops(m, SHAPE)
    assert core_flops(ops) == pytest.approx(f.matmul + f.attention + f.lm_head, rel=1e-12)


def test_invalid_splits_raise_plan_errors():
    with pytest.raises(PlanError, match="n_heads"):
        lower_layer(llama(), 0, SHAPE, ParallelPlan(tp=3))
    with pytest.raises(PlanError, match="cp=3"):
        lower_layer(llama(), 0, SHAPE, ParallelPlan(cp=3))
    with pytest.raises(PlanError, match="n_experts"):
        lower_layer(moe(), 0, SHAPE, ParallelPlan(ep=3, dp=3))


def test_lowering_is_cached_and_returns_fresh_lists():
    m, plan = llama(), ParallelPlan(tp=2)
    a, b = lower_layer(m, 0, SHAPE, plan), lower_layer(m, 0, SHAPE, plan)
    assert a == b and a is not b
    assert all(o.layer == 0 for o in a)


@settings(max_examples=40, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), cp=st.sampled_from([1, 2, 4]), sp=st.booleans(),
       ep=st.sampled_from([1, 2, 4, 8]), moe_layer=st.booleans())
def test_all_ranks_of_a_layer_together_do_its_forward_flops(tp, cp, sp, ep, moe_layer):
    m = moe() if moe_layer else llama()
    plan = ParallelPlan(tp=tp, cp=cp, ep=ep, dp=ep, sequence_parallel=sp)
    ops = lower_layer(m, 0, SHAPE, plan)
    f = layers_forward_flops(m, SHAPE)
    router = f.router / m.n_layers  # the router is replicated over tp, not split
    total = (core_flops(ops) - router * (1 / cp if moe_layer else 0)) * tp * cp
    assert total == pytest.approx((f.matmul + f.attention) / m.n_layers, rel=1e-9)


def test_math_attention_computes_the_masked_rectangle_and_streams_scores():
    m = llama()
    flash = by_name(lower_layer(m, 0, SHAPE, ParallelPlan()))["attention"]
    math_ = by_name(lower_layer(m, 0, SHAPE, ParallelPlan(flash_attention=False)))["attention"]
    assert flash.flops == 2 * 2 * (1024 * 1025 // 2) * 16 * 128  # causal half
    assert math_.flops == 2 * 2 * 1024 * 1024 * 16 * 128  # full rectangle
    assert math_.bytes - flash.bytes == 4 * 2 * 1024 * 1024 * 16 * 2  # 4 passes of b a s^2
