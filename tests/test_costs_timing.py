"""Roofline op timing and the serving-iteration cost."""

from __future__ import annotations

import math

import pytest

from hardware.types import Accelerator, EfficiencyModel
from sim.costs.inference import forward_time
from sim.costs.kvcache import kv_bytes_per_token_layer
from sim.costs.timing import op_time, ops_time, roofline_point
from sim.errors import ConfigError
from sim.model.config import ModelConfig, MoEConfig
from sim.ops import Op

EFF = EfficiencyModel(matmul_max=0.8, matmul_half_flops=1e9, attention_max=0.5,
                      memory_bandwidth=0.9, kernel_overhead_s=5e-6)
GPU = Accelerator(name="test-gpu", vendor="test", peak_flops={"bf16": 1e15, "fp32": 5e13},
                  memory_bytes=80 * 10**9, memory_bandwidth=3e12, efficiency=EFF)


def llama(**kw) -> ModelConfig:
    base = dict(name="llama-like", vocab_size=32000, hidden=4096, n_layers=32, n_heads=32,
                n_kv_heads=8, head_dim=128, ffn_hidden=14336)
    return ModelConfig(**(base | kw))


def test_big_gemm_is_compute_bound_at_matmul_efficiency():
    n = 8192
    op = Op("gemm", "matmul", 2.0 * n**3, 3 * n * n * 2.0, mnk=(n, n, n))
    eff = 0.8 * op.flops / (op.flops + 1e9)
    assert op_time(op, GPU) == pytest.approx(op.flops / (1e15 * eff) + 5e-6, rel=1e-12)
    point = roofline_point(op, GPU)
    assert point.bound == "compute" and point.intensity == pytest.approx(n / 3)
    assert point.ridge == pytest.approx(1e15 / 3e12)


def test_elementwise_op_is_memory_bound_at_streaming_bandwidth():
    op = Op("add", "elementwise", 1e6, 6e6)
    assert op_time(op, GPU) == pytest.approx(6e6 / (3e12 * 0.9) + 5e-6, rel=1e-12)
    assert roofline_point(op, GPU).bound == "memory"


def test_count_repeats_the_work_in_one_grouped_launch():
    op = Op("expert", "matmul", 1e9, 1e6, mnk=(100, 100, 100), count=8)
    single = op_time(Op("expert", "matmul", 1e9, 1e6, mnk=(100, 100, 100)), GPU)
    assert op_time(op, GPU) == pytest.approx(8 * (single - 5e-6) + 5e-6)


def test_attention_uses_the_fused_kernel_efficiency():
    op = Op("attention", "attention", 1e12, 1e6)
    assert op_time(op, GPU) == pytest.approx(1e12 / (1e15 * 0.5) + 5e-6)


def test_comm_ops_are_refused_with_a_pointer_to_collective_time():
    op = Op("ar", "collective", 0.0, 1e6, collective="all_reduce", group="tp")
    with pytest.raises(ConfigError, match="collective_time"):
        op_time(op, GPU)
    assert ops_time([op, Op("add", "elementwise", 0.0, 2.7e6)], GPU) == pytest.approx(
        2.7e6 / 2.7e12 + 5e-6)


def test_unknown_dtype_is_a_hardware_error():
    with pytest.raises(ConfigError, match="fp8"):
        op_time(Op("gemm", "matmul", 1e9, 1e6, mnk=(10, 10, 10)), GPU, dtype="fp8")


# --- serving iteration --------------------------------------------------------------------------
def test_decode_at_batch_one_is_memory_bound_and_reads_all_weights():
    m = llama()
    cost = forward_time(m, GPU, decode_kv_lens=(1000,))
    assert cost.bound == "memory" and cost.tokens == 1
    counts = m.params_total - m.vocab_size * m.hidden  # embedding rows are looked up, not read
    norms = (2 * 32 + 1) * 4096
    assert cost.weight_bytes == 2 * (counts - norms)
    assert cost.kv_bytes == 32 * kv_bytes_per_token_layer(m) * 1001
    assert cost.time_s > cost.weight_bytes / (3e12 * 0.9)


def test_long_prefill_is_compute_bound():
    cost = forward_time(llama(), GPU, prefill_lens=(8192,))
    assert cost.bound == "compute" and cost.tokens == 8192


def test_decode_batch_shares_one_weight_read():
    m = llama()
    one = forward_time(m, GPU, decode_kv_lens=(512,))
    many = forward_time(m, GPU, decode_kv_lens=(512,) * 32)
    assert many.weight_bytes == one.weight_bytes
    assert many.kv_bytes == pytest.approx(32 * one.kv_bytes)
    assert many.time_s < 2 * one.time_s


def test_mixed_batch_counts_prefill_chunk_against_its_context():
    m = llama()
    cost = forward_time(m, GPU, prefill_lens=(256,), prefill_ctx=(1024,), decode_kv_lens=(99,))
    assert cost.tokens == 257
    assert cost.kv_bytes == 32 * kv_bytes_per_token_layer(m) * (1024 + 256 + 100)


def test_moe_decode_reads_only_the_experts_it_touches():
    m = llama(moe=MoEConfig(n_experts=8, top_k=2, expert_ffn_hidden=14336))
    one = forward_time(m, GPU, decode_kv_lens=(100,))
    expert_bytes = 32 * 3 * 4096 * 14336 * 2
    dense = llama()
    base = forward_time(dense, GPU, decode_kv_lens=(100,)).weight_bytes
    router = 32 * 4096 * 8 * 2
    assert one.weight_bytes == pytest.approx(base - expert_bytes + 2 * expert_bytes + router)
    big = forward_time(m, GPU, decode_kv_lens=(100,) * 256)
    touched = 8 * (1 - (1 - 2 / 8) ** 256)
    assert math.isclose(big.weight_bytes - one.weight_bytes,
                        (touched - 2) * expert_bytes, rel_tol=1e-9)


def test_tensor_parallel_needs_a_cluster_and_bad_mixes_are_typed_errors():
    with pytest.raises(ConfigError, match="Cluster"):
        forward_time(llama(), GPU, tp=2, decode_kv_lens=(10,))
    with pytest.raises(ConfigError, match="prefill_ctx"):
        forward_time(llama(), GPU, prefill_lens=(10, 20), prefill_ctx=(5,))
    assert forward_time(llama(), GPU).time_s == 0.0


def test_tensor_parallel_decode_pays_two_all_reduces_per_layer():
    hardware = pytest.importorskip("hardware")
    from sim.costs.comm import collective_time, group_ranks
    from sim.plan import ParallelPlan

    cluster = hardware.Cluster.for_gpus("dgx-h100", 8)
    ranks = group_ranks(ParallelPlan(tp=2), "tp")
    cost = forward_time(llama(), cluster, tp=2, decode_kv_lens=(100,))
    ar = collective_time("all_reduce", 4096 * 2, ranks, cluster)
    logits = collective_time("all_gather", 32000 * 2, ranks, cluster)
    assert cost.comm_s == pytest.approx((2 * 32 + 1) * ar + logits, rel=1e-12)
    assert cost.weight_bytes == pytest.approx(
        forward_time(llama(), GPU, decode_kv_lens=(100,)).weight_bytes / 2, rel=1e-3)
