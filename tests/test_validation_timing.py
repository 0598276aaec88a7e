"""Quick timing validation in CI. The machine is shared and noisy, so these tests assert only
robust facts: calibration produces a finite profile that the catalog loader and the
simulator accept, the harness runs every timing stage, the table is complete and every error
is finite. The error figures themselves are reported (validation/*.md), not asserted. The
data-parallel timing stage is left to the full run (its gloo path is tested in
test_validation_comm.py)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

from hardware import Cluster, get_system  # noqa: E402
from sim.cli import validate  # noqa: E402
from sim.costs.analytic import estimate_train  # noqa: E402
from sim.model import get_model  # noqa: E402
from sim.plan import ParallelPlan  # noqa: E402
from sim.validation.calibrate import calibrate, fit_affine  # noqa: E402
from sim.validation.profile import write_profile  # noqa: E402


@pytest.fixture(scope="module")
def calibration():
    return calibrate("cpu", threads=1, quick=True)


@pytest.fixture(scope="module")
def profile(calibration, tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "calibrated-cpu.toml"
    write_profile(calibration, path)
    return path


def test_affine_fit_recovers_throughput_and_fixed_cost():
    flops = [1e6, 1e7, 1e8, 1e9]
    rate, fixed = fit_affine(flops, [f / 5e10 + 2e-5 for f in flops])
    assert rate == pytest.approx(5e10, rel=1e-6) and fixed == pytest.approx(2e-5, rel=1e-6)


def test_calibration_values_are_positive_and_finite(calibration):
    for name in ("peak_fp32", "peak_bf16", "kernel_overhead_s", "memory_bandwidth",
                 "attention_max", "link_bandwidth"):
        value = getattr(calibration, name)
        assert math.isfinite(value) and value > 0, name
    assert 0 < calibration.memory_efficiency <= 1 and calibration.link_latency >= 0


def test_calibrated_profile_round_trips_and_prices_a_training_step(calibration, profile):
    system = get_system(str(profile))
    assert system.accelerator.peak("fp32") == calibration.peak_fp32
    assert system.intra_link.bandwidth == calibration.link_bandwidth
    plan = ParallelPlan(micro_batch=2, global_batch=2, seq_len=32, dtype="fp32")
    result = estimate_train(get_model("tiny-llama"), plan, Cluster.for_gpus(system, 1))
    assert math.isfinite(result.step_time_s) and result.step_time_s > 0


def test_quick_validate_json_has_a_complete_table_with_finite_errors(profile, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    validate.register(parser.add_subparsers())
    args = parser.parse_args(["validate", "--quick", "--json", "--system", str(profile),
                              "--out-dir", str(tmp_path), "--stages",
                              "training,inference,serving,speculative"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    timing = [c for c in doc["cases"] if c["kind"] == "timing"]
    assert {c["metric"] for c in timing} == {"train_step_s", "prefill_s", "decode_step_s",
                                             "makespan_s", "mean_ttft_s", "mean_e2e_s",
                                             "speedup"}
    assert len([c for c in timing if c["metric"] == "train_step_s"]) == 4
    for c in doc["cases"]:
        assert {"name", "metric", "predicted", "measured", "rel_error"} <= set(c)
        assert math.isfinite(c["rel_error"]) and c["measured"] > 0 and c["predicted"] > 0
    assert doc["n_timing_cases"] == len(timing) and doc["exact_mismatches"] == []
    assert math.isfinite(doc["timing_median_abs_rel_error"])
    assert doc["timing_max_abs_rel_error"] >= doc["timing_median_abs_rel_error"]
    assert len(doc["published"]) == 13
    assert (tmp_path / f"{doc['stem']}.png").stat().st_size > 0
    assert (tmp_path / f"{doc['stem']}.md").read_text().startswith("# Validation table")
