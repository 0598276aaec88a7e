"""Predict-then-simulate lesson exercises.

An exercise (a TOML file under ``scenarios/exercises/``) asks the learner to predict one number
-- a memory footprint, a step time, a FLOP count, a p99 latency -- for a setup drawn from the
exercise's variants by a seed. The simulator computes the answer through a registered query
(``sim.exercises.registry``: each query calls the engines), the learner's value is compared as
a ratio, and a catalogue of discrepancy signatures (``sim.exercises.explain``) names the likely
mistake and the misconception behind it, next to a breakdown of the simulated answer.
"""

from sim.exercises.check import check, draw_params, render_prompt, show, simulate
from sim.exercises.loader import UNITS, Exercise, get_exercise, load_all, load_file

__all__ = ["UNITS", "Exercise", "check", "draw_params", "get_exercise", "load_all",
           "load_file", "render_prompt", "show", "simulate"]
