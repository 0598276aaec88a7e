"""``simulate_train`` and its result: the DES answer in the analytic backend's JSON shape.

The DES computes its own step: the step time is when the last simulated stage finishes its
schedule's tasks, gradient sync and optimizer update; the throughput figures (tokens/s,
TFLOP/s, MFU, HFU, via ``sim.costs.analytic_result.throughput``) follow from that step and the
step's FLOPs; memory is what the simulated HBM containers peaked at, split by allocation kind;
``bubble_fraction`` is measured on the timeline; ``stages`` has one record per simulated
stage. Everything is priced by the same cost functions and ``CostContext`` as the analytic
backend, which the result quotes only as ``analytic_step_time_s`` for comparison.
``frames()`` gives the pandas DataFrames (per op, per rank, per step); ``ops`` and
``memory`` are what ``sim.des.trace`` and ``sim.plots.timeline`` turn into a Perfetto trace
and a Gantt chart (the CLI writes them: an engine returns records, never files).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import simpy
from simpy.core import NORMAL

from sim import __version__
from sim.costs.analytic import train_flops, with_stack
from sim.costs.analytic_result import bottleneck, stage_record, throughput, train_config
from sim.des import metrics
from sim.des.engine import Net, Recorder
from sim.des.train import ROUTINGS, Barrier, Replica, Straggler, mark_private_groups, stage_rank
from sim.des.workload import Routing
from sim.errors import PlanError
from sim.schedules import get_schedule


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it schedules (``simulated_events``)."""

    def __init__(self):
        super().__init__()
        self.scheduled = 0

    def schedule(self, event, priority=NORMAL, delay=0) -> None:
        self.scheduled += 1
        super().schedule(event, priority, delay)


@dataclass
class DesResult:
    analytic: object  # sim.costs.analytic_result.TrainResult, quoted for comparison only
    fields: dict  # the simulated step: every field of the train --json document
    recorder: object
    ranks: pd.DataFrame
    memory: dict = field(default_factory=dict)  # rank -> [(t, bytes, what)]
    events: int = 0
    wall_s: float = 0.0
    stage_ranks: list = field(default_factory=list)  # replica 0's representative per stage
    activations_per_mb: list = field(default_factory=list)  # bytes per microbatch per stage
    kind_peaks: dict = field(default_factory=dict)  # rank -> {kind: peak bytes}
    _ops: pd.DataFrame | None = None

    def activation_bytes_per_microbatch(self, stage: int = 0) -> float:
        return self.activations_per_mb[stage]

    def peak_by_kind(self, stage: int = 0) -> dict:
        """Peak HBM bytes per allocation kind on ``stage``'s simulated GPU (replica 0)."""
        return dict(self.kind_peaks[self.stage_ranks[stage]])

    def to_dict(self) -> dict:
        out = dict(self.fields)
        out["analytic_step_time_s"] = self.analytic.step_time_s
        from sim.bands import train_band

        out.update(train_band(out))  # the band around the DES's own step time
        return out

    @property
    def ops(self) -> pd.DataFrame:
        """Per-op records (rank, stream, kind, name, start, end, bytes, flops, mb, pass)."""
        if self._ops is None:
            self._ops = metrics.ops_frame(self.recorder)
        return self._ops

    @property
    def step_time_s(self) -> float:
        return self.fields["step_time_s"]

    def frames(self) -> dict[str, pd.DataFrame]:
        step = pd.DataFrame([{k: v for k, v in self.to_dict().items()
                              if isinstance(v, (int, float, bool))}])
        return {"ops": self.ops, "ranks": self.ranks, "steps": step}


