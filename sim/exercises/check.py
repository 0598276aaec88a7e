"""Drawing a learner's variant, rendering the prompt and checking an answer.

``--seed N`` draws one option per ``variants`` key with a numpy Generator seeded by
(crc32(exercise id), N), so each learner's numbers differ, the same seed always gives the same
numbers, and two exercises with the same seed draw independently. Without a seed the fixed
``setup`` is used. The expected value is whatever the registered simulator query returns for
those parameters; the learner's value is compared as a ratio and explained by the signature
catalogue (``sim.exercises.explain``).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from sim.errors import ConfigError
from sim.exercises.answer import Answer, model_facts
from sim.exercises.explain import explain
from sim.exercises.loader import Exercise
from sim.exercises.registry import evaluate, get_query


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


def render_prompt(ex: Exercise, params: dict, answer: Answer) -> str:
    values = {**model_facts(params), **params, **answer.givens, "unit": ex.unit}
    try:
        return ex.prompt.strip().format_map(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"exercise '{ex.id}': prompt placeholder {exc} has no value; use "
                          f"one of {sorted(values)}") from None


def show(ex: Exercise, seed: int | None) -> dict:
    params, answer = simulate(ex, seed)
    return {**ex.summary(), "seed": seed, "prompt": render_prompt(ex, params, answer),
            "unit": ex.unit, "tolerance": ex.tolerance, "hints": list(ex.hints),
            "params": params, "givens": answer.givens}


def check(ex: Exercise, value: float, seed: int | None) -> dict:
    """Compare the learner's ``value`` (in ``ex.unit``) with the simulator's answer."""
    if not math.isfinite(value):
        raise ConfigError(f"--answer {value}: give a finite number in {ex.unit}")
    params, answer = simulate(ex, seed)
    expected = answer.value / ex.scale
    if not (math.isfinite(expected) and expected > 0):
        raise ConfigError(f"exercise '{ex.id}': the simulator's answer {expected} is not a "
                          "positive number for this variant; try another --seed")
    ratio = value / expected
    correct = abs(ratio - 1) <= ex.tolerance
    signature, message, misconception = explain(get_query(ex.quantity).kind, ratio, correct)
    return {"id": ex.id, "seed": seed, "unit": ex.unit, "answer": value, "expected": expected,
            "ratio": ratio, "tolerance": ex.tolerance, "correct": correct,
            "signature": signature, "misconception": misconception,
            "explanation": f"{message} Simulator: {answer.bound}.",
            "breakdown": {"bound": answer.bound, "parts": answer.parts,
                          "si_unit": answer.parts_unit or get_query(ex.quantity).si_unit},
            "params": params}
