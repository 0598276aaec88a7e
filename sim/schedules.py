"""The pipeline-schedule registry: one entry per schedule answers everything about it.

An entry says, for ``p`` stages, ``m`` microbatches and ``v`` model chunks per stage:
its task order for the DES (``tasks``: per stage, the ordered ``Task`` list its compute
stream runs), its closed-form bubble for the analytic backend (``bubble_time``), the
microbatches whose activations a stage keeps alive at its peak (``live_microbatches``, for
memory), how many chunks a stage holds (``chunks``), whether it splits the backward into
input- and weight-gradient passes (``splits_weight_grad``) and whether its bubble grows with
every pass time (``bubble_monotone``, which the plan search's lower bound relies on).

Adding a schedule = one ``register(PipelineSchedule(...))`` call here plus its tests; the CLI
choices, ``sim.plan.SCHEDULES``, validation, memory, the analytic bubble, the DES and the plan
search all read the registry (docs/CONTRACT.md).

Sources of the closed forms, per entry:
- GPipe (Huang et al. 2019): all forwards then all backwards; bubble (p-1)(F+B+W), every
  stage holds all m microbatches at its peak.
- 1F1B (PipeDream-Flush, Narayanan et al. 2021, Sec. 2.2.1): stage s warms up with p-s-1
  forwards, then alternates; same bubble as GPipe, at most p-s microbatches alive.
- Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2, Fig. 4): v chunks per stage, bubble
  divided by v, warm-up 2(p-s-1) + (v-1)p forwards (Megatron-LM); needs m divisible by p.
- ZB-H1 (Qi et al. 2024, "Zero Bubble Pipeline Parallelism", Sec. 3.1, Fig. 3): 1F1B with
  the backward split into B (input grad) and W (weight grad) that fills the drain; bubble
  (p-1)(F+B-W), same live microbatches as 1F1B.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sim.errors import ConfigError, PlanError, UnknownNameError

TaskKind = Literal["F", "B", "W"]

__all__ = ["PipelineSchedule", "SCHEDULES", "Task", "build_schedule", "get_schedule",
           "max_live_microbatches", "register", "schedule_names"]


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    mb: int  # microbatch index
    chunk: int = 0  # model chunk (virtual stage) index on this stage


@dataclass(frozen=True)
class PipelineSchedule:
    """One pipeline schedule (module docstring). Times are per microbatch on one stage."""

    name: str
    summary: str
    task_order: Callable[[int, int, int], list[list[Task]]]  # (p, m, v) -> tasks per stage
    live: Callable[[int, int, int, int], float]  # (p, m, v, stage) -> stage-equivalents
    bubble: Callable[[int, int, float, float, float], float]  # (p, v, t_f, t_b, t_w) -> s
    interleaves: bool = False  # holds plan.virtual_stages chunks per stage
    splits_weight_grad: bool = False  # backward split into B and deferred W tasks
    bubble_monotone: bool = True  # bubble never falls when a pass time grows

    def chunks(self, plan) -> int:
        """Model chunks per stage under ``plan``."""
        return plan.virtual_stages if self.interleaves else 1

    def tasks(self, p: int, m: int, v: int = 1) -> list[list[Task]]:
        if m < 1 or p < 1:
            raise PlanError(f"pipeline needs p>=1 and m>=1 microbatches (got p={p}, m={m})")
        return self.task_order(p, m, v if self.interleaves else 1)

    def bubble_time(self, pp: int, v: int, t_f: float, t_b: float, t_w: float) -> float:
        """Idle seconds per step on a stage with per-microbatch pass times F, B (input
        gradients) and W (weight gradients)."""
        return 0.0 if pp <= 1 else self.bubble(pp, v if self.interleaves else 1, t_f, t_b, t_w)

    def bubble_fraction(self, pp: int, m: int, v: int = 1, t_f: float = 1.0, t_b: float = 1.0,
                        t_w: float = 1.0) -> float:
        """Bubble time / useful time m (F + B + W)."""
        return self.bubble_time(pp, v, t_f, t_b, t_w) / (m * (t_f + t_b + t_w))

    def live_microbatches(self, plan, stage: int = 0) -> float:
        """Microbatches whose activations ``stage`` holds at its peak, in units of the whole
        stage's layers."""
        p, m = plan.pp, max(1, plan.n_microbatches)
        if not 0 <= stage < p:
            raise PlanError(f"stage {stage} out of range 0..{p - 1} for pp={p}")
        return self.live(p, m, self.chunks(plan), stage)


_REGISTRY: dict[str, PipelineSchedule] = {}


class UnknownScheduleError(UnknownNameError, ConfigError):
    """A schedule name that is not in the registry."""


