"""Every exercise is solvable from its page: the worked solution, computed from the prompt's
givens alone, is graded correct for every exercise over several seeds, agrees with the simulator
within the tolerance (or the prompt quotes what the simulator adds), and every given is quoted."""

from __future__ import annotations

import re

import pytest

from sim.exercises import check, load_all, show, solve
from sim.exercises.solution import Givens, get_solver, solve_givens

EXERCISES = load_all()
SEEDS = [None, 0, 1, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_the_textbook_solution_from_the_givens_is_graded_correct_for_every_seed(ex_id):
    ex = EXERCISES[ex_id]
    for seed in SEEDS:
        s = solve(ex, seed)
        out = check(ex, s["solution"], seed)
        assert out["correct"], (seed, s["solution"], out["expected"], s["solution_steps"])
        assert abs(s["agreement"] - 1) <= ex.tolerance, (seed, s["agreement"])
        assert s["solution_steps"] and s["consequence"]


@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_every_given_the_solver_needs_is_quoted_in_the_prompt(ex_id):
    ex = EXERCISES[ex_id]
    placeholders = set(re.findall(r"\{(\w+)", ex.prompt))
    missing = [n for n in get_solver(ex.solver_name).needs if n not in placeholders]
    assert missing == []


@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_show_json_lists_exactly_the_solvers_givens_and_the_solver_needs_nothing_else(ex_id):
    ex = EXERCISES[ex_id]
    out = show(ex, 1)
    assert list(out["givens"]) == list(get_solver(ex.solver_name).needs)
    sol = solve_givens(ex.solver_name, out["givens"])  # Givens raises on any other name
    assert sol.value == pytest.approx(solve(ex, 1)["solution"] * ex.scale, rel=1e-12)


def test_a_solver_reading_a_name_outside_its_givens_fails_loudly():
    g = Givens("demo", {"params": 1})
    with pytest.raises(KeyError, match="not among its givens"):
        g["hbm_gib"]


@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_each_exercise_varies_meaningfully_across_seeds(ex_id):
    ex = EXERCISES[ex_id]
    answers = {float(f"{check(ex, 1.0, s)['expected']:.3g}") for s in range(8)}
    assert len(answers) >= 3, answers


def test_a_residual_the_simulator_adds_is_quoted_and_named_in_the_worked_solution():
    with_residual = [ex for ex in EXERCISES.values() if get_solver(ex.solver_name).residual]
    assert with_residual
    for ex in with_residual:
        s = solve(ex, 0)
        key = get_solver(ex.solver_name).residual[0]
        assert "{" + key in ex.prompt and s["simulator_adds"], ex.id


def test_losing_speculation_is_said_to_lose():
    from sim.exercises.solutions_serving import spec_speedup

    slow_draft = spec_speedup({"accept": 0.3, "k": 6, "t_target_ms": 10.0, "t_draft_ms": 3.0,
                               "t_verify_ms": 11.0})
    assert slow_draft.value < 1 and "loses" in slow_draft.consequence
    fast = spec_speedup({"accept": 0.9, "k": 4, "t_target_ms": 10.0, "t_draft_ms": 1.0,
                         "t_verify_ms": 11.0})
    assert fast.value > 1 and "wins" in fast.consequence


def test_memory_feedback_says_whether_it_fits():
    ex = EXERCISES["dp-memory-70b"]
    out = check(ex, solve(ex, None)["solution"], None)
    assert out["correct"] and "does not fit in 80 GiB" in out["explanation"]
