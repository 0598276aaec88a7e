"""Why a plan is infeasible, as a short stable key.

``sim.plan_validation.validate_plan`` runs one check function per constraint
(``_check_heads``, ``_check_batch``...) and raises ``PlanError``. The key is the name of the
check that raised, read from the traceback, so the search never re-states a constraint: the
validator stays the only place that knows them. Plans that are legal but do not fit in HBM
get ``out_of_memory``.
"""

from __future__ import annotations

from sim.errors import PlanError
from sim.plan_validation import validate_plan

OUT_OF_MEMORY = "out_of_memory"
PREFIX = "constraint:"
DESCRIPTIONS = {
    OUT_OF_MEMORY: "legal plan, but memory per GPU exceeds the accelerator's HBM",
    PREFIX + "world": "dp*tp*pp*cp differs from the GPU count",
    PREFIX + "heads": "tp does not divide the attention heads / KV heads",
    PREFIX + "ffn": "tp does not divide the FFN (or expert FFN) width",
    PREFIX + "experts": "ep does not divide the experts or dp",
    PREFIX + "batch": "global batch not divisible by dp*micro_batch",
    PREFIX + "pipeline": "pipeline chunks exceed layers, or interleaving needs pp>1 and "
                         "microbatches divisible by pp",
    PREFIX + "sequence": "seq not divisible by 2*cp, or seq/cp by tp with sequence parallelism",
    PREFIX + "zero": "ZeRO-2/3 with pipeline parallelism",
    PREFIX + "other": "another plan constraint",
}
# checks that depend only on the layout (tp, cp, pp, dp, ep) when micro-batch divides
# global_batch/dp: a layout failing one of them fails it for every variant
LAYOUT_LEVEL = {PREFIX + k for k in ("world", "heads", "ffn", "experts", "batch", "pipeline")}


def constraint_of(exc: PlanError) -> str:
    """The reason key of a PlanError raised by validate_plan."""
    tb, name = exc.__traceback__, "other"
    while tb is not None:
        fn = tb.tb_frame.f_code.co_name
        if fn.startswith("_check_"):
            name = fn.removeprefix("_check_")
        tb = tb.tb_next
    return PREFIX + (name if PREFIX + name in DESCRIPTIONS else "other")


def violation(model, plan, n_gpus: int) -> str | None:
    """None when the plan is legal, else the reason key of the first broken constraint."""
    try:
        validate_plan(model, plan, n_gpus)
    except PlanError as exc:
        return constraint_of(exc)
    return None
