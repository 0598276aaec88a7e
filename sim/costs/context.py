"""``CostContext(model, cluster)``: the memo tables of the cost core, in one place.

Plan search prices millions of plans of one model on one cluster; what makes that fast is
that most of a plan's cost is shared with other plans (a layer's cost does not depend on dp,
pp, ZeRO, the global batch or the schedule). The context owns those tables, keyed by small
named tuples (``LayerKey``: the plan fields a layer's per-rank cost reads; ``StageKey``: a
plan and a pipeline stage), and is itself looked up by value: ``ModelConfig`` hashes its
fields once (``ModelConfig.__hash__``), a ``Cluster`` is one object per topology. Nothing is
keyed by ``id()``, so an object's identity can never alias another's cached cost.

*Rejected:* module-level caches keyed by ``id(model)`` with keep-alive registries (what this
replaced): five copies, each needing the objects kept alive forever, and plan fields taken
apart into scalar signatures where a new field could be silently dropped.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache
from typing import NamedTuple

__all__ = ["STEP_ONLY_FIELDS", "CostContext", "LayerKey", "StageKey"]


class LayerKey(NamedTuple):
    """The plan fields a transformer layer's per-rank cost reads, and the layer kind."""

    moe: bool
    micro_batch: int
    seq_len: int
    tp: int
    cp: int
    ep: int
    sequence_parallel: bool
    recompute: str
    dtype: str
    flash_attention: bool
    grad_accumulation_fusion: bool
    stack: object  # sim.stack.Stack or None: kernels, fusions and collective algorithms

    @classmethod
    def of(cls, plan, moe: bool = False) -> LayerKey:
        return cls(moe, plan.micro_batch, plan.seq_len, plan.tp, plan.cp, plan.ep,
                   plan.sequence_parallel, plan.recompute, plan.dtype, plan.flash_attention,
                   plan.grad_accumulation_fusion, plan.stack)


# ParallelPlan fields that change the step but never one layer's per-rank cost; every other
# field must be in LayerKey (tests check that each plan field is classified)
STEP_ONLY_FIELDS = ("pp", "dp", "zero", "global_batch", "schedule", "virtual_stages",
                    "overlap", "optimizer")


class StageKey(NamedTuple):
    """One pipeline stage of one plan (the whole plan: no field can be dropped)."""

    plan: object
    stage: int


class CostContext:
    """Memo tables for one (model, cluster). Get one with ``CostContext.of(model, cluster)``."""

    def __init__(self, model, cluster):
        self.model, self.cluster = model, cluster
        self._tables: dict[str, dict] = {}

    @staticmethod
    def of(model, cluster) -> CostContext:
        return _context(model, cluster)

    def memo(self, table: str) -> dict:
        """The named memo table (created empty on first use)."""
        t = self._tables.get(table)
        if t is None:
            t = self._tables[table] = {}
        return t

    def cached(self, table: str, key, compute):
        """``compute()`` once per ``key`` in ``table``."""
        t = self.memo(table)
        try:
            return t[key]
        except KeyError:
            v = t[key] = compute()
            return v

    def layer_key(self, plan, layer: int) -> LayerKey:
        return LayerKey.of(plan, self.model.is_moe_layer(layer))

    def __repr__(self) -> str:
        sizes = {k: len(v) for k, v in self._tables.items()}
        return f"CostContext({self.model.name!r}, {self.cluster!r}, tables={sizes})"


@lru_cache(maxsize=64)
def _context(model, cluster) -> CostContext:
    return CostContext(model, cluster)


def plan_fields() -> tuple[str, ...]:
    from sim.plan import ParallelPlan

    return tuple(f.name for f in fields(ParallelPlan))
