"""The per-architecture kernel models (sim.costs.kernels) and the NCCL collective model
(sim.costs.nccl) against their closed forms, with the catalog's fitted values."""

from __future__ import annotations

import math

import pytest

from hardware import Cluster, get_accelerator, get_system
from sim.costs.comm import collective_choice, collective_time
from sim.costs.inference import attention_op
from sim.costs.kernels import gemm_op, padded_pairs, pnorm
from sim.costs.timing import kernel_time, op_time
from sim.model import get_model


@pytest.fixture(scope="module")
def a100():
    return get_accelerator("a100-sxm-80gb")


def _gemm_closed_form(acc, m, n, k):
    """The tile/wave formula written out for one shape (NVIDIA DU-09799-001, Sec. 2-3)."""
    e, g = acc.efficiency, acc.efficiency.gemm
    per_sm = 312e12 * e.matmul_max / 108
    kp = math.ceil(k / g.tile_k) * g.tile_k + g.k_overhead
    best = math.inf
    for tm, tn, rel in g.tiles:
        tiles = math.ceil(m / tm) * math.ceil(n / tn)
        waves = math.ceil(tiles / 108) if tiles >= 108 else max(tiles / 108, g.min_wave)
        best = min(best, waves * 2 * tm * tn * kp / (per_sm * rel))
    mem = (m * k + k * n + m * n) * 2 / (2039e9 * e.matmul_memory_bandwidth)
    return (best ** g.sharpness + mem ** g.sharpness) ** (1 / g.sharpness) + g.fixed_s


@pytest.mark.parametrize("m", [1, 136, 4096])
def test_a100_gemm_kernel_time_is_the_tile_wave_closed_form(a100, m):
    op = gemm_op(m, 4096, 4096)
    assert kernel_time(op, a100) == pytest.approx(_gemm_closed_form(a100, m, 4096, 4096),
                                                  rel=1e-12)
    assert op_time(op, a100) == pytest.approx(kernel_time(op, a100) + 2e-6, rel=1e-12)


def test_a_gemm_just_past_a_tile_multiple_costs_more_per_flop(a100):
    t256, t264 = (kernel_time(gemm_op(m, 8192, 8192), a100) for m in (256, 264))
    assert t264 / t256 > 1.1 * 264 / 256  # padding of M to the next tile (measured: 20-40%)


def test_a_large_a100_gemm_sustains_about_three_quarters_of_peak(a100):
    op = gemm_op(8192, 8192, 8192)
    achieved = op.flops / kernel_time(op, a100)
    assert 0.70 * 312e12 < achieved < 0.80 * 312e12  # measured ~233 TFLOP/s (0.75)


def test_padded_pairs_of_one_causal_block_row():
    assert padded_pairs(128, 0, 128, 64) == (128 * 128, 128 * 129 // 2)
    assert padded_pairs(1, 0, 128, 64) == (128 * 64, 1)
    # two query blocks after 100 cached keys: rows end at 228 and 356 -> 256 and 384 keys
    assert padded_pairs(256, 100, 128, 64) == (128 * 256 + 128 * 384, 256 * 100 + 256 * 257 // 2)


def test_decode_attention_pays_a_floor_per_sequence(a100):
    model = get_model("llama2-7b")
    one, many = (kernel_time(attention_op(model, [(1, 32)] * b, 1, "fp16"), a100, "fp16",
                             "fa2-paged") for b in (1, 65))
    a = a100.efficiency.attention.own("fa2-paged")
    assert a.decode_seq_s > 0.5e-6
    assert many - one >= 64 * a.decode_seq_s  # measured: ~1.4 us per extra short sequence
    assert one >= a.floor_s


def test_a_norm_kernel_is_its_class_fraction_of_hbm_with_the_l2_term(a100):
    from sim.costs.kernels import memory_kernel_time

    mk = a100.efficiency.memory
    nbytes = 2 * 4096 * 4096 * 2
    t, _, t_mem = memory_kernel_time(nbytes, 0.0, "norm", a100, 19.5e12)
    expected_mem = nbytes / (2039e9 * mk.fractions["norm"]) / (
        1 + mk.cache_speedup * mk.cache_bytes / (mk.cache_bytes + nbytes))
    assert t_mem == pytest.approx(expected_mem, rel=1e-12)
    assert t == pytest.approx(pnorm(mk.sharpness, mk.floors["norm"], 0.0, expected_mem),
                              rel=1e-12)


def test_a_small_in_node_all_reduce_pays_the_per_call_floor_and_ring_steps():
    sysm = get_system("dgx-h100")
    c = Cluster.for_gpus(sysm, 8)
    m = sysm.intra_link.nccl
    t, alg = collective_choice("all_reduce", 4096, list(range(8)), c, "ring")
    share = 8 / (8 + m.group_half)
    ll = m.ll_latency_s + 14 * m.ll_step_s + 1.75 * 4096 / (450e9 * m.ll_bandwidth * share)
    simple = m.simple_latency_s + 14 * m.simple_step_s + 1.75 * 4096 / (
        450e9 * m.simple_bandwidth * share)
    assert (t, alg) == (pytest.approx(min(ll, simple), rel=1e-12), "ring")
    assert t > 5e-6  # the 5-15 us floor the measurements show


def test_nvls_is_offered_for_all_reduce_on_hopper_but_not_for_all_gather():
    c = Cluster.for_gpus("dgx-h100", 8)
    _, alg = collective_choice("all_reduce", 2**30, list(range(8)), c, "nvls")
    assert alg == "nvls"
    _, alg = collective_choice("all_gather", 2**30, list(range(8)), c, "nvls")
    assert alg == "ring"  # NCCL has no NVLS all-gather here: its default ring


def test_large_a100_all_reduce_bus_bandwidth_is_below_line_rate():
    c = Cluster.for_gpus("dgx-a100-80gb", 8)
    t = collective_time("all_reduce", 64 * 2**20, list(range(8)), c)
    busbw = 1.75 * 64 * 2**20 / t
    assert 130e9 < busbw < 0.9 * 300e9  # measured 174 GB/s (Vidur), 229 GB/s at 1 GiB (vTrain)
