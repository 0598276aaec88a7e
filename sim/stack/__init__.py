"""Software stacks as data (issue 13): ``get_stack``, ``list_stacks``, ``Stack``.

See ``sim.stack.types`` for the knobs and ``sim.stack.loader`` for the file format; the
catalog is ``sim/data/stacks/*.toml``; ``docs/design-stacks.md`` records the decisions.
"""

from sim.stack.loader import (
    SERVING_DEFAULT,
    TRAINING_DEFAULT,
    get_stack,
    list_stacks,
    load_file,
    stack_names,
    with_overrides,
)
from sim.stack.types import FIELDS, Stack

__all__ = ["FIELDS", "SERVING_DEFAULT", "Stack", "TRAINING_DEFAULT", "get_stack",
           "list_stacks", "load_file", "stack_names", "with_overrides"]
