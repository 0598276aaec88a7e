"""Overlap as physics (``overlap="stack"``): buckets reduce only once their gradients exist,
ZeRO-3 gathers per layer with the stack's prefetch, calls are priced one by one, and hidden
communication still slows compute. The stack default lies between the two bounds."""

from dataclasses import replace

import pytest

from hardware import Cluster, get_system
from sim.costs.analytic import estimate_train
from sim.costs.analytic_overlap import gather_exposed, layerwise_exposed, reduce_exposed
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.stack import get_stack, with_overrides
from sim.stack.apply import apply_stack


def test_the_last_bucket_is_always_exposed_even_with_a_long_backward():
    # 10 buckets of 1 ms behind a 1 s backward: only the last call sticks out
    assert reduce_exposed(10, 1e-3, 1e-3, 1.0, True) == pytest.approx(1e-3)


def test_slow_calls_expose_most_buckets():
    # 10 calls of 0.2 s behind a 1 s backward: the first is ready at 0.1 s, the stream is
    # busy 2 s, so 0.1 + 2.0 - 1.0 = 1.1 s stick out
    assert reduce_exposed(10, 0.2, 0.2, 1.0, True) == pytest.approx(1.1)


def test_without_grad_reduce_overlap_every_bucket_is_exposed():
    assert reduce_exposed(4, 0.1, 0.05, 10.0, False) == pytest.approx(0.35)


def test_gathers_needed_in_forward_order_expose_the_first_one():
    assert gather_exposed(5, 0.01, 1.0, True) == pytest.approx(0.01)
    assert gather_exposed(5, 0.01, 1.0, False) == pytest.approx(0.05)


def test_layerwise_prefetch_hides_cheap_gathers_and_not_slow_ones():
    # gather 1 ms, compute 10 ms per layer: one gather exposed with prefetch, all without
    assert layerwise_exposed(8, 1e-3, 1e-2, 1) == pytest.approx(1e-3)
    assert layerwise_exposed(8, 1e-3, 1e-2, 0) == pytest.approx(8e-3)
    # gather 20 ms > compute 10 ms: the stream bounds the pass, 8 x 20 + 10 - 80 = 90 ms
    assert layerwise_exposed(8, 2e-2, 1e-2, 1) == pytest.approx(9e-2)


def _zero3(gpus: int, micro_batch: int, stack="deepspeed-zero3-2021", overlap="stack"):
    model = get_model("megatron-gpt-145b")
    plan = ParallelPlan(tp=1, pp=1, dp=gpus, zero=3, micro_batch=micro_batch,
                        global_batch=1536, seq_len=2048, recompute="full", overlap=overlap)
    model, plan = apply_stack(model, plan, stack)
    return estimate_train(model, plan, Cluster.for_gpus(get_system("dgx-a100-80gb"), gpus))


