"""``StageLayout``: which layers and parameters each pipeline stage holds — the one answer.

Memory (``sim.costs.memory``), the analytic step (``sim.costs.analytic``), the DES
(``sim.des``) and inference (``sim.costs.inference``) all read this value, so they cannot
disagree about a stage.

Layers over chunks: a plan has ``pp * v`` pipeline chunks (``v`` virtual stages per GPU under
an interleaved schedule, else 1). Every chunk gets floor(L / chunks) layers and the remainder
goes to the middle chunks, so the first and last chunks (which also hold the embedding and
the LM head) are the light ones: Llama-3-405B's 126 layers on 16 stages give 7, 8 x 14, 7
(Llama 3 paper, Sec. 3.3.2: "we reduce one Transformer layer each from the first and the
last stages"). Chunk ``c`` runs on stage ``c % pp`` (Narayanan et al. 2021, Sec. 2.2.2).

Parameters per rank (before ZeRO): attention, dense and shared-expert FFNs are split over tp,
routers and norms replicated (Megatron-LM), routed experts split over ep x tp; the embedding
(split over tp) sits on stage 0, the LM head (split over tp) and the final norm on the last
stage; with tied embeddings and pp > 1 the last stage keeps its own copy of the embedding
matrix as the head (Megatron-LM ``--untie-embeddings-and-output-weights`` off).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sim.errors import PlanError
from sim.model.params import count_params
from sim.schedules import get_schedule

__all__ = ["Chunk", "StageLayout", "StageSlice", "chunk_layers", "end_params", "layer_params"]


def chunk_layers(n_layers: int, chunks: int) -> tuple[int, ...]:
    """Layers per pipeline chunk: floor(L/chunks) each, the remainder to the middle chunks
    so the first and last (embedding, LM head) are lighter; 126 over 16 -> 7, 8 x 14, 7."""
    if not 1 <= chunks <= n_layers:
        raise PlanError(f"{chunks} pipeline chunks for {n_layers} layers; need 1..{n_layers}")
    base, extra = divmod(n_layers, chunks)
    light = chunks - extra  # chunks that keep only `base` layers: taken from both ends
    order = [i // 2 if i % 2 == 0 else chunks - 1 - i // 2 for i in range(chunks)]
    light_set = set(order[:light])
    return tuple(base + (i not in light_set) for i in range(chunks))


@dataclass(frozen=True)
class Chunk:
    """One pipeline chunk (virtual stage): its index in layer order, its GPU stage, its layers
    and ((representative layer, count), ...) of each layer kind (dense, MoE) in it."""

    index: int
    stage: int
    layers: range
    kinds: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class StageSlice:
    """What one GPU of pipeline stage ``stage`` holds."""

    stage: int
    chunks: tuple[Chunk, ...]
    kinds: tuple[tuple[int, int], ...]  # ((representative layer, count), ...) per layer kind
    n_moe: int  # how many of its layers are MoE layers
    dense_params: float  # per rank, tp-split (routers, norms replicated), before ZeRO
    expert_params: float  # per rank, ep x tp-split, before ZeRO
    embedding: bool
    lm_head: bool

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(i for c in self.chunks for i in c.layers)

    @property
    def n_layers(self) -> int:
        return sum(len(c.layers) for c in self.chunks)

    @property
    def params(self) -> float:
        return self.dense_params + self.expert_params

@dataclass(frozen=True)
class StageLayout:
    """Per pipeline stage (and chunk): layers, parameters per rank, embedding/LM-head flags."""

    pp: int
    virtual: int
    chunks: tuple[Chunk, ...]
    stages: tuple[StageSlice, ...]
    # the first stage of each distinct content, plus the first and the last: live
    # microbatches never grow with the stage index (a registry requirement of every
    # schedule, tested), so the stage that needs the most memory is among these
    distinct: tuple[int, ...] = ()

    @classmethod
    def of(cls, model, plan) -> StageLayout:
        """The layout of ``model`` under ``plan`` (pp, virtual stages of its schedule, tp, ep)."""
        return _layout(model, plan.pp, get_schedule(plan.schedule).chunks(plan), plan.tp, plan.ep)

    @classmethod
    def split(cls, model, pp: int, *, virtual: int = 1, tp: int = 1, ep: int = 1) -> StageLayout:
        """The layout for explicit degrees (serving plans, which are not ``ParallelPlan``s)."""
        return _layout(model, pp, virtual, tp, ep)

    def __getitem__(self, stage: int) -> StageSlice:
        if not 0 <= stage < self.pp:
            raise PlanError(f"stage {stage} out of range 0..{self.pp - 1} for pp={self.pp}")
        return self.stages[stage]

    def __len__(self) -> int:
        return self.pp

    @property
    def chunk_sizes(self) -> tuple[int, ...]:
        return tuple(len(c.layers) for c in self.chunks)


@lru_cache(maxsize=4096)
def _layout(model, pp: int, v: int, tp: int, ep: int) -> StageLayout:
    if pp < 1 or v < 1:
        raise PlanError(f"pp={pp} and virtual stages={v} must be >= 1")
    chunks, start = [], 0
    for c, n in enumerate(chunk_layers(model.n_layers, pp * v)):
        layers = range(start, start + n)
        chunks.append(Chunk(c, c % pp, layers, _kinds(model, layers)))
        start += n
    counts = count_params(model)
    stages = tuple(_stage(model, counts, s, pp, tuple(chunks[s::pp]), tp, ep) for s in range(pp))
    return StageLayout(pp, v, tuple(chunks), stages, _distinct(stages))


def _distinct(stages) -> tuple[int, ...]:
    first: dict = {}
    for s in stages:
        first.setdefault((tuple(len(c.layers) for c in s.chunks), s.n_moe), s.stage)
    return tuple(sorted(set(first.values()) | {0, len(stages) - 1}))


def _kinds(model, layers) -> tuple[tuple[int, int], ...]:
    kinds: dict[bool, list[int]] = {}
    for i in layers:
        kinds.setdefault(model.is_moe_layer(i), [i, 0])[1] += 1
    return tuple((rep, k) for rep, k in kinds.values())


def layer_params(counts, layer: int, tp: int, ep: int) -> tuple[float, float]:
    """(dense, expert) parameters of ``layer`` on one rank (module docstring)."""
    lp = counts.layers[layer]
    return ((lp.attention + lp.ffn + lp.shared_experts) / tp + lp.router + lp.norms,
            lp.experts / (ep * tp))


def end_params(counts, pp: int, tp: int) -> tuple[float, float]:
    """(embedding on stage 0, LM head + final norm on the last stage) on one rank."""
    head = counts.lm_head or (counts.embedding if pp > 1 else 0)  # tied: copy on last
    return counts.embedding / tp, head / tp + counts.final_norm


def _stage(model, counts, stage: int, pp: int, chunks, tp: int, ep: int) -> StageSlice:
    kinds = _kinds(model, (i for c in chunks for i in c.layers))
    dense = expert = 0.0
    for rep, n in kinds:
        lp = counts.layers[rep]
        dense += n * ((lp.attention + lp.ffn + lp.shared_experts) / tp + lp.router + lp.norms)
        expert += n * lp.experts / (ep * tp)
    first, last = stage == 0, stage == pp - 1
    emb, head = end_params(counts, pp, tp)
    dense += emb if first else 0.0
    dense += head if last else 0.0
    n_moe = sum(n for rep, n in kinds if model.is_moe_layer(rep))
    return StageSlice(stage, chunks, kinds, n_moe, dense, expert, first, last)
