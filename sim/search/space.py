"""The space of training plans a search walks, in the order it walks it.

A *layout* fixes the degrees (tp, cp, pp, dp, ep): every ordered factorisation
``tp * cp * pp * dp = n_gpus`` with tp at most the number of attention heads, and, for a
Mixture-of-Experts model, every ep dividing both dp and the expert count (dense models: ep=1).
Inside a layout a *variant* fixes the rest:

- ZeRO stage 0, 1, 2, 3;
- micro-batch: every divisor of ``global_batch / dp`` (so the batch constraint always holds),
  ascending, which lets the search stop at the first micro-batch whose memory lower bound
  already exceeds HBM (activations never shrink when the micro-batch grows);
- schedule: ``gpipe``, ``1f1b``, ``zb-h1`` (one chunk per stage) and ``interleaved`` with v
  virtual stages for every v >= 2 that divides the layers per stage (Megatron-LM requires
  ``n_layers % (pp * v) == 0`` for interleaving), only when pp > 1;
- recompute none, selective, full;
- sequence parallelism on/off, only when tp > 1 (with tp = 1 it changes nothing).

``overlap`` (a modelling bracket, not a choice a user makes) and the dtype stay at the plan
defaults. Which of these plans is *legal* is decided by ``sim.plan_validation`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sim.plan import RECOMPUTE_MODES, ParallelPlan
from sim.schedules import get_schedule, schedule_names

ZERO_STAGES = (0, 1, 2, 3)


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]  # O(sqrt n), not O(n)
    return tuple(sorted(set(small + [n // d for d in small])))


def divisors(n: int) -> list[int]:
    return list(_divisors(n))


@dataclass(frozen=True)
class Layout:
    tp: int
    cp: int
    pp: int
    dp: int
    ep: int


def layouts(model, n_gpus: int) -> list[Layout]:
    """Every (tp, cp, pp, dp, ep) whose product tp*cp*pp*dp is ``n_gpus``, in a fixed order."""
    out = []
    for tp in (d for d in divisors(n_gpus) if d <= model.n_heads):
        for cp in divisors(n_gpus // tp):
            for pp in divisors(n_gpus // (tp * cp)):
                dp = n_gpus // (tp * cp * pp)
                out += [Layout(tp, cp, pp, dp, ep) for ep in expert_degrees(model, dp)]
    return out


def expert_degrees(model, dp: int) -> list[int]:
    if not model.moe:
        return [1]
    return [e for e in divisors(dp) if model.moe.n_experts % e == 0]


def schedules(model, pp: int) -> list[tuple[str, int]]:
    """(schedule, virtual stages) choices for ``pp`` stages."""
    if pp == 1:
        return [("1f1b", 1)]  # one stage: every schedule is the same plain loop
    entries = [get_schedule(name) for name in schedule_names()]
    out = [(e.name, 1) for e in entries if not e.interleaves]
    per_stage = model.n_layers // pp if model.n_layers % pp == 0 else 0
    out += [(e.name, v) for e in entries if e.interleaves for v in divisors(per_stage) if v >= 2]
    return out


def micro_batches(layout: Layout, global_batch: int) -> list[int]:
    return divisors(global_batch // layout.dp) if global_batch % layout.dp == 0 else [1]


def seq_parallel(layout: Layout) -> tuple[bool, ...]:
    return (False, True) if layout.tp > 1 else (False,)


def base_plan(layout: Layout, global_batch: int, seq: int) -> ParallelPlan:
    """The layout's representative: ZeRO-0, micro-batch 1, 1F1B, no recompute, no SP."""
    return make_plan(layout, global_batch, seq)


def make_plan(layout: Layout, global_batch: int, seq: int, **kw) -> ParallelPlan:
    """A plan of ``layout`` (the constructor, not ``dataclasses.replace``: 10x faster)."""
    return ParallelPlan(tp=layout.tp, pp=layout.pp, dp=layout.dp, ep=layout.ep, cp=layout.cp,
                        global_batch=global_batch, seq_len=seq, **kw)


