"""Per-op overhead of the reference implementation, measured on a full-width block.

Eager PyTorch pays a fixed cost per simulated op (several aten dispatches, autograd
bookkeeping and Python calls) that the roofline does not see. It is measured as the residual
the fitted model leaves on a real block: ``(t_measured - sum of the roofline times of the
block's lowered ops) / number of ops`` (``op_time`` with zero overhead). The block is
full-width (hidden 256, ``microbench.block_config``), so every op touches real-size weights
and activations; an earlier hidden-8 block measured the dispatch cost of near-empty tensors,
which full-width ops exceed. Two figures: forward+backward on 8 tokens (training, weights in
cache) and a no-grad forward of 1 token through 16 blocks (decode-like, weights cold: the
roofline prices the weight stream as cold, so a hot block would leave too little residual).
The efficiency model has one overhead, their mean; autograd makes a training op cost about
twice a no-grad one here, so decode rows read ~+15% and training rows ~-5% from this split.
"""

from __future__ import annotations

from dataclasses import replace


def _ops(train: bool, tokens: int) -> list:
    from sim.costs.lowering import lower_layer, lower_layer_backward
    from sim.plan import ParallelPlan, Shape
    from sim.validation.microbench import block_config

    cfg = block_config()
    plan = ParallelPlan(seq_len=tokens, dtype="fp32", flash_attention=False)
    shape = Shape(1, tokens) if train else Shape(1, tokens, "prefill")
    ops = list(lower_layer(cfg, 0, shape, plan))
    if train:
        ops += list(lower_layer_backward(cfg, 0, shape, plan))
    return [o for o in ops if not o.is_comm]


def _model_time(cal, ops) -> float:
    """Roofline seconds of ``ops`` on the profile being calibrated, without any fixed
    per-op cost (no overhead, and no fitted per-GEMM-call cost in ``matmul_half_flops``)."""
    from sim.costs.timing import op_time
    from sim.validation.profile import accelerator

    acc = accelerator(cal, "provisional", 1 << 30)
    eff = replace(acc.efficiency, kernel_overhead_s=0.0, matmul_half_flops=0.0)
    acc = replace(acc, efficiency=eff)
    return sum(op_time(o, acc, "fp32") for o in ops)


def block_overhead(cal, t_train: float, t_infer: float) -> tuple[float, float, float]:
    """(pooled, training, inference) seconds per op, each >= 0; ``t_infer`` covers
    ``COLD_BLOCKS`` blocks. Pooled = the mean of the two per-op figures: one overhead serves
    training and inference alike (an op-weighted mean would let backward's extra ops decide)."""
    from sim.validation.microbench import BLOCK_TOKENS, COLD_BLOCKS

    per_op = []
    for t, train, tokens in ((t_train, True, BLOCK_TOKENS["train"]),
                             (t_infer / COLD_BLOCKS, False, BLOCK_TOKENS["infer"])):
        ops = _ops(train, tokens)
        per_op.append(max(t - _model_time(cal, ops), 0.0) / sum(o.count for o in ops))
    return (per_op[0] + per_op[1]) / 2, per_op[0], per_op[1]
