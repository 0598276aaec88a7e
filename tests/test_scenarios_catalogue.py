"""The scenario catalogue as a whole: every scenario follows the convention, every lesson has
scenarios, every misconception of the plan is refuted by at least one, and every cost-bearing
topic the issue names has its scenario."""

from __future__ import annotations

import pytest

from sim.report.lesson import LESSONS, MISCONCEPTIONS
from sim.report.scenario import knobs_of, load_scenario, scenario_names, title_of

NAMES = scenario_names()
TOPICS = {  # cost-bearing topic of the plan -> scenario that answers it
    "MoE vs dense at equal active compute": "moe_vs_dense",
    "top-k and capacity factor": "moe_capacity",
    "load imbalance / auxiliary loss": "moe_load_imbalance",
    "MoE and Chinchilla": "moe_chinchilla",
    "experts are FFNs, not models": "moe_not_an_ensemble",
    "MoE decode: weights read vs batch": "moe_decode",
    "attention cost vs context": "attention_vs_context",
    "GQA/MQA/MLA KV cache": "kv_cache_variants",
    "flash attention": "flash_attention",
    "context parallelism 128K": "context_parallel",
    "DP vs TP vs PP vs ZeRO": "parallelism_70b",
    "pipeline bubbles": "pipeline_bubbles",
    "communication share vs cluster size": "comm_scaling",
    "static vs continuous batching": "serving_batching",
    "speculative decoding": "speculative_decoding",
    "prefill/decode disaggregation": "disaggregation",
    "roofline": "roofline",
}


@pytest.mark.parametrize("name", NAMES)
def test_scenario_follows_the_convention(name):
    mod = load_scenario(name)
    assert title_of(mod) and mod.LESSON in LESSONS and mod.TOPIC
    assert set(mod.REFUTES) <= set(MISCONCEPTIONS)
    assert knobs_of(mod), f"{name} declares no CAPITALISED knobs"
    assert callable(mod.run) and callable(mod.main)
    assert "Lesson" in mod.__doc__, f"{name}'s docstring must name its lesson"


def test_every_misconception_is_refuted_by_some_scenario():
    refuted = {tag for n in NAMES for tag in load_scenario(n).REFUTES}
    assert refuted == set(MISCONCEPTIONS)


def test_every_lesson_has_scenarios():
    lessons = {load_scenario(n).LESSON for n in NAMES}
    assert lessons == set(LESSONS)


def test_every_cost_bearing_topic_has_its_scenario():
    missing = {topic: n for topic, n in TOPICS.items() if n not in NAMES}
    assert missing == {}


@pytest.mark.parametrize("name", ["moe_not_an_ensemble", "pipeline_bubbles"])
def test_scenario_charts_are_byte_identical_when_redrawn(name, tmp_path):
    from sim.report.golden import cached_result
    from sim.report.scenario import draw_chart

    for chart, recipe in cached_result(name).charts.items():
        a = draw_chart(recipe, tmp_path / f"a_{chart}").read_bytes()
        b = draw_chart(recipe, tmp_path / f"b_{chart}").read_bytes()
        assert a == b, f"{name}/{chart} is not deterministic"


def test_config_records_the_full_model_and_system_behind_each_name():
    import json

    from sim.report.golden import cached_result
    from sim.report.scenario import config_json

    doc = json.loads(config_json(load_scenario("moe_vs_dense"), cached_result("moe_vs_dense")))
    assert set(doc["resolved"]["models"]) == {"llama2-13b", "mixtral-8x7b"}
    assert doc["resolved"]["models"]["mixtral-8x7b"]["moe"]["n_experts"] == 8
    assert doc["resolved"]["systems"]["dgx-h100"]["accelerator"] == "h100-sxm"
    assert doc["knobs"]["GPUS"] == 64
