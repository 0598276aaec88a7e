"""Exact agreement between the simulator and the reference PyTorch models: FLOPs counted by
torch.utils.flop_counter, KV-cache bytes held in decode, activation bytes saved for backward
(saved-tensor hooks), and the convention differences stated in docs/design-validation.md."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from sim.costs.flops import backward_flops, forward_flops  # noqa: E402
from sim.model import get_model  # noqa: E402
from sim.plan import Shape  # noqa: E402
from sim.validation.cases import Case, exact_mismatches, summary  # noqa: E402
from sim.validation.exact import (  # noqa: E402
    activation_cases,
    flop_cases,
    kv_cases,
    moe_variants,
    tiny_names,
)
from sim.validation.measure import measure_flops, measure_layer_activations  # noqa: E402


def test_forward_and_forward_backward_flops_equal_torch_flop_counter_for_every_tiny_config():
    rows = flop_cases()
    assert len(rows) == 2 * (len(tiny_names()) + 1)  # tiny-moe is checked twice
    assert [(r.name, r.metric, r.predicted, r.measured) for r in rows if not r.ok] == []


def test_eager_attention_backward_is_twice_forward_not_flash_two_and_a_half():
    cfg, shape = get_model("tiny-llama"), Shape(2, 32, "train")
    fwd = forward_flops(cfg, shape, convention="torch")
    measured = measure_flops(cfg, 2, 32, backward=True) - measure_flops(cfg, 2, 32, False)
    assert measured == 2 * fwd.total
    flash = backward_flops(cfg, shape, flash=True, convention="torch").total
    assert flash - measured == 0.5 * fwd.attention  # the documented convention difference


def test_masked_patterns_execute_the_dense_rectangle_in_torch():
    swa, full = get_model("tiny-swa"), get_model("tiny-llama")
    assert measure_flops(swa, 1, 64, False) == measure_flops(full, 1, 64, False)
    assert (forward_flops(swa, Shape(1, 64), convention="clustersim").attention
            < forward_flops(swa, Shape(1, 64), convention="torch").attention)


def test_moe_flops_are_checked_dropless_and_with_a_capacity_that_cannot_drop():
    names = [label for label, _ in moe_variants(get_model("tiny-moe"))]
    assert names == ["tiny-moe (dropless)", "tiny-moe (cf=2)"]


@pytest.mark.parametrize("row", kv_cases(), ids=lambda r: r.name)
def test_kv_cache_bytes_held_in_decode_equal_the_simulator(row):
    assert row.predicted == row.measured > 0


def test_gqa_and_mqa_shrink_the_measured_cache_by_their_head_ratio():
    held = {r.name: r.measured for r in kv_cases(("tiny-gpt", "tiny-llama", "tiny-mqa"))}
    assert held["tiny-gpt"] == 2 * held["tiny-llama"] == 4 * held["tiny-mqa"]


def test_activation_bytes_saved_for_backward_match_within_five_percent():
    rows = activation_cases()
    checked = [r for r in rows if r.kind == "tolerance"]
    assert len(checked) >= 14
    assert [(r.name, round(r.rel_error, 4)) for r in checked if not r.ok] == []


def test_full_recompute_keeps_exactly_the_layer_input():
    cfg = get_model("tiny-llama")
    assert measure_layer_activations(cfg, 0, 2, 64, "full") == 2 * 64 * cfg.hidden * 2  # bf16


def test_unmodelled_linear_attention_activations_are_reported_not_checked():
    row = next(r for r in activation_cases(("tiny-linear",)) if "none" in r.name)
    assert row.kind == "info" and "linear" in row.note and row.ok


def test_summary_counts_only_timing_rows_and_reports_median_and_max():
    cases = [Case("a", "t", 1.1, 1.0, kind="timing"), Case("b", "t", 0.7, 1.0, kind="timing"),
             Case("c", "t", 1.0, 1.0, kind="timing"), Case("p", "params", 3, 4)]
    s = summary(cases)
    assert s["n_timing_cases"] == 3 and s["n_exact_cases"] == 1
    assert s["timing_median_abs_rel_error"] == pytest.approx(0.1)
    assert s["timing_max_abs_rel_error"] == pytest.approx(0.3)
    assert [m["name"] for m in exact_mismatches(cases)] == ["p"]
