"""What this machine can simulate: event and memory budgets, checked before a run starts.

A run whose estimated simulated events or memory exceed the budget is refused with
``WorkLimitError`` naming the estimate, the limit and the flag that reduces the work, instead
of hanging for hours or dying in a ``MemoryError``. The memory budget is half the machine's
physical RAM (``os.sysconf``); the event budget is a count a SimPy engine processes in about
ten minutes on one core (SimPy runs ~2e5-5e5 events/s in CPython, simpy docs "Performance";
we take 1e8 as the ceiling). ``CLUSTERSIM_MAX_EVENTS`` overrides it for a bigger machine.
"""

from __future__ import annotations

import os

from sim.errors import WorkLimitError

DEFAULT_MAX_EVENTS = 100_000_000  # ~10 min of SimPy at ~2e5 events/s (see module docstring)


def machine_memory_bytes() -> int:
    """Physical RAM of this machine (bytes); 8 GiB when the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_budget_bytes() -> int:
    """Half the physical RAM: what one simulation may allocate."""
    return machine_memory_bytes() // 2


def max_events() -> int:
    """The simulated-event budget (``CLUSTERSIM_MAX_EVENTS`` overrides the default)."""
    text = os.environ.get("CLUSTERSIM_MAX_EVENTS", "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_EVENTS


def check_events(estimate: float, what: str, reduce: str) -> None:
    """Refuse ``estimate`` simulated events above the budget; ``reduce`` names the flag."""
    limit = max_events()
    if not estimate <= limit:
        raise WorkLimitError(
            f"{what} would simulate about {estimate:.3g} events, above this machine's limit "
            f"of {limit:.3g} (CLUSTERSIM_MAX_EVENTS); reduce {reduce}", flag=_flag(reduce))


def check_memory(estimate_bytes: float, what: str, reduce: str) -> None:
    """Refuse a run that would allocate more than half this machine's RAM."""
    limit = memory_budget_bytes()
    if not estimate_bytes <= limit:
        raise WorkLimitError(
            f"{what} would need about {estimate_bytes / 2**30:.3g} GiB of memory, above this "
            f"machine's limit of {limit / 2**30:.3g} GiB (half its RAM); reduce {reduce}",
            flag=_flag(reduce))


def _flag(reduce: str) -> str | None:
    word = reduce.split()[0] if reduce else ""
    return word if word.startswith("--") else None
