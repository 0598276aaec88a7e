"""Memory per GPU: ZeRO stages, TP/PP/EP sharding, activations, live micro-batches, KV cache."""

from __future__ import annotations

import pytest

from sim.costs.activations import activation_bytes_per_layer
from sim.costs.kvcache import kv_cache_bytes, kv_cache_bytes_per_token
from sim.costs.memory import (
    RUNTIME_RESERVE_BYTES,
    layers_on_stage,
    live_microbatches,
    memory_at_stage,
    memory_per_gpu,
    stage_params,
)
from sim.errors import ConfigError, PlanError
from sim.model.config import AttentionConfig, MLAConfig, ModelConfig, MoEConfig, PositionConfig
from sim.plan import ParallelPlan


def llama(**kw) -> ModelConfig:
    base = dict(name="llama-like", vocab_size=32000, hidden=4096, n_layers=32, n_heads=32,
                n_kv_heads=8, head_dim=128, ffn_hidden=14336)
    return ModelConfig(**(base | kw))


def gpt(**kw) -> ModelConfig:
    base = dict(name="gpt-like", vocab_size=51200, hidden=4096, n_layers=8, n_heads=32,
                n_kv_heads=32, head_dim=128, ffn_hidden=16384, ffn_kind="gelu",
                norm="layernorm", position=PositionConfig(kind="learned"))
    return ModelConfig(**(base | kw))


@pytest.mark.parametrize("zero,per_param", [(0, 16), (1, 4 + 12 / 8), (2, 2 + 14 / 8),
                                            (3, 16 / 8)])
def test_zero_stage_bytes_per_parameter(zero, per_param):
    m = llama()
    plan = ParallelPlan(dp=8, zero=zero, global_batch=8)
    mb = memory_per_gpu(m, plan)
    assert mb.weights + mb.gradients + mb.optimizer == pytest.approx(
        per_param * m.params_total, rel=1e-12)


def test_stage_params_cover_the_model_once():
    m = llama()
    plan = ParallelPlan(pp=4, global_batch=4)
    assert sum(sum(stage_params(m, plan, s)) for s in range(4)) == m.params_total


def test_tensor_parallel_splits_all_but_norms():
    m = llama()
    one = stage_params(m, ParallelPlan(), 0)[0]
    eight = stage_params(m, ParallelPlan(tp=8), 0)[0]
    norms = (2 * 32 + 1) * 4096
    assert eight == pytest.approx((one - norms) / 8 + norms)


def test_expert_parallel_splits_routed_experts_only():
    m = llama(moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=14336))
    d1, e1 = stage_params(m, ParallelPlan(dp=8), 0)
    d8, e8 = stage_params(m, ParallelPlan(dp=8, ep=8), 0)
    assert d1 == d8 and e8 == e1 / 8
    assert e1 == 32 * 8 * 3 * 4096 * 14336


def test_uneven_stages_give_the_extra_layers_to_the_middle_stages_as_the_step_time_does():
    plan = ParallelPlan(pp=4, global_batch=4)
    assert [len(layers_on_stage(llama(n_layers=10), plan, s)) for s in range(4)] == [2, 3, 3, 2]
    assert list(layers_on_stage(llama(n_layers=10), plan, 2)) == [5, 6, 7]


def test_live_microbatches_per_schedule():
    plan = ParallelPlan(pp=4, global_batch=16, schedule="gpipe")
    assert [live_microbatches(plan, s) for s in range(4)] == [16] * 4
    plan = ParallelPlan(pp=4, global_batch=16, schedule="1f1b")
    assert [live_microbatches(plan, s) for s in range(4)] == [4, 3, 2, 1]
    plan = ParallelPlan(pp=4, global_batch=2, schedule="1f1b")
    assert live_microbatches(plan, 0) == 2  # fewer micro-batches than stages
    plan = ParallelPlan(pp=4, global_batch=16, schedule="zb-h1")
    assert live_microbatches(plan, 0) == 4
    plan = ParallelPlan(pp=4, global_batch=16, schedule="interleaved", virtual_stages=2)
    assert live_microbatches(plan, 0) == pytest.approx(4 * (1 + 3 / 8))  # Korthikanti 4.2.3


def test_gpipe_holds_m_over_p_times_the_activations_of_1f1b():
    m = llama()
    kw = dict(pp=4, global_batch=32, recompute="none")
    g = memory_at_stage(m, ParallelPlan(schedule="gpipe", **kw), 0).activations
    f = memory_at_stage(m, ParallelPlan(schedule="1f1b", **kw), 0).activations
    assert g / f == pytest.approx(32 / 4)


def test_bad_stage_or_schedule_are_typed_errors():
    with pytest.raises(PlanError, match="stage 4"):
        live_microbatches(ParallelPlan(pp=4), 4)
    with pytest.raises(ConfigError, match="schedule"):
        live_microbatches(ParallelPlan(pp=2, schedule="pipedream"), 0)


# --- activations --------------------------------------------------------------------------------
@pytest.mark.parametrize("t,sp,expected", [
    (1, False, lambda s, b, h, a: s * b * h * (34 + 5 * a * s / h)),  # Eq. 1
    (8, False, lambda s, b, h, a: s * b * h * (10 + 24 / 8 + 5 * a * s / (h * 8))),  # Eq. 2
    (8, True, lambda s, b, h, a: s * b * h * (34 / 8 + 5 * a * s / (h * 8))),  # Sec. 4.2.2
])
def test_korthikanti_activation_formulas(t, sp, expected):
    m, s, b = gpt(), 2048, 2
    plan = ParallelPlan(tp=t, sequence_parallel=sp, seq_len=s, micro_batch=b,
                        flash_attention=False)
    got = activation_bytes_per_layer(m, plan, reference="korthikanti")
    assert got == pytest.approx(expected(s, b, 4096, 32), rel=1e-12)


