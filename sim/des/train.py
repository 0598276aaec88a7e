"""``simulate_train``: one training step as a discrete-event simulation.

Symmetry keeps it small: every data-parallel replica runs the same pipeline and every
tensor/context-parallel rank of a stage does the same work, so the engine simulates one
replica's pipeline with one representative GPU per stage (rank tp=0, cp=0, dp=0 of each stage
in Megatron's layout). Collectives over groups it does not simulate (TP, CP, EP, DP) run as
their algorithm's steps from the representative, priced with the bandwidth a ring gets when
every symmetric group runs at once (``Cluster.ring_bandwidth``). A straggler breaks the
symmetry, so the straggler's replica is simulated too and every gradient bucket waits for both
replicas (a synchronous collective waits for its slowest member): the whole DP group slows.

A step on each stage: pipeline tasks (``PipelineRun``), then the outstanding gradient
collectives (``DataParallel``), then the optimizer update on the compute stream (the cost
model's memory-bound Adam time). The step time is when the last stage finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from sim.des.dataparallel import Buffer, DataParallel
from sim.des.engine import Gpu
from sim.des.pipeline import PipelineRun
from sim.des.workload import TrainWork
from sim.errors import PlanError

ROUTINGS = ("uniform", "zipf", "balanced")


@dataclass(frozen=True)
class Straggler:
    """One slow GPU (its compute takes ``factor`` x longer) or one slow link (its bandwidth
    is divided by ``factor``): the first link of ``rank``'s path to its data-parallel peer."""

    rank: int = 0
    factor: float = 2.0
    kind: str = "gpu"  # "gpu" | "link"

    def __post_init__(self):
        if self.factor < 1 or self.kind not in ("gpu", "link"):
            raise PlanError(f"straggler needs kind gpu|link and factor >= 1 (got {self.kind}, "
                            f"{self.factor}); e.g. --straggler-gpu 5 --straggler-factor 1.5")


class Barrier:
    """Events that fire when ``n`` simulated replicas have arrived at the same key."""

    def __init__(self, env, n: int):
        self.env, self.n, self._count, self._events = env, n, {}, {}

    def arrive(self, key) -> simpy.Event:
        ev = self._events.setdefault(key, self.env.event())
        self._count[key] = self._count.get(key, 0) + 1
        if self._count[key] == self.n:
            ev.succeed()
        return ev


def stage_rank(plan, stage: int, replica: int = 0) -> int:
    # Megatron layout rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i)) (sim.costs.comm)
    return plan.tp * plan.cp * (replica + plan.dp * stage)


