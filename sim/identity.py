"""Hash-once identity for the frozen values that key the cost caches (ModelConfig, ParallelPlan).

Hashing a frozen dataclass walks every field; cost caches (``sim.costs.context``) hash the
same model and plan thousands of times per search, so the hash is computed once and kept on
the instance. String hashes differ between processes, so a pickled copy never carries it.
A class opts in with ``__hash__ = hash_once`` and ``__getstate__ = state_without_hash``
(``dataclass`` keeps a ``__hash__`` defined in the class body).
"""
from __future__ import annotations

from dataclasses import fields


def hash_once(self) -> int:
    """The hash of all dataclass fields, computed on first use and cached on the instance."""
    h = self.__dict__.get("_hash")
    if h is None:
        h = hash(tuple(getattr(self, f.name) for f in fields(self)))
        object.__setattr__(self, "_hash", h)
    return h


def state_without_hash(self) -> dict:
    """Pickle state without the cached hash (string hashes differ between processes)."""
    return {k: v for k, v in self.__dict__.items() if k != "_hash"}
