"""The registry of simulator queries an exercise may ask about.

Each query is a function ``f(params) -> Answer`` that calls the engines (``sim.model``,
``sim.costs``, ``sim.des``, ``sim.serving``); ``kind`` tells the explanation catalogue what sort
of quantity it is (training memory, decode time, MoE step time...). ``evaluate`` memoises by
(function, parameters) so a test suite that walks every exercise and seed runs each engine
call once, and a patched function is never served a stale answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sim.errors import UnknownNameError
from sim.exercises.answer import Answer


@dataclass(frozen=True)
class Query:
    name: str
    fn: Callable[[dict], Answer]
    kind: str  # signature family in sim.exercises.explain
    si_unit: str  # "s", "bytes", "FLOP", "fraction", "x", "count", "FLOP/token"...


QUERIES: dict[str, Query] = {}
_CACHE: dict[tuple, Answer] = {}


def query(kind: str, si_unit: str):
    """Decorator: register ``fn`` under its name with its kind and SI unit."""
    def wrap(fn):
        QUERIES[fn.__name__] = Query(fn.__name__, fn, kind, si_unit)
        return fn
    return wrap


def get_query(name: str) -> Query:
    _load_all()
    if name not in QUERIES:
        raise UnknownNameError("exercise query", name, sorted(QUERIES))
    return QUERIES[name]


def evaluate(name: str, params: dict) -> Answer:
    """The simulator's answer to query ``name`` for ``params`` (memoised)."""
    q = get_query(name)
    key = (name, q.fn, json.dumps(params, sort_keys=True, default=str))
    if key not in _CACHE:
        _CACHE[key] = q.fn(params)
    return _CACHE[key]


def _load_all() -> None:
    import sim.exercises.queries_attention
    import sim.exercises.queries_moe
    import sim.exercises.queries_scale
    import sim.exercises.queries_serving
    import sim.exercises.queries_stack  # noqa: F401 (registers the queries)
