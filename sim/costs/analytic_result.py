"""``TrainResult``: the answer of a training estimate, and its JSON document.

``to_dict()`` is exactly the ``clustersim train --json`` contract (field names from issue 3)
followed by extras: communication per group, per-stage times, the bubble fraction, and
``stages`` (issue 11: one record per pipeline stage, ``STAGE_FIELDS``, from the one
``StageLayout``). Numbers are SI (seconds, bytes, FLOPs); ``tflops_per_gpu`` is model FLOP/s
per GPU / 1e12. ``throughput``, ``bottleneck`` and ``train_config`` are shared with the DES,
which builds the same document from its own simulated step.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.bands import train_band

BOTTLENECKS = ("compute", "communication", "bubble", "memory")
STAGE_FIELDS = ("stage", "layers", "params", "weights_bytes", "memory_bytes", "compute_s")


@dataclass(frozen=True)
class TrainResult:
    step_time_s: float
    tokens_per_s: float
    model_flops_per_step: float
    hardware_flops_per_step: float
    tflops_per_gpu: float
    mfu: float
    hfu: float
    memory_per_gpu_bytes: float
    memory_breakdown_bytes: dict
    fits: bool
    time_breakdown_s: dict
    bottleneck: str
    inputs: tuple = ()  # (model, plan, cluster, version): config is built from them on demand
    internals: tuple = ()  # what the extras are built from, on demand (keeps sweeps fast)

    @property
    def extras(self) -> dict:
        """Useful non-contract fields: communication by group, per-stage times, bubble."""
        return _extras(*self.internals) if self.internals else {}

    @property
    def config(self) -> dict:
        """The full effective configuration (model, plan, system, GPUs, engine, version)."""
        return train_config(*self.inputs)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "step_time_s", "tokens_per_s", "model_flops_per_step", "hardware_flops_per_step",
            "tflops_per_gpu", "mfu", "hfu", "memory_per_gpu_bytes", "memory_breakdown_bytes",
            "fits", "time_breakdown_s", "bottleneck")}
        out["config"] = self.config
        out["memory_breakdown_bytes"] = dict(self.memory_breakdown_bytes)
        out["time_breakdown_s"] = dict(self.time_breakdown_s)
        out.update(self.extras)
        if self.internals:
            out["stages"] = _stage_records(self.inputs[0], *self.internals[:2])
        out.update(train_band(out))
        return out

    @classmethod
    def build(cls, model, plan, cluster, per_stage, slow, stage_costs, model_flops,
              hw_flops, memory, p2p, version) -> TrainResult:
        s = per_stage[slow]
        breakdown = {"compute": s["compute"], "communication_exposed": s["comm"] + p2p.exposed,
                     "pipeline_bubble": s["bubble"]}
        step = sum(breakdown.values())
        mem = memory.to_dict()
        fits = memory.total <= cluster.accelerator.memory_bytes
        return cls(
            step_time_s=step, **throughput(plan, cluster, model_flops, hw_flops, step),
            memory_per_gpu_bytes=memory.total,
            memory_breakdown_bytes={k: mem[k] for k in
                                    ("weights", "gradients", "optimizer", "activations", "other")},
            fits=fits, time_breakdown_s=breakdown,
            bottleneck=bottleneck(breakdown, fits),
            inputs=(model, plan, cluster, version),
            internals=(plan, per_stage, slow, stage_costs, p2p, cluster, memory),
        )


def throughput(plan, cluster, model_flops: float, hw_flops: float, step: float) -> dict:
    """Tokens/s, TFLOP/s per GPU, MFU and HFU of a step (MFU/HFU: Chowdhery et al. 2022,
    PaLM, App. B), plus the two FLOP counts, for a step of ``step`` seconds."""
    n, peak = cluster.n_gpus, cluster.accelerator.peak(plan.dtype)
    return {"tokens_per_s": plan.global_batch * plan.seq_len / step,
            "model_flops_per_step": model_flops, "hardware_flops_per_step": hw_flops,
            "tflops_per_gpu": model_flops / step / n / 1e12,
            "mfu": model_flops / (step * n * peak), "hfu": hw_flops / (step * n * peak)}


def bottleneck(breakdown: dict, fits: bool) -> str:
    """The named bottleneck of a time breakdown: memory when it does not fit, else the
    largest part."""
    if not fits:
        return "memory"
    names = {"compute": "compute", "communication_exposed": "communication",
             "pipeline_bubble": "bubble"}
    return names[max(breakdown, key=breakdown.get)]


def train_config(model, plan, cluster, version, engine: str = "analytic") -> dict:
    """The effective configuration a training result records (reproducible from it alone)."""
    out = {"model": model.to_dict(), "plan": plan.to_dict(), "system": cluster.system.name,
           "n_gpus": cluster.n_gpus, "engine": engine, "version": version,
           "overlap": plan.overlap}
    if plan.stack is not None:
        out["stack"] = {"name": plan.stack.name, **plan.stack.knobs()}
    return out


def _stage_records(model, plan, per_stage) -> list[dict]:
    from sim.costs.layout import StageLayout
    from sim.costs.memory import memory_at_stage

    out = []
    for st in StageLayout.of(model, plan).stages:
        mem = memory_at_stage(model, plan, st.stage)
        out.append(stage_record(st, mem.weights, mem.total, per_stage[st.stage]["compute"]))
    return out


def stage_record(st, weights_bytes: float, memory_bytes: float, compute_s: float) -> dict:
    """One ``stages`` record: ``st`` is the stage's ``StageSlice`` (layers, params per rank
    before ZeRO); the bytes and seconds come from the engine that produced the result."""
    return dict(zip(STAGE_FIELDS, (st.stage, st.n_layers, st.params, weights_bytes,
                                   memory_bytes, compute_s), strict=True))


def _extras(plan, per_stage, slow, stage_costs, p2p, cluster, memory) -> dict:
    s, cost = per_stage[slow], stage_costs[slow]
    m = plan.n_microbatches
    issued = {g: m * t for g, t in sorted(cost.comm.items())}
    issued["dp"] = s["dp"].total
    issued["pp"] = p2p.total
    useful = m * cost.compute
    return {
        "n_microbatches": m,
        "bubble_fraction": s["bubble"] / useful if useful else 0.0,
        "slowest_stage": slow,
        "stage_times_s": [st["total"] for st in per_stage],
        "communication_by_group_s": issued,
        "communication_exposed_by_group_s": {
            "tp_ep_cp": m * cost.comm_exposed(plan.overlap, plan.stack), "dp": s["dp"].exposed,
            "pp": p2p.exposed},
        "optimizer_step_s": s["optimizer"],
        "memory_capacity_bytes": cluster.accelerator.memory_bytes,
        "memory_per_gpu_gib": memory.total / 2**30,
    }
