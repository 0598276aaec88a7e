"""How a stack enters a run: ``apply_stack(model, plan, stack) -> (model, plan)``.

The stack's attention kernel, gradient-accumulation fusion and dropout map onto the existing
plan/model fields (``flash_attention``, ``grad_accumulation_fusion``, ``ModelConfig.dropout``),
and the stack itself rides on ``plan.stack`` so the cost functions can read its overlap
settings when ``plan.overlap == "stack"`` (the default of ``clustersim train``). The bounds
``overlap="max"``/``"sum"`` keep their old meaning; the stack's kernels, fusions and overheads
still apply under them.
"""

from __future__ import annotations

from dataclasses import replace


def apply_stack(model, plan, stack):
    """``(model, plan)`` as run under ``stack`` (a Stack, catalog name or file path)."""
    from sim.stack.loader import get_stack

    stack = get_stack(stack)
    plan = replace(plan, stack=stack, flash_attention=stack.flash,
                   grad_accumulation_fusion=stack.grad_accumulation_fusion)
    if model.dropout != stack.dropout:
        model = model.with_(dropout=stack.dropout)
    return model, plan


def effective_stack(plan):
    """The stack whose physics ``plan`` follows, or None under the max/sum bounds without one."""
    return plan.stack
