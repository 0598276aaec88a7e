"""Predict-then-simulate lesson exercises.

An exercise (a TOML file under ``scenarios/exercises/``) asks the learner to predict one number
-- a memory footprint, a step time, a FLOP count, a p99 latency -- for a setup drawn from the
exercise's variants by a seed. The simulator computes the answer through a registered query
(``sim.exercises.registry``: each query calls the engines); the prompt quotes every number the
textbook solution needs (``givens``), and a solver (``sim.exercises.solution``) turns them into
a worked solution and into the numbers typical mistakes give, so a wrong answer is diagnosed
by the mistake it matches (``sim.exercises.explain``) or honestly as too high / too low.

API (each returns a JSON-ready dict): ``list_exercises()``, ``show(ex, seed)``,
``check(ex, answer, seed)``, ``solve(ex, seed)``, ``hint(ex, seed, level)``;
``get_exercise(id)`` and ``parse_answer(text, unit)``.
"""

from sim.exercises.check import (
                                 check,
                                 draw_params,
                                 givens_of,
                                 hint,
                                 list_exercises,
                                 render_prompt,
                                 show,
                                 simulate,
                                 solve,
)
from sim.exercises.loader import UNITS, Exercise, get_exercise, load_all, load_file
from sim.exercises.parse import parse_answer

__all__ = ["UNITS", "Exercise", "check", "draw_params", "get_exercise", "givens_of", "hint",
           "list_exercises", "load_all", "load_file", "parse_answer", "render_prompt", "show",
           "simulate", "solve"]
