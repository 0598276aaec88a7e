"""Hugging Face config.json loading: fixtures equal the presets; bad input names the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.errors import ModelError
from sim.model import get_model
from sim.model.hf import from_hf_dict, load_hf_config

FIXTURES = Path(__file__).parent / "data" / "hf"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def _raw(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text())


def test_every_required_model_type_has_a_fixture():
    types = {_raw(n)["model_type"] for n in NAMES}
    assert types == {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "deepseek_v2",
                     "deepseek_v3", "gpt2"}


@pytest.mark.parametrize("name", NAMES)
def test_published_config_loads_to_the_preset_of_the_same_name(name):
    loaded, preset = load_hf_config(FIXTURES / name), get_model(name)
    assert (loaded.params_total, loaded.params_active) == (preset.params_total,
                                                           preset.params_active)
    assert loaded == preset.with_(name=loaded.name, source=loaded.source)


def test_get_model_accepts_a_directory_or_a_file_path():
    by_dir = get_model(str(FIXTURES / "llama3-8b"))
    by_file = get_model(str(FIXTURES / "llama3-8b" / "config.json"))
    assert by_dir.name == by_file.name == "llama3-8b"
    assert by_dir.params_total == 8_030_261_248


def test_a_missing_path_is_reported_as_a_path_not_an_unknown_preset(tmp_path):
    with pytest.raises(ModelError, match="no Hugging Face config.json at"):
        get_model(str(tmp_path / "nowhere" / "config.json"))


def test_llama31_rope_scaling_is_read():
    pos = load_hf_config(FIXTURES / "llama3-405b").position
    assert (pos.rope_scaling, pos.rope_scaling_factor, pos.rope_theta) == ("llama3", 8.0, 5e5)


def test_mixtral_null_sliding_window_means_full_attention():
    assert load_hf_config(FIXTURES / "mixtral-8x7b").attention.kind == "full"


@pytest.mark.parametrize(("name", "field"), [
    ("llama3-8b", "hidden_size"), ("mixtral-8x7b", "num_local_experts"),
    ("qwen2-57b-a14b", "moe_intermediate_size"), ("deepseek-v3", "kv_lora_rank"),
    ("gpt2-124m", "n_embd"), ("deepseek-v2-lite", "qk_rope_head_dim"),
])
def test_missing_required_field_is_a_model_error_naming_it(name, field):
    raw = _raw(name)
    del raw[field]
    with pytest.raises(ModelError, match=f"missing field '{field}'"):
        from_hf_dict(raw, name)


def test_unsupported_model_type_lists_the_supported_ones():
    with pytest.raises(ModelError, match="unsupported model_type 'falcon'.*llama, mistral"):
        from_hf_dict({"model_type": "falcon"}, "x")


def test_missing_model_type_is_named():
    with pytest.raises(ModelError, match="missing field 'model_type'"):
        from_hf_dict({"hidden_size": 4}, "x")


def test_wrong_type_field_is_rejected():
    raw = _raw("llama2-7b")
    raw["num_hidden_layers"] = "32"
    with pytest.raises(ModelError, match="'num_hidden_layers' must be an integer from 1 to 4096, got '32'"):
        from_hf_dict(raw, "x")


@pytest.mark.parametrize(("name", "field", "value"), [
    ("qwen2-7b", "use_sliding_window", True),
    ("qwen2-57b-a14b", "mlp_only_layers", [0, 1]),
    ("deepseek-v3", "moe_layer_freq", 2),
    ("llama2-7b", "attention_bias", True),
])
def test_unrepresentable_settings_are_rejected_not_approximated(name, field, value):
    raw = _raw(name) | {field: value}
    with pytest.raises(ModelError, match=f"field '{field}'.*not supported"):
        from_hf_dict(raw, name)


def test_qwen2_moe_sparse_step_becomes_every_k(tmp_path):
    raw = _raw("qwen2-57b-a14b") | {"decoder_sparse_step": 2}
    m = from_hf_dict(raw, "q")
    assert [m.is_moe_layer(i) for i in range(4)] == [False, True, False, True]


def test_missing_path_and_bad_json_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no Hugging Face config.json"):
        load_hf_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_hf_config(tmp_path)
