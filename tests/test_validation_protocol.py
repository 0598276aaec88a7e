"""The measurement protocol (interleaving, pairing, lower-quantile estimator), the CPU call
terms of the efficiency model (GEMV per-row cost, one call per repeated op), the GEMV fit, the
both-workers-busy profile and the multi-run table."""

from __future__ import annotations

import dataclasses

import pytest

from hardware import get_accelerator, get_system, to_toml
from sim.costs.timing import op_time
from sim.ops import Op
from sim.validation import protocol
from sim.validation.report import case_lines, runs_lines


def test_estimator_is_the_minimum_below_eleven_samples_and_a_low_quantile_above():
    assert protocol.low([5.0, 3.0, 9.0, 4.0]) == 3.0
    samples = [float(x) for x in range(1, 22)]  # 21 samples: 10% quantile, method "lower"
    assert protocol.low(samples) == 3.0


def test_spread_is_the_median_over_the_estimate_minus_one():
    assert protocol.spread([1.0, 1.5, 2.0]) == pytest.approx(0.5)


def _fake_time(times: dict, order: list):
    """A ``protocol._time`` stand-in: deterministic seconds per callable, order recorded."""
    def fake(fn, device, clock):
        order.append(fn.__name__)
        return times[fn.__name__].pop(0), fn()
    return fake


def _named(name: str, out=None):
    def fn():
        return out
    fn.__name__ = name
    return fn


def test_repetitions_go_round_robin_with_a_rotating_start_and_a_reference_before_each(
        monkeypatch):
    order: list = []
    times = {"ref": [1.0] * 6, "a": [2.0] * 3, "b": [3.0] * 3}
    monkeypatch.setattr(protocol, "_time", _fake_time(times, order))
    monkeypatch.setattr(protocol, "reference_kernel", lambda device: _named("ref"))
    protocol.set_scale(None)
    protocol.interleaved({"a": _named("a"), "b": _named("b")}, rounds=3, warmup=0)
    assert order == ["ref", "a", "ref", "b", "ref", "b", "ref", "a", "ref", "a", "ref", "b"]


def test_estimates_are_rescaled_to_the_calibration_reference(monkeypatch):
    times = {"ref": [2.0, 2.2, 2.4, 2.1], "a": [4.0, 4.4, 5.0, 4.2]}
    monkeypatch.setattr(protocol, "_time", _fake_time(times, []))
    monkeypatch.setattr(protocol, "reference_kernel", lambda device: _named("ref"))
    protocol.set_scale(1.0)  # the calibration saw the reference at 1 s: a loaded run here
    try:
        got = protocol.interleaved({"a": _named("a")}, rounds=4, warmup=0)["a"][""]
    finally:
        protocol.set_scale(None)
    assert got.seconds == pytest.approx(4.0 / 2.0 * 1.0)
    assert got.raw_low_s == 4.0 and got.samples == 4
    assert got.spread == pytest.approx((4.3 - 4.0) / 4.0)


def test_a_case_returning_seconds_reports_each_quantity(monkeypatch):
    times = {"ref": [1.0, 1.0], "srv": [9.0, 9.0]}
    monkeypatch.setattr(protocol, "_time", _fake_time(times, []))
    monkeypatch.setattr(protocol, "reference_kernel", lambda device: _named("ref"))
    protocol.set_scale(None)
    got = protocol.interleaved({"s": _named("srv", {"ttft": 0.5, "e2e": 2.0})}, rounds=2,
                               warmup=0)["s"]
    assert set(got) == {"ttft", "e2e"} and got["e2e"].seconds == 2.0


def test_a_non_positive_scale_is_rejected():
    with pytest.raises(ValueError, match="reference scale"):
        protocol.set_scale(0.0)


def _cpu_acc(**kw):
    a = get_accelerator("h100-sxm")
    return dataclasses.replace(a, efficiency=dataclasses.replace(a.efficiency, **kw),
                               compute_units=None)


def test_gemv_row_cost_is_added_per_output_row_of_one_row_gemms_only():
    base, rowed = _cpu_acc(), _cpu_acc(gemv_row_s=1e-7)
    gemv = Op(name="qkv", kind="matmul", flops=2 * 512 * 1024, bytes=4 * 512 * 1024,
              mnk=(1, 1024, 512))
    gemm = dataclasses.replace(gemv, mnk=(4, 1024, 512))
    assert op_time(gemv, rowed) - op_time(gemv, base) == pytest.approx(1024 * 1e-7)
    assert op_time(gemm, rowed) == op_time(gemm, base)


