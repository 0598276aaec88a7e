"""`clustersim explore` prints the lab's explorer curves; `clustersim lab` binds to loopback."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import build_parser, main
from sim.errors import ConfigError
from sim.explore import attention_curves, kv_curves, moe_compare
from sim.model import get_model


def explore(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["explore", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_kv_cache_per_token_follows_the_kv_heads_of_each_variant(capsys):
    doc = explore(capsys, "kv", "--model", "llama3-70b", "--contexts", "1,4096")
    per_token = {k: s["kv_bytes_per_token"] for k, s in doc["series"].items()}
    gqa = 80 * 2 * 8 * 128 * 2  # layers x (K,V) x kv heads x head_dim x bf16 bytes
    assert per_token["GQA (8 KV heads)"] == gqa
    assert per_token["MHA (64 KV heads)"] == 8 * gqa
    assert per_token["MQA (1 KV head)"] == gqa / 8
    assert per_token["MLA (latent 512+64)"] == 80 * (512 + 64) * 2  # DeepSeek-V2 Sec. 2.1
    point = doc["series"]["GQA (8 KV heads)"]["points"][1]
    assert point["kv_bytes"] == 4096 * gqa and point["kv_bytes_per_gpu"] == 4096 * gqa / 8


def test_fewer_kv_heads_fit_more_sequences():
    doc = kv_curves("llama3-70b", "dgx-h100", 8, [32768], 1)
    fits = {k: s["points"][0]["max_sequences"] for k, s in doc["series"].items()}
    assert fits["MHA (64 KV heads)"] < fits["GQA (8 KV heads)"] <= fits["MQA (1 KV head)"]


def test_full_attention_flops_quadruple_per_doubling_while_linear_doubles():
    doc = attention_curves("llama3-8b", [65536, 131072], window=4096, dilation=8)
    s = doc["series"]
    growth = {k: v[1]["attention_forward_flop"] / v[0]["attention_forward_flop"]
              for k, v in s.items()}
    assert growth["full"] == pytest.approx(4, rel=0.01)
    assert growth["linear"] == pytest.approx(2, rel=1e-9)
    assert growth["sliding window 4096"] == pytest.approx(2, rel=0.05)
    assert growth["dilated d=8"] == pytest.approx(4, rel=0.01)  # 1/8 of the keys, still s^2


def test_flash_attention_keeps_the_flops_and_cuts_the_memory():
    p = attention_curves("llama3-8b", [32768], 4096, 8)["series"]["full"][0]
    fwd = p["attention_forward_flop"]
    assert p["attention_train_flop_flash"] == pytest.approx(3.5 * fwd)  # bwd 2.5x (recompute)
    assert p["attention_train_flop_standard"] == pytest.approx(3.0 * fwd)
    assert p["activation_bytes_per_layer_flash"] < p["activation_bytes_per_layer_standard"] / 10


def test_a_short_context_sees_no_difference_between_full_and_a_longer_window():
    s = attention_curves("llama3-8b", [1024], 4096, 8)["series"]
    assert s["sliding window 4096"][0]["attention_forward_flop"] == \
        s["full"][0]["attention_forward_flop"]


def test_moe_has_the_total_params_of_the_wide_dense_and_the_active_of_the_narrow():
    doc = moe_compare("mixtral-8x7b", "dgx-h100", 2, 8, 2, None, 0.0, 32, 4096, 4096)
    moe, narrow, wide = doc["rows"]
    assert moe["params_total"] == get_model("mixtral-8x7b").params_total
    assert moe["params_active"] == get_model("mixtral-8x7b").params_active
    assert narrow["params_total"] == pytest.approx(moe["params_active"], rel=0.001)
    assert wide["params_total"] == pytest.approx(moe["params_total"], rel=0.001)
    assert moe["forward_flop_per_token"] < 0.4 * wide["forward_flop_per_token"]
    assert doc["routing"]["imbalance"] == pytest.approx(1.0)  # uniform router, exact split


def test_router_skew_and_a_capacity_factor_drop_tokens():
    doc = moe_compare("mixtral-8x7b", "dgx-h100", 2, 8, 2, 1.25, 1.2, 32, 4096, 4096)
    r = doc["routing"]
    assert r["capacity"] == int(1.25 * 4096 * 2 / 8)
    assert r["dropped_fraction"] > 0.1 and r["imbalance"] > 2
    assert sum(r["expert_loads"]) == 4096 * 2


def test_explore_bad_input_names_the_flag(capsys):
    with pytest.raises(ConfigError, match="--top-k 9"):
        moe_compare("mixtral-8x7b", "dgx-h100", 2, 8, 9, None, 0.0, 32, 4096, 4096)
    with pytest.raises(ConfigError, match="not a MoE model"):
        moe_compare("llama3-8b", "dgx-h100", 2, 8, 2, None, 0.0, 32, 4096, 4096)
    with pytest.raises(ConfigError, match="--window"):
        attention_curves("llama3-8b", [1024], 0, 8)
    assert main(["explore", "kv", "--contexts", "4096", "--model", "deepseek-v2"]) == 2
    assert "already uses MLA" in capsys.readouterr().err


def test_lab_binds_to_loopback_on_port_8000_by_default():
    args = build_parser().parse_args(["lab"])
    assert (args.host, args.port, args.open) == ("127.0.0.1", 8000, False)
    with pytest.raises(ConfigError, match=r"--port: 70000 is out of range"):  # at parse time
        build_parser().parse_args(["lab", "--port", "70000"])