def simulate_train(model, plan, cluster, *, seed: int = 0,
                   straggler: Straggler | None = None, progress: bool = False,
                   routing: str = "uniform", zipf_s: float = 1.0) -> DesResult:
    """Simulate one training step of ``model`` under ``plan`` on ``cluster`` (see
    docs/design-des.md). Same inputs and seed give the same timeline, byte for byte.

    ``straggler``: one slow GPU or link; ``progress``: a tqdm bar of pipeline tasks on
    stderr; ``routing``: MoE token routing, "uniform" (sampled), "zipf" (Zipf(``zipf_s``)
    shares, sampled) or "balanced" (exact even split), drawn from ``seed``."""
    from sim.costs.layout import StageLayout
    from sim.plan_validation import resolve_plan, validate_plan

    if routing not in ROUTINGS:
        raise PlanError(f"unknown routing '{routing}'; use {', '.join(ROUTINGS)}")
    from sim.costs.analytic import estimate_train

    wall = time.perf_counter()
    plan = with_stack(resolve_plan(plan, cluster.n_gpus))
    validate_plan(model, plan, cluster.n_gpus)
    layout = StageLayout.of(model, plan)
    chunks = [list(c.layers) for c in layout.chunks]
    schedule = get_schedule(plan.schedule).tasks(plan.pp, plan.n_microbatches, layout.virtual)
    env, rec = CountingEnvironment(), Recorder()
    replicas = _replicas(env, rec, model, plan, cluster, chunks, schedule, seed, straggler,
                         routing, zipf_s)
    from tqdm import tqdm

    total = sum(len(t) for t in schedule) * len(replicas)
    with tqdm(total=total, desc="simulating", unit="task", disable=not progress,
              file=sys.stderr) as bar:
        for r in replicas:
            r.pipe.on_task = bar.update
            r.start()
        env.run()
    out = _result(model, plan, cluster, layout, replicas, rec)
    out.analytic = estimate_train(model, plan, cluster)  # for analytic_step_time_s only
    first = replicas[0]
    out.stage_ranks = [g.rank for g in first.gpus]
    out.activations_per_mb = [sum(first.work.activation_bytes(vs) for vs in
                                  range(s, first.work.n_virtual, plan.pp)) for s in range(plan.pp)]
    out.kind_peaks = {g.rank: dict(g.hbm.by_kind_peak) for r in replicas for g in r.gpus}
    out.events = env.scheduled
    out.fields["simulated_events"] = out.events
    out.wall_s = time.perf_counter() - wall  # not in to_dict: outputs must be byte-stable
    return out


