"""Every preset's parameter count against the published figure (exact where the source gives an
exact count or a config.json, relative error where the source rounds)."""

from __future__ import annotations

import pytest

from sim.errors import UnknownNameError
from sim.model import get_model, list_models
from sim.model.params import count_params, mtp_module_params
from sim.model.presets import MEGATRON_GPT_TABLE1

# Exact totals: checkpoint parameter counts of the released weights (Hugging Face safetensors
# metadata of each repository named in the preset's source) or, for GPT-2, its well-known count.
EXACT_TOTALS = {
    "gpt2-124m": 124_439_808,
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "llama3-405b": 405_853_388_800,
    "mistral-7b": 7_241_732_096,
    "qwen2-7b": 7_615_616_512,
    "mixtral-8x7b": 46_702_792_704,
}

# Rounded published totals / active counts (billions) and the source's rounding.
ROUNDED = {
    # name: (total_B, active_B or None, abs tolerance in B)
    "gpt3-175b": (175.0, None, 0.5),  # Brown et al. 2020, Table 2.1
    "mixtral-8x22b": (141.0, 39.0, 0.5),  # Mistral AI model card: 141B total, 39B active
    "deepseek-v2": (236.0, 21.0, 0.5),  # DeepSeek-V2 paper abstract
    "deepseek-v3": (671.0, 37.0, 0.6),  # DeepSeek-V3 report abstract
    "qwen2-57b-a14b": (57.0, 14.0, 0.5),  # Qwen2 report, Table 1 ("57B-A14B")
    "deepseek-v2-lite": (15.7, None, 0.05),  # DeepSeek-V2-Lite model card: 15.7B total
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXACT_TOTALS.items()))
def test_preset_total_equals_published_checkpoint_count(name, expected):
    assert get_model(name).params_total == expected


@pytest.mark.parametrize(("name", "published"), sorted(ROUNDED.items()))
def test_preset_matches_rounded_published_total_and_active(name, published):
    total_b, active_b, tol = published
    counts = count_params(get_model(name))
    assert abs(counts.total / 1e9 - total_b) <= tol
    if active_b is not None:
        assert abs(counts.active / 1e9 - active_b) <= tol


def test_mixtral_8x7b_active_is_what_its_config_implies():
    # total - 32 layers x 6 unselected experts x 3 x 4096 x 14336 (Jiang et al. 2024, Sec. 2)
    counts = count_params(get_model("mixtral-8x7b"))
    assert counts.active == 12_879_925_248
    assert counts.total - counts.active == 32 * 6 * 3 * 4096 * 14336


def test_deepseek_v3_excludes_mtp_and_its_active_count_matches_the_release_notes():
    # DeepSeek-V3 README_WEIGHTS: main model 671B total, 36.6B activated *excluding* the 0.9B
    # input embedding (which clustersim counts as active) and including the 0.9B output head.
    m = get_model("deepseek-v3")
    counts = count_params(m)
    assert counts.total == 671_026_419_200
    assert counts.embedding == 129280 * 7168
    assert abs((counts.active - counts.embedding) / 1e9 - 36.6) < 0.05
    # V3 report: 685B on the hub = 671B main model + 14B MTP module (with its copies of the
    # embedding and head); README_WEIGHTS: 11.5B unique MTP parameters.
    assert abs((counts.total + mtp_module_params(m)) / 1e9 - 685) < 1.0
    assert abs(mtp_module_params(m, with_copies=False) / 1e9 - 11.5) < 0.15


def test_deepseek_v2_lite_active_excluding_embedding_is_the_published_2_4b():
    counts = count_params(get_model("deepseek-v2-lite"))
    assert abs((counts.active - counts.embedding) / 1e9 - 2.4) < 0.06


@pytest.mark.parametrize(("tag", "heads", "hidden", "layers"), MEGATRON_GPT_TABLE1)
def test_megatron_gpt_matches_eq2_plus_final_layernorm(tag, heads, hidden, layers):
    # Narayanan et al. 2021, Eq. 2: P = 12 l h^2 (1 + 13/(12h) + (V+s)/(12 l h)); the equation
    # omits the final LayerNorm (2h), which the checkpoint holds.
    n, h, v, s = layers, hidden, 51200, 2048
    eq2 = 12 * n * h * h + 13 * n * h + (v + s) * h
    assert get_model(f"megatron-gpt-{tag}").params_total == eq2 + 2 * h


def test_megatron_table1_sizes_round_to_the_published_billions():
    published = [1.7, 3.6, 7.5, 18.4, 39.1, 76.1, 145.6, 310.1, 529.6, 1008.0]
    got = [get_model(f"megatron-gpt-{t[0]}").params_total / 1e9 for t in MEGATRON_GPT_TABLE1]
    assert [round(g, 1) for g in got] == published


def test_mistral_7b_uses_a_4096_token_sliding_window():
    m = get_model("mistral-7b")
    assert (m.attention.kind, m.attention.window) == ("sliding_window", 4096)


def test_every_preset_cites_a_source_and_has_a_unique_name():
    names = list_models()
    assert len(names) == len(set(names))
    assert all(get_model(n).source for n in names)


def test_required_presets_exist():
    required = {"gpt2-124m", "gpt3-175b", "llama2-7b", "llama2-70b", "llama3-8b", "llama3-70b",
                "llama3-405b", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b", "deepseek-v2-lite",
                "deepseek-v3", "qwen2-57b-a14b", "tiny-gpt", "tiny-llama", "tiny-mqa",
                "tiny-moe", "tiny-swa", "tiny-linear", "tiny-dilated", "tiny-mla"}
    assert required <= set(list_models())


def test_unknown_model_name_raises_with_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean: llama3-8b"):
        get_model("llama3-8")
