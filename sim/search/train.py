"""Training plan search: enumerate, drop the infeasible cheaply, price the rest, rank.

For each layout (``sim.search.space``) the search first validates the layout's representative
plan: when a layout-level constraint breaks (tp vs heads, pp vs layers...), every variant of
the layout breaks it too and is counted in bulk without being built. For each legal
(layout, ZeRO stage) it walks micro-batches upward and prices the *memory lower bound* of
that micro-batch (full recomputation, sequence parallelism, 1F1B: ``space.lower_bound_plan``)
with ``sim.costs.memory.memory_per_gpu``; once that bound exceeds HBM, this and every larger
micro-batch is out of memory, so no timing is spent on them. Remaining plans are validated
(per validation key: recompute never changes legality), their memory checked, and only then
timed by ``sim.costs.analytic.estimate_train``. Counts are exact: a brute-force walk of the
same space gives the same ``evaluated`` and ``infeasible`` numbers (tests check this).

Ranking keys (``OBJECTIVES``), ties broken by ``space.plan_order``: throughput (shortest step),
memory (least memory per GPU, then shortest step), cost (USD per million training tokens from
the system's ``price_per_gpu_hour``; with one GPU count it orders like throughput).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from sim.costs.analytic import estimate_train
from sim.costs.memory import memory_per_gpu
from sim.errors import ConfigError, PlanError
from sim.plan import RECOMPUTE_MODES
from sim.search import bounds, space
from sim.search.reasons import LAYOUT_LEVEL, OUT_OF_MEMORY, PREFIX, violation

ZERO_REASON = PREFIX + "zero"
OBJECTIVES = ("throughput", "memory", "cost")


@dataclass
class Candidate:
    plan: object
    result: object  # TrainResult (or DesResult after refinement)
    cluster: object
    key: tuple = ()
    memory: float | None = None  # memory per GPU (bytes) when computed before timing


@dataclass
class TrainSearch:
    """What ``search_train`` found; ``ranked`` is best first."""

    objective: str
    evaluated: int = 0
    infeasible: Counter = field(default_factory=Counter)
    ranked: list = field(default_factory=list)
    space_size: int = 0
    refined: str = "none"
    priced: int = 0  # plans timed by estimate_train; the others were bounded out

    @property
    def feasible(self) -> int:
        return self.evaluated


def usd_per_million_tokens(result, plan, cluster) -> float | None:
    price = cluster.system.price_per_gpu_hour
    if price is None:
        return None
    # GPU-hours of one step x price, per million tokens the step trains on
    usd = price * cluster.n_gpus * result.step_time_s / 3600.0
    return usd / (plan.global_batch * plan.seq_len) * 1e6


def objective_key(objective: str, cand: Candidate) -> tuple:
    r = cand.result
    if objective == "memory":
        head = (r.memory_per_gpu_bytes, r.step_time_s)
    elif objective == "cost":
        head = (usd_per_million_tokens(r, cand.plan, cand.cluster), r.step_time_s)
    else:
        head = (r.step_time_s,)
    return head + (cand.cluster.n_gpus, space.plan_order(cand.plan))


def _check_objective(objective: str, clusters) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective '{objective}' is not one of {', '.join(OBJECTIVES)}")
    if objective == "cost" and any(c.system.price_per_gpu_hour is None for c in clusters):
        raise ConfigError(f"--objective cost needs a price: system '{clusters[0].system.name}' "
                          "has no price_per_gpu_hour; add one to its TOML or rank by throughput")


class _Walker:
    """Walks one cluster's space, filling ``out`` (counts) and ``found`` (priced plans)."""

    def __init__(self, model, cluster, global_batch: int, seq: int, out: TrainSearch):
        self.model, self.cluster, self.out = model, cluster, out
        self.gb, self.seq, self.n = global_batch, seq, cluster.n_gpus
        self.capacity = cluster.accelerator.memory_bytes
        self.found: list[Candidate] = []
        self.need_memory = out.objective == "memory"

    def layout(self, layout) -> None:
        size = space.count_variants(self.model, layout, self.gb)
        self.out.space_size += size
        base = space.base_plan(layout, self.gb, self.seq)
        reason = violation(self.model, base, self.n)
        if reason in LAYOUT_LEVEL:
            self.out.infeasible[reason] += size
            return
        self.verdicts: dict = {}
        for zero in space.ZERO_STAGES:
            self.zero_group(layout, zero, base)

    def zero_group(self, layout, zero: int, base) -> None:
        oom_from = None
        zero_reason = violation(self.model, replace(base, zero=zero), self.n)
        for mb in space.micro_batches(layout, self.gb):
            if oom_from is None and self._exceeds(space.lower_bound_plan(layout, zero, mb, base)):
                oom_from = mb  # activations only grow with the micro-batch: all larger OOM
            all_fit = oom_from is None and not self._exceeds(
                space.upper_bound_plan(layout, zero, mb, base))
            for head in space.variant_heads(self.model, layout, zero, mb, base):
                reason = self.verdict(head, zero_reason)
                if reason is None and oom_from is None:
                    self.keep(space.recompute_group(head), all_fit)
                else:
                    self.out.infeasible[reason or OUT_OF_MEMORY] += len(RECOMPUTE_MODES)

    def verdict(self, head, zero_reason: str | None) -> str | None:
        """validate_plan's reason for ``head``. Only the ZeRO check reads the ZeRO stage and it
        runs last, so a verdict is shared by every stage that passes it (cached per layout by
        validation key); a stage the ZeRO check rejects on this layout gets ``zero_reason``."""
        key = space.validation_key(head)
        if key not in self.verdicts:
            self.verdicts[key] = violation(self.model, space.with_zero(head, 0), self.n)
        reason = self.verdicts[key]
        return reason if reason is not None or zero_reason != ZERO_REASON else zero_reason

    def _exceeds(self, plan) -> bool:
        try:
            return memory_per_gpu(self.model, plan, self.cluster).total > self.capacity
        except PlanError:  # illegal (e.g. cp does not divide seq): the verdict counts it
            return False

    def keep(self, group, all_fit: bool) -> None:
        """Keep the plans of ``group`` (one per recompute mode: none, selective, full) that fit;
        timing waits for the best-first pass. Memory falls with more recomputation, so when
        ``none`` fits all do and when ``full`` does not none does; only the rest is priced
        (and everything when the ranking is by memory)."""
        mems: list = [None] * len(group)
        if self.need_memory or not all_fit:
            mems[0] = self._memory(group[0])
            if self.need_memory or mems[0] > self.capacity:
                mems[-1] = self._memory(group[-1])
                if self.need_memory or mems[-1] <= self.capacity:
                    mems[1:-1] = [self._memory(p) for p in group[1:-1]]
                else:
                    mems = [self.capacity + 1.0] * len(group)
        for plan, mem in zip(group, mems, strict=True):
            if mem is not None and mem > self.capacity:
                self.out.infeasible[OUT_OF_MEMORY] += 1
            else:
                self.found.append(Candidate(plan, None, self.cluster, memory=mem))

    def _memory(self, plan) -> float:
        return memory_per_gpu(self.model, plan, self.cluster).total

