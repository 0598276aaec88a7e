"""The DES follows the stack's overlap physics too: blocking gradient buckets, ZeRO-3
prefetch depth and call granularity, blocking pipeline p2p, contention slowdown."""

from dataclasses import replace

import pytest

from hardware import Cluster, get_system
from sim.des import simulate_train
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.stack import get_stack, with_overrides
from sim.stack.apply import apply_stack


def _des(plan, stack, gpus=16, model="llama3-8b"):
    m, p = apply_stack(get_model(model), replace(plan, overlap="stack"), stack)
    return simulate_train(m, p, Cluster.for_gpus(get_system("dgx-h100"), gpus))


DP = ParallelPlan(tp=1, pp=1, dp=16, global_batch=16, seq_len=2048)


def test_des_and_analytic_agree_under_the_default_stack_without_contention_effects():
    res = _des(DP, "megatron-core-2024")
    assert res.step_time_s == pytest.approx(res.analytic.step_time_s, rel=0.1)


def test_a_stack_without_grad_reduce_overlap_is_slower_in_the_des():
    st = get_stack("megatron-core-2024")
    off = with_overrides(st, {"overlap_grad_reduce": False, "overlap_param_gather": False})
    assert _des(DP, off).step_time_s > _des(DP, st).step_time_s


@pytest.mark.slow
def test_zero3_prefetch_and_granularity_change_the_des_step():
    plan = replace(DP, zero=3, global_batch=32, micro_batch=2)
    st = with_overrides(get_stack("pytorch-fsdp-2024"), {"overlap_slowdown": 0.0})
    none = with_overrides(st, {"zero3_prefetch": 0})
    per_param = with_overrides(st, {"zero3_granularity": "parameter"})
    t = _des(plan, st).step_time_s
    assert _des(plan, none).step_time_s > t
    assert _des(plan, per_param).step_time_s > t


def test_an_overlap_stack_plan_without_a_stack_follows_the_default_in_the_des():
    m = get_model("llama3-8b")
    res = simulate_train(m, replace(DP, overlap="stack"),
                         Cluster.for_gpus(get_system("dgx-h100"), 16))
    assert res.to_dict()["config"]["stack"]["name"] == "megatron-core-2024"


def test_tp_comm_overlap_shortens_the_des_step_as_in_the_analytic_backend():
    plan = ParallelPlan(tp=8, pp=1, dp=1, global_batch=4, seq_len=4096)
    st = get_stack("megatron-core-2024")
    on = with_overrides(st, {"tp_comm_overlap": True})
    off_r, on_r = _des(plan, st, gpus=8), _des(plan, on, gpus=8)
    assert on_r.step_time_s < off_r.step_time_s
    assert on_r.step_time_s == pytest.approx(on_r.analytic.step_time_s, rel=0.1)


def test_an_all_gathered_cp_exchange_is_exposed_where_ring_attention_hides_it():
    # Llama 3 Sec. 3.3.2: K/V all-gathered before the attention, on the critical path
    plan = ParallelPlan(tp=1, pp=1, dp=1, cp=8, global_batch=2, seq_len=32768)
    st = with_overrides(get_stack("megatron-core-2024"), {"overlap_slowdown": 0.0})
    gather = with_overrides(st, {"cp_comm": "all_gather"})
    ring_r, gather_r = _des(plan, st, gpus=8), _des(plan, gather, gpus=8)
    assert gather_r.analytic.step_time_s > ring_r.analytic.step_time_s
    assert gather_r.step_time_s > ring_r.step_time_s
    assert gather_r.step_time_s == pytest.approx(gather_r.analytic.step_time_s, rel=0.1)
