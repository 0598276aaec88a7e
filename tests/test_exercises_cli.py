"""``clustersim exercise`` through the real entry point: JSON schemas and readable output."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main
from sim.exercises import load_all
from sim.exercises.loader import EXERCISE_DIR
from sim.report.lesson import LESSONS

SCENARIOS = EXERCISE_DIR.parent


def run_json(capsys, *argv) -> object:
    assert main(["exercise", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_is_every_exercise_in_lesson_order_with_unit_and_tolerance(capsys):
    rows = run_json(capsys, "list")
    assert sorted(r["id"] for r in rows) == sorted(load_all())
    assert {"id", "lesson", "topic", "tags", "difficulty", "unit", "tolerance",
            "scenario", "position"} <= set(rows[0])
    lessons = list(LESSONS)
    order = [lessons.index(r["lesson"]) for r in rows]
    assert order == sorted(order) and [r["position"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["difficulty"] in ("intro", "core", "stretch") for r in rows)
    assert all(isinstance(r["tags"], list) and 0 < r["tolerance"] < 1 for r in rows)
    assert all((SCENARIOS / f"{r['scenario']}.py").is_file() for r in rows)


def test_show_json_prints_the_prompt_with_the_variant_numbers(capsys):
    out = run_json(capsys, "show", "kv-decode-batch", "--seed", "2")
    assert out["id"] == "kv-decode-batch" and out["seed"] == 2
    assert str(out["params"]["seq_len"]) in out["prompt"]
    assert out["unit"] == "sequences" and out["hints"]


def test_check_json_schema_and_values(capsys):
    out = run_json(capsys, "check", "adam-memory", "--answer", "89.4")
    assert {"id", "answer", "expected", "ratio", "correct", "explanation", "breakdown",
            "signature", "consequence", "off_by_pct", "diagnosis", "scenario"} <= set(out)
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


def test_show_prints_the_prompt_and_points_at_hint_and_solve(capsys):
    assert main(["exercise", "show", "moe-total-params"]) == 0
    text = capsys.readouterr().out
    assert "mixtral-8x7b" in text and "billion params" in text
    assert "exercise hint moe-total-params --level 1" in text and "hint 1:" not in text
    assert "exercise solve moe-total-params" in text


def test_solve_json_gives_givens_steps_and_the_simulators_answer(capsys):
    out = run_json(capsys, "solve", "zero-memory", "--seed", "7")
    assert {"givens", "solution_steps", "solution", "expected", "agreement",
            "simulator_adds", "consequence"} <= set(out)
    assert out["solution"] == pytest.approx(out["expected"], rel=out["tolerance"])
    assert len(out["solution_steps"]) >= 2 and out["givens"]["zero"] in (1, 2, 3)


def test_solve_prints_numbered_steps(capsys):
    assert main(["exercise", "solve", "pipeline-step", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "  1. " in text and "the simulator adds:" in text and "givens:" in text


def test_hint_levels_reveal_one_more_hint_each(capsys):
    one = run_json(capsys, "hint", "moe-active-params", "--level", "1")
    two = run_json(capsys, "hint", "moe-active-params", "--level", "2")
    assert len(one["hints"]) == 1 and len(two["hints"]) == 2 and two["hints"][0] == one["hint"]
    last = run_json(capsys, "hint", "moe-active-params", "--level", str(one["levels"]))
    assert last["hint"].startswith("First step of the worked solution")


@pytest.mark.parametrize("answer, expected", [
    ("178 GiB", 178.0), ("0.1738 TiB", 0.1738 * 1024), ("191e9 bytes", 191e9 / 2**30),
    ("  178  ", 178.0)])
def test_answers_accept_units(capsys, answer, expected):
    out = run_json(capsys, "check", "dp-memory-70b", "--answer", answer)
    assert out["answer"] == pytest.approx(expected)


def test_percent_answers_convert_to_ratios_and_back(capsys):
    out = run_json(capsys, "check", "bubble-schedules", "--answer", "27%")
    assert out["answer"] == pytest.approx(27.0)
    out = run_json(capsys, "check", "moe-imbalance", "--answer", "150%")
    assert out["answer"] == pytest.approx(1.5)


@pytest.mark.parametrize("answer, fragment", [
    ("-5", "must be positive"), ("0", "must be positive"), ("1,5", "decimal point"),
    ("1e400", "finite"), ("nan", "not a number"), ("12 furlongs", "unknown unit"),
    ("12 ms", "not a unit of GiB")])
def test_bad_answers_are_json_errors_on_stdout_with_exit_2(capsys, answer, fragment):
    code = main(["exercise", "check", "dp-memory-70b", "--answer", answer, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["error"]["type"] == "ConfigError"
    assert fragment in out["error"]["message"]


def test_usage_errors_under_json_are_json_too(capsys):
    assert main(["exercise", "check", "dp-memory-70b", "--seed", "x", "--json",
                 "--answer", "1"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["flag"] == "--seed" and "not an integer" in err["message"]
    assert main(["exercise", "show", "adam-memroy", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "UnknownNameError"


def test_correct_answers_state_the_consequence(capsys):
    solved = run_json(capsys, "solve", "dp-memory-70b")
    out = run_json(capsys, "check", "dp-memory-70b", "--answer", str(solved["solution"]))
    assert out["correct"] and "does not fit" in out["consequence"]
    assert out["consequence"] in out["explanation"]


def test_unknown_exercise_exits_2_with_a_one_line_error(capsys):
    assert main(["exercise", "show", "adam-memroy"]) == 2
    err = capsys.readouterr().err
    assert "adam-memory" in err and err.count("\n") == 1