def search_train(model, clusters, global_batch: int, seq: int, *, objective="throughput",
                 top: int = 5, refine: str | None = None, progress: bool = False,
                 des_options: dict | None = None) -> TrainSearch:
    """Search every plan of ``model`` on each cluster of ``clusters`` (one per GPU count)."""
    from tqdm import tqdm

    clusters = list(clusters) if isinstance(clusters, (list, tuple)) else [clusters]
    _check_objective(objective, clusters)
    if top < 1:
        raise ConfigError(f"--top {top}: ask for at least 1 result")
    out, found = TrainSearch(objective), []
    jobs = [(c, lay) for c in clusters for lay in space.layouts(model, c.n_gpus)]
    walkers = {c: _Walker(model, c, global_batch, seq, out) for c in clusters}
    for cluster, lay in tqdm(jobs, desc="plans", unit="layout", disable=not progress,
                             leave=False):
        walkers[cluster].layout(lay)
    for w in walkers.values():
        found += w.found
    out.evaluated = len(found)
    out.ranked = best_first(model, found, objective, max(top, 2), out)
    if refine == "des":
        _refine_des(model, out, top, des_options or {})
    out.ranked = out.ranked[:top]
    return out


def best_first(model, found: list, objective: str, k: int, out: TrainSearch) -> list:
    """The k best of ``found`` by ``objective``, timing as few plans as possible.

    Every plan gets a lower bound of its ranking key (``sim.search.bounds``); plans are timed
    in bound order, and once the next bound exceeds the k-th best real key no later plan can
    enter the top k. Same answer as timing all of them (tests check by brute force)."""
    for cand in found:
        cand.key = bounds.bound_key(objective, model, cand)
    found.sort(key=lambda c: c.key)
    best: list = []  # max-heap of the k best real keys, as (negated order index, cand)
    for cand in found:
        if len(best) == k and cand.key > best_key(best):
            break
        cand.result = estimate_train(model, cand.plan, cand.cluster)
        cand.key = objective_key(objective, cand)
        out.priced += 1
        best = sorted(best + [cand], key=lambda c: c.key)[:k]
    return best


def best_key(best: list) -> tuple:
    return best[-1].key


def _refine_des(model, out: TrainSearch, top: int, options: dict) -> None:
    """Re-simulate the top plans with the DES and re-rank them by the simulated numbers."""
    from sim.des import simulate_train

    kept = []
    for cand in out.ranked[:max(top, 2)]:
        des = simulate_train(model, cand.plan, cand.cluster, **options)
        if not des.to_dict()["fits"]:
            out.infeasible[OUT_OF_MEMORY + "_des"] += 1
            continue
        kept.append(Candidate(cand.plan, des, cand.cluster))
    for cand in kept:
        cand.key = objective_key(out.objective, cand)
    out.ranked, out.refined = sorted(kept, key=lambda c: c.key), "des"
