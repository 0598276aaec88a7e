"""``simulate_train`` and its result: the DES answer in the analytic backend's JSON shape.

The result is built with the analytic backend's own ``TrainResult.build`` (same fields, same
bottleneck rule), fed with the simulated per-stage times, then extended with what only a
simulation knows: ``bubble_fraction`` measured on the timeline, ``peak_memory_per_gpu_bytes``
from the HBM containers, the out-of-memory event if any, MoE routing draws, and the engine's
own cost (events, wall seconds). ``frames()`` gives the pandas DataFrames (per op, per rank,
per step); ``trace`` writes Chrome/Perfetto JSON and ``timeline`` a Gantt + memory PNG.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import simpy

from sim.des import metrics
from sim.des.engine import Net, Recorder
from sim.des.schedules import build_schedule
from sim.des.train import (
    ROUTINGS,
    Barrier,
    Straggler,
    _Replica,
    mark_private_groups,
    stage_rank,
)
from sim.des.workload import Routing
from sim.errors import PlanError


@dataclass
class DesResult:
    analytic: object  # sim.costs.analytic_result.TrainResult (the oracle, same fields)
    fields: dict  # what the simulation measured, replacing the analytic values
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
        out = self.analytic.to_dict()
        out.update(self.fields)
        out["config"] = dict(out["config"], engine="des")
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


def simulate_train(model, plan, cluster, *, seed: int = 0, trace=None, timeline=None,
                   straggler: Straggler | None = None, progress: bool = False,
                   routing: str = "uniform", zipf_s: float = 1.0) -> DesResult:
    """Simulate one training step of ``model`` under ``plan`` on ``cluster`` (see
    docs/design-des.md). Same inputs and seed give the same timeline, byte for byte.

    ``trace``: write a Chrome/Perfetto JSON there; ``timeline``: a Gantt + HBM PNG;
    ``straggler``: one slow GPU or link; ``progress``: a tqdm bar of pipeline tasks on
    stderr; ``routing``: MoE token routing, "uniform" (sampled), "zipf" (Zipf(``zipf_s``)
    shares, sampled) or "balanced" (exact even split), drawn from ``seed``."""
    from sim.plan_validation import resolve_plan, stage_layers, validate_plan

    if routing not in ROUTINGS:
        raise PlanError(f"unknown routing '{routing}'; use {', '.join(ROUTINGS)}")
    from sim.costs.analytic import estimate_train

    wall = time.perf_counter()
    plan = resolve_plan(plan, cluster.n_gpus)
    validate_plan(model, plan, cluster.n_gpus)
    analytic = estimate_train(model, plan, cluster)  # the oracle; also its result shape
    v = plan.virtual_stages if plan.schedule == "interleaved" else 1
    sizes = stage_layers(model.n_layers, plan.pp * v)
    chunks = [list(range(sum(sizes[:i]), sum(sizes[:i + 1]))) for i in range(len(sizes))]
    schedule = build_schedule(plan.schedule, plan.pp, plan.n_microbatches, v)
    env, rec = simpy.Environment(), Recorder()
    replicas = _replicas(env, rec, model, plan, cluster, chunks, schedule, seed, straggler,
                         routing, zipf_s, analytic)
    from tqdm import tqdm

    total = sum(len(t) for t in schedule) * len(replicas)
    with tqdm(total=total, desc="simulating", unit="task", disable=not progress,
              file=sys.stderr) as bar:
        for r in replicas:
            r.pipe.on_task = bar.update
            r.start()
        env.run()
    out = _result(analytic, replicas, rec)
    first = replicas[0]
    out.stage_ranks = [g.rank for g in first.gpus]
    out.activations_per_mb = [sum(first.work.activation_bytes(vs) for vs in
                                  range(s, first.work.n_virtual, plan.pp)) for s in range(plan.pp)]
    out.kind_peaks = {g.rank: dict(g.hbm.by_kind_peak) for r in replicas for g in r.gpus}
    out.events = next(env._eid)  # SimPy numbers every scheduled event
    out.fields["simulated_events"] = out.events
    out.wall_s = time.perf_counter() - wall  # not in to_dict: outputs must be byte-stable
    _write_outputs(out, trace, timeline, cluster.accelerator.memory_bytes)
    return out


def _replicas(env, rec, model, plan, cluster, chunks, schedule, seed, straggler, routing,
              zipf_s, analytic):
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
        out.append(_Replica(env, net, rec, model, plan, cluster, chunks, schedule, replica=d,
                            routing=rt, slow_stage=slow_stage if is_slow else None,
                            factor=factor, barrier=barrier, analytic=analytic))
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


def _result(analytic, replicas, rec) -> DesResult:
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
    fields = _des_train_result(analytic, step, breakdown, ops, gpus, replicas, mine)
    return DesResult(analytic, fields, rec, ranks, {g.rank: g.hbm.samples for g in gpus})


def _des_train_result(a, step, breakdown, ops, gpus, replicas, mine) -> dict:
    """The fields of the analytic result that the simulation replaces. Throughput figures
    (tokens/s, TFLOP/s, MFU, HFU) are all proportional to 1/step, so they are the analytic
    ones rescaled by the ratio of step times."""
    from sim.costs.analytic_result import _bottleneck

    ratio = a.step_time_s / step
    peak_gpu = max(gpus, key=lambda g: g.hbm.peak)
    oom = next((g.hbm.oom for g in gpus if g.hbm.oom is not None), None)
    # The breakdown of one GPU (the peak one) at its peak moment: parts from one rank at one
    # time, so they sum to the peak and "other" (buffers, gathered ZeRO-3 weights) is >= 0.
    at = peak_gpu.hbm.at_peak
    mem = {k: float(at.get(k, 0.0)) for k in a.memory_breakdown_bytes if k != "other"}
    mem["other"] = peak_gpu.hbm.peak - sum(mem.values())
    fits = oom is None
    out = {"step_time_s": step, "tokens_per_s": a.tokens_per_s * ratio,
           "tflops_per_gpu": a.tflops_per_gpu * ratio, "mfu": a.mfu * ratio,
           "hfu": a.hfu * ratio, "memory_per_gpu_bytes": peak_gpu.hbm.peak,
           "memory_breakdown_bytes": mem, "fits": fits, "time_breakdown_s": breakdown,
           "bottleneck": _bottleneck(breakdown, fits)}
    out.update(_des_extras(ops, peak_gpu, oom, replicas))
    by = {s: metrics.exposed(mine, s) for s in ("tp", "cp", "ep", "dp", "pp")}
    by["tp_ep_cp"] = by["tp"] + by["ep"] + by["cp"]  # the analytic result's grouping
    out["communication_exposed_by_group_s"] = by
    out["stage_times_s"] = [max(r.end[i] for r in replicas)
                            for i in range(len(replicas[0].end))]
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


def _write_outputs(out: DesResult, trace, timeline, capacity: float) -> None:
    if trace:
        from sim.des.trace import write_chrome_trace

        write_chrome_trace(out.ops, out.memory, trace)
    if timeline:
        from sim.plots.timeline import plot_timeline

        plot_timeline(out.ops, out.memory, timeline, capacity=capacity)