def test_each_extra_repetition_pays_one_call_when_set():
    base, called = _cpu_acc(), _cpu_acc(repeat_call_s=1e-5)
    experts = Op(name="fc1", kind="matmul", flops=1e6, bytes=1e3, mnk=(8, 256, 256), count=8)
    assert op_time(experts, called) - op_time(experts, base) == pytest.approx(7 * 1e-5)


def test_call_terms_round_trip_through_toml_and_are_absent_from_the_catalog(tmp_path):
    sysm = get_system("dgx-h100")
    acc = _cpu_acc(gemv_row_s=7e-8, repeat_call_s=6e-6)
    acc = dataclasses.replace(acc, sources={**acc.sources, "efficiency": "test"})
    path = tmp_path / "p.toml"
    path.write_text(to_toml(dataclasses.replace(sysm, accelerator=acc)))
    back = get_system(str(path)).accelerator.efficiency
    assert back.gemv_row_s == pytest.approx(7e-8) and back.repeat_call_s == pytest.approx(6e-6)
    assert "gemv_row" not in to_toml(get_accelerator("h100-sxm"))


def test_gemv_fit_recovers_the_row_cost_and_the_stream_bandwidth():
    from sim.validation.calibrate import fit_gemv

    shapes = [(1024, 1024), (2048, 2048), (4096, 1024), (1024, 4096), (4096, 512)]
    times = [9e-8 * n + 4 * n * k / 2.5e10 for n, k in shapes]
    c, w = fit_gemv(shapes, times)
    assert c == pytest.approx(9e-8, rel=1e-6) and w == pytest.approx(2.5e10, rel=1e-6)


def test_gemv_fit_without_a_row_cost_returns_the_bandwidth_alone():
    from sim.validation.calibrate import fit_gemv

    shapes = [(1024, 1024), (2048, 2048), (4096, 512)]
    c, w = fit_gemv(shapes, [4 * n * k / 2e10 for n, k in shapes])
    assert c == pytest.approx(0.0, abs=1e-12) and w == pytest.approx(2e10, rel=1e-6)


def _run(stem, errors, measured, load=(1.0, 2.0)):
    cases = [{"name": f"c{i}", "metric": "train_step_s", "kind": "timing", "measured": m,
              "predicted": m * (1 + e), "rel_error": e, "ok": True, "spread": 0.05}
             for i, (e, m) in enumerate(zip(errors, measured, strict=True))]
    return {"stem": stem, "machine": {"loadavg_start": [load[0]], "loadavg_end": [load[1]]},
            "timing_median_abs_rel_error": 0.05, "timing_max_abs_rel_error": 0.1,
            "cases": cases}


def test_multi_run_table_lists_every_earlier_error_and_the_run_to_run_spread():
    runs = [_run("r1", [0.1, -0.2], [1.0, 2.0]), _run("r2", [0.05, 0.0], [1.1, 2.0])]
    this = _run("r3", [0.0, 0.1], [1.2, 2.0])
    lines = case_lines(this["cases"], runs)
    assert "run 1 error" in lines[0] and "runs spread" in lines[0]
    assert lines[1].split()[-3:] == ["+10.0%", "+5.0%", "20%"]  # (1.2 - 1.0) / 1.0
    assert lines[2].split()[-1] == "0%"
    assert runs_lines(runs, this)[2].startswith("run 3 (this table, load 1.0-2.0)")


def test_reference_stack_is_a_loadable_serving_stack_with_the_calibrated_overhead(tmp_path):
    from types import SimpleNamespace

    from sim.validation.profile import load_stack, write_stack

    cal = SimpleNamespace(reference_iteration_overhead_s=2.5e-4, device="cpu", machine="x86_64",
                          threads=1, torch_version="2")
    write_stack(cal, tmp_path / "p.toml")
    stack = load_stack(tmp_path / "p.toml")
    assert stack.kind == "serving" and stack.scheduler_overhead_s == 2.5e-4
    assert stack.cuda_graphs is False and stack.attention_kernel == "math"
    assert load_stack(tmp_path / "none.toml") is None


def test_rows_beyond_the_target_say_whether_the_machine_noise_covers_them():
    from sim.validation.report import miss_lines

    this = _run("r3", [0.4, 0.3, 0.05], [1.0, 1.0, 1.0])
    this["cases"][1]["spread"] = 0.5  # a noisy row
    lines = miss_lines({**this, "previous_runs": []})
    assert len(lines) == 2
    assert "error +40.0%, noise 5%: larger than the noise" in lines[0]
    assert "noise 50%: within this machine's noise" in lines[1]
