"""Exercise files: coverage of the lesson plan, strict loading, and every seeded variant valid."""

from __future__ import annotations

import math
import re

import pytest

from sim.errors import ConfigError, UnknownNameError
from sim.exercises import check, draw_params, get_exercise, load_all, load_file, show
from sim.exercises.explain import CATALOGUE, MISTAKES
from sim.exercises.solution import solve_givens
from sim.report.lesson import LESSONS, MISCONCEPTIONS

EXERCISES = load_all()
SEEDS = [None, *range(8)]

# Cost-bearing topics of the plan's three lessons, each matched by an exercise topic.
PLAN_TOPICS = {
    "mixture-of-experts": ["active vs total", "router", "capacity", "imbalance", "Chinchilla",
                           "all-to-all", "ensemble|sub-networks"],
    "long-context-and-efficient-attention": [
        "attention FLOPs vs context", "sliding window", "dilated", "linear attention", "GQA",
        "MQA", "MLA", "flash attention saves memory", "flash attention does not reduce",
        "RoPE", "context parallelism", "KV cache limits"],
    "training-and-serving-at-scale": [
        "data parallelism", "tensor and pipeline", "ZeRO", "all-reduce", "bubble",
        "communication share", "decode is memory-bound", "continuous batching",
        "speculative decoding", "disaggregation", "p99 time to first token", "schedules"],
}


def test_at_least_thirty_exercises_spread_over_all_three_lessons():
    assert len(EXERCISES) >= 30
    per_lesson = {lesson: sum(ex.lesson == lesson for ex in EXERCISES.values())
                  for lesson in LESSONS}
    assert min(per_lesson.values()) >= 10, per_lesson


@pytest.mark.parametrize("lesson", sorted(PLAN_TOPICS))
def test_every_cost_bearing_topic_of_the_plan_has_an_exercise(lesson):
    topics = [ex.topic for ex in EXERCISES.values() if ex.lesson == lesson]
    missing = [t for t in PLAN_TOPICS[lesson]
               if not any(re.search(t, topic, re.I) for topic in topics)]
    assert missing == []


def test_each_of_the_five_misconceptions_is_exercised_at_least_twice():
    counts = {m: sum(m in ex.tags for ex in EXERCISES.values()) for m in MISCONCEPTIONS}
    assert len(counts) == 5 and min(counts.values()) >= 2, counts


@pytest.mark.parametrize("ex_id", sorted(EXERCISES))
def test_every_exercise_diagnoses_at_least_one_named_mistake_from_the_catalogue(ex_id):
    ex = EXERCISES[ex_id]
    mistakes = solve_givens(ex.solver_name, show(ex, None)["givens"]).mistakes
    assert mistakes and set(mistakes) <= set(MISTAKES), set(mistakes) - set(MISTAKES)


def test_mistakes_name_known_misconceptions_and_have_unique_ids():
    for m in CATALOGUE:
        assert m.misconception is None or m.misconception in MISCONCEPTIONS
    assert len(MISTAKES) == len(CATALOGUE)


@pytest.mark.parametrize("ex_id", sorted(EXERCISES))
def test_every_seed_gives_a_valid_variant_with_a_finite_positive_answer(ex_id):
    ex = EXERCISES[ex_id]
    for seed in SEEDS:
        out = check(ex, 1.0, seed)
        assert math.isfinite(out["expected"]) and out["expected"] > 0, (seed, out["expected"])
        prompt = show(ex, seed)["prompt"]
        assert "{" not in prompt and "}" not in prompt and "None" not in prompt, prompt


@pytest.mark.parametrize("ex_id", sorted(EXERCISES))
def test_seeds_draw_from_the_variants_table_and_differ(ex_id):
    ex = EXERCISES[ex_id]
    drawn = [draw_params(ex, s) for s in range(8)]
    for params in drawn:
        for key, options in ex.variants.items():
            picked = [o for o in options
                      if (all(params.get(k) == v for k, v in o.items()) if isinstance(o, dict)
                          else params.get(key) == o)]
            assert picked, (key, params)
    assert len({repr(sorted(p.items())) for p in drawn}) >= 2


def test_same_seed_same_numbers_and_exercises_draw_independently():
    ex = get_exercise("zero-memory")
    assert draw_params(ex, 5) == draw_params(ex, 5)
    assert show(ex, 5)["prompt"] == show(ex, 5)["prompt"]
    assert draw_params(ex, None) == ex.setup


def test_unknown_exercise_names_close_matches():
    with pytest.raises(UnknownNameError, match="zero-memory"):
        get_exercise("zero-memroy")


def _write(tmp_path, text: str, name: str = "bad-one"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


GOOD = """id = "bad-one"
lesson = "mixture-of-experts"
topic = "t"
tags = []
prompt = "How many?"
quantity = "params_active"
unit = "billion params"
tolerance = 0.1
[setup]
model = "mixtral-8x7b"
"""


def test_a_well_formed_file_loads(tmp_path):
    ex = load_file(_write(tmp_path, GOOD))
    assert (ex.id, ex.unit, ex.tolerance, ex.tags) == ("bad-one", "billion params", 0.1, ())


@pytest.mark.parametrize("change, error, match", [
    (("tolerance = 0.1", "tolerance = 0.1\nanswer = 12.9"), ConfigError, "unknown keys"),
    (('unit = "billion params"\n', ""), ConfigError, "missing keys"),
    (('quantity = "params_active"', 'quantity = "params_activ"'), UnknownNameError, "params_active"),
    (('unit = "billion params"', 'unit = "furlongs"'), UnknownNameError, "unknown unit"),
    (('tags = []', 'tags = ["moe-is-magic"]'), UnknownNameError, "moe-is-ensemble"),
    (('lesson = "mixture-of-experts"', 'lesson = "moe"'), UnknownNameError, "lesson"),
    (("tolerance = 0.1", "tolerance = 1.5"), ConfigError, "tolerance"),
    (('id = "bad-one"', 'id = "other"'), ConfigError, "must equal the file name"),
])
def test_malformed_files_raise_typed_errors_naming_the_fix(tmp_path, change, error, match):
    with pytest.raises(error, match=match):
        load_file(_write(tmp_path, GOOD.replace(*change)))


def test_an_answer_must_be_finite_and_a_seed_non_negative():
    ex = get_exercise("adam-memory")
    with pytest.raises(ConfigError, match="finite"):
        check(ex, float("nan"), None)
    with pytest.raises(ConfigError, match="non-negative"):
        check(ex, 1.0, -1)


@pytest.mark.parametrize("ex_id", sorted(EXERCISES))
def test_every_breakdown_names_its_bound_and_has_finite_non_negative_parts(ex_id):
    out = check(EXERCISES[ex_id], 1.0, None)
    parts = out["breakdown"]["parts"]
    assert out["breakdown"]["bound"] and out["breakdown"]["si_unit"]
    assert parts and all(math.isfinite(v) and v >= 0 for v in parts.values()), parts
