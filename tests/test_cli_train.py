"""`clustersim train` through the real console entry point: JSON schema, table, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert out.returncode == 2 and out.stderr == ""
    err = json.loads(out.stdout)["error"]  # under --json the error is JSON on stdout
    assert err["type"] == "PlanError" and err["flag"] == "--tp"
    assert "tp=3 does not divide n_heads=32" in err["message"]
    assert len(out.stdout.strip().splitlines()) == 1


def test_des_engine_straggler_spec_is_parsed_or_rejected_by_name():
    bad = clustersim(*ARGS, "--engine", "des", "--straggler", "three", "--json")
    assert bad.returncode == 2 and bad.stderr == ""
    err = json.loads(bad.stdout)["error"]
    assert "RANK[:FACTOR[:gpu|link]]" in err["message"] and err["flag"] == "--straggler"


MIXTRAL = ["train", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--gpus", "8", "--tp", "1",
           "--pp", "1", "--ep", "8", "--zero", "1", "--global-batch", "8", "--seq", "1024",
           "--engine", "des", "--json"]


def test_des_zipf_routing_slows_a_mixtral_step_and_is_reported():
    uniform = json.loads(clustersim(*MIXTRAL, "--routing", "uniform").stdout)
    out = clustersim(*MIXTRAL, "--routing", "zipf", "--zipf-s", "1.2", "--seed", "3")
    assert out.returncode == 0, out.stderr
    zipf = json.loads(out.stdout)
    assert uniform["moe_routing"]["routing"] == "uniform"
    assert uniform["moe_routing"]["zipf_s"] is None
    assert zipf["moe_routing"]["routing"] == "zipf"
    assert zipf["moe_routing"]["zipf_s"] == 1.2 and zipf["moe_routing"]["seed"] == 3
    assert zipf["moe_routing"]["draws"] == 32  # 32 MoE layers x 1 microbatch
    # hot expert's load / mean = E x (1 / H(E, s)), the top Zipf share (Zipf 1949), E = 8
    harmonic = sum(1 / k ** 1.2 for k in range(1, 9))
    assert zipf["moe_routing"]["mean_imbalance"] == pytest.approx(8 / harmonic, rel=0.03)
    assert uniform["moe_routing"]["mean_imbalance"] < 1.1
    assert zipf["step_time_s"] > 2 * uniform["step_time_s"]


def test_negative_zipf_exponent_is_rejected_with_exit_2():
    out = clustersim(*MIXTRAL, "--routing", "zipf", "--zipf-s", "-1")
    assert out.returncode == 2 and out.stderr == ""
    err = json.loads(out.stdout)["error"]
    assert err["flag"] == "--zipf-s"
    assert "--zipf-s: -1 is out of range; must be a number in [0, 100]" in err["message"]
