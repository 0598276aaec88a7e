"""Timing fidelity of calibrated profiles: the shape-aware GEMM fit, the optional
EfficiencyModel terms, and that catalog accelerators are untouched by them."""

from __future__ import annotations

import dataclasses

import pytest

from hardware import get_accelerator, get_system, to_toml
from hardware.types import EfficiencyModel
from sim.costs.timing import op_time, op_time_parts
from sim.errors import HardwareError
from sim.ops import Op
from sim.validation.matmul_fit import fit_affine, fit_matmul, predict_gemm, small_dim_factor

GRID = [(64, 64, 64), (256, 256, 256), (1024, 1024, 1024), (128, 512, 2048),
        (1, 2048, 512), (4, 2048, 512), (16, 1376, 512), (64, 2048, 512)]


def _eff(**kw) -> EfficiencyModel:
    base = dict(matmul_max=1.0, matmul_half_flops=0.0, attention_max=0.5, memory_bandwidth=0.8,
                kernel_overhead_s=0.0)
    return EfficiencyModel(**{**base, **kw})


def test_small_dim_factor_is_the_saturating_per_row_form():
    assert small_dim_factor(4.0, 4.0) == 0.5
    assert small_dim_factor(12.0, 4.0) == 0.75
    assert small_dim_factor(1.0, 0.0) == 1.0


def test_unset_terms_leave_efficiency_and_memory_unchanged():
    e = _eff()
    assert e.small_dim_factor(1) == 1.0
    assert e.memory_efficiency(gemm=True) == e.memory_efficiency(gemm=False) == 0.8


def test_fit_recovers_rate_fixed_cost_and_half_dim_from_synthetic_times():
    times = [predict_gemm(m, n, k, 7e10, 5e-6, 4.0, float("inf")) for m, n, k in GRID]
    fit = fit_matmul([(*s, t) for s, t in zip(GRID, times, strict=True)])
    assert fit.half_dim == pytest.approx(4.0)  # 0.25 * 2**4 is on the grid
    assert fit.rate == pytest.approx(7e10, rel=1e-6)
    assert fit.rms_log_error < 1e-9


def test_fit_picks_no_small_dim_term_when_times_depend_on_flops_only():
    times = [2 * m * n * k / 5e10 + 1e-5 for m, n, k in GRID]
    fit = fit_matmul([(*s, t) for s, t in zip(GRID, times, strict=True)])
    assert fit.half_dim == 0.0
    assert fit.rate == pytest.approx(5e10, rel=1e-6) and fit.fixed_s == pytest.approx(1e-5)


def test_affine_fit_without_fixed_cost_is_exact_on_a_pure_rate():
    rate, fixed = fit_affine([1e6, 1e8], [1e6 / 4e10, 1e8 / 4e10])
    assert rate == pytest.approx(4e10) and fixed == pytest.approx(0.0, abs=1e-12)


def _acc(**kw):
    """The catalog H100 without its GPU kernel models (#12): the CPU-profile code path."""
    a = get_accelerator("h100-sxm")
    base = dict(gemm=None, memory=None, attention=None, matmul_memory_bandwidth=None)
    return dataclasses.replace(a, efficiency=dataclasses.replace(a.efficiency, **{**base, **kw}),
                               compute_units=None)


def test_small_dim_term_slows_a_few_row_gemm_by_exactly_its_factor():
    op = Op(name="qkv", kind="matmul", flops=2 * 4 * 4096 * 4096, bytes=0.0,
            mnk=(4, 4096, 4096))
    plain, shaped = _acc(), _acc(matmul_half_dim=4.0)
    assert op_time_parts(op, shaped)[0] == pytest.approx(2 * op_time_parts(op, plain)[0])


def test_gemm_memory_bandwidth_applies_to_gemms_only():
    acc = _acc(memory_bandwidth=0.8, matmul_memory_bandwidth=0.4)
    gemm = Op(name="w", kind="matmul", flops=1.0, bytes=1e9, mnk=(1, 1, 1))
    add = Op(name="add", kind="elementwise", flops=1.0, bytes=1e9)
    assert op_time_parts(gemm, acc)[1] == pytest.approx(1e9 / (acc.memory_bandwidth * 0.4))
    assert op_time_parts(add, acc)[1] == pytest.approx(1e9 / (acc.memory_bandwidth * 0.8))


def test_catalog_accelerators_have_no_shape_terms_and_toml_omits_them():
    for name in ("h100-sxm", "a100-sxm-80gb", "mi300x"):
        e = get_accelerator(name).efficiency
        assert e.matmul_half_dim == 0.0 and e.gemv_memory_bandwidth is None
        assert "matmul_half_dim" not in to_toml(get_accelerator(name))
    # GPUs with the tile model (#12) carry a fitted operand-stream fraction; mi300x has none
    assert get_accelerator("mi300x").efficiency.matmul_memory_bandwidth is None


def test_catalog_op_time_is_unchanged_by_the_new_code_path():
    acc = _acc()
    acc = dataclasses.replace(acc, compute_units=132)
    op = Op(name="fc1", kind="matmul", flops=2 * 8192 * 4096 * 16384, bytes=2 * (
        8192 * 4096 + 4096 * 16384 + 8192 * 16384), mnk=(8192, 16384, 4096))
    e = acc.efficiency
    peak = acc.peak("bf16") * e.matmul_efficiency(op.flops)
    from sim.costs.timing import wave_efficiency

    expected = op.flops / (peak * wave_efficiency(8192, 16384, acc.compute_units))
    assert op_time(op, acc) == pytest.approx(expected + e.kernel_overhead_s, rel=1e-12)


def test_profile_with_shape_terms_round_trips_through_toml(tmp_path):
    sysm = get_system("dgx-h100")
    acc = _acc(matmul_half_dim=5.5, matmul_memory_bandwidth=0.25)
    acc = dataclasses.replace(acc, sources={**acc.sources, "efficiency": "test"})
    path = tmp_path / "p.toml"
    path.write_text(to_toml(dataclasses.replace(sysm, accelerator=acc)))
    back = get_system(str(path)).accelerator.efficiency
    assert back.matmul_half_dim == 5.5 and back.matmul_memory_bandwidth == 0.25


def test_negative_half_dim_is_rejected_with_the_rule(tmp_path):
    text = to_toml(get_accelerator("h100-sxm")).replace(
        "kernel_overhead =", "matmul_half_dim = -1.0\nkernel_overhead =")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HardwareError, match=r"matmul_half_dim.*>= 0"):
        get_accelerator(str(path))


def test_attention_reads_its_operands_at_the_gemm_bandwidth():
    acc = _acc(memory_bandwidth=0.8, matmul_memory_bandwidth=0.25)
    attn = Op(name="attn", kind="attention", flops=1.0, bytes=1e9)
    assert op_time_parts(attn, acc)[1] == pytest.approx(1e9 / (acc.memory_bandwidth * 0.25))
