"""The analytic training estimate: contract fields, closed forms, bounds, memory verdicts."""

import dataclasses

import pytest

from hardware import Cluster, get_system
from sim.costs.analytic import estimate_train
from sim.model import get_model
from sim.plan import ParallelPlan

CONTRACT = {"step_time_s", "tokens_per_s", "model_flops_per_step", "hardware_flops_per_step",
            "tflops_per_gpu", "mfu", "hfu", "memory_per_gpu_bytes", "memory_breakdown_bytes",
            "fits", "time_breakdown_s", "bottleneck", "config"}


@pytest.fixture(scope="module")
def h100_64():
    return Cluster.for_gpus(get_system("dgx-h100"), 64)


def _plan(**kw):
    base = dict(tp=8, pp=4, dp=2, global_batch=64, seq_len=4096, sequence_parallel=True,
                recompute="selective", zero=1)
    return ParallelPlan(**{**base, **kw})


def test_document_has_every_contract_field_with_exact_sub_keys(h100_64):
    doc = estimate_train(get_model("llama3-70b"), _plan(), h100_64).to_dict()
    assert CONTRACT <= set(doc)
    assert set(doc["memory_breakdown_bytes"]) == {"weights", "gradients", "optimizer",
                                                  "activations", "other"}
    assert set(doc["time_breakdown_s"]) == {"compute", "communication_exposed",
                                            "pipeline_bubble"}
    assert doc["config"]["plan"]["dp"] == 2 and doc["config"]["n_gpus"] == 64
    assert doc["config"]["system"] == "dgx-h100" and doc["config"]["model"]["name"] == "llama3-70b"


def test_step_is_the_sum_of_its_parts_and_rates_follow(h100_64):
    r = estimate_train(get_model("llama3-70b"), _plan(), h100_64)
    assert r.step_time_s == pytest.approx(sum(r.time_breakdown_s.values()), rel=1e-12)
    assert r.tokens_per_s == pytest.approx(64 * 4096 / r.step_time_s)
    assert r.tflops_per_gpu == pytest.approx(r.model_flops_per_step / r.step_time_s / 64 / 1e12)
    peak = h100_64.accelerator.peak("bf16")
    assert r.mfu == pytest.approx(r.tflops_per_gpu * 1e12 / peak)
    assert r.hfu / r.mfu == pytest.approx(r.hardware_flops_per_step / r.model_flops_per_step)


def test_overlap_sum_is_an_upper_bound_of_overlap_max(h100_64):
    m = get_model("llama3-70b")
    lo = estimate_train(m, _plan(overlap="max"), h100_64)
    hi = estimate_train(m, _plan(overlap="sum"), h100_64)
    assert hi.step_time_s > lo.step_time_s
    assert hi.time_breakdown_s["compute"] == lo.time_breakdown_s["compute"]


def test_interleaving_halves_the_bubble_when_stages_hold_the_same_layers(h100_64):
    m = get_model("llama3-70b")  # 80 layers: pp=4 -> 20/stage; v=2 -> chunks of 10, 2/stage
    one = estimate_train(m, _plan(global_batch=32), h100_64)
    two = estimate_train(m, _plan(global_batch=32, schedule="interleaved", virtual_stages=2),
                         h100_64)
    assert two.time_breakdown_s["pipeline_bubble"] == pytest.approx(
        one.time_breakdown_s["pipeline_bubble"] / 2, rel=1e-9)


def test_1f1b_bubble_fraction_is_p_minus_1_over_m_without_per_microbatch_comm(h100_64):
    m = get_model("llama3-8b")  # tp=1, cp=1, ep=1: no comm inside a microbatch
    r = estimate_train(m, ParallelPlan(tp=1, pp=4, dp=16, global_batch=256, seq_len=2048),
                       h100_64)
    assert r.to_dict()["bubble_fraction"] == pytest.approx(3 / 16, rel=1e-12)


def test_zb_h1_bubble_is_smaller_than_1f1b(h100_64):
    m = get_model("llama3-70b")
    a = estimate_train(m, _plan(), h100_64).time_breakdown_s["pipeline_bubble"]
    b = estimate_train(m, _plan(schedule="zb-h1"), h100_64).time_breakdown_s["pipeline_bubble"]
    assert 0 < b < a / 2


def test_llama3_70b_unsharded_on_8_gpus_does_not_fit_and_says_so():
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 8)
    model = get_model("llama3-70b")
    plan = ParallelPlan(tp=1, pp=1, dp=8, global_batch=8, seq_len=4096)
    r = estimate_train(model, plan, cluster)
    assert r.fits is False and r.bottleneck == "memory"
    assert r.memory_breakdown_bytes["weights"] == pytest.approx(2 * model.params_total, rel=1e-3)
    assert r.memory_per_gpu_bytes > cluster.accelerator.memory_bytes
    assert r.step_time_s > 0


def test_tensor_parallel_across_nodes_is_slower_than_inside_one(h100_64):
    m = get_model("llama3-70b")
    inside = estimate_train(m, _plan(tp=8, pp=1, dp=8, global_batch=64), h100_64)
    across = estimate_train(m, _plan(tp=16, pp=1, dp=4, global_batch=64), h100_64)
    per_layer_in = inside.to_dict()["communication_by_group_s"]["tp"]
    per_layer_out = across.to_dict()["communication_by_group_s"]["tp"]
    assert per_layer_out > per_layer_in


def test_moe_expert_parallel_reports_all_to_all_time():
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 16)
    plan = ParallelPlan(tp=2, pp=1, dp=8, ep=8, global_batch=64, seq_len=4096, zero=1,
                        sequence_parallel=True)
    doc = estimate_train(get_model("mixtral-8x7b"), plan, cluster).to_dict()
    assert doc["communication_by_group_s"]["ep"] > 0
    assert doc["config"]["plan"]["ep"] == 8


def test_same_inputs_give_the_same_document(h100_64):
    from sim.cli.common import dumps

    m = get_model("llama3-70b")
    a = dumps(estimate_train(m, _plan(), h100_64).to_dict())
    b = dumps(estimate_train(m, dataclasses.replace(_plan()), h100_64).to_dict())
    assert a == b
