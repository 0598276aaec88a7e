"""`clustersim op` (contract): flags and JSON fields exactly as issue #12 writes them."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main

LAYER = ["attn_norm", "qkv", "rope", "attention", "out_proj", "mlp_norm", "gate_up", "act",
         "down", "residual"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_op_matmul_reports_time_flops_bytes_achieved_and_bound(capsys):
    d = _json(capsys, ["op", "matmul", "--accelerator", "a100-sxm-80gb", "--m", "4096",
                       "--n", "4096", "--k", "4096", "--dtype", "bf16", "--json"])
    assert d["flops"] == 2 * 4096**3 and d["bytes"] == 3 * 4096 * 4096 * 2
    assert d["achieved_tflops"] == pytest.approx(d["flops"] / d["time_s"] / 1e12)
    assert d["bound"] == "compute" and 190 < d["achieved_tflops"] < 250


def test_op_layer_lists_the_ten_ops_of_a_tp_rank(capsys):
    d = _json(capsys, ["op", "layer", "--model", "llama3-8b", "--accelerator", "h100-sxm",
                       "--tokens", "1024", "--tp", "2", "--dtype", "fp16", "--json"])
    assert [o["name"] for o in d["ops"]] == LAYER
    qkv = d["ops"][1]
    assert qkv["flops"] == 2 * 1024 * (2048 + 2 * 4 * 128) * 4096  # 16 q heads + 4 kv heads
    assert all(set(o) >= {"name", "kind", "time_s", "flops", "bytes"} for o in d["ops"])


def test_op_attention_decode_and_prefill_give_a_time(capsys):
    dec = _json(capsys, ["op", "attention", "--model", "llama3-8b", "--accelerator",
                         "a100-sxm-80gb", "--phase", "decode", "--batch", "13", "--q-len", "1",
                         "--context", "16128", "--json"])
    assert dec["time_s"] == pytest.approx(0.531e-3, rel=0.25)  # measured (Vidur, FlashInfer)
    pre = _json(capsys, ["op", "attention", "--model", "llama3-8b", "--accelerator",
                         "a100-sxm-80gb", "--phase", "prefill", "--batch", "1", "--q-len",
                         "2048", "--context", "0", "--json"])
    assert pre["time_s"] > 0 and pre["bound"] == "compute"


def test_op_collective_reports_algorithm_and_bus_bandwidth(capsys):
    d = _json(capsys, ["op", "collective", "--system", "dgx-h100", "--kind", "all_gather",
                       "--bytes", str(2**28), "--gpus", "8", "--json"])
    assert d["algorithm"] == "ring"
    assert d["bus_bandwidth_gbps"] == pytest.approx(7 / 8 * 2**28 / d["time_s"] / 1e9)
    d2 = _json(capsys, ["op", "collective", "--system", "dgx-h100", "--kind", "all_reduce",
                        "--bytes", str(2**28), "--gpus", "16", "--nodes", "2", "--json"])
    assert d2["time_s"] > 0 and d2["algorithm"] in ("ring", "tree", "hierarchical")


def test_op_iteration_times_a_mixed_serving_batch(capsys):
    d = _json(capsys, ["op", "iteration", "--model", "llama3-8b", "--system", "dgx-a100-80gb",
                       "--tp", "1", "--prefill-lens", "512,512", "--decode-context-lens",
                       "1000,2000", "--json"])
    assert d["tokens"] == 1026 and d["time_s"] > 0


def test_op_collective_with_gpus_not_splitting_over_nodes_is_a_json_error(capsys):
    assert main(["op", "collective", "--system", "dgx-h100", "--kind", "all_reduce",
                 "--bytes", "1024", "--gpus", "9", "--nodes", "2", "--json"]) == 2
    assert "--gpus 9 --nodes 2" in json.loads(capsys.readouterr().out)["error"]["message"]
