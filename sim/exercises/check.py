"""Drawing a learner's variant, rendering the prompt, checking an answer, solving, hinting.

``--seed N`` draws one option per ``variants`` key with a numpy Generator seeded by
(crc32(exercise id), N), so each learner's numbers differ, the same seed always gives the same
numbers, and two exercises with the same seed draw independently. Without a seed the fixed
``setup`` is used. The expected value is whatever the registered simulator query returns for
those parameters. The worked solution is the exercise's solver run on the givens the prompt
quotes (``sim.exercises.solution``); a wrong answer is diagnosed against the numbers the
solver's named mistakes give (``sim.exercises.explain``).

These functions are the exercise API (the CLI and the web app call them; each returns a
JSON-ready dict): ``list_exercises``, ``show``, ``check``, ``solve``, ``hint``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from sim.errors import ConfigError
from sim.exercises.answer import Answer, model_facts, system_facts
from sim.exercises.explain import diagnose
from sim.exercises.loader import Exercise, load_all
from sim.exercises.parse import parse_answer
from sim.exercises.registry import evaluate, get_query
from sim.exercises.solution import Solution, get_solver, residual_given, solve_givens


def draw_params(ex: Exercise, seed: int | None) -> dict:
    """The setup with one option per variants key drawn for ``seed`` (tables merge)."""
    params = dict(ex.setup)
    if seed is None:
        return params
    if seed < 0:
        raise ConfigError(f"--seed {seed}: use a non-negative integer")
    rng = np.random.default_rng([zlib.crc32(ex.id.encode()), seed])
    for key in sorted(ex.variants):
        options = ex.variants[key]
        choice = options[int(rng.integers(len(options)))]
        params.update(choice) if isinstance(choice, dict) else params.__setitem__(key, choice)
    return params


def simulate(ex: Exercise, seed: int | None) -> tuple[dict, Answer]:
    params = draw_params(ex, seed)
    return params, evaluate(ex.quantity, params)


def _base_pool(params: dict, answer: Answer, ex: Exercise) -> dict:
    return {**model_facts(params), **system_facts(params), **params, **answer.givens,
            "unit": ex.unit}


def givens_of(ex: Exercise, params: dict, answer: Answer) -> dict:
    """The numbers the prompt quotes that the worked solution needs, by name."""
    pool = _pool(params, answer, ex)
    return {k: pool[k] for k in get_solver(ex.solver_name).needs}


def _pool(params: dict, answer: Answer, ex: Exercise) -> dict:
    """Every value a prompt may quote: model and system facts, the setup, the query's givens
    and, when the solver has one, the residual the simulator adds to its formula."""
    pool = _base_pool(params, answer, ex)
    s = get_solver(ex.solver_name)
    missing = [k for k in s.needs if k not in pool and (not s.residual or k != s.residual[0])]
    if missing:
        raise ConfigError(f"exercise '{ex.id}': solver '{ex.solver_name}' needs givens "
                          f"{missing} that neither the model, the setup nor the query provide")
    return pool | residual_given(ex.solver_name, pool, answer.value)


def render_prompt(ex: Exercise, params: dict, answer: Answer) -> str:
    try:
        return ex.prompt.strip().format_map(_pool(params, answer, ex))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"exercise '{ex.id}': prompt placeholder {exc} has no value; use "
                          f"one of {sorted(_pool(params, answer, ex))}") from None


def _worked(ex: Exercise, seed: int | None) -> tuple[dict, Answer, dict, Solution]:
    params, answer = simulate(ex, seed)
    givens = givens_of(ex, params, answer)
    return params, answer, givens, solve_givens(ex.solver_name, givens)


def list_exercises() -> list[dict]:
    """Every exercise in lesson order: the list row (id, lesson, topic, tags, difficulty,
    unit, tolerance, scenario) plus its 1-based ``position``."""
    return [{**ex.summary(), "position": i}
            for i, ex in enumerate(load_all().values(), 1)]


def show(ex: Exercise, seed: int | None) -> dict:
    params, answer = simulate(ex, seed)
    return {**ex.summary(), "seed": seed, "prompt": render_prompt(ex, params, answer),
            "hints": list(ex.hints), "hint_levels": len(ex.hints) + 1,
            "givens": givens_of(ex, params, answer), "params": params}


def _expected(ex: Exercise, answer: Answer) -> float:
    expected = answer.value / ex.scale
    if not (math.isfinite(expected) and expected > 0):
        raise ConfigError(f"exercise '{ex.id}': the simulator's answer {expected} is not a "
                          "positive number for this variant; try another --seed")
    return expected


def check(ex: Exercise, value, seed: int | None) -> dict:
    """Compare the learner's ``value`` (a number in ``ex.unit``, or text such as "320 GiB" or
    "50%") with the simulator's answer, and diagnose the gap."""
    value = parse_answer(value, ex.unit)
    params, answer, _, sol = _worked(ex, seed)
    expected = _expected(ex, answer)
    d = diagnose(value * ex.scale, answer.value, ex.tolerance, sol.mistakes)
    correct = d["kind"] == "correct"
    return {"id": ex.id, "seed": seed, "unit": ex.unit, "answer": value, "expected": expected,
            "ratio": value / expected, "tolerance": ex.tolerance, "correct": correct,
            "off_by_pct": 100 * (value / expected - 1),
            "signature": d["signature"], "misconception": d["misconception"],
            "diagnosis": {"kind": d["kind"], "mistake_value": (
                None if d["mistake_value"] is None else d["mistake_value"] / ex.scale),
                "also": d["also"]},
            "consequence": sol.consequence,
            "explanation": _explanation(ex, d, value, expected, sol, answer, seed),
            "breakdown": {"bound": answer.bound, "parts": answer.parts,
                          "si_unit": answer.parts_unit or get_query(ex.quantity).si_unit},
            "scenario": ex.scenario, "params": params}


