"""Parameter counting, component by component, plus property tests over random configs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ModelError
from sim.model import AttentionConfig, MoEConfig, PositionConfig, get_model
from sim.model.config import MLAConfig, ModelConfig
from sim.model.params import count_params


def test_gpt2_layer_breakdown_counts_every_bias_and_layernorm_bias():
    layer = count_params(get_model("gpt2-124m")).per_layer(0)
    h = 768
    assert layer == {
        "attention": 4 * h * h + 3 * h + h,  # c_attn (3h x h + 3h bias), c_proj (h x h + h)
        "ffn": 8 * h * h + 4 * h + h,  # c_fc (4h bias), c_proj (h bias)
        "experts": 0, "shared_experts": 0, "router": 0,
        "norms": 2 * 2 * h,  # ln_1, ln_2: weight + bias
    }


def test_gpt2_embedding_includes_learned_positions_and_head_is_tied():
    c = count_params(get_model("gpt2-124m"))
    assert (c.embedding, c.lm_head, c.final_norm) == (50257 * 768 + 1024 * 768, 0, 2 * 768)


def test_rmsnorm_has_half_the_parameters_of_layernorm():
    m = get_model("gpt2-124m")
    diff = m.params_total - m.with_(norm="rmsnorm").params_total
    assert diff == (2 * m.n_layers + 1) * m.hidden  # one bias vector per norm


def test_untying_adds_one_vocab_by_hidden_matrix():
    m = get_model("gpt2-124m")
    assert m.with_(tied_embeddings=False).params_total - m.params_total == 50257 * 768


def test_sinusoidal_and_rope_positions_have_no_parameters():
    m = get_model("gpt2-124m")
    for kind in ("sinusoidal", "rope", "none"):
        pos = replace(m.position, kind=kind)
        assert m.params_total - m.with_(position=pos).params_total == 1024 * 768


def test_mqa_saves_two_kv_projections_per_layer():
    m = get_model("llama2-7b")
    mqa = m.with_(n_kv_heads=1)
    assert m.params_total - mqa.params_total == 32 * 2 * 4096 * (4096 - 128)


def test_qwen2_has_qkv_bias_but_no_output_bias():
    att = count_params(get_model("qwen2-7b")).per_layer(0)["attention"]
    h, kv = 3584, 4 * 128
    assert att == 2 * h * h + 2 * h * kv + (h + 2 * kv)


def test_swiglu_ffn_has_three_matrices_and_gelu_two():
    m = get_model("llama3-8b")
    assert count_params(m).per_layer(0)["ffn"] == 3 * 4096 * 14336
    assert count_params(m.with_(ffn_kind="gelu")).per_layer(0)["ffn"] == 2 * 4096 * 14336


def test_mla_without_q_lora_deepseek_v2_lite_layers():
    c = count_params(get_model("deepseek-v2-lite"))
    h, n = 2048, 16
    dense, moe = c.per_layer(0), c.per_layer(1)
    # q direct (h x n*192), kv_a (h x (512+64)), kv_b (512 x n*(128+128)), o (n*128 x h)
    assert dense["attention"] == h * n * 192 + h * 576 + 512 * n * 256 + n * 128 * h
    assert dense["norms"] == 2 * h + 512  # two pre-norms + kv_a_layernorm
    assert (dense["ffn"], dense["experts"]) == (3 * h * 10944, 0)
    assert moe["experts"] == 64 * 3 * h * 1408
    assert moe["shared_experts"] == 2 * 3 * h * 1408
    assert (moe["router"], moe["ffn"]) == (h * 64, 0)


def test_mla_with_q_lora_and_sigmoid_router_bias_deepseek_v3():
    c = count_params(get_model("deepseek-v3"))
    h, n = 7168, 128
    layer = c.per_layer(3)  # first MoE layer (first_k_dense = 3)
    q = h * 1536 + 1536 * n * 192
    assert layer["attention"] == q + h * 576 + 512 * n * 256 + n * 128 * h
    assert layer["norms"] == 2 * h + 1536 + 512  # + q_a_layernorm + kv_a_layernorm
    assert layer["router"] == h * 256 + 256  # gate + e_score_correction_bias
    assert c.per_layer(2)["ffn"] == 3 * h * 18432


def test_qwen2_moe_router_includes_the_shared_expert_gate():
    layer = count_params(get_model("qwen2-57b-a14b")).per_layer(0)
    assert layer["router"] == 3584 * 64 + 3584
    assert layer["shared_experts"] == 3 * 3584 * 20480


def test_every_k_pattern_makes_every_second_layer_moe():
    base = get_model("tiny-moe")
    m = base.with_(n_layers=4, moe=replace(base.moe, layer_pattern="every_k", every_k=2))
    c = count_params(m)
    assert [c.per_layer(i)["experts"] > 0 for i in range(4)] == [False, True, False, True]
    assert c.per_layer(0)["ffn"] == 3 * 64 * 176


def test_active_drops_exactly_the_unselected_routed_experts():
    m = get_model("tiny-moe")  # 4 experts, top-2, expert ffn 96, hidden 64, 2 layers
    c = count_params(m)
    assert c.total - c.active == 2 * (4 - 2) * 3 * 64 * 96


def test_per_layer_out_of_range_is_a_model_error():
    with pytest.raises(ModelError, match="out of range 0..1"):
        count_params(get_model("tiny-llama")).per_layer(2)


def test_mla_with_biases_is_rejected_with_the_fix():
    with pytest.raises(ModelError, match="qkv_bias=False"):
        count_params(get_model("tiny-mla").with_(qkv_bias=True))


# --- properties ------------------------------------------------------------------------------
@st.composite
def configs(draw, moe: bool | None = None) -> ModelConfig:
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.integers(1, 4))
    use_moe = draw(st.booleans()) if moe is None else moe
    n_exp = draw(st.integers(1, 8))
    return ModelConfig(
        name="random", vocab_size=draw(st.integers(2, 1000)), hidden=draw(st.integers(1, 96)),
        n_layers=draw(st.integers(1, 6)), n_heads=heads, n_kv_heads=kv,
        head_dim=draw(st.integers(1, 32)), ffn_hidden=draw(st.integers(1, 300)),
        ffn_kind=draw(st.sampled_from(["gelu", "swiglu"])),
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        tied_embeddings=draw(st.booleans()), qkv_bias=draw(st.booleans()),
        linear_bias=draw(st.booleans()),
        position=PositionConfig(kind=draw(st.sampled_from(["learned", "rope", "sinusoidal"])),
                                max_positions=draw(st.integers(1, 512))),
        attention=AttentionConfig(),
        moe=MoEConfig(n_experts=n_exp, top_k=draw(st.integers(1, n_exp)),
                      expert_ffn_hidden=draw(st.integers(1, 128)),
                      n_shared_experts=draw(st.integers(0, 2)),
                      layer_pattern=draw(st.sampled_from(["all", "every_k", "first_k_dense"])),
                      every_k=draw(st.integers(1, 3)), first_k_dense=draw(st.integers(0, 3)),
                      router_bias=draw(st.booleans())) if use_moe else None,
    )


@settings(max_examples=60, deadline=None)
@given(configs())
def test_total_is_the_sum_of_its_parts_and_active_never_exceeds_it(cfg):
    c = count_params(cfg)
    parts = sum(sum(c.per_layer(i).values()) for i in range(cfg.n_layers))
    assert c.total == c.embedding + c.lm_head + c.final_norm + parts
    assert 0 < c.active <= c.total


@settings(max_examples=40, deadline=None)
@given(configs(moe=False))
def test_dense_model_has_active_equal_to_total(cfg):
    c = count_params(cfg)
    assert c.active == c.total


@settings(max_examples=40, deadline=None)
@given(configs(), st.integers(1, 4))
def test_adding_layers_strictly_increases_total_and_never_decreases_active(cfg, extra):
    deeper = cfg.with_(n_layers=cfg.n_layers + extra)
    assert deeper.params_total > cfg.params_total
    assert deeper.params_active >= cfg.params_active


@settings(max_examples=30, deadline=None)
@given(configs(moe=True))
def test_top_k_equal_to_n_experts_makes_active_equal_total(cfg):
    full = cfg.with_(moe=replace(cfg.moe, top_k=cfg.moe.n_experts))
    assert full.params_active == full.params_total


def test_mla_config_is_counted_for_tiny_mla():
    m = get_model("tiny-mla")
    att = count_params(m).per_layer(0)["attention"]
    mla: MLAConfig = m.mla
    q = 64 * 48 + 48 * 4 * (16 + 8)
    kv = 64 * (32 + 8) + 32 * 4 * (16 + 16)
    assert (mla.q_lora_rank, att) == (48, q + kv + 4 * 16 * 64)
