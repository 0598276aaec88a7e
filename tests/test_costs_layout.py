"""StageLayout: one answer for the layers and parameters of each pipeline stage, read by memory,
the analytic step, the DES and inference alike."""

from __future__ import annotations

import pytest

from hardware import Cluster
from sim.costs.analytic import estimate_train
from sim.costs.layout import StageLayout, chunk_layers
from sim.costs.memory import memory_at_stage, memory_per_gpu, stage_params
from sim.errors import PlanError
from sim.model import get_model
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import ParallelPlan


def llama(**kw) -> ModelConfig:
    base = dict(name="llama-like", vocab_size=32000, hidden=4096, n_layers=80, n_heads=32,
                n_kv_heads=8, head_dim=128, ffn_hidden=14336)
    return ModelConfig(**(base | kw))


def test_80_layers_over_6_stages_put_13_on_stage_0_for_time_and_memory_alike():
    m, plan = llama(), ParallelPlan(pp=6, global_batch=12)
    lay = StageLayout.of(m, plan)
    assert [s.n_layers for s in lay.stages] == [13, 13, 14, 14, 13, 13]
    per_layer = memory_at_stage(m, plan, 2).activations / (14 * 4)  # 1F1B: 4 alive
    assert memory_at_stage(m, plan, 0).activations == pytest.approx(per_layer * 13 * 6)


def test_llama3_405b_layout_drops_one_layer_from_the_first_and_last_stage():
    assert chunk_layers(126, 16) == (7,) + (8,) * 14 + (7,)  # Llama 3 paper, Sec. 3.3.2


def test_interleaved_chunks_go_round_robin_over_stages():
    m = llama(n_layers=16)
    lay = StageLayout.of(m, ParallelPlan(pp=4, schedule="interleaved", virtual_stages=2,
                                         global_batch=8))
    assert [c.stage for c in lay.chunks] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert lay.stages[1].layers == (2, 3, 10, 11)
    assert lay.stages[0].embedding and not lay.stages[0].lm_head
    assert lay.stages[3].lm_head and not lay.stages[3].embedding


def test_stage_parameters_cover_the_model_once_with_a_tied_head_copied_to_the_last_stage():
    untied = llama(n_layers=12)
    total = sum(s.params for s in StageLayout.of(untied, ParallelPlan(pp=3)).stages)
    assert total == pytest.approx(untied.params_total, rel=1e-12)
    tied = llama(n_layers=12, tied_embeddings=True)
    total = sum(s.params for s in StageLayout.of(tied, ParallelPlan(pp=3)).stages)
    emb = 32000 * 4096
    assert total == pytest.approx(tied.params_total + emb, rel=1e-12)  # Megatron's copy


def test_expert_parameters_split_over_ep_times_tp():
    m = llama(n_layers=8, moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=14336))
    one = StageLayout.of(m, ParallelPlan(pp=2, dp=8)).stages[0].expert_params
    split = StageLayout.of(m, ParallelPlan(pp=2, dp=8, ep=4, tp=2)).stages[0].expert_params
    assert split == pytest.approx(one / 8)
    assert stage_params(m, ParallelPlan(pp=2, dp=8), 0)[1] == one


def test_memory_finds_a_heavy_middle_stage_under_gpipe():
    m, plan = llama(n_layers=10), ParallelPlan(pp=4, global_batch=8, schedule="gpipe")
    worst = memory_per_gpu(m, plan)
    assert worst.total == max(memory_at_stage(m, plan, s).total for s in range(4))
    assert worst.stage == 1  # 3 layers, every microbatch alive: more than stage 0's 2


def test_analytic_stage_times_follow_the_layout(h100_64=None):
    m = get_model("llama3-70b")  # 80 layers
    cluster = Cluster.for_gpus("dgx-h100", 48)
    r = estimate_train(m, ParallelPlan(tp=8, pp=6, dp=1, global_batch=12, seq_len=1024),
                       cluster)
    times = r.extras["stage_times_s"]
    assert times[2] > times[1]  # 14 layers vs 13, no embedding or head on either
    assert times[2] == pytest.approx(times[3])


def test_stage_out_of_range_is_a_plan_error():
    with pytest.raises(PlanError, match="stage 4"):
        StageLayout.of(llama(), ParallelPlan(pp=4))[4]