def test_zero3_throughput_per_gpu_collapses_at_fixed_global_batch():
    tflops = [_zero3(g, 1536 // g).tflops_per_gpu for g in (384, 768, 1536)]
    assert tflops[0] > 1.5 * tflops[1] > 2.0 * tflops[2]
    # the perfect-overlap bound stays flat: the collapse is the physics, not the FLOPs
    bound = [_zero3(g, 1536 // g, overlap="max").tflops_per_gpu for g in (384, 1536)]
    assert bound[1] > 0.9 * bound[0]  # only GEMM shape (micro-batch 4 vs 1) moves it


def test_per_parameter_gathers_cost_more_than_per_layer_at_scale():
    st = get_stack("deepspeed-zero3-2021")
    per_layer = with_overrides(st, {"zero3_granularity": "layer"})
    assert _zero3(1536, 1, per_layer).step_time_s < _zero3(1536, 1, st).step_time_s


def test_the_stack_default_lies_between_the_two_bounds():
    model = get_model("llama3-8b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 64)
    plan = ParallelPlan(tp=2, pp=2, dp=16, global_batch=256, seq_len=4096, zero=1)
    times = {}
    for overlap in ("max", "stack", "sum"):
        m, p = apply_stack(model, replace(plan, overlap=overlap), "megatron-core-2024")
        times[overlap] = estimate_train(m, p, cluster).step_time_s
    assert times["max"] < times["stack"] < times["sum"]


def test_overlapped_communication_slows_compute_by_the_stacks_factor():
    model = get_model("llama3-8b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 16)
    plan = ParallelPlan(tp=1, pp=1, dp=16, global_batch=16, seq_len=4096, overlap="stack")
    st = get_stack("megatron-core-2024")
    fast = estimate_train(*apply_stack(model, plan, with_overrides(st, {"overlap_slowdown": 0})),
                          cluster)
    slow = estimate_train(*apply_stack(model, plan, st), cluster)
    issued = fast.to_dict()["communication_by_group_s"]["dp"]
    extra = slow.step_time_s - fast.step_time_s
    assert 0 < extra <= 0.1 * issued + 1e-12


def test_blocking_tp_collectives_cost_more_than_overlapped_ones():
    model = get_model("llama3-70b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 8)
    plan = ParallelPlan(tp=8, pp=1, dp=1, global_batch=8, seq_len=4096, overlap="stack")
    st = get_stack("megatron-core-2024")
    on = with_overrides(st, {"tp_comm_overlap": True})
    t_off = estimate_train(*apply_stack(model, plan, st), cluster).step_time_s
    t_on = estimate_train(*apply_stack(model, plan, on), cluster).step_time_s
    assert t_on < t_off


def test_framework_overhead_adds_once_per_iteration():
    model = get_model("llama3-8b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 8)
    plan = ParallelPlan(tp=1, pp=1, dp=8, global_batch=64, seq_len=2048, overlap="stack")
    st = get_stack("megatron-core-2024")
    base = estimate_train(*apply_stack(model, plan, st), cluster).step_time_s
    more = estimate_train(*apply_stack(model, plan, with_overrides(
        st, {"iteration_overhead_s": 0.25})), cluster).step_time_s
    assert more - base == pytest.approx(0.25)


def test_flash_attention_1_is_slower_than_2_and_3_is_faster():
    model = get_model("llama3-8b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 1)
    plan = ParallelPlan(global_batch=1, seq_len=8192, overlap="stack")
    st = get_stack("megatron-core-2024")
    t = {k: estimate_train(*apply_stack(model, plan, with_overrides(
        st, {"attention_kernel": k})), cluster).step_time_s for k in ("fa1", "fa2", "fa3")}
    assert t["fa1"] > t["fa2"] > t["fa3"]


def test_an_overlap_stack_plan_without_a_stack_follows_the_training_default():
    model = get_model("llama3-8b")
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 16)
    plan = ParallelPlan(dp=16, global_batch=64, seq_len=2048, overlap="stack")
    result = estimate_train(model, plan, cluster)
    assert result.config["stack"]["name"] == "megatron-core-2024"
    assert result.config["overlap"] == "stack"



def test_a_dp_bucket_holds_its_element_count_times_the_gradient_bytes():
    from sim.costs.analytic_comm import stack_data_parallel_parts
    from sim.costs.analytic_overlap import coll_time

    st = with_overrides(get_stack("megatron-core-2024"),
                        {"bucket_elements": 1_000_000, "bucket_elements_per_rank": 0,
                         "overlap_slowdown": 0.0})
    cluster = Cluster.for_gpus(get_system("dgx-h100"), 8)
    plan = ParallelPlan(dp=8, global_batch=8, overlap="stack", stack=st)
    fixed, _ = stack_data_parallel_parts(plan, cluster, 10e6, 0.0, 1.0, 2.0, 1)
    # 10M bf16 gradients = 20 MB in buckets of 1M elements (2 MB): 10 calls, not 20 of 1 MB
    one = coll_time("all_reduce", 2e6, tuple(range(8)), cluster, st.collective_algorithms)
    assert fixed.total == pytest.approx(10 * one)
