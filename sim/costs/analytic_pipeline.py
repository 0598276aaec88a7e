"""Pipeline-schedule closed forms used by the analytic backend.

With ``p`` stages, ``m`` microbatches and ``t`` the forward+backward time of one microbatch on
the slowest stage, GPipe (Huang et al. 2019) and 1F1B (PipeDream-Flush, Narayanan et al. 2021)
take ``(m + p - 1) * t``: an idle bubble of ``(p - 1) * t``, i.e. a bubble fraction
``(p - 1) / m`` of the useful time (Narayanan et al. 2021, Sec. 2.2.1). The interleaved
schedule with ``v`` model chunks per device shrinks the bubble to ``(p - 1) * t / v``
(ibid., Sec. 2.2.2). Zero-bubble ZB-H1 (Qi et al. 2024, Sec. 3.1) splits the backward into
input-gradient (B) and weight-gradient (W) passes and fills the drain with W: its bubble is
``(p - 1) * (T_F + T_B - T_W)`` per stage-microbatch times, a third of 1F1B's when
T_F = T_B = T_W.

The bubble does not change how much memory each schedule keeps alive: that is
``sim.costs.memory.live_microbatches``.
"""

from __future__ import annotations


def bubble_fraction(schedule: str, pp: int, n_microbatches: int, virtual_stages: int = 1,
                    t_f: float = 1.0, t_b: float = 1.0, t_w: float = 1.0) -> float:
    """Bubble time / useful time (m * (t_f + t_b + t_w)) for ``schedule``."""
    m, p = n_microbatches, pp
    if p <= 1:
        return 0.0
    if schedule in ("gpipe", "1f1b"):
        return (p - 1) / m  # Narayanan et al. 2021, Sec. 2.2.1
    if schedule == "interleaved":
        return (p - 1) / (virtual_stages * m)  # Narayanan et al. 2021, Sec. 2.2.2
    if schedule == "zb-h1":
        # Qi et al. 2024, Sec. 3.1: (p-1)(T_F + T_B - T_W) over m(T_F + T_B + T_W)
        return (p - 1) * max(0.0, t_f + t_b - t_w) / (m * (t_f + t_b + t_w))
    raise ValueError(f"unknown schedule {schedule!r}")


def bubble_time(schedule: str, pp: int, virtual_stages: int, t_f: float, t_b: float,
                t_w: float) -> float:
    """Idle seconds per step on the slowest stage for per-microbatch pass times ``t_f``,
    ``t_b`` (input gradients) and ``t_w`` (weight gradients)."""
    if pp <= 1:
        return 0.0
    if schedule == "zb-h1":
        return (pp - 1) * max(0.0, t_f + t_b - t_w)  # Qi et al. 2024, Sec. 3.1
    v = virtual_stages if schedule == "interleaved" else 1
    return (pp - 1) * (t_f + t_b + t_w) / v  # Narayanan et al. 2021, Sec. 2.2
