"""Fidelity fixes of the cost model, each against a closed form from its source:
dropout traffic of the 2021 Megatron-LM math-path attention, GEMM wave quantization (NVIDIA
'Matrix Multiplication Background', Sec. 3.2), and the published-run assumptions."""

from __future__ import annotations

import dataclasses

import pytest

from hardware import get_accelerator
from sim.costs.lowering import lower_layer, lower_layer_backward
from sim.costs.timing import op_time, wave_efficiency
from sim.errors import ModelError
from sim.model.config import ModelConfig
from sim.ops import Op
from sim.plan import ParallelPlan, Shape

SHAPE = Shape(2, 1024)  # b=2, s=1024
MATH = ParallelPlan(flash_attention=False)


def gpt(dropout: float = 0.0) -> ModelConfig:
    return ModelConfig(name="gpt-like", vocab_size=32000, hidden=1024, n_layers=4, n_heads=16,
                       n_kv_heads=16, head_dim=64, ffn_hidden=4096, ffn_kind="gelu",
                       norm="layernorm", dropout=dropout)


def by_name(ops):
    return {o.name: o for o in ops}


SCORES = 2 * 16 * 1024 * 1024  # b * heads * s^2 elements


def test_attention_dropout_adds_read_p_write_p_and_a_byte_mask_per_score():
    plain = by_name(lower_layer(gpt(), 0, SHAPE, MATH))["attention"]
    drop = by_name(lower_layer(gpt(0.1), 0, SHAPE, MATH))["attention"]
    assert drop.bytes - plain.bytes == SCORES * (2 + 2 + 1)  # bf16 P in, P' out, uint8 mask


def test_attention_dropout_backward_repeats_its_bytes_once():
    plain = by_name(lower_layer_backward(gpt(), 0, SHAPE, MATH))["attention_bwd"]
    drop = by_name(lower_layer_backward(gpt(0.1), 0, SHAPE, MATH))["attention_bwd"]
    assert drop.bytes - plain.bytes == SCORES * 5  # read dP' (2) + mask (1), write dP (2)


def test_flash_attention_and_inference_pay_no_dropout_traffic():
    flash = ParallelPlan()
    a = by_name(lower_layer(gpt(), 0, SHAPE, flash))["attention"]
    b = by_name(lower_layer(gpt(0.1), 0, SHAPE, flash))["attention"]
    prefill = Shape(2, 1024, "prefill")
    c = by_name(lower_layer(gpt(), 0, prefill, MATH))["attention"]
    d = by_name(lower_layer(gpt(0.1), 0, prefill, MATH))["attention"]
    assert (a.bytes, c.bytes) == (b.bytes, d.bytes)


def test_hidden_dropout_writes_a_byte_mask_in_the_residual_add():
    t, h = 2 * 1024, 1024
    plain = by_name(lower_layer(gpt(), 0, SHAPE, MATH))["mlp_residual"]
    drop = by_name(lower_layer(gpt(0.1), 0, SHAPE, MATH))["mlp_residual"]
    assert (plain.bytes, drop.bytes) == (3 * 2 * t * h, (3 * 2 + 1) * t * h)


def test_dropout_outside_zero_one_is_a_model_error():
    with pytest.raises(ModelError, match="dropout"):
        gpt(1.0)


def test_wave_quantization_of_a_2048_by_2304_output_on_108_sms():
    # 128x128 tiles: 16 x 18 = 288 tiles = 2.67 waves of 108 -> 288 / 324
    assert wave_efficiency(2048, 2304, 108) == pytest.approx(288 / 324)


def test_wave_quantization_is_free_when_tiles_fill_whole_waves():
    # 256x128 tiles: 8 x 54 = 432 = exactly 4 waves of 108 SMs
    assert wave_efficiency(2048, 6912, 108) == 1.0


def test_less_than_one_wave_is_not_penalised_split_k_fills_the_sms():
    assert wave_efficiency(128, 4096, 108) == 1.0  # 32 tiles of 128x128


def test_a100_gemm_time_includes_the_wave_loss_without_the_tile_model():
    acc = get_accelerator("a100-sxm-80gb")
    acc = dataclasses.replace(acc, efficiency=dataclasses.replace(acc.efficiency, gemm=None))
    m, n, k = 2048, 2304, 2304
    op = Op("g", "matmul", 2.0 * m * n * k, 0.0, "fwd", 0, mnk=(m, n, k))
    eff = acc.efficiency.matmul_efficiency(op.flops) * 288 / 324
    expected = op.flops / (312e12 * eff) + acc.efficiency.kernel_overhead_s
    assert op_time(op, acc) == pytest.approx(expected, rel=1e-12)


def test_unfused_gradient_accumulation_reads_grad_and_rewrites_main_grad_per_microbatch():
    m = gpt()
    h, f = 1024, 4096
    params = 4 * h * h + 2 * h * f + 2 * h + 2 * h  # weights + norms (no biases in gpt())
    plan = ParallelPlan(tp=2, flash_attention=False, grad_accumulation_fusion=False)
    op = by_name(lower_layer_backward(m, 0, SHAPE, plan))["grad_accumulate"]
    from sim.model.params import count_params

    assert count_params(m).layers[0].total == params
    assert (op.pass_, op.bytes) == ("bwd_weight", 3 * 2 * params / 2)


def test_fused_gradient_accumulation_adds_no_op():
    names = by_name(lower_layer_backward(gpt(), 0, SHAPE, ParallelPlan()))
    assert "grad_accumulate" not in names
