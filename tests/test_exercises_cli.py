"""``clustersim exercise`` through the real entry point: JSON schemas and readable output."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main
from sim.exercises import load_all


def run_json(capsys, *argv) -> object:
    assert main(["exercise", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_is_every_exercise_with_id_lesson_topic_tags(capsys):
    rows = run_json(capsys, "list")
    assert [r["id"] for r in rows] == sorted(load_all())
    assert all(set(r) == {"id", "lesson", "topic", "tags"} for r in rows)
    assert all(isinstance(r["tags"], list) for r in rows)


def test_show_json_prints_the_prompt_with_the_variant_numbers(capsys):
    out = run_json(capsys, "show", "kv-decode-batch", "--seed", "2")
    assert out["id"] == "kv-decode-batch" and out["seed"] == 2
    assert str(out["params"]["seq_len"]) in out["prompt"]
    assert out["unit"] == "sequences" and out["hints"]


def test_check_json_schema_and_values(capsys):
    out = run_json(capsys, "check", "adam-memory", "--answer", "89.4")
    assert {"id", "answer", "expected", "ratio", "correct", "explanation", "breakdown",
            "signature"} <= set(out)
    assert out["answer"] == 89.4
    assert out["expected"] == pytest.approx(16 * 8030261248 / 2**30)  # llama3-8b, 16 B/param
    assert out["ratio"] == pytest.approx(89.4 / out["expected"])
    assert (out["correct"], out["signature"]) == (False, "forgot-master-weights")
    assert set(out["breakdown"]) == {"bound", "parts", "si_unit"}
    assert set(out["breakdown"]["parts"]) == {"weights", "gradients", "optimizer"}


def test_check_prints_a_readable_table_with_the_explanation(capsys):
    assert main(["exercise", "check", "pipeline-step", "--answer", "0.42", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    for label in ("your answer", "simulator", "ratio", "signature", "breakdown"):
        assert label in text


def test_show_prints_the_prompt_and_hints(capsys):
    assert main(["exercise", "show", "moe-total-params"]) == 0
    text = capsys.readouterr().out
    assert "mixtral-8x7b" in text and "hint 1:" in text and "billion params" in text


def test_unknown_exercise_exits_2_with_a_one_line_error(capsys):
    assert main(["exercise", "show", "adam-memroy"]) == 2
    err = capsys.readouterr().err
    assert "adam-memory" in err and err.count("\n") == 1
