"""Per-op overhead of the reference implementation, measured on a full-width block.

Eager PyTorch pays a fixed cost per simulated op (several aten dispatches, autograd
bookkeeping and Python calls) that the roofline does not see. It is measured as the residual
the fitted model leaves on a real block: ``(t_measured - sum of the roofline times of the
block's lowered ops) / number of ops`` (``op_time`` with zero overhead). The block is
full-width (hidden 256, ``microbench.block_config``), so every op touches real-size weights
and activations; an earlier hidden-8 block measured the dispatch cost of near-empty tensors,
which full-width ops exceed. Pooled over forward+backward on 8 tokens (training) and a
no-grad forward on 1 token (decode-like): the efficiency model has one overhead for both.
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
    """Roofline seconds of ``ops`` on the profile being calibrated, without any overhead."""
    from sim.costs.timing import op_time
    from sim.validation.profile import accelerator

    acc = accelerator(replace(cal, kernel_overhead_s=0.0), "provisional", 1 << 30)
    return sum(op_time(o, acc, "fp32") for o in ops)


def block_overhead(cal, t_train: float, t_infer: float) -> tuple[float, float, float]:
    """(pooled, training, inference) seconds per op; each clamped at >= 0."""
    from sim.validation.microbench import BLOCK_TOKENS

    parts = []
    for t, train, tokens in ((t_train, True, BLOCK_TOKENS["train"]),
                             (t_infer, False, BLOCK_TOKENS["infer"])):
        ops = _ops(train, tokens)
        parts.append((t - _model_time(cal, ops), sum(o.count for o in ops)))
    pooled = sum(r for r, _ in parts) / sum(n for _, n in parts)
    return tuple(max(x, 0.0) for x in (pooled, parts[0][0] / parts[0][1],
                                       parts[1][0] / parts[1][1]))