def _shift(plan, group: str, stage: int, replica: int) -> int:
    """Offset from group index 0 to the group holding the (stage, replica) representative."""
    unit, d = plan.tp * plan.cp, replica
    stage_off = unit * plan.dp * stage
    return {"tp": stage_off + unit * d, "cp": stage_off + unit * d, "dp": stage_off,
            "dp_cp": stage_off, "ep": stage_off + (d // plan.ep) * plan.ep * unit,
            "edp": stage_off + (d % plan.ep) * unit, "pp": unit * d}.get(group, 0)


def make_group_of(plan, replica: int):
    """(group, stage) -> that group's ranks with the stage representative first."""
    from sim.costs.comm import group_ranks

    cache: dict = {}

    def group_of(group: str, stage: int) -> tuple:
        key = (group, stage)
        if key not in cache:
            rep = stage_rank(plan, stage, replica)
            ranks = [r + _shift(plan, group, stage, replica) for r in group_ranks(plan, group)]
            i = ranks.index(rep) if rep in ranks else 0
            cache[key] = tuple(ranks[i:] + ranks[:i])
        return cache[key]

    return group_of


class Replica:
    """One simulated data-parallel replica: its GPUs, pipeline and DP engine."""

    def __init__(self, env, net, rec, model, plan, cluster, chunks, schedule, *, replica,
                 routing, slow_stage=None, factor=1.0, barrier=None):
        p, hbm = plan.pp, cluster.accelerator.memory_bytes
        self.gpus = [Gpu(env, stage_rank(plan, s, replica), s, hbm,
                         factor if s == slow_stage else 1.0) for s in range(p)]
        for s, gpu in enumerate(self.gpus):
            for kind, nbytes in _static_memory(model, plan, s).items():
                gpu.hbm.alloc(nbytes, kind, kind)
        group_of = make_group_of(plan, replica)
        self.group_of = group_of
        from sim.schedules import get_schedule

        zb = get_schedule(plan.schedule).splits_weight_grad
        self.work = TrainWork(model, plan, cluster, chunks, routing=routing, zb=zb,
                              group_of=group_of, net=net)
        buffers = [_buffers(model, plan, chunks, s, group_of) for s in range(p)]
        self.dp = DataParallel(env, net, self.gpus, rec, plan, buffers,
                               grads_in=self.work.grads_in, barrier=barrier)
        self.pipe = PipelineRun(env, net, self.gpus, self.work, schedule, rec,
                                overlap=plan.overlap, dp=self.dp, stack=plan.stack)
        self.env, self.rec = env, rec
        self.t_opt = _optimizer_times(model, plan, cluster)
        self.end = [None] * p

    def start(self) -> None:
        self.pipe.start()
        for s in range(len(self.gpus)):
            self.env.process(self._tail(s))

    def _tail(self, s: int):
        gpu = self.gpus[s]
        yield self.pipe.done[s]
        yield from self.dp.finish(s)
        with gpu.compute.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(self.t_opt[s] * gpu.slowdown)
            self.rec.add(gpu.rank, "compute", "optimizer", "optimizer step", start,
                         self.env.now, pass_="optimizer")
        self.end[s] = self.env.now


def _static_memory(model, plan, stage: int) -> dict:
    """Weights, gradients, optimizer state and runtime/logit reserve of a stage, from the
    cost model. ZeRO-3's gathered weights are simulated, so its allowance for them is left
    out (``other`` priced as for ZeRO-0)."""
    from dataclasses import replace

    from sim.costs import memory

    mem = memory.memory_at_stage(model, plan, stage)
    other = memory.memory_at_stage(model, replace(plan, zero=0), stage).other
    return {"weights": mem.weights, "gradients": mem.gradients, "optimizer": mem.optimizer,
            "other": other}


def _buffers(model, plan, chunks, stage, group_of) -> list[Buffer]:
    """Dense and expert gradient buffers of a stage, parts in forward order; parameters per
    rank as ``sim.costs.layout`` counts them."""
    from sim.costs.layout import end_params, layer_params
    from sim.model.params import count_params

    counts, gb, p = count_params(model), plan.optimizer.grad_bytes, plan.pp
    emb, head = end_params(counts, p, plan.tp)
    parts, dense, expert = [], [], []
    for vs in range(stage, len(chunks), p):
        if vs == 0:
            parts.append(-1), dense.append(emb * gb), expert.append(0.0)
        for i in chunks[vs]:
            d, e = layer_params(counts, i, plan.tp, plan.ep)
            parts.append(i), dense.append(d * gb), expert.append(e * gb)
        if vs == len(chunks) - 1:
            parts.append(model.n_layers), dense.append(head * gb), expert.append(0.0)
    out = [Buffer("dense", group_of("dp_cp", stage), tuple(parts), tuple(dense))]
    if sum(expert) > 0:
        out.append(Buffer("expert", group_of("edp", stage), tuple(parts), tuple(expert)))
    return out


def _optimizer_times(model, plan, cluster) -> list[float]:
    """The optimizer update of each stage: the cost model's memory-bound Adam over the
    stage's parameters (``StageLayout``), run on the compute stream after the sync, plus a
    stack's per-iteration framework overhead (the analytic backend counts it there too)."""
    from sim.costs.analytic import optimizer_step_time
    from sim.costs.layout import StageLayout

    extra = plan.stack.iteration_overhead_s if plan.stack is not None else 0.0  # as analytic
    return [optimizer_step_time(plan, cluster, st.params) + extra
            for st in StageLayout.of(model, plan).stages]


CRITICAL = ("tp", "cp", "ep")  # run one after another by the stage process itself
ASYNC = ("dp_cp", "edp", "pp")  # run on side streams, concurrently with anything


def mark_private_groups(net, plan, replicas) -> None:
    """Tell each replica's workload which critical-path groups cross only links that no other
    simulated traffic can use: their collectives are then uncontended by construction, and
    are priced by the network's ideal time inside fused segments (exact, far fewer events)."""
    links: dict = {}
    for i, rep in enumerate(replicas):
        for s in range(plan.pp):
            for g in CRITICAL + ASYNC:
                ranks = rep.group_of(g, s)
                links[(i, g, s)] = {k for peer in _peers(ranks, g, net.cluster.node_of)
                                    for k in net.path(ranks[0], peer)}
    slow = net.fabric.slow_links
    for i, rep in enumerate(replicas):
        private = set()
        for s in range(plan.pp):
            for g in CRITICAL:
                mine = links[(i, g, s)]
                others = [v for k, v in links.items()
                          if k[0] != i or k[2] != s or k[1] in ASYNC]
                if not mine & slow and not any(mine & v for v in others):
                    private.add((g, s))
        rep.work.private = lambda g, s, _p=frozenset(private): (g, s) in _p


def _peers(ranks: tuple, group: str, node_of) -> set:
    """Every rank the representative sends to under any algorithm (sim.des.collectives):
    the ring neighbour, the tree partners 2^k away, the next node's leader (hierarchical),
    and everyone for all-to-all groups."""
    if len(ranks) < 2:
        return set()
    if group in ("ep", "cp"):
        return set(ranks[1:])
    out = {ranks[min(1 << k, len(ranks) - 1)] for k in range(len(ranks).bit_length())}
    here = node_of(ranks[0])
    local = [r for r in ranks if node_of(r) == here]
    out |= {local[1]} if len(local) > 1 else set()
    out |= {next((r for r in ranks if node_of(r) != here), ranks[1])}
    return out
