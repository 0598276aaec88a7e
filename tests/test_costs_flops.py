"""FLOP counts against closed forms: 6ND, Megatron-LM Eq. 3, attention patterns, Mixtral."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.costs.attention import attended_pairs, attention_core_flops
from sim.costs.flops import (
    backward_flops,
    forward_flops,
    hardware_flops_per_step,
    model_flops_per_step,
    recompute_flops,
    step_flops,
)
from sim.errors import ConfigError
from sim.model.config import AttentionConfig, ModelConfig, MoEConfig, PositionConfig
from sim.plan import ParallelPlan, Shape


def llama(name="llama3-8b-like", *, vocab=128256, hidden=4096, layers=32, heads=32, kv=8,
          ffn=14336, **kw) -> ModelConfig:
    return ModelConfig(name=name, vocab_size=vocab, hidden=hidden, n_layers=layers,
                       n_heads=heads, n_kv_heads=kv, head_dim=hidden // heads, ffn_hidden=ffn,
                       **kw)


def megatron_gpt(hidden, heads, layers, vocab=51200) -> ModelConfig:
    return ModelConfig(name="megatron-gpt", vocab_size=vocab, hidden=hidden, n_layers=layers,
                       n_heads=heads, n_kv_heads=heads, head_dim=hidden // heads,
                       ffn_hidden=4 * hidden, ffn_kind="gelu", norm="layernorm",
                       tied_embeddings=True, position=PositionConfig(kind="learned"))


def test_six_nd_within_five_percent_for_dense_8b_at_seq_2048():
    m = llama()
    n_params = m.params_total
    assert n_params == 8_030_261_248
    plan = ParallelPlan(global_batch=16, micro_batch=1, seq_len=2048)
    ratio = model_flops_per_step(m, plan) / (6 * n_params * 16 * 2048)
    # within a few %: embedding lookups (6.5% of N) cost no FLOPs, causal attention adds ~3.8%
    assert 0.95 < ratio < 1.0


@pytest.mark.parametrize("hidden,heads,layers,batch", [
    (12288, 96, 96, 1536),  # GPT-3 175B row of Narayanan et al. 2021, Table 1
    (2304, 24, 24, 512),  # 1.7B row
    (20480, 128, 105, 2240),  # 530B row
])
def test_megatron_eq3_reproduced_with_full_recompute(hidden, heads, layers, batch):
    s, v = 2048, 51200
    m = megatron_gpt(hidden, heads, layers, v)
    plan = ParallelPlan(global_batch=batch, micro_batch=1, seq_len=s, recompute="full",
                        flash_attention=False)
    got = hardware_flops_per_step(m, plan, causal_halving=False,
                                  include=("matmul", "attention", "lm_head"))
    # Narayanan et al. 2021, Eq. 3: F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h))
    eq3 = 96 * batch * s * layers * hidden**2 * (1 + s / (6 * hidden) + v / (16 * layers * hidden))
    assert got == pytest.approx(eq3, rel=1e-12)


def test_model_flops_without_recompute_are_three_quarters_of_eq3_layers():
    m = megatron_gpt(2304, 24, 24)
    plan = ParallelPlan(global_batch=8, seq_len=2048, recompute="full", flash_attention=False)
    kw = dict(causal_halving=False, include=("matmul", "attention"))
    assert model_flops_per_step(m, plan, **kw) == pytest.approx(
        0.75 * hardware_flops_per_step(m, plan, **kw), rel=1e-12)


def test_mixtral_active_compute_close_to_a_13b_dense_model():
    mixtral = llama("mixtral-like", vocab=32000, hidden=4096, layers=32, heads=32, kv=8,
                    ffn=14336, moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=14336))
    dense13 = llama("llama2-13b-like", vocab=32000, hidden=5120, layers=40, heads=40, kv=40,
                    ffn=13824)
    shape = Shape(1, 4096)
    ratio = forward_flops(mixtral, shape).total / forward_flops(dense13, shape).total
    assert 0.9 < ratio < 1.1
    # and per token it is ~2 x active parameters (12.9B, Jiang et al. 2024)
    per_token = forward_flops(mixtral, Shape(1, 1)).total
    assert per_token == pytest.approx(2 * mixtral.params_active, rel=0.03)


def test_full_attention_flops_grow_quadratically_sliding_linearly_linear_attention_linearly():
    full = llama()
    sw = llama(attention=AttentionConfig(kind="sliding_window", window=4096))
    lin = llama(attention=AttentionConfig(kind="linear"))
    s1, s2 = 32768, 65536
    r_full = attention_core_flops(full, s2) / attention_core_flops(full, s1)
    assert r_full == pytest.approx((s2 * (s2 + 1)) / (s1 * (s1 + 1)), rel=1e-12)  # ~4
    r_sw = attention_core_flops(sw, s2) / attention_core_flops(sw, s1)
    assert r_sw == pytest.approx(2.0, rel=0.07)  # ~s*W
    assert attention_core_flops(lin, s2) == 2 * attention_core_flops(lin, s1)
    # linear attention: 4 * s * heads * d^2 (Katharopoulos et al. 2020, Eq. 6)
    assert attention_core_flops(lin, 100) == 4 * 100 * 32 * 128 * 128


def test_causal_halving_and_torch_convention_count_the_rectangle():
    m = llama()
    assert attended_pairs(m, 1000) == 1000 * 1001 // 2
    assert attended_pairs(m, 1000, causal_halving=False) == 1000 * 1000
    assert attended_pairs(m, 10, 90, causal_halving=False) == 10 * 100
    assert attended_pairs(m, 1000, convention="torch") == 1000 * 1000
    # QK^T and AV: 2 FLOPs x pairs x heads x (d_qk + d_v)
    assert attention_core_flops(m, 1000, causal_halving=False) == 2 * 1000**2 * 32 * 256


def test_decode_token_attends_its_whole_cache():
    m = llama()
    assert attended_pairs(m, 1, 4095) == 4096
    sw = llama(attention=AttentionConfig(kind="sliding_window", window=4096))
    assert attended_pairs(sw, 1, 100_000) == 4096


@given(q=st.integers(1, 60), ctx=st.integers(0, 80), w=st.integers(1, 70))
def test_sliding_window_pairs_match_brute_force(q, ctx, w):
    m = llama(attention=AttentionConfig(kind="sliding_window", window=w))
    brute = sum(min(p + 1, w) for p in range(ctx, ctx + q))
    assert attended_pairs(m, q, ctx) == brute


@given(q=st.integers(1, 60), ctx=st.integers(0, 80), d=st.integers(1, 9),
       w=st.one_of(st.none(), st.integers(1, 70)))
def test_dilated_pairs_match_brute_force(q, ctx, d, w):
    m = llama(attention=AttentionConfig(kind="dilated", dilation=d, window=w))
    brute = sum(math.ceil((p + 1 if w is None else min(p + 1, w)) / d)
                for p in range(ctx, ctx + q))
    assert attended_pairs(m, q, ctx) == brute


def test_backward_is_twice_forward_for_matmuls_and_2_5x_for_flash_attention():
    m, shape = llama(), Shape(2, 1024)
    f = forward_flops(m, shape)
    b = backward_flops(m, shape, flash=True)
    assert b.matmul == 2 * f.matmul and b.lm_head == 2 * f.lm_head
    assert b.attention == 2.5 * f.attention
    assert backward_flops(m, shape, flash=False).attention == 2 * f.attention


def test_prefill_runs_the_lm_head_on_last_tokens_only():
    m = llama()
    assert forward_flops(m, Shape(4, 512, "prefill")).lm_head == 2 * 4 * 4096 * 128256
    assert forward_flops(m, Shape(4, 512, "train")).lm_head == 2 * 4 * 512 * 4096 * 128256
    assert forward_flops(m, Shape(8, 1, "decode", kv_len=100)).lm_head == 2 * 8 * 4096 * 128256


def test_recompute_modes_add_full_forward_or_nothing_with_flash():
    m, shape = llama(), Shape(1, 2048)
    full = recompute_flops(m, shape, "full")
    assert full.matmul == forward_flops(m, shape).matmul  # layers only (lm_head separate)
    assert full.lm_head == 0
    assert recompute_flops(m, shape, "selective", flash=True).total == 0
    sel = recompute_flops(m, shape, "selective", flash=False)
    assert sel.attention == forward_flops(m, shape).attention and sel.matmul == 0


def test_hardware_minus_model_flops_is_the_recompute():
    m = llama()
    plan = ParallelPlan(global_batch=4, micro_batch=2, seq_len=1024, recompute="full",
                        flash_attention=False)
    extra = recompute_flops(m, Shape(2, 1024), "full").total * 2  # two micro-batches
    assert hardware_flops_per_step(m, plan) - model_flops_per_step(m, plan) == pytest.approx(
        extra, rel=1e-12)


def test_step_flops_scale_with_global_batch():
    m = llama()
    a = step_flops(m, ParallelPlan(global_batch=8, micro_batch=2)).total
    b = step_flops(m, ParallelPlan(global_batch=16, micro_batch=2)).total
    assert b == 2 * a


def test_unknown_category_and_convention_are_typed_errors():
    with pytest.raises(ConfigError, match="unknown FLOP categories"):
        forward_flops(llama(), Shape(1, 8), include=("gemm",))
    with pytest.raises(ConfigError, match="convention"):
        forward_flops(llama(), Shape(1, 8), convention="megatron")


def test_model_flops_exclude_flash_score_recomputation_hardware_flops_include_it():
    m = llama()
    plan = ParallelPlan(global_batch=1, seq_len=2048, recompute="none", flash_attention=True)
    attn = forward_flops(m, Shape(1, 2048)).attention
    diff = hardware_flops_per_step(m, plan) - model_flops_per_step(m, plan)
    assert diff == pytest.approx(0.5 * attn, rel=1e-12)


def test_gemm_flops_per_token_are_twice_the_matmul_parameters():
    from sim.model.config import MLAConfig
    from sim.model.params import count_params

    mla = llama("mla-like", hidden=2048, layers=4, heads=16, kv=16, ffn=10944,
                mla=MLAConfig(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                              v_head_dim=128),
                moe=MoEConfig(n_experts=64, top_k=6, expert_ffn_hidden=1408, n_shared_experts=2,
                              layer_pattern="first_k_dense", first_k_dense=1))
    for m in (llama(), mla):
        c = count_params(m)
        per_layer = sum(lp.active - lp.norms - lp.router for lp in c.layers)
        f = forward_flops(m, Shape(1, 1, "decode"))  # one token: top_k experts, no padding
        assert f.matmul == 2 * per_layer  # MLA's q_a/kv_a norms are in lp.norms
        assert f.lm_head == 2 * c.lm_head
        assert f.router == 2 * sum(lp.router for lp in c.layers)
