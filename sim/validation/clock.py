"""Which clock the harness times with.

On a shared CPU (this project's CI machine has 2 cores and several users), wall time mostly
measures the neighbours. With one intra-op thread, the *CPU time of our own process*
(``time.process_time``) is the time the work would take on an idle core, so ``cpu`` is the
default for ``--device cpu``; ``wall`` (``time.perf_counter``) is used on CUDA (kernels run
asynchronously; we synchronise) and for anything that waits on another process (gloo
collectives, data-parallel steps), where blocked time is real time.

``Clock`` also serves the continuous-batching loop: on the ``cpu`` clock, waiting for the next
arrival advances a virtual offset instead of sleeping, so the loop runs on the timeline the
server's own computation defines.
"""

from __future__ import annotations

import time

_KIND = {"value": "wall"}


def set_clock(kind: str) -> None:
    if kind not in ("cpu", "wall"):
        raise ValueError(f"clock must be 'cpu' or 'wall', not {kind!r}")
    _KIND["value"] = kind


def clock_kind() -> str:
    return _KIND["value"]


def default_clock(device: str, threads: int) -> str:
    return "cpu" if device == "cpu" and threads == 1 else "wall"


def now(kind: str | None = None) -> float:
    kind = kind or _KIND["value"]
    return time.process_time() if kind == "cpu" else time.perf_counter()


class Clock:
    """A timeline that starts at 0; ``sleep_until`` really sleeps only on the wall clock.
    ``rate`` converts elapsed seconds to the shared time scale of ``sim.validation.protocol``
    (the calibration's reference time over the reference time measured now), so a server
    that runs against fixed arrival times sees its own computation at calibration speed."""

    def __init__(self, kind: str | None = None, rate: float = 1.0):
        self.kind, self.rate = kind or _KIND["value"], rate
        self.start, self.offset = now(self.kind), 0.0

    def now(self) -> float:
        return (now(self.kind) - self.start) * self.rate + self.offset

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` just spent (e.g. a reference timing) off the timeline."""
        self.start += seconds

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (the timeline stays continuous)."""
        self.offset, self.start, self.rate = self.now(), now(self.kind), rate

    def sleep_until(self, t: float) -> None:
        wait = t - self.now()
        if wait <= 0:
            return
        if self.kind == "wall":
            time.sleep(wait)
        else:
            self.offset += wait
