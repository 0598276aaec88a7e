"""CLI flags of the software stack, generated from ``sim.stack.types.FIELDS``.

``--stack NAME|FILE`` picks a catalog stack or a stack file; every knob is also a flag of its
own (``--attention-kernel fa1``, ``--no-overlap-grad-reduce``, ``--dp-bucket-size 0``...) that
overrides the stack's value, so no setting is reachable only by editing a file.
"""

from __future__ import annotations

import argparse

from sim.cli.flags import choice_list
from sim.stack.types import ALGORITHMS, FIELDS


def add_stack_flags(parser, kind: str) -> None:
    """``--stack`` and one flag per knob of a ``kind`` ("training" or "serving") stack."""
    from sim.stack.loader import SERVING_DEFAULT, TRAINING_DEFAULT

    default = TRAINING_DEFAULT if kind == "training" else SERVING_DEFAULT
    g = parser.add_argument_group(
        "software stack", f"--stack picks the stack (default {default}; `clustersim stack "
        "list`); each flag below overrides one of its settings")
    g.add_argument("--stack", default=None, metavar="NAME|FILE",
                   help=f"software stack: catalog name or .toml file (default {default})")
    for f in FIELDS:
        if not _applies(f, kind):
            continue
        dest = f"stack_{f.name}"
        if f.kind == "bool":
            g.add_argument(f.flag, dest=dest, action=argparse.BooleanOptionalAction,
                           default=None, help=f.help)
        elif f.kind == "enum":
            g.add_argument(f.flag, dest=dest, choices=f.choices, default=None, help=f.help)
        elif f.kind == "algorithms":
            g.add_argument(f.flag, dest=dest, default=None, metavar="A,B", help=f.help,
                           type=choice_list(ALGORITHMS))
        else:
            g.add_argument(f.flag, dest=dest, type=_number_type(f), default=None,
                           metavar="N" if f.kind == "int0" else "X", help=f.help)


# upper bounds of the numeric knobs (sim.cli.flags: every number gets one)
_UPPER = {"bucket_elements": 1e12, "bucket_elements_per_rank": 1e12, "zero3_prefetch": 64,
          "iteration_overhead_s": 3600.0, "launch_overhead_s": 1.0,
          "scheduler_overhead_s": 60.0}


def _number_type(f):
    from sim.cli.flags import float_flag, int_flag

    if f.kind == "int0":
        return int_flag(0, int(_UPPER[f.name]))
    if f.kind == "fraction0":
        return float_flag(0.0, 1.0, hi_open=True)
    return float_flag(0.0, _UPPER[f.name])


def _applies(f, kind: str) -> bool:
    both = f.name in ("attention_kernel", "collective_algorithms")
    return both or f.serving == (kind == "serving")


def stack_from_args(args, kind: str):
    """The Stack named by ``--stack`` (or the default) with every knob flag applied."""
    from sim.stack.loader import SERVING_DEFAULT, TRAINING_DEFAULT, get_stack, with_overrides

    name = getattr(args, "stack", None) or (TRAINING_DEFAULT if kind == "training"
                                            else SERVING_DEFAULT)
    stack = get_stack(name)
    overrides = {f.name: getattr(args, f"stack_{f.name}") for f in FIELDS
                 if getattr(args, f"stack_{f.name}", None) is not None}
    return with_overrides(stack, overrides)
