"""Communication check: the collectives a real data-parallel or Megatron tensor-parallel step
issues on gloo, vs the simulator's collective list for the same plan.

Tensor parallelism follows Megatron-LM (Shoeybi et al. 2019, Sec. 3, Fig. 3): Q/K/V and the
FFN up/gate projections are column-parallel (heads and FFN columns split over tp), the output
and down projections row-parallel; operator ``g`` all-reduces the row-parallel partial sums in
the forward (identity backward), operator ``f`` all-reduces the input gradient of the
column-parallel block in the backward (identity forward). The token embedding is
vocab-parallel (masked lookup + all-reduce) and the LM head column-parallel over the vocab
with Megatron's vocab-parallel cross entropy (three fp32 all-reduces: max, target logit,
sum of exponentials; ``megatron/core/tensor_parallel/cross_entropy.py``).

Data parallelism all-reduces the gradients in buckets of ``bucket_bytes(dp, grad_bytes)``
(Megatron-Core DDP), here in fp32.

The simulator side is ``lower_embedding`` / ``lower_layer`` / ``lower_head`` and their
backwards (TP) and the bucketing of ``sim.costs.analytic_comm`` (DP). Both lists are compared
as multisets of (kind, bytes): same kinds, same number of calls, same bytes per call.
"""

from __future__ import annotations

from collections import Counter

from sim.model import count_params, get_model
from sim.plan import OptimizerConfig, ParallelPlan, Shape
from sim.validation.cases import Case

SEQ, BATCH = 8, 2  # tiny tensors: the gloo checks take seconds


def tp_plan(tp: int) -> ParallelPlan:
    return ParallelPlan(tp=tp, micro_batch=BATCH, global_batch=BATCH, seq_len=SEQ,
                        dtype="fp32", flash_attention=False)


def simulated_tp_calls(name: str, tp: int) -> list[tuple[str, int]]:
    """Collectives of one training micro-batch on one rank, from the lowering's comm Ops."""
    from sim.costs.lowering import lower_layer, lower_layer_backward
    from sim.costs.lowering_io import (
        lower_embedding,
        lower_embedding_backward,
        lower_head,
        lower_head_backward,
    )

    cfg, plan, shape = get_model(name), tp_plan(tp), Shape(BATCH, SEQ, "train")
    ops = lower_embedding(cfg, shape, plan) + lower_embedding_backward(cfg, shape, plan)
    for i in range(cfg.n_layers):
        ops += lower_layer(cfg, i, shape, plan) + lower_layer_backward(cfg, i, shape, plan)
    ops += lower_head(cfg, shape, plan) + lower_head_backward(cfg, shape, plan)
    return [(op.collective, int(op.bytes)) for op in ops if op.is_comm for _ in range(op.count)]


def simulated_dp_calls(name: str, dp: int) -> list[tuple[str, int]]:
    """Gradient all-reduce buckets of one DP step (ZeRO-0, fp32 gradients)."""
    from sim.costs.analytic_comm import bucket_bytes

    grad_bytes = 4
    total = count_params(get_model(name)).total * grad_bytes
    bucket = int(bucket_bytes(dp, grad_bytes))
    full, rest = divmod(total, bucket)
    return [("all_reduce", bucket)] * full + ([("all_reduce", rest)] if rest else [])


def dp_plan(dp: int) -> ParallelPlan:
    return ParallelPlan(dp=dp, micro_batch=BATCH, global_batch=BATCH * dp, seq_len=SEQ,
                        dtype="fp32", optimizer=OptimizerConfig(weight_bytes=4, grad_bytes=4))


def compare(name: str, metric: str, simulated, measured) -> list[Case]:
    """One row per (kind, bytes) key: predicted count vs measured count, plus the totals."""
    sim_c, real_c = Counter(map(tuple, simulated)), Counter(map(tuple, measured))
    rows = [Case(f"{name} {kind} {nbytes}B", f"{metric}_calls", sim_c[(kind, nbytes)],
                 real_c[(kind, nbytes)]) for kind, nbytes in sorted(set(sim_c) | set(real_c))]
    rows.append(Case(name, f"{metric}_total_bytes", sum(b for _, b in simulated),
                     sum(b for _, b in measured)))
    return rows


def comm_cases(name: str = "tiny-llama", world: int = 2) -> list[Case]:
    """Run the TP and DP steps on gloo in ``world`` processes and compare with the simulator."""
    from sim.validation.distributed import spawn
    from sim.validation.parallel import dp_step, tp_step

    tp_real = spawn(tp_step, world, name, BATCH, SEQ)[0]
    dp_real = spawn(dp_step, world, name, BATCH, SEQ)[0]
    return (compare(f"{name} tp={world}", "tp", simulated_tp_calls(name, world), tp_real)
            + compare(f"{name} dp={world}", "dp", simulated_dp_calls(name, world), dp_real))
