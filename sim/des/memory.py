"""HBM per GPU as a SimPy Container, tracked over time.

Every allocation (weights, gradients, optimizer state, a microbatch's activations, gathered
ZeRO-3 parameters, communication buffers) is a ``put`` and every free a ``get``; the level is
sampled on every change so the memory-over-time chart and the peak come straight from the
simulation. An allocation that would exceed the GPU's capacity does not block (a real GPU does
not wait for memory, it fails): the engine records an out-of-memory event naming the rank, the
op and the simulated time, books the excess in an ``overflow`` tally so the rest of the step can
still be timed, and the result reports ``fits = False`` with that event.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy


@dataclass(frozen=True)
class OomEvent:
    rank: int
    op: str
    time_s: float
    requested_bytes: float
    in_use_bytes: float
    capacity_bytes: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Hbm:
    def __init__(self, env: simpy.Environment, rank: int, capacity: float):
        self.env, self.rank, self.capacity = env, rank, float(capacity)
        self.container = simpy.Container(env, capacity=self.capacity, init=0)
        self.overflow = 0.0
        self.samples: list[tuple[float, float, str]] = [(0.0, 0.0, "start")]
        self.peak = 0.0
        self.oom: OomEvent | None = None
        self.by_kind: dict[str, float] = {}
        self.by_kind_peak: dict[str, float] = {}
        self.at_peak: dict[str, float] = {}  # by_kind at the moment of the peak (sums to it)

    @property
    def in_use(self) -> float:
        return self.container.level + self.overflow

    def alloc(self, nbytes: float, what: str, kind: str = "other") -> None:
        if nbytes <= 0:
            return
        room = self.capacity - self.container.level
        fit = min(nbytes, room)
        if fit < nbytes and self.oom is None:
            self.oom = OomEvent(self.rank, what, self.env.now, nbytes, self.in_use, self.capacity)
        if fit > 0:
            self.container.put(fit)
        self.overflow += nbytes - fit
        self.by_kind[kind] = self.by_kind.get(kind, 0.0) + nbytes
        self.by_kind_peak[kind] = max(self.by_kind_peak.get(kind, 0.0), self.by_kind[kind])
        self._sample(what)

    def free(self, nbytes: float, what: str, kind: str = "other") -> None:
        if nbytes <= 0:
            return
        from_overflow = min(self.overflow, nbytes)
        self.overflow -= from_overflow
        take = min(nbytes - from_overflow, self.container.level)  # never block on rounding
        if take > 0:
            self.container.get(take)
        self.by_kind[kind] = self.by_kind.get(kind, 0.0) - nbytes
        self._sample(what)

    def _sample(self, what: str) -> None:
        # put/get on a Container with room/level succeed immediately (same timestep)
        level = self.in_use
        if level > self.peak:
            self.peak, self.at_peak = level, dict(self.by_kind)
        self.samples.append((self.env.now, level, what))
