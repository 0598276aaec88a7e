"""Expert, context and ZeRO-3 parallelism in the DES: routing skew, ring attention, gathers."""

from dataclasses import replace

import numpy as np
import pytest

import hardware
from sim.costs.moe import zipf_shares
from sim.des import simulate_train
from sim.model import get_model
from sim.model.params import count_params
from sim.plan import ParallelPlan


@pytest.fixture(scope="module")
def node():
    return hardware.Cluster.for_gpus("dgx-h100", 8)


def _mixtral(cf):
    m = get_model("mixtral-8x7b")
    return m.with_(moe=replace(m.moe, capacity_factor=cf))


EP_PLAN = ParallelPlan(dp=8, ep=8, global_batch=8, micro_batch=1, seq_len=4096)


def _expert_seconds(res) -> float:
    ops = res.ops
    sel = ops[(ops["pass"] == "F") & ops.name.str.contains("expert")]
    return float((sel.end - sel.start).sum())


def test_zipf_routing_slows_the_experts_by_the_max_over_mean_load_ratio(node):
    model = _mixtral(None)  # dropless: the hot expert takes all its tokens
    uni = simulate_train(model, EP_PLAN, node, routing="uniform", seed=1)
    zipf = simulate_train(model, EP_PLAN, node, routing="zipf", zipf_s=1.0, seed=1)
    ratio = zipf.to_dict()["moe_routing"]["mean_imbalance"] / \
        uni.to_dict()["moe_routing"]["mean_imbalance"]
    assert ratio > 2.5
    assert _expert_seconds(zipf) / _expert_seconds(uni) == pytest.approx(ratio, rel=0.05)
    assert zipf.step_time_s > uni.step_time_s


def test_with_a_capacity_factor_skew_drops_tokens_instead_of_slowing_experts(node):
    model = _mixtral(1.25)
    uni = simulate_train(model, EP_PLAN, node, routing="uniform", seed=1)
    zipf = simulate_train(model, EP_PLAN, node, routing="zipf", zipf_s=1.0, seed=1)
    assert _expert_seconds(zipf) == pytest.approx(_expert_seconds(uni), rel=1e-9)
    # overflow beyond C = cf*T*k/E slots per expert (GShard Sec. 2.2): sum(max(share - cf/E, 0))
    expected = np.clip(zipf_shares(8, 1.0) - 1.25 / 8, 0, None).sum()
    dropped = zipf.to_dict()["moe_routing"]["mean_dropped_fraction"]
    assert dropped == pytest.approx(expected, abs=0.01)


def test_ring_attention_hides_the_kv_exchange_behind_attention(node):
    model = get_model("llama3-8b")
    plan = ParallelPlan(tp=2, cp=4, global_batch=2, micro_batch=1, seq_len=32768)
    hidden = simulate_train(model, plan, node).to_dict()["communication_exposed_by_group_s"]
    shown = simulate_train(model, replace(plan, overlap="sum"), node).to_dict()[
        "communication_exposed_by_group_s"]
    assert shown["cp"] > 0
    assert hidden["cp"] < 0.05 * shown["cp"]


def test_zero3_keeps_at_most_two_layers_of_gathered_weights(node):
    model = get_model("llama3-8b")
    plan = ParallelPlan(dp=8, zero=3, global_batch=16, micro_batch=1, seq_len=2048)
    res = simulate_train(model, plan, node)
    counts = count_params(model)
    layer = counts.layers[0].total * 2 * 7 / 8  # bf16 weights, 1/8 already local
    emb = counts.embedding * 2 * 7 / 8
    head = (counts.lm_head + counts.final_norm) * 2 * 7 / 8
    peak = res.peak_by_kind(0)["zero3_gathered"]
    assert peak == pytest.approx(max(emb + layer, head + layer, 2 * layer), rel=1e-9)