def _replicas(env, rec, model, plan, cluster, chunks, schedule, seed, straggler, routing,
              zipf_s):
    slow_links, slow_stage, factor, which = {}, None, 1.0, [0]
    if straggler is not None and not 0 <= straggler.rank < plan.world_size:
        raise PlanError(f"straggler rank {straggler.rank} is outside 0..{plan.world_size - 1}; "
                        "pick a GPU of this plan")
    if straggler is not None:
        d = (straggler.rank // (plan.tp * plan.cp)) % plan.dp
        stage = straggler.rank // (plan.tp * plan.cp * plan.dp)
        slow_replica = d if d != 0 else (1 if plan.dp > 1 else 0)
        which = sorted({0, slow_replica})
        if straggler.kind == "gpu":
            slow_stage, factor = stage, straggler.factor
    net = Net(env, cluster, slow_links, choose_algorithm=_chooser(cluster),
              block=plan.tp * plan.cp * plan.dp)
    barrier = Barrier(env, len(which)) if len(which) > 1 else None
    out = []
    for d in which:
        is_slow = straggler is not None and d == which[-1]
        if is_slow and straggler.kind == "link":
            _slow_link(net, plan, straggler, d)
        rt = Routing(model, plan, seed, routing, zipf_s) if model.moe else None
        out.append(Replica(env, net, rec, model, plan, cluster, chunks, schedule, replica=d,
                           routing=rt, slow_stage=slow_stage if is_slow else None,
                           factor=factor, barrier=barrier))
    mark_private_groups(net, plan, out)
    return out


def _slow_link(net, plan, straggler, replica) -> None:
    """Map the slow link onto the representative's first hop towards its DP peer (or, with
    dp=1, its next pipeline stage, or its TP neighbour)."""
    stage = straggler.rank // (plan.tp * plan.cp * plan.dp)
    rep = stage_rank(plan, stage, replica)
    if plan.dp > 1:
        peer = stage_rank(plan, stage, (replica + 1) % plan.dp)
    elif plan.pp > 1:
        peer = stage_rank(plan, (stage + 1) % plan.pp, replica)
    elif plan.tp * plan.cp > 1:
        peer = rep + 1
    else:
        raise PlanError("a slow link needs a plan with more than one GPU")
    links = net.path(rep, peer)
    if links:
        net.fabric.slow_down(links[0], straggler.factor)


def _chooser(cluster):
    """Pick the algorithm the analytic model would (its fastest), so both agree."""
    from sim.costs.comm import collective_time

    def choose(kind, nbytes, ranks):
        options = ("ring", "tree", "hierarchical", "nvls")
        times = [collective_time(kind, nbytes, ranks, cluster, a) for a in options]
        return options[times.index(min(times))]

    return choose


def _result(model, plan, cluster, layout, replicas, rec) -> DesResult:
    ops = metrics.intervals_frame(rec)
    step = max(e for r in replicas for e in r.end)
    gpus = [g for r in replicas for g in r.gpus]
    ranks = metrics.per_rank(ops, step, {g.rank: g.hbm.peak for g in gpus},
                             [[g.rank for g in r.gpus] for r in replicas])
    slow = replicas[-1]  # the straggler's replica when there is one
    rows = ranks.set_index("rank").loc[[g.rank for g in slow.gpus]]
    worst = rows.compute_s.idxmax()
    mine = ops.select(ops.rank == worst)
    breakdown = {"compute": rows.compute_s[worst], "communication_exposed":
                 rows.comm_exposed_s[worst],
                 "pipeline_bubble": rows.bubble_s[worst] + rows.idle_s[worst]}
    fields = _train_fields(model, plan, cluster, step, breakdown, gpus)
    fields.update(_step_extras(plan, cluster, replicas, slow, rows, worst, mine))
    fields["stages"] = _stage_records(layout, slow, rows)
    fields.update(_des_extras(ops, max(gpus, key=lambda g: g.hbm.peak),
                              next((g.hbm.oom for g in gpus if g.hbm.oom is not None), None),
                              replicas))
    return DesResult(None, fields, rec, ranks, {g.rank: g.hbm.samples for g in gpus})


def _train_fields(model, plan, cluster, step, breakdown, gpus) -> dict:
    """The contract fields of ``clustersim train --json``, from the simulated step."""
    peak_gpu = max(gpus, key=lambda g: g.hbm.peak)
    fits = all(g.hbm.oom is None for g in gpus)
    mf, hf = train_flops(model, plan, cluster)
    out = {"step_time_s": step, **throughput(plan, cluster, mf, hf, step),
           "memory_per_gpu_bytes": peak_gpu.hbm.peak,
           "memory_breakdown_bytes": _memory_breakdown(peak_gpu), "fits": fits,
           "time_breakdown_s": breakdown, "bottleneck": bottleneck(breakdown, fits),
           "config": train_config(model, plan, cluster, __version__, engine="des")}
    return out


def _memory_breakdown(gpu) -> dict:
    """The peak GPU's HBM by allocation kind at the moment of its peak (one rank at one time,
    so the parts sum to the peak and ``other``, buffers and gathered ZeRO-3 weights, is >= 0)."""
    at = gpu.hbm.at_peak
    out = {k: float(at.get(k, 0.0)) for k in ("weights", "gradients", "optimizer",
                                              "activations")}
    out["other"] = gpu.hbm.peak - sum(out.values())
    return out


def _step_extras(plan, cluster, replicas, slow, rows, worst, mine) -> dict:
    """The analytic document's extras, measured on the simulated timeline."""
    by = {s: metrics.exposed(mine, s) for s in ("tp", "cp", "ep", "dp", "pp")}
    by["tp_ep_cp"] = by["tp"] + by["ep"] + by["cp"]  # the analytic result's grouping
    peak = max(g.hbm.peak for r in replicas for g in r.gpus)
    return {"n_microbatches": plan.n_microbatches,
            "slowest_stage": [g.rank for g in slow.gpus].index(worst),
            "stage_times_s": [max(r.end[i] for r in replicas) for i in range(plan.pp)],
            "communication_by_group_s": {s: metrics.issued(mine, s)
                                         for s in ("tp", "cp", "ep", "dp", "pp")},
            "communication_exposed_by_group_s": by,
            "optimizer_step_s": slow.t_opt[[g.rank for g in slow.gpus].index(worst)],
            "memory_capacity_bytes": cluster.accelerator.memory_bytes,
            "memory_per_gpu_gib": peak / 2**30}


def _stage_records(layout, replica, rows) -> list[dict]:
    """One record per simulated stage (``STAGE_FIELDS``): layers and parameters from the
    layout the DES ran, bytes and compute seconds from that stage's simulated GPU."""
    out = []
    for st, gpu in zip(layout.stages, replica.gpus, strict=True):
        out.append(stage_record(st, float(gpu.hbm.by_kind_peak.get("weights", 0.0)),
                                gpu.hbm.peak, float(rows.compute_s[gpu.rank])))
    return out


def _des_extras(ops, peak_gpu, oom, replicas) -> dict:
    draws = [d for r in replicas if r.work.routing for d in r.work.routing.draws]
    out = {"bubble_fraction": metrics.bubble_fraction(ops),
           "peak_memory_per_gpu_bytes": peak_gpu.hbm.peak,
           "peak_memory_rank": peak_gpu.rank,
           "out_of_memory": oom.to_dict() if oom else None,
           "simulated_ranks": sorted(g.rank for r in replicas for g in r.gpus)}
    if draws:
        rt = next(r.work.routing for r in replicas if r.work.routing)
        out["moe_routing"] = {
            "routing": rt.kind, "zipf_s": rt.zipf_s if rt.kind == "zipf" else None,
            "seed": rt.seed, "draws": len(draws),
            "mean_imbalance": sum(d[2] for d in draws) / len(draws),
            "max_imbalance": max(d[2] for d in draws),
            "mean_dropped_fraction": sum(d[3] for d in draws) / len(draws)}
    return out
