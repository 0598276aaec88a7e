"""`clustersim train` through the real console entry point: JSON schema, table, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

ARGS = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "16", "--tp", "2",
        "--pp", "2", "--global-batch", "64", "--seq", "2048", "--recompute", "selective",
        "--sequence-parallel"]


ROOT = Path(__file__).resolve().parents[1]


def clustersim(*args):
    script = Path(sys.executable).with_name("clustersim")  # the installed console script
    # the checkout first on the path, so a stale editable install cannot shadow a package
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_json_is_one_document_with_the_contract_fields():
    out = clustersim(*ARGS, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for key in ("step_time_s", "tokens_per_s", "model_flops_per_step", "hardware_flops_per_step",
                "tflops_per_gpu", "mfu", "hfu", "memory_per_gpu_bytes", "fits", "bottleneck"):
        assert key in doc
    assert set(doc["memory_breakdown_bytes"]) == {"weights", "gradients", "optimizer",
                                                  "activations", "other"}
    assert set(doc["time_breakdown_s"]) == {"compute", "communication_exposed",
                                            "pipeline_bubble"}
    assert doc["config"]["plan"]["dp"] == 4  # inferred: 16 / (2*2)
    assert doc["config"]["plan"]["sequence_parallel"] is True
    assert abs(doc["tokens_per_s"] * doc["step_time_s"] - 64 * 2048) < 1e-6 * 64 * 2048


def test_json_is_byte_identical_across_runs():
    assert clustersim(*ARGS, "--json").stdout == clustersim(*ARGS, "--json").stdout


def test_table_without_json_names_the_parts():
    out = clustersim(*ARGS)
    assert out.returncode == 0, out.stderr
    for label in ("step time", "exposed communication", "pipeline bubble", "MFU / HFU",
                  "memory per GPU", "bottleneck"):
        assert label in out.stdout


def test_illegal_plan_is_a_one_line_error_with_exit_2():
    out = clustersim("train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "6",
                     "--tp", "3", "--pp", "1", "--global-batch", "12", "--seq", "2048", "--json")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "tp=3 does not divide n_heads=32" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_des_engine_straggler_spec_is_parsed_or_rejected_by_name():
    bad = clustersim(*ARGS, "--engine", "des", "--straggler", "three", "--json")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "RANK[:FACTOR[:gpu|link]]" in bad.stderr