def test_korthikanti_selective_full_and_flash():
    m, s, b, h = gpt(), 2048, 1, 4096
    kw = dict(tp=8, sequence_parallel=True, seq_len=s, micro_batch=b)
    sel = activation_bytes_per_layer(m, ParallelPlan(recompute="selective", **kw), "korthikanti")
    assert sel == pytest.approx(34 * s * b * h / 8)
    full = activation_bytes_per_layer(m, ParallelPlan(recompute="full", **kw), "korthikanti")
    assert full == pytest.approx(2 * s * b * h / 8)
    flash = activation_bytes_per_layer(m, ParallelPlan(**kw), "korthikanti")
    assert flash == sel  # flash attention never stores the s^2 scores


def test_clustersim_activation_reference_counts_saved_tensors():
    m, s, b = llama(n_kv_heads=32), 1024, 1  # MHA, SwiGLU, flash, bf16
    t = s * b
    got = activation_bytes_per_layer(m, ParallelPlan(seq_len=s, micro_batch=b))
    norms = 4 * t * 4096 * 2 + 2 * 4 * t
    attn = t * 3 * 4096 * 2 + t * 4096 * 2 + 4 * b * 32 * s
    ffn = 4 * t * 14336 * 2
    assert got == norms + attn + ffn
    math = activation_bytes_per_layer(m, ParallelPlan(seq_len=s, flash_attention=False))
    assert math - got == 32 * s * s * 2 - 4 * 32 * s  # softmax probs instead of the LSE
    full = activation_bytes_per_layer(m, ParallelPlan(seq_len=s, recompute="full"))
    assert full == t * 4096 * 2


def test_sequence_parallel_and_context_parallel_shrink_activations():
    m = llama()
    base = activation_bytes_per_layer(m, ParallelPlan(tp=8, seq_len=4096))
    sp = activation_bytes_per_layer(m, ParallelPlan(tp=8, seq_len=4096, sequence_parallel=True))
    cp = activation_bytes_per_layer(m, ParallelPlan(tp=8, cp=2, seq_len=4096))
    assert sp < base and cp == pytest.approx(base / 2, rel=0.01)


def test_other_holds_runtime_reserve_and_last_stage_logits():
    m = llama()
    plan = ParallelPlan(pp=2, tp=2, seq_len=2048, micro_batch=1, global_batch=2)
    assert memory_at_stage(m, plan, 0).other == RUNTIME_RESERVE_BYTES
    assert memory_at_stage(m, plan, 1).other == RUNTIME_RESERVE_BYTES + 4 * 2048 * 32000 / 2
    assert memory_per_gpu(m, plan).total == max(memory_at_stage(m, plan, s).total for s in (0, 1))
    assert set(memory_per_gpu(m, plan).to_dict()) == {"weights", "gradients", "optimizer",
                                                      "activations", "other"}


# --- KV cache -----------------------------------------------------------------------------------
def test_llama3_70b_kv_cache_at_128k_tokens_is_exact():
    m = llama(vocab_size=128256, hidden=8192, n_layers=80, n_heads=64, n_kv_heads=8,
              ffn_hidden=28672)
    assert kv_cache_bytes(m, 131072) == 80 * 2 * 8 * 128 * 2 * 131072 == 42_949_672_960


def test_kv_cache_per_token_for_mha_gqa_mqa_mla():
    assert kv_cache_bytes_per_token(gpt(n_layers=12, hidden=768, n_heads=12, n_kv_heads=12,
                                        head_dim=64)) == 12 * 2 * 12 * 64 * 2
    assert kv_cache_bytes_per_token(llama()) == 32 * 2 * 8 * 128 * 2
    assert kv_cache_bytes_per_token(llama(n_kv_heads=1)) == 32 * 2 * 1 * 128 * 2
    mla = llama(n_layers=60, mla=MLAConfig(kv_lora_rank=512, qk_rope_head_dim=64,
                                           qk_nope_head_dim=128, v_head_dim=128))
    assert kv_cache_bytes_per_token(mla) == 60 * (512 + 64) * 2  # DeepSeek-V2 Table 1


def test_sliding_window_caps_and_linear_attention_keeps_a_constant_state():
    sw = llama(attention=AttentionConfig(kind="sliding_window", window=4096))
    assert kv_cache_bytes(sw, 32768) == kv_cache_bytes(sw, 4096) == 4096 * 32 * 4096
    lin = llama(attention=AttentionConfig(kind="linear"))
    assert kv_cache_bytes_per_token(lin) == 0
    state = 32 * 32 * (128 * 128 + 128) * 2  # layers x heads x (S + z) x bf16
    assert kv_cache_bytes(lin, 10) == kv_cache_bytes(lin, 100_000) == state


def test_kv_cache_under_tensor_parallelism_keeps_at_least_one_head():
    m = llama()
    assert kv_cache_bytes(m, 1000, tp=4) == kv_cache_bytes(m, 1000) / 4
    assert kv_cache_bytes(m, 1000, tp=16) == kv_cache_bytes(m, 1000) / 8
