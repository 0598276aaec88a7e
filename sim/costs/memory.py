"""Memory per GPU in training: weights, gradients, optimizer state, activations, other.

Model state (Rajbhandari et al. 2020, ZeRO, Sec. 3.1 and 5): mixed-precision Adam keeps
``weight_bytes`` (2, bf16) + ``grad_bytes`` (2) + ``master_bytes + moment_bytes`` (4 + 8, fp32
master copy and two moments) = 16 bytes per parameter (``ParallelPlan.optimizer``). A GPU
holds its pipeline stage's layers (``n_layers/pp``; the first ``n_layers % pp`` stages take
one extra layer), cut by tensor parallelism (attention, dense and shared-expert FFNs,
embedding and LM head split over tp; norms and routers replicated) and expert parallelism
(routed experts split over ep x tp). ZeRO then shards over the data-parallel replicas of each
tensor — dense state over dp*cp ranks, expert state over the dp*cp/ep expert-data-parallel
ranks: stage 1 the optimizer state, stage 2 also the gradients, stage 3 also the weights
(stage 3 then keeps two layers' gathered weights in flight, counted in ``other``).
So per parameter: stage 0 = 16 B, 1 = 4 + 12/N, 2 = 2 + 14/N, 3 = 16/N.

Activations: ``activation_bytes_per_layer`` (``sim.costs.activations``; Korthikanti et al.
2022 or our reference implementation) x the stage's layers x the micro-batches alive at once,
which depends on the schedule (``live_microbatches``): GPipe keeps all m (Huang et al. 2019),
1F1B at most ``p - stage`` (Narayanan et al. 2021, Sec. 2.2.1), interleaved 1F1B
``(2(p - stage - 1) + (v-1)p + 1)/v`` stage-equivalents (Megatron-LM's warm-up count; at stage 0
``p(1 + (p-1)/(pv))`` as Korthikanti et al. 2022, Sec. 4.2.3 state), ZB-H1 the same as 1F1B
(Qi et al. 2023, Sec. 3.1). ``other``: the last stage's fp32 logits for the loss,
``4 s b V / t`` (Korthikanti et al. 2022, Sec. 4.3), ZeRO-3 prefetch buffers and a fixed
runtime reserve (CUDA context, cuBLAS/NCCL workspaces, allocator slack).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sim.costs._ids import ident, obj
from sim.costs.activations import activation_bytes_of_layers, activation_bytes_per_layer
from sim.costs.kvcache import kv_cache_bytes, kv_cache_bytes_per_token
from sim.errors import ConfigError, PlanError
from sim.model.config import ModelConfig
from sim.model.params import count_params
from sim.plan import ParallelPlan

# estimate: CUDA context (~0.5 GiB on Hopper) + cuBLAS/NCCL workspaces + allocator slack
RUNTIME_RESERVE_BYTES = 2 * 1024**3

__all__ = ["MemoryBreakdown", "activation_bytes_per_layer", "kv_cache_bytes",
           "kv_cache_bytes_per_token", "layers_on_stage", "live_microbatches",
           "memory_per_gpu", "stage_params"]


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    other: float
    stage: int = 0  # the pipeline stage described (the one that needs the most memory)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.other

    def to_dict(self) -> dict:
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "other": self.other}


def live_microbatches(plan: ParallelPlan, stage: int = 0) -> float:
    """Micro-batches whose activations stage ``stage`` holds at its peak (module docstring),
    in units of the whole stage's layers."""
    p, m, v = plan.pp, max(1, plan.n_microbatches), plan.virtual_stages
    if not 0 <= stage < p:
        raise PlanError(f"stage {stage} out of range 0..{p - 1} for pp={p}")
    if plan.schedule == "gpipe":
        return m if p > 1 else 1
    if plan.schedule in ("1f1b", "zb-h1"):
        return min(p - stage, m)
    if plan.schedule == "interleaved":
        return min(2 * (p - stage - 1) + (v - 1) * p + 1, m * v) / v
    raise ConfigError(f"unknown schedule '{plan.schedule}'; use gpipe, 1f1b, interleaved, zb-h1")


def layers_on_stage(n_layers: int, pp: int, stage: int) -> range:
    """Layer indices of ``stage``; the first n_layers % pp stages hold one extra layer."""
    base, extra = divmod(n_layers, pp)
    start = stage * base + min(stage, extra)
    return range(start, start + base + (1 if stage < extra else 0))


