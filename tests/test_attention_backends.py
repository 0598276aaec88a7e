"""Attention priced per kernel implementation: the accelerator's fitted model of the stack's
attention kernel is selected (FlashInfer and FlashAttention-2 over a paged cache run the same
shapes ~2x apart on A100), with the default model for kernels without a fit of their own.
Measured rows: tests/data/kernels/kernels_slice.csv (Vidur A100 attention.csv, see its README)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hardware import get_accelerator, to_toml
from hardware import get_accelerator as load_file
from hardware.kernel_models import ATTENTION_BACKENDS
from sim.calibration.fit_kernels import fit_accelerator
from sim.calibration.rows import attention_backend, load_rows, row_op
from sim.costs import stack_effects
from sim.costs.inference import attention_op, forward_time
from sim.costs.timing import kernel_time, op_time
from sim.errors import HardwareError
from sim.model import get_model
from sim.stack import get_stack, with_overrides
from sim.stack.types import ATTENTION_KERNELS

SLICE = Path(__file__).parent / "data" / "kernels" / "kernels_slice.csv"
A100 = get_accelerator("a100-sxm-80gb")


def _row(rows, model_tag: str, q: int, ctx: int, batch: int = 1):
    hit = rows[rows["model"].str.contains(model_tag) & (rows["q_len"] == q)
               & (rows["ctx"] == ctx) & (rows["batch"] == batch)]
    assert len(hit) == 1
    return hit.iloc[0]


@pytest.fixture(scope="module")
def rows():
    return load_rows(SLICE)


def test_hardware_backends_are_the_stacks_fused_attention_kernels():
    assert set(ATTENTION_BACKENDS) == set(ATTENTION_KERNELS) - {"none", "math"}


def test_the_a100_catalog_has_a_flashinfer_default_and_a_fa2_paged_model():
    a = A100.efficiency.attention
    assert a.kernel == "flashinfer" and [b for b, _ in a.backends] == ["fa2-paged"]
    assert a.select("fa2-paged").prefill_seq_s == pytest.approx(301.4e-6)
    assert a.select("fa2") is a  # no fit of its own: the default prices it
    assert a.own("fa2") is None and a.own("flashinfer") is a


@pytest.mark.parametrize("tag,q,ctx,kernel,measured_us", [
    ("Llama-2-7b", 1344, 224, "fa2-paged", 454.0),
    ("Llama-2-7b", 1280, 2560, "fa2-paged", 728.0),
    ("Llama-3-8B", 3008, 0, "flashinfer", 584.0),
    ("Llama-3-8B", 2816, 8448, "flashinfer", 3015.0),
])
def test_each_backends_model_gives_the_measured_prefill_time(rows, tag, q, ctx, kernel,
                                                            measured_us):
    row = _row(rows, tag, q, ctx)
    assert attention_backend(row) == kernel
    assert row["measured_s"] == pytest.approx(measured_us * 1e-6)
    t = kernel_time(row_op(row, "fp16"), A100, "fp16", kernel)
    assert t == pytest.approx(measured_us * 1e-6, rel=0.08)


def test_the_wrong_backends_model_misses_the_same_row_by_about_2x(rows):
    row = _row(rows, "Llama-2-7b", 1344, 224)  # FlashAttention-2 paged: 454 us
    op = row_op(row, "fp16")
    own = kernel_time(op, A100, "fp16", "fa2-paged")
    other = kernel_time(op, A100, "fp16", "flashinfer")
    assert own / row["measured_s"] == pytest.approx(1.0, abs=0.08)
    assert other / row["measured_s"] < 0.45


def test_the_stacks_attention_kernel_selects_the_model_in_a_serving_iteration():
    model = get_model("llama2-7b")
    fi = get_stack("sarathi-2024")
    assert fi.attention_kernel == "flashinfer"
    fa = with_overrides(fi, {"attention_kernel": "fa2-paged"})
    t = {s.attention_kernel: forward_time(model, A100, prefill_lens=(1344,), stack=s).time_s
         for s in (fi, fa)}
    op = attention_op(model, [(1344, 0)], 1, "bf16")
    per_layer = {k: op_time(op, A100, "bf16", k) for k in t}
    diff = model.n_layers * (per_layer["fa2-paged"] - per_layer["flashinfer"])
    assert diff > model.n_layers * 250e-6  # the fa2-paged per-prefill-sequence cost
    assert t["fa2-paged"] - t["flashinfer"] == pytest.approx(diff, rel=1e-9)


def test_a_kernel_with_its_own_model_is_not_scaled_and_others_scale_from_the_default():
    op = attention_op(get_model("llama2-7b"), [(512, 0)], 1, "bf16")
    st = get_stack("sarathi-2024")
    for kernel, factor in (("flashinfer", 1.0), ("fa2-paged", 1.0), ("fa2", 1.0),
                           ("fa1", 2.0), ("fa3", 1 / 1.5)):
        s = with_overrides(st, {"attention_kernel": kernel})
        assert stack_effects.op_factor(op, s, True, A100) == pytest.approx(factor)
        assert stack_effects.attention_kernel(s) == kernel
    math_stack = with_overrides(st, {"attention_kernel": "math"})
    assert stack_effects.attention_kernel(math_stack) is None


def test_the_per_backend_fit_on_the_slice_finds_both_backends_and_predicts_held_out_rows(rows):
    fit = fit_accelerator(rows[rows["op_kind"].str.startswith("attn")], A100)
    assert set(fit.heldout) == {"attention:fa2-paged", "attention:flashinfer"}
    assert {n: s["count"] for n, s in fit.heldout.items()} == {"attention:fa2-paged": 15,
                                                                "attention:flashinfer": 17}
    for name, s in fit.heldout.items():
        assert s["median_abs_error"] < 0.20, name  # issue #12 target: attention median <= 20%
    a = fit.accelerator.efficiency.attention
    assert a.kernel == "flashinfer" and a.own("fa2-paged").attention_max is not None


def test_an_accelerator_with_backend_models_round_trips_through_toml(tmp_path):
    path = tmp_path / "a100.toml"
    path.write_text(to_toml(A100))
    back = load_file(str(path))
    assert back.efficiency.attention == A100.efficiency.attention


def test_a_sub_table_repeating_the_default_kernel_is_a_hardware_error(tmp_path):
    text = to_toml(A100).replace("[efficiency.attention.fa2-paged]",
                                 "[efficiency.attention.flashinfer]")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HardwareError, match="efficiency.attention.flashinfer"):
        load_file(str(path))


def test_an_unknown_backend_sub_table_is_a_hardware_error(tmp_path):
    text = to_toml(A100).replace("[efficiency.attention.fa2-paged]",
                                 "[efficiency.attention.fa9]")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HardwareError, match="fa9"):
        load_file(str(path))


def test_a_model_without_backends_prices_every_kernel_with_its_default():
    bare = dataclasses.replace(A100.efficiency.attention, backends=())
    assert bare.select("fa2-paged") is bare


def test_op_attention_takes_the_stacks_kernel_and_names_the_model_it_used(capsys):
    import json

    from sim.cli.main import main

    argv = ["op", "attention", "--model", "llama2-7b", "--accelerator", "a100-sxm-80gb",
            "--phase", "prefill", "--batch", "1", "--q-len", "1344", "--context", "224",
            "--json"]
    docs = {}
    for kernel in ("fa2-paged", "flashinfer", "fa1"):
        assert main(argv + ["--attention-kernel", kernel]) == 0
        docs[kernel] = json.loads(capsys.readouterr().out)
    assert docs["fa2-paged"]["attention_model"] == "fa2-paged"
    assert docs["fa2-paged"]["time_s"] == pytest.approx(454e-6, rel=0.08)  # measured 454 us
    assert docs["fa1"]["attention_model"] == "flashinfer"
    assert docs["fa1"]["time_s"] == pytest.approx(2 * docs["flashinfer"]["time_s"], rel=1e-9)


def test_hardware_show_lists_the_attention_kernels_with_their_own_models(capsys):
    import json

    from sim.cli.main import main

    assert main(["hardware", "show", "a100-sxm-80gb", "--json"]) == 0
    kernels = json.loads(capsys.readouterr().out)["efficiency"]["attention_kernels"]
    assert kernels == {"flashinfer": 0.5178, "fa2-paged": 0.5141}
    assert main(["hardware", "show", "h100-sxm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["efficiency"]["attention_kernels"] == {
        "flashinfer": 0.35}  # FA2-class on Hopper (Shah et al. 2024)