def variant_heads(model, layout: Layout, zero: int, mb: int, base: ParallelPlan) -> list:
    """One plan per validation key of (layout, ZeRO stage, micro-batch), recompute='none':
    recomputation never changes legality, so each head stands for len(RECOMPUTE_MODES) plans."""
    return [make_plan(layout, base.global_batch, base.seq_len, zero=zero, micro_batch=mb,
                      schedule=schedule, virtual_stages=v, sequence_parallel=sp)
            for schedule, v in schedules(model, layout.pp) for sp in seq_parallel(layout)]


def recompute_group(head: ParallelPlan) -> list[ParallelPlan]:
    """The plans a head stands for: one per recompute mode."""
    kw = {k: getattr(head, k) for k in VARIANT_FIELDS}
    lay = Layout(head.tp, head.cp, head.pp, head.dp, head.ep)
    return [head] + [make_plan(lay, head.global_batch, head.seq_len, recompute=r, **kw)
                     for r in RECOMPUTE_MODES[1:]]


def with_zero(head: ParallelPlan, zero: int) -> ParallelPlan:
    kw = {k: getattr(head, k) for k in VARIANT_FIELDS if k != "zero"}
    lay = Layout(head.tp, head.cp, head.pp, head.dp, head.ep)
    return make_plan(lay, head.global_batch, head.seq_len, zero=zero, recompute=head.recompute,
                     **kw)


VARIANT_FIELDS = ("zero", "micro_batch", "schedule", "virtual_stages", "sequence_parallel")


def validation_key(head: ParallelPlan) -> tuple:
    """What legality can depend on besides the layout and ZeRO stage."""
    return (head.micro_batch, head.schedule, head.virtual_stages, head.sequence_parallel)


def count_variants(model, layout: Layout, global_batch: int) -> int:
    """How many plans a layout holds (for bulk counting when the layout itself is illegal)."""
    per_mb = len(schedules(model, layout.pp)) * len(seq_parallel(layout)) * len(RECOMPUTE_MODES)
    return len(ZERO_STAGES) * len(micro_batches(layout, global_batch)) * per_mb


def lower_bound_plan(layout: Layout, zero: int, mb: int, base: ParallelPlan) -> ParallelPlan:
    """The variant of (layout, zero, mb) that needs the least memory: full recomputation,
    sequence parallelism when tp > 1, 1F1B (fewest live micro-batches of any schedule)."""
    return make_plan(layout, base.global_batch, base.seq_len, zero=zero, micro_batch=mb,
                     recompute="full", sequence_parallel=layout.tp > 1)


def upper_bound_plan(layout: Layout, zero: int, mb: int, base: ParallelPlan) -> ParallelPlan:
    """The variant of (layout, zero, mb) that needs the most memory: no recomputation, no
    sequence parallelism, GPipe (all m micro-batches alive; every other schedule keeps at
    most that many)."""
    return make_plan(layout, base.global_batch, base.seq_len, zero=zero, micro_batch=mb,
                     schedule="gpipe" if layout.pp > 1 else "1f1b")


def plan_order(plan: ParallelPlan) -> tuple:
    """A total order on plans: the deterministic tie-break of every ranking."""
    return (plan.tp, plan.pp, plan.dp, plan.cp, plan.ep, plan.zero, plan.micro_batch,
            plan.schedule, plan.virtual_stages, RECOMPUTE_MODES.index(plan.recompute),
            plan.sequence_parallel)


def all_plans(model, n_gpus: int, global_batch: int, seq: int):
    """Every plan of the space, flat (what a brute-force check walks)."""
    for layout in layouts(model, n_gpus):
        base = base_plan(layout, global_batch, seq)
        for zero in ZERO_STAGES:
            for mb in micro_batches(layout, global_batch):
                for head in variant_heads(model, layout, zero, mb, base):
                    yield from recompute_group(head)