@lru_cache(maxsize=65536)
def _stage_kinds(mk: int, pp: int, stage: int) -> tuple[tuple[int, int], ...]:
    model = obj(mk)
    kinds: dict[bool, list[int]] = {}
    for i in layers_on_stage(model.n_layers, pp, stage):
        kinds.setdefault(model.is_moe_layer(i), [i, 0])[1] += 1
    return tuple((rep, n) for rep, n in kinds.values())


def stage_kinds(model: ModelConfig, pp: int, stage: int) -> tuple[tuple[int, int], ...]:
    """((representative layer, how many of its kind), ...) on ``stage``: dense and MoE layers."""
    return _stage_kinds(ident(model), pp, stage)


@lru_cache(maxsize=65536)
def _stage_params(mk: int, pp: int, stage: int, tp: int, ep: int) -> tuple[float, float]:
    model = obj(mk)
    counts = count_params(model)
    dense = expert = 0.0
    for rep, n in _stage_kinds(mk, pp, stage):
        lp = counts.layers[rep]
        dense += n * ((lp.attention + lp.ffn + lp.shared_experts) / tp + lp.router + lp.norms)
        expert += n * lp.experts / (ep * tp)
    if stage == 0:
        dense += counts.embedding / tp
    if stage == pp - 1:
        head = counts.lm_head or (counts.embedding if pp > 1 else 0)  # tied: copy on last
        dense += head / tp + counts.final_norm
    return dense, expert


def stage_params(model: ModelConfig, plan: ParallelPlan, stage: int) -> tuple[float, float]:
    """(dense, expert) parameters one GPU of ``stage`` holds (before ZeRO)."""
    return _stage_params(ident(model), plan.pp, stage, plan.tp, plan.ep)


def _state(mk: int, plan: ParallelPlan, stage: int) -> tuple[float, float, float]:
    dense, expert = _stage_params(mk, plan.pp, stage, plan.tp, plan.ep)
    n_dense = plan.dp * plan.cp
    full = dense + expert
    sharded = dense / n_dense + expert / max(1, n_dense // plan.ep)  # ZeRO over (e)dp
    z, o = plan.zero, plan.optimizer
    return ((sharded if z >= 3 else full) * o.weight_bytes,
            (sharded if z >= 2 else full) * o.grad_bytes,
            (sharded if z >= 1 else full) * (o.master_bytes + o.moment_bytes))


def _activations(mk: int, plan: ParallelPlan, stage: int, reference: str) -> float:
    kinds = _stage_kinds(mk, plan.pp, stage)
    per_mb = activation_bytes_of_layers(obj(mk), plan, kinds, reference)
    return per_mb * live_microbatches(plan, stage)


def _other(mk: int, plan: ParallelPlan, stage: int) -> float:
    other = float(RUNTIME_RESERVE_BYTES)
    if stage == plan.pp - 1:
        s, b = plan.seq_len // plan.cp, plan.micro_batch
        other += 4 * s * b * obj(mk).vocab_size / plan.tp  # fp32 logits (Korthikanti Sec. 4.3)
    if plan.zero == 3:
        dense, expert = _stage_params(mk, plan.pp, stage, plan.tp, plan.ep)
        n = max(1, sum(n for _, n in _stage_kinds(mk, plan.pp, stage)))
        other += 2 * (dense + expert) / n * plan.optimizer.weight_bytes  # 2 layers gathered
    return other


def memory_at_stage(model: ModelConfig, plan: ParallelPlan, stage: int,
                    reference: str = "clustersim") -> MemoryBreakdown:
    mk = ident(model)
    w, g, o = _state(mk, plan, stage)
    return MemoryBreakdown(w, g, o, _activations(mk, plan, stage, reference),
                           _other(mk, plan, stage), stage)


def memory_per_gpu(model: ModelConfig, plan: ParallelPlan, cluster=None, *,
                   stage: int | None = None, reference: str = "clustersim") -> MemoryBreakdown:
    """Memory of one GPU: of ``stage`` if given, else of the stage that needs the most (the
    first holds the most live micro-batches, the last the LM head and logits)."""
    if stage is not None:
        return memory_at_stage(model, plan, stage, reference)
    candidates = {0, plan.pp - 1}
    return max((memory_at_stage(model, plan, s, reference) for s in sorted(candidates)),
               key=lambda mb: mb.total)
