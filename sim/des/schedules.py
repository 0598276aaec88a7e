"""Pipeline schedules as per-stage task lists (layers are split by sim.plan_validation).

A schedule is, for each pipeline stage, the ordered list of ``Task``s its compute stream runs:
``F`` (forward of one microbatch through one model chunk), ``B`` (backward; the full backward,
or under ZB-H1 only the input-gradient half) and ``W`` (ZB-H1's deferred weight-gradient half).
The engine runs each list in order; a task also waits for its data dependency (the activation
from the previous stage, the gradient from the next), so bubbles are not computed here — they
emerge when the engine runs these lists.

- GPipe (Huang et al. 2019): all forwards, then all backwards; every stage holds m microbatches
  of activations at the peak.
- 1F1B (Narayanan et al. 2021, PipeDream-Flush, Sec. 2.2): stage s warms up with p-s-1
  forwards, then alternates one forward and one backward, then drains; at most p-s microbatches
  are alive on stage s.
- Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2, Fig. 4): each stage holds v model chunks;
  microbatches go through chunks in groups of p; warm-up (p-s-1)*2 + (v-1)*p forwards. The
  bubble shrinks by v. Requires m divisible by p (Megatron-LM's constraint).
- ZB-H1 (Qi et al. 2024, "Zero Bubble Pipeline Parallelism", Sec. 3, Fig. 3): 1F1B with the
  backward split into B (input grad, on the critical path) and W (weight grad, deferred to fill
  the drain bubble); same peak activation count as 1F1B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sim.errors import PlanError

TaskKind = Literal["F", "B", "W"]


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    mb: int  # microbatch index
    chunk: int = 0  # model chunk (virtual stage) index on this stage


def gpipe(p: int, m: int) -> list[list[Task]]:
    return [[Task("F", i) for i in range(m)] + [Task("B", i) for i in range(m)] for _ in range(p)]


def one_f_one_b(p: int, m: int) -> list[list[Task]]:
    return [_one_f_one_b_stage(p, m, s, split_w=False) for s in range(p)]


def zb_h1(p: int, m: int) -> list[list[Task]]:
    return [_one_f_one_b_stage(p, m, s, split_w=True) for s in range(p)]


def _one_f_one_b_stage(p: int, m: int, s: int, split_w: bool) -> list[Task]:
    """Warm-up forwards, steady 1F1B, cool-down backwards. With ``split_w`` (ZB-H1) each B is
    followed by its W only once the stage has issued enough forwards that W fills the bubble:
    stage s delays its first s W passes to the drain (Qi et al. 2024, Fig. 3, ZB-H1)."""
    warm = min(p - s - 1, m)
    tasks = [Task("F", i) for i in range(warm)]
    pending_w: list[int] = []
    for i in range(m - warm):
        tasks.append(Task("F", warm + i))
        tasks.append(Task("B", i))
        pending_w.append(i)
        if split_w and len(pending_w) > s:
            tasks.append(Task("W", pending_w.pop(0)))
    for i in range(m - warm, m):
        tasks.append(Task("B", i))
        pending_w.append(i)
        if split_w and len(pending_w) > s:
            tasks.append(Task("W", pending_w.pop(0)))
    if split_w:
        tasks += [Task("W", i) for i in pending_w]
    return tasks


def interleaved(p: int, m: int, v: int) -> list[list[Task]]:
    """Megatron-LM's interleaved 1F1B. Forward k (0-based, over m*v forward tasks) on any stage
    is microbatch ``(k // (p*v))*p + k % p`` of chunk ``(k // p) % v``; backwards visit chunks
    in reverse order."""
    if m % p:
        raise PlanError(
            f"interleaved schedule needs microbatches m={m} divisible by pp={p}; "
            "change --global-batch or --micro-batch"
        )
    total = m * v
    return [_interleaved_stage(p, total, s, v) for s in range(p)]


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


def build_schedule(name: str, p: int, m: int, v: int = 1) -> list[list[Task]]:
    """Task lists for every stage under the named schedule."""
    if m < 1 or p < 1:
        raise PlanError(f"pipeline needs p>=1 and m>=1 microbatches (got p={p}, m={m})")
    if name == "gpipe":
        return gpipe(p, m)
    if name == "1f1b":
        return one_f_one_b(p, m)
    if name == "zb-h1":
        return zb_h1(p, m)
    if name == "interleaved":
        return interleaved(p, m, v)
    raise PlanError(f"unknown schedule '{name}'; use gpipe, 1f1b, interleaved or zb-h1")


def max_live_microbatches(tasks: list[Task]) -> int:
    """Peak number of (microbatch, chunk) activations alive on a stage: +1 at F, -1 at B."""
    live = peak = 0
    for t in tasks:
        live += {"F": 1, "B": -1, "W": 0}[t.kind]
        peak = max(peak, live)
    return peak
