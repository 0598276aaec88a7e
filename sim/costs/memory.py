"""Memory per GPU in training: weights, gradients, optimizer state, activations, other.

Model state (Rajbhandari et al. 2020, ZeRO, Sec. 3.1 and 5): mixed-precision Adam keeps
``weight_bytes`` (2, bf16) + ``grad_bytes`` (2) + ``master_bytes + moment_bytes`` (4 + 8, fp32
master copy and two moments) = 16 bytes per parameter (``ParallelPlan.optimizer``). A GPU
holds its pipeline stage's layers and parameters as ``sim.costs.layout.StageLayout`` says
(one layout for memory, time, the DES and inference), cut by tensor parallelism (attention, dense and shared-expert FFNs,
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

from sim.costs.activations import activation_bytes_of_layers, activation_bytes_per_layer
from sim.costs.kvcache import kv_cache_bytes, kv_cache_bytes_per_token
from sim.costs.layout import StageLayout, StageSlice
from sim.model.config import ModelConfig
from sim.plan import ParallelPlan
from sim.schedules import get_schedule

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
    in units of the whole stage's layers; the schedule's registry entry answers."""
    return get_schedule(plan.schedule).live_microbatches(plan, stage)


def layers_on_stage(model: ModelConfig, plan: ParallelPlan, stage: int) -> tuple[int, ...]:
    """Layer indices held by ``stage`` (all its chunks), from ``StageLayout``."""
    return StageLayout.of(model, plan)[stage].layers


def stage_kinds(model: ModelConfig, plan: ParallelPlan, stage: int) -> tuple[tuple[int, int], ...]:
    """((representative layer, how many of its kind), ...) on ``stage``: dense and MoE layers."""
    return StageLayout.of(model, plan)[stage].kinds


def stage_params(model: ModelConfig, plan: ParallelPlan, stage: int) -> tuple[float, float]:
    """(dense, expert) parameters one GPU of ``stage`` holds (before ZeRO)."""
    s = StageLayout.of(model, plan)[stage]
    return s.dense_params, s.expert_params


def _state(st: StageSlice, plan: ParallelPlan) -> tuple[float, float, float]:
    dense, expert = st.dense_params, st.expert_params
    n_dense = plan.dp * plan.cp
    full = dense + expert
    sharded = dense / n_dense + expert / max(1, n_dense // plan.ep)  # ZeRO over (e)dp
    z, o = plan.zero, plan.optimizer
    return ((sharded if z >= 3 else full) * o.weight_bytes,
            (sharded if z >= 2 else full) * o.grad_bytes,
            (sharded if z >= 1 else full) * (o.master_bytes + o.moment_bytes))


def _activations(model, st: StageSlice, plan: ParallelPlan, reference: str) -> float:
    per_mb = activation_bytes_of_layers(model, plan, st.kinds, reference)
    return per_mb * live_microbatches(plan, st.stage)


def _other(model, st: StageSlice, plan: ParallelPlan) -> float:
    other = float(RUNTIME_RESERVE_BYTES)
    if st.lm_head:
        s, b = plan.seq_len // plan.cp, plan.micro_batch
        other += 4 * s * b * model.vocab_size / plan.tp  # fp32 logits (Korthikanti Sec. 4.3)
    if plan.zero == 3:
        n = max(1, st.n_layers)
        other += 2 * st.params / n * plan.optimizer.weight_bytes  # 2 layers gathered
    return other


def memory_at_stage(model: ModelConfig, plan: ParallelPlan, stage: int,
                    reference: str = "clustersim") -> MemoryBreakdown:
    return _at(model, StageLayout.of(model, plan)[stage], plan, reference)


def _at(model, st: StageSlice, plan: ParallelPlan, reference: str) -> MemoryBreakdown:
    w, g, o = _state(st, plan)
    return MemoryBreakdown(w, g, o, _activations(model, st, plan, reference),
                           _other(model, st, plan), st.stage)


def memory_per_gpu(model: ModelConfig, plan: ParallelPlan, cluster=None, *,
                   stage: int | None = None, reference: str = "clustersim") -> MemoryBreakdown:
    """Memory of one GPU: of ``stage`` if given, else of the stage that needs the most (the
    first holds the most live micro-batches, the last the LM head and logits)."""
    if stage is not None:
        return memory_at_stage(model, plan, stage, reference)
    lay = StageLayout.of(model, plan)
    return max((_at(model, lay.stages[s], plan, reference) for s in lay.distinct),
               key=lambda mb: mb.total)
