"""Exercises as data: one TOML file per exercise under ``scenarios/exercises/``.

A file names its lesson, topic and misconception tags, a prompt template, a fixed ``setup``
(model, system, batch, context...), the ``quantity`` asked (a registered simulator query, never
a number), its display ``unit`` and relative ``tolerance``, hints, and a ``variants`` table
from which a seed draws another model, GPU, batch or context. Unknown keys, unknown lessons,
tags, queries or units are errors naming the fix.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sim import resources
from sim.errors import ConfigError, UnknownNameError
from sim.exercises.registry import get_query
from sim.report.lesson import check_lesson, check_misconceptions

EXERCISE_DIR = resources.exercises_dir()  # repository checkout or installed package data

# display unit -> SI scale (the learner answers in the display unit)
UNITS = {
    "s": 1.0, "ms": 1e-3, "us": 1e-6, "bytes": 1.0, "KiB": 2.0**10, "MiB": 2.0**20,
    "GiB": 2.0**30, "GB": 1e9, "MFLOP": 1e6, "GFLOP": 1e9, "TFLOP": 1e12, "PFLOP": 1e15,
    "billion params": 1e9, "billion tokens": 1e9, "x": 1.0, "%": 1e-2, "sequences": 1.0,
    "tokens/s": 1.0,
}
REQUIRED = ("id", "lesson", "topic", "tags", "prompt", "quantity", "unit", "tolerance")
OPTIONAL = ("hints", "setup", "variants")


@dataclass(frozen=True)
class Exercise:
    id: str
    lesson: str
    topic: str
    tags: tuple[str, ...]
    prompt: str
    quantity: str
    unit: str
    tolerance: float  # relative: correct when |answer/expected - 1| <= tolerance
    hints: tuple[str, ...] = ()
    setup: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)  # key -> list of options (scalars or tables)
    path: str = ""

    @property
    def scale(self) -> float:
        return UNITS[self.unit]

    def summary(self) -> dict:
        return {"id": self.id, "lesson": self.lesson, "topic": self.topic,
                "tags": list(self.tags)}


def _check_keys(data: dict, path: Path) -> None:
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    missing = [k for k in REQUIRED if k not in data]
    if unknown or missing:
        raise ConfigError(f"{path.name}: unknown keys {unknown}, missing keys {missing}; an "
                          f"exercise has {', '.join(REQUIRED + OPTIONAL)}")


def _check_values(ex: Exercise, path: Path) -> None:
    if ex.id != path.stem:
        raise ConfigError(f"{path.name}: id '{ex.id}' must equal the file name '{path.stem}'")
    check_lesson(ex.lesson)
    check_misconceptions(ex.tags)
    get_query(ex.quantity)
    if ex.unit not in UNITS:
        raise UnknownNameError("unit", ex.unit, list(UNITS))
    if not 0 < ex.tolerance < 1:
        raise ConfigError(f"{path.name}: tolerance={ex.tolerance} must be in (0, 1) (relative)")
    for key, options in ex.variants.items():
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{path.name}: variants.{key} must be a non-empty list of options")


def load_file(path: Path) -> Exercise:
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{Path(path).name}: not valid TOML ({exc})") from None
    _check_keys(data, Path(path))
    ex = Exercise(**{k: data[k] for k in REQUIRED}, hints=tuple(data.get("hints", ())),
                  setup=data.get("setup", {}), variants=data.get("variants", {}), path=str(path))
    ex = Exercise(**{**ex.__dict__, "tags": tuple(ex.tags), "tolerance": float(ex.tolerance)})
    _check_values(ex, Path(path))
    return ex


@functools.lru_cache(maxsize=4)
def load_all(directory: str | None = None) -> dict[str, Exercise]:
    """Every exercise in ``directory`` (default scenarios/exercises/), by id, sorted."""
    root = Path(directory) if directory else EXERCISE_DIR
    paths = sorted(root.glob("*.toml"), key=lambda path: path.stem)
    return {ex.id: ex for ex in (load_file(path) for path in paths)}


def get_exercise(exercise_id: str, directory: str | None = None) -> Exercise:
    exercises = load_all(directory)
    if exercise_id not in exercises:
        raise UnknownNameError("exercise", exercise_id, list(exercises))
    return exercises[exercise_id]
