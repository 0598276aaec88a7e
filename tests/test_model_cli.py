"""``clustersim model list|show`` through the real entry point (``sim.cli.main.main``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli.main import main
from sim.model import get_model, list_models

HF_DIR = Path(__file__).parent / "data" / "hf"


def run_json(capsys, *argv) -> dict:
    assert main(list(argv) + ["--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON document, nothing else on stdout


def test_list_json_has_every_preset_with_exact_counts(capsys):
    doc = run_json(capsys, "model", "list")
    rows = {r["name"]: r for r in doc["models"]}
    assert list(rows) == list_models()
    assert set(rows["gpt2-124m"]) >= {"name", "kind", "params_total", "params_active",
                                      "n_layers", "hidden", "attention", "source"}
    assert (rows["mixtral-8x7b"]["params_total"], rows["mixtral-8x7b"]["params_active"]) == (
        46_702_792_704, 12_879_925_248)
    assert rows["mixtral-8x7b"]["kind"] == "moe" and rows["llama3-8b"]["kind"] == "dense"


def test_show_json_schema_and_exact_counts(capsys):
    doc = run_json(capsys, "model", "show", "llama3-8b", "--seq", "2048")
    assert {"name", "params_total", "params_active", "n_layers", "hidden",
            "flops_per_token_forward", "architecture", "params_by_component",
            "config"} <= set(doc)
    assert (doc["name"], doc["n_layers"], doc["hidden"]) == ("llama3-8b", 32, 4096)
    assert doc["params_total"] == doc["params_active"] == 8_030_261_248
    assert sum(doc["params_by_component"].values()) == 8_030_261_248
    assert doc["architecture"]["attention"] == "GQA (32 query heads, 8 KV heads), full causal"


def _closed_form_flops_per_token(name: str, seq: int) -> float:
    """2 FLOPs per matmul weight a token meets (Kaplan et al. 2020, Sec. 2.1: C_fwd ~ 2N),
    excluding embedding and the LM head (which a prefill runs once per sequence), plus causal
    attention QK^T and AV: 2 x 2 x (S/2 average keys) x q_dim per layer."""
    from sim.model.params import count_params

    m = get_model(name)
    c = count_params(m)
    return 2 * (c.active - c.embedding - c.lm_head) + 2 * seq * m.q_dim * m.n_layers


@pytest.mark.parametrize("name", ["llama3-8b", "mixtral-8x7b", "gpt2-124m"])
def test_forward_flops_per_token_match_2n_plus_attention(capsys, name):
    doc = run_json(capsys, "model", "show", name, "--seq", "2048")
    expected = _closed_form_flops_per_token(name, 2048)
    assert abs(doc["flops_per_token_forward"] / expected - 1) < 0.01


def test_longer_sequence_adds_only_attention_flops(capsys):
    short = run_json(capsys, "model", "show", "llama3-8b", "--seq", "2048")
    long = run_json(capsys, "model", "show", "llama3-8b", "--seq", "4096")
    extra = long["flops_per_token_forward"] - short["flops_per_token_forward"]
    assert abs(extra / (2 * 2048 * 4096 * 32) - 1) < 0.02  # 2 x dS x q_dim x layers


def test_mixtral_active_compute_is_close_to_a_13b_dense_model(capsys):
    # Jiang et al. 2024, Sec. 1: Mixtral uses ~13B active parameters per token.
    moe = run_json(capsys, "model", "show", "mixtral-8x7b")["flops_per_token_forward"]
    dense = run_json(capsys, "model", "show", "llama2-13b")["flops_per_token_forward"]
    assert abs(moe / dense - 1) < 0.05


@pytest.mark.parametrize(("name", "expected"), [
    ("llama3-8b", 2 * 32 * 8 * 128 * 2),  # K and V x layers x kv heads x head_dim x bf16
    ("llama2-7b", 2 * 32 * 32 * 128 * 2),  # MHA: 4x the GQA cache of llama3-8b
    ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA latent + decoupled RoPE key (V2 Sec. 2.1.2)
])
def test_show_reports_kv_cache_bytes_per_token(capsys, name, expected):
    assert run_json(capsys, "model", "show", name)["kv_cache_bytes_per_token"] == expected


def test_show_accepts_a_hugging_face_config_directory(capsys):
    doc = run_json(capsys, "model", "show", str(HF_DIR / "mixtral-8x7b"))
    assert (doc["params_total"], doc["params_active"]) == (46_702_792_704, 12_879_925_248)


def test_show_text_table_is_readable(capsys):
    assert main(["model", "show", "mixtral-8x7b"]) == 0
    out = capsys.readouterr().out
    assert "46,702,792,704" in out and "8 routed (top-2), 0 shared, 32 MoE layers" in out
    assert "KV cache/token (bf16)     128.00 KiB" in out  # 2 x 32 x 8 x 128 x 2 bytes


def test_unknown_model_exits_2_with_suggestion_as_one_json_error(capsys):
    assert main(["model", "show", "llama3-8", "--json"]) == 2
    cap = capsys.readouterr()
    err = json.loads(cap.out)["error"]
    assert cap.err == "" and "did you mean: llama3-8b" in err["message"]
    assert err["flag"] == "--model"


def test_non_positive_seq_is_a_config_error(capsys):
    assert main(["model", "show", "llama3-8b", "--seq", "0"]) == 2
    assert "--seq: 0 is out of range; must be an integer in [1, 16777216]" in capsys.readouterr().err


def test_console_script_prints_one_json_document():
    proc = subprocess.run([sys.executable, "-m", "sim.cli.main", "model", "show", "tiny-moe",
                           "--seq", "64", "--json"], capture_output=True, text=True, check=True)
    doc = json.loads(proc.stdout)
    # tiny-moe by hand: embedding + head 2 x 384 x 64, final norm 64; per layer attention
    # 3 x 64 x 64, experts 4 x 3 x 64 x 96, shared 3 x 64 x 96, router 64 x 4, norms 2 x 64;
    # active drops 2 layers x 2 unselected experts x 3 x 64 x 96.
    assert (doc["name"], doc["params_total"], doc["params_active"]) == ("tiny-moe", 258_880,
                                                                         185_152)
