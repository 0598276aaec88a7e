"""Is a parallel plan legal for this model on this many GPUs?

``validate_plan`` raises ``PlanError`` naming the broken constraint and a fix; ``resolve_plan``
fills a data-parallel degree left as 0 from the GPU count; ``stage_layers`` says how layers
are spread over pipeline stages.

Choices (see docs/design-costs-analytic.md):
- KV heads and TP: tp must divide n_heads. When tp <= n_kv_heads it must divide n_kv_heads;
  when tp > n_kv_heads, tp must be a multiple of n_kv_heads and each KV head is replicated on
  tp / n_kv_heads ranks (Megatron-LM / vLLM behaviour for GQA; e.g. Llama-3-70B at tp=16).
- Vocabulary: never an error; Megatron pads the vocabulary to a multiple of 128 * tp
  (``--make-vocab-size-divisible-by``), so any tp works.
- Uneven pipeline stages: pp (times virtual stages) need not divide n_layers. Every chunk gets
  floor(L / chunks) layers and the remainder goes to the middle chunks, so the first and last
  chunks (which also hold the embedding and LM head) are the light ones. Llama-3-405B's 126
  layers on 16 stages give 7, 8 x 14, 7 (Llama 3 paper, Sec. 3.3.2: "we reduce one
  Transformer layer each from the first and the last stages").
- Context parallelism splits the sequence into 2*cp chunks (load-balanced causal attention,
  Megatron-Core CP), so seq must be divisible by 2*cp.
- ZeRO-2/3 with pp > 1 is rejected (DeepSpeed: partitioned gradients/parameters are
  incompatible with pipeline parallelism).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from sim.errors import PlanError
from sim.plan import RECOMPUTE_MODES, ParallelPlan
from sim.schedules import get_schedule, schedule_names

OVERLAPS = ("max", "sum", "stack")


def resolve_plan(plan: ParallelPlan, n_gpus: int) -> ParallelPlan:
    """Return ``plan`` with dp filled in as n_gpus / (tp*pp*cp) when it was left 0."""
    return plan if plan.dp else _resolve(plan, n_gpus)


@lru_cache(maxsize=65536)
def _resolve(plan: ParallelPlan, n_gpus: int) -> ParallelPlan:
    model_parallel = plan.tp * plan.pp * plan.cp
    if model_parallel <= 0 or n_gpus % model_parallel:
        raise PlanError(
            f"cannot infer dp: tp*pp*cp={model_parallel} does not divide --gpus {n_gpus}; "
            f"choose a GPU count that is a multiple of {model_parallel} or pass --dp"
        )
    return replace(plan, dp=n_gpus // model_parallel)


def validate_plan(model, plan: ParallelPlan, n_gpus: int) -> None:
    """Raise PlanError for the first constraint ``plan`` breaks; return None when legal."""
    _validate_cached(model, plan, n_gpus)


@lru_cache(maxsize=65536)
def _validate_cached(model, plan, n_gpus) -> None:
    for check in (_check_enums, _check_positive, _check_world, _check_heads, _check_ffn,
                  _check_experts, _check_batch, _check_pipeline, _check_sequence, _check_zero):
        check(model, plan, n_gpus)


def _fail(constraint: str, fix: str) -> None:
    raise PlanError(f"{constraint}; {fix}")


def _check_enums(model, plan, n_gpus) -> None:
    if plan.schedule not in schedule_names():
        _fail(f"unknown schedule '{plan.schedule}'", f"use one of {', '.join(schedule_names())}")
    if plan.recompute not in RECOMPUTE_MODES:
        _fail(f"unknown recompute '{plan.recompute}'", f"use {', '.join(RECOMPUTE_MODES)}")
    if plan.overlap not in OVERLAPS:
        _fail(f"unknown overlap '{plan.overlap}'", "use max, sum or stack")
    if plan.zero not in (0, 1, 2, 3):
        _fail(f"zero={plan.zero} is not a ZeRO stage", "use 0, 1, 2 or 3")


def _check_positive(model, plan, n_gpus) -> None:
    for name in ("tp", "pp", "dp", "ep", "cp", "micro_batch", "global_batch", "seq_len",
                 "virtual_stages"):
        if getattr(plan, name) < 1:
            _fail(f"{name}={getattr(plan, name)} must be >= 1",
                  "pass a positive value" + (" (or resolve_plan to infer dp)" if name == "dp" else ""))


def _check_world(model, plan, n_gpus) -> None:
    if plan.world_size != n_gpus:
        _fail(f"dp*tp*pp*cp = {plan.dp}*{plan.tp}*{plan.pp}*{plan.cp} = {plan.world_size} "
              f"must equal the GPU count {n_gpus}",
              "change a degree, or omit --dp to infer it from --gpus")


def _check_heads(model, plan, n_gpus) -> None:
    tp, h, kv = plan.tp, model.n_heads, model.n_kv_heads
    if h % tp:
        _fail(f"tp={tp} does not divide n_heads={h}", f"use a tp among {_divisors(h)}")
    if tp <= kv and kv % tp:
        _fail(f"tp={tp} does not divide n_kv_heads={kv}", f"use a tp among {_divisors(kv)}")
    if tp > kv and tp % kv:
        _fail(f"tp={tp} > n_kv_heads={kv} needs tp to be a multiple of n_kv_heads "
              "(each KV head is then replicated tp/n_kv_heads times)",
              f"use tp <= {kv} dividing it, or a multiple of {kv}")


def _check_ffn(model, plan, n_gpus) -> None:
    tp = plan.tp
    dense_layers = model.n_layers - model.n_moe_layers
    if dense_layers and model.ffn_hidden % tp:
        _fail(f"tp={tp} does not divide ffn_hidden={model.ffn_hidden}",
              f"use a tp among {_divisors(model.ffn_hidden)}")
    if model.moe and model.moe.expert_ffn_hidden % tp:
        e = model.moe.expert_ffn_hidden
        _fail(f"tp={tp} does not divide expert_ffn_hidden={e} (experts are tensor-parallel too)",
              f"use a tp among {_divisors(e)}")


def _check_experts(model, plan, n_gpus) -> None:
    ep = plan.ep
    if ep == 1:
        return
    if not model.moe:
        _fail(f"ep={ep} needs a Mixture-of-Experts model; '{model.name}' is dense", "use ep=1")
    if model.moe.n_experts % ep:
        _fail(f"ep={ep} does not divide n_experts={model.moe.n_experts}",
              f"use an ep among {_divisors(model.moe.n_experts)}")
    if plan.dp % ep:
        _fail(f"ep={ep} does not divide dp={plan.dp} (expert-parallel groups are carved out "
              "of the data-parallel dimension)", f"use an ep among {_divisors(plan.dp)}")


def _check_batch(model, plan, n_gpus) -> None:
    per_step = plan.dp * plan.micro_batch
    if plan.global_batch % per_step:
        _fail(f"global batch {plan.global_batch} is not divisible by dp*micro_batch = "
              f"{plan.dp}*{plan.micro_batch} = {per_step}",
              f"use a global batch that is a multiple of {per_step}")


def _check_pipeline(model, plan, n_gpus) -> None:
    chunks = plan.pp * plan.virtual_stages
    if chunks > model.n_layers:
        _fail(f"pp*virtual_stages = {chunks} exceeds n_layers={model.n_layers} "
              "(every pipeline chunk needs at least one layer)", "lower pp or virtual_stages")
    if not get_schedule(plan.schedule).interleaves:
        if plan.virtual_stages != 1:
            interleaving = [s for s in schedule_names() if get_schedule(s).interleaves]
            _fail(f"virtual_stages={plan.virtual_stages} needs --schedule "
                  f"{' or '.join(interleaving)}",
                  f"use --schedule {interleaving[0]} or --virtual-stages 1")
        return
    if plan.pp < 2 or plan.virtual_stages < 2:
        _fail(f"the {plan.schedule} schedule needs pp > 1 and virtual_stages > 1",
              "raise --pp/--virtual-stages or pick --schedule 1f1b")
    if plan.n_microbatches % plan.pp:
        _fail(f"{plan.schedule} schedule needs the number of microbatches "
              f"({plan.n_microbatches}) divisible by pp={plan.pp} (Megatron-LM)",
              f"make global_batch/(dp*micro_batch) a multiple of {plan.pp}")


def _check_sequence(model, plan, n_gpus) -> None:
    s, cp, tp = plan.seq_len, plan.cp, plan.tp
    if cp > 1 and s % (2 * cp):
        _fail(f"seq={s} is not divisible by 2*cp = {2 * cp} (context parallelism splits the "
              "sequence into 2*cp load-balanced chunks)", f"use a seq multiple of {2 * cp}")
    if plan.sequence_parallel and (s // cp) % tp:
        _fail(f"sequence parallelism needs seq/cp = {s // cp} divisible by tp={tp}",
              f"use a seq multiple of {cp * tp}")


def _check_zero(model, plan, n_gpus) -> None:
    if plan.zero >= 2 and plan.pp > 1:
        _fail(f"ZeRO-{plan.zero} partitions gradients across microbatches and is incompatible "
              f"with pipeline parallelism (pp={plan.pp}; DeepSpeed rejects it too)",
              "use --zero 1 (distributed optimizer) with pp > 1, or pp=1")


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, min(n, 64) + 1) if n % d == 0)


def stage_layers(n_layers: int, chunks: int) -> list[int]:
    """Layers per pipeline chunk (``sim.costs.layout.chunk_layers``, the one rule)."""
    from sim.costs.layout import chunk_layers

    return list(chunk_layers(n_layers, chunks))
