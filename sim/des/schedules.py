"""Pipeline schedules as per-stage task lists for the DES: the task orders live in the
schedule registry (``sim.schedules``); this module re-exports them under their DES names.

A schedule is, for each pipeline stage, the ordered list of ``Task``s its compute stream runs:
``F`` (forward of one microbatch through one model chunk), ``B`` (backward; the full backward,
or under a schedule that splits weight gradients only the input-gradient half) and ``W`` (the
deferred weight-gradient half). The engine runs each list in order; a task also waits for its
data dependency, so bubbles are not computed here — they emerge when the engine runs them.
"""

from __future__ import annotations

from sim.schedules import Task, TaskKind, build_schedule, get_schedule, max_live_microbatches

__all__ = ["Task", "TaskKind", "build_schedule", "get_schedule", "max_live_microbatches"]