def _explanation(ex, d, value, expected, sol, answer, seed) -> str:
    u = ex.unit
    if d["kind"] == "correct":
        text = f"Correct: {expected:.4g} {u}. {sol.consequence}".strip()
    elif d["kind"] == "mistake":
        text = (f"{d['message']} That mistake gives {d['mistake_value'] / ex.scale:.4g} {u}; "
                f"the answer is {expected:.4g} {u}.")
    else:
        text = d["message"]
    solve = f"clustersim exercise solve {ex.id}" + (f" --seed {seed}" if seed is not None else "")
    more = "" if d["kind"] == "correct" else f" Worked solution: `{solve}`."
    return f"{text} Simulator: {answer.bound}.{more}"


def solve(ex: Exercise, seed: int | None) -> dict:
    """The worked solution from the givens alone, next to the simulator's answer."""
    params, answer, givens, sol = _worked(ex, seed)
    expected = _expected(ex, answer)
    return {"id": ex.id, "seed": seed, "unit": ex.unit, "tolerance": ex.tolerance,
            "givens": givens, "solution_steps": list(sol.steps),
            "solution": sol.value / ex.scale, "expected": expected,
            "agreement": sol.value / answer.value, "simulator_adds": sol.adds or None,
            "consequence": sol.consequence, "scenario": ex.scenario, "params": params}


def hint(ex: Exercise, seed: int | None, level: int) -> dict:
    """Hint ``level`` (1-based) and the ones before it: the authored hints, then the worked
    solution's first step as the last level (only that level runs the simulator)."""
    n = len(ex.hints) + 1
    if not 1 <= level <= n:
        raise ConfigError(f"--level {level}: exercise '{ex.id}' has hint levels 1..{n}; for "
                          f"the full worked solution run `clustersim exercise solve {ex.id}`")
    hints = list(ex.hints[:level])
    if level == n:
        draw_params(ex, seed)  # a bad seed fails here, before the simulator runs
        hints.append(f"First step of the worked solution: {_worked(ex, seed)[3].steps[0]}")
    return {"id": ex.id, "seed": seed, "level": level, "levels": n,
            "hint": hints[-1], "hints": hints}
