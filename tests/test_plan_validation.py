"""Every PlanError case of sim.plan_validation, plus dp inference and uneven stage layout."""

import pytest

from sim.errors import PlanError
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import ParallelPlan
from sim.plan_validation import resolve_plan, stage_layers, validate_plan

DENSE = ModelConfig(name="d", vocab_size=32000, hidden=4096, n_layers=32, n_heads=32,
                    n_kv_heads=8, head_dim=128, ffn_hidden=14336)
MOE = DENSE.with_(name="m", moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=14336))


def plan(**kw):
    base = dict(tp=1, pp=1, dp=8, global_batch=64, seq_len=4096)
    return ParallelPlan(**{**base, **kw})


def test_legal_plan_passes():
    assert validate_plan(DENSE, plan(tp=8, dp=1, global_batch=8), 8) is None


@pytest.mark.parametrize("kw, gpus, needle", [
    (dict(tp=3, dp=1, global_batch=3), 3, "tp=3 does not divide n_heads=32"),
    (dict(tp=16, dp=1, global_batch=16), 16, None),  # 16 > 8 kv heads, multiple: legal
    (dict(dp=4), 8, "must equal the GPU count 8"),
    (dict(global_batch=60), 8, "not divisible by dp*micro_batch"),
    (dict(ep=2), 8, "needs a Mixture-of-Experts model"),
    (dict(pp=33, dp=1, global_batch=33), 33, "exceeds n_layers=32"),
    (dict(zero=4), 8, "is not a ZeRO stage"),
    (dict(zero=2, pp=2, dp=4), 8, "incompatible with pipeline parallelism"),
    (dict(cp=2, dp=4, seq_len=4098), 8, "2*cp"),
    (dict(virtual_stages=2), 8, "needs --schedule interleaved"),
    (dict(schedule="interleaved", virtual_stages=1, pp=2, dp=4), 8, "virtual_stages > 1"),
    (dict(schedule="interleaved", virtual_stages=2, pp=4, dp=2, global_batch=6), 8,
     "divisible by pp=4"),
    (dict(sequence_parallel=True, tp=8, dp=1, seq_len=4100, global_batch=1), 8,
     "divisible by tp=8"),
    (dict(micro_batch=0), 8, "micro_batch=0 must be >= 1"),
    (dict(schedule="dualpipe"), 8, "unknown schedule"),
    (dict(recompute="some"), 8, "unknown recompute"),
    (dict(overlap="half"), 8, "unknown overlap"),
])
def test_dense_constraints_name_the_broken_rule(kw, gpus, needle):
    if needle is None:
        assert validate_plan(DENSE, plan(**kw), gpus) is None
        return
    with pytest.raises(PlanError, match=needle.replace("*", r"\*")):
        validate_plan(DENSE, plan(**kw), gpus)


def test_tp_above_kv_heads_must_be_a_multiple_of_them():
    model = DENSE.with_(n_heads=48, n_kv_heads=8)
    with pytest.raises(PlanError, match="multiple of n_kv_heads"):
        validate_plan(model, plan(tp=12, dp=1, global_batch=1), 12)


def test_tp_must_divide_kv_heads_when_smaller():
    model = DENSE.with_(n_heads=36, n_kv_heads=12)
    with pytest.raises(PlanError, match="does not divide n_kv_heads=12"):
        validate_plan(model, plan(tp=9, dp=1, global_batch=1), 9)


def test_tp_must_divide_ffn_hidden():
    model = DENSE.with_(ffn_hidden=14330)
    with pytest.raises(PlanError, match="ffn_hidden=14330"):
        validate_plan(model, plan(tp=4, dp=2), 8)


def test_ep_must_divide_experts_and_dp():
    with pytest.raises(PlanError, match="n_experts=8"):
        validate_plan(MOE.with_(moe=MoEConfig(8, 2, 14336)), plan(ep=16, dp=16, global_batch=16), 16)
    with pytest.raises(PlanError, match="does not divide dp=6"):
        validate_plan(MOE, plan(ep=4, dp=6, global_batch=6), 6)
    assert validate_plan(MOE, plan(ep=8), 8) is None


def test_resolve_plan_fills_dp_from_gpu_count():
    assert resolve_plan(plan(tp=4, pp=2, dp=0), 64).dp == 8
    assert resolve_plan(plan(dp=3), 64).dp == 3  # explicit dp kept
    with pytest.raises(PlanError, match="does not divide --gpus 60"):
        resolve_plan(plan(tp=8, dp=0), 60)


def test_uneven_stages_lighten_first_and_last():
    assert stage_layers(126, 16) == [7] + [8] * 14 + [7]  # Llama 3 paper Sec. 3.3.2
    assert stage_layers(10, 4) == [2, 3, 3, 2]
    assert stage_layers(105, 35) == [3] * 35
    assert sum(stage_layers(61, 8)) == 61
