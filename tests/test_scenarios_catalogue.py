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
