"""Worked textbook solutions, computed from an exercise's givens alone.

A solver is registered under a name (an exercise's ``solver`` key, default its ``quantity``)
with the names of the givens it needs. ``show`` hands the learner exactly those numbers (the
prompt quotes each one), and the solver turns them into the textbook answer with its steps, the
numbers a learner gets by making each named mistake (``sim.exercises.explain`` holds their
messages), the consequence a correct answer has, and -- when the simulator models more than
the textbook formula -- what it adds and how much (also a given in the prompt).

The solver never sees the simulator: it gets a read-only mapping of the givens and raises
KeyError on any other name, so "solvable from the page" is checked by running it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

GIB, MIB = 2.0**30, 2.0**20


@dataclass(frozen=True)
class Solution:
    value: float  # SI, like the simulator's answer
    steps: tuple[str, ...]
    mistakes: dict = field(default_factory=dict)  # mistake id -> SI value a learner gets
    consequence: str = ""  # what the right number means (fits or not, wins or loses...)
    adds: str = ""  # what the simulator models beyond this solution, with its size


@dataclass(frozen=True)
class Solver:
    name: str
    fn: Callable[[Mapping], Solution]
    needs: tuple[str, ...]
    # (given name, its scale to SI): the part of the simulator's answer the textbook formula
    # does not model (a p99 tail, exposed communication...). It is measured as simulator minus
    # formula, quoted in the prompt, and added by the solver; the worked solution says so.
    residual: tuple[str, float] | None = None


SOLVERS: dict[str, Solver] = {}


def solver(name: str, needs: tuple[str, ...] | list[str],
           residual: tuple[str, float] | None = None):
    """Decorator: register ``fn(givens) -> Solution`` under ``name`` needing ``needs`` (and
    the ``residual`` given, when the simulator models more than the formula)."""
    def wrap(fn):
        extra = (residual[0],) if residual else ()
        SOLVERS[name] = Solver(name, fn, tuple(needs) + extra, residual)
        return fn
    return wrap


class Givens(Mapping):
    """The givens a solver may read; any other name is a KeyError naming the solver."""

    def __init__(self, solver_name: str, values: dict):
        self._name, self._values = solver_name, dict(values)

    def __getitem__(self, key):
        if key not in self._values:
            raise KeyError(f"solver '{self._name}' reads '{key}', which is not among its "
                           f"givens {sorted(self._values)}")
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def get_solver(name: str) -> Solver:
    from sim.errors import UnknownNameError

    _load_all()
    if name not in SOLVERS:
        raise UnknownNameError("exercise solver", name, sorted(SOLVERS))
    return SOLVERS[name]


def solve_givens(name: str, values: dict) -> Solution:
    s = get_solver(name)
    return s.fn(Givens(name, {k: values[k] for k in s.needs}))


def residual_given(name: str, values: dict, simulated_si: float) -> dict:
    """``{residual name: simulator minus formula, in the given's unit}`` ({} if none)."""
    s = get_solver(name)
    if s.residual is None:
        return {}
    key, scale = s.residual
    base = solve_givens(name, {**values, key: 0.0}).value
    return {key: (simulated_si - base) / scale}


def _load_all() -> None:
    import sim.exercises.solutions_attention
    import sim.exercises.solutions_moe
    import sim.exercises.solutions_scale
    import sim.exercises.solutions_serving  # noqa: F401 (registers the solvers)


# --- number formatting for the steps -------------------------------------------------------------
def g(x: float, digits: int = 4) -> str:
    """A number for a worked step: 4 significant digits, thousands separators for big ones."""
    if x != 0 and (abs(x) >= 1e15 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def gib(nbytes: float) -> str:
    return f"{nbytes / GIB:.2f} GiB"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def fits(nbytes: float, capacity_gib: float) -> str:
    """'fits in 80 GiB (62% full)' or 'does not fit in 80 GiB (1.4x over)'."""
    cap = capacity_gib * GIB
    if nbytes <= cap:
        return f"fits in {capacity_gib:.0f} GiB per GPU ({100 * nbytes / cap:.0f}% full)"
    return f"does not fit in {capacity_gib:.0f} GiB per GPU ({nbytes / cap:.2f}x over)"