def register(entry: PipelineSchedule) -> PipelineSchedule:
    if entry.name in _REGISTRY:
        raise ValueError(f"schedule {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def get_schedule(name: str) -> PipelineSchedule:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownScheduleError("schedule", name, list(_REGISTRY)) from None


def schedule_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def build_schedule(name: str, p: int, m: int, v: int = 1) -> list[list[Task]]:
    """Task lists for every stage under the named schedule."""
    if name not in _REGISTRY:
        raise PlanError(f"unknown schedule '{name}'; use {', '.join(_REGISTRY)}")
    return _REGISTRY[name].tasks(p, m, v)


def max_live_microbatches(tasks: list[Task]) -> int:
    """Peak number of (microbatch, chunk) activations alive on a stage: +1 at F, -1 at B."""
    live = peak = 0
    for t in tasks:
        live += {"F": 1, "B": -1, "W": 0}[t.kind]
        peak = max(peak, live)
    return peak


# --- task orders --------------------------------------------------------------------------------
def _gpipe(p: int, m: int, v: int) -> list[list[Task]]:
    return [[Task("F", i) for i in range(m)] + [Task("B", i) for i in range(m)] for _ in range(p)]


def _one_f_one_b(p: int, m: int, v: int) -> list[list[Task]]:
    return [_one_f_one_b_stage(p, m, s, split_w=False) for s in range(p)]


def _zb_h1(p: int, m: int, v: int) -> list[list[Task]]:
    return [_one_f_one_b_stage(p, m, s, split_w=True) for s in range(p)]


def _one_f_one_b_stage(p: int, m: int, s: int, split_w: bool) -> list[Task]:
    """Warm-up forwards, steady 1F1B, cool-down backwards. With ``split_w`` (ZB-H1) each B is
    followed by its W only once the stage has issued enough forwards that W fills the bubble:
    stage s delays its first s W passes to the drain (Qi et al. 2024, Fig. 3, ZB-H1)."""
    warm = min(p - s - 1, m)
    tasks = [Task("F", i) for i in range(warm)]
    pending_w: list[int] = []

    def backward(i: int) -> None:
        tasks.append(Task("B", i))
        pending_w.append(i)
        if split_w and len(pending_w) > s:
            tasks.append(Task("W", pending_w.pop(0)))

    for i in range(m - warm):
        tasks.append(Task("F", warm + i))
        backward(i)
    for i in range(m - warm, m):
        backward(i)
    if split_w:
        tasks += [Task("W", i) for i in pending_w]
    return tasks


def _interleaved(p: int, m: int, v: int) -> list[list[Task]]:
    """Megatron-LM's interleaved 1F1B. Forward k (0-based, over m*v forward tasks) on any stage
    is microbatch ``(k // (p*v))*p + k % p`` of chunk ``(k // p) % v``; backwards visit chunks
    in reverse order."""
    if m % p:
        raise PlanError(
            f"interleaved schedule needs microbatches m={m} divisible by pp={p}; "
            "change --global-batch or --micro-batch"
        )
    return [_interleaved_stage(p, m * v, s, v) for s in range(p)]


def _interleaved_stage(p: int, total: int, s: int, v: int) -> list[Task]:
    def fwd(k: int) -> Task:
        return Task("F", (k // (p * v)) * p + k % p, (k // p) % v)

    def bwd(k: int) -> Task:
        return Task("B", (k // (p * v)) * p + k % p, v - 1 - (k // p) % v)

    warm = min((p - s - 1) * 2 + (v - 1) * p, total)
    tasks = [fwd(k) for k in range(warm)]
    for i in range(total - warm):
        tasks += [fwd(warm + i), bwd(i)]
    tasks += [bwd(k) for k in range(total - warm, total)]
    return tasks


# --- closed forms -------------------------------------------------------------------------------
def _flush_bubble(p: int, v: int, t_f: float, t_b: float, t_w: float) -> float:
    return (p - 1) * (t_f + t_b + t_w) / v  # Narayanan et al. 2021, Sec. 2.2.1-2.2.2


def _zb_bubble(p: int, v: int, t_f: float, t_b: float, t_w: float) -> float:
    return (p - 1) * max(0.0, t_f + t_b - t_w)  # Qi et al. 2024, Sec. 3.1


def _gpipe_live(p: int, m: int, v: int, stage: int) -> float:
    return m if p > 1 else 1  # Huang et al. 2019: every microbatch alive before the backward


def _one_f_one_b_live(p: int, m: int, v: int, stage: int) -> float:
    return min(p - stage, m)  # Narayanan et al. 2021, Sec. 2.2.1; ZB-H1 the same (Qi Sec. 3.1)


def _interleaved_live(p: int, m: int, v: int, stage: int) -> float:
    # Megatron-LM warm-up count in chunk units; at stage 0 p(1 + (p-1)/(pv)) stage-equivalents
    # (Korthikanti et al. 2022, Sec. 4.2.3)
    return min(2 * (p - stage - 1) + (v - 1) * p + 1, m * v) / v


register(PipelineSchedule("gpipe", "all forwards, then all backwards (Huang et al. 2019)",
                          _gpipe, _gpipe_live, _flush_bubble))
register(PipelineSchedule("1f1b", "one forward, one backward (PipeDream-Flush)",
                          _one_f_one_b, _one_f_one_b_live, _flush_bubble))
register(PipelineSchedule("interleaved", "1F1B over v model chunks per GPU (Megatron-LM)",
                          _interleaved, _interleaved_live, _flush_bubble, interleaves=True))
register(PipelineSchedule("zb-h1", "1F1B with weight gradients deferred into the drain "
                          "(Qi et al. 2024)", _zb_h1, _one_f_one_b_live, _zb_bubble,
                          splits_weight_grad=True, bubble_monotone=False))

SCHEDULES = schedule_names()
