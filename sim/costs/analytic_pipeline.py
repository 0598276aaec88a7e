"""Pipeline-schedule closed forms used by the analytic backend, answered by each schedule's
registry entry (``sim.schedules``; sources cited there).

With ``p`` stages, ``m`` microbatches and ``t`` the forward+backward time of one microbatch on
the slowest stage, GPipe and 1F1B idle ``(p - 1) * t`` (bubble fraction ``(p - 1) / m``,
Narayanan et al. 2021, Sec. 2.2.1), interleaved ``(p - 1) * t / v`` (ibid., Sec. 2.2.2) and
ZB-H1 ``(p - 1) * (T_F + T_B - T_W)`` (Qi et al. 2024, Sec. 3.1). The memory each schedule
keeps alive is ``sim.costs.memory.live_microbatches``.
"""

from __future__ import annotations

from sim.schedules import get_schedule


def bubble_fraction(schedule: str, pp: int, n_microbatches: int, virtual_stages: int = 1,
                    t_f: float = 1.0, t_b: float = 1.0, t_w: float = 1.0) -> float:
    """Bubble time / useful time (m * (t_f + t_b + t_w)) for ``schedule``."""
    return get_schedule(schedule).bubble_fraction(pp, n_microbatches, virtual_stages,
                                                  t_f, t_b, t_w)


def bubble_time(schedule: str, pp: int, virtual_stages: int, t_f: float, t_b: float,
                t_w: float) -> float:
    """Idle seconds per step on the slowest stage for per-microbatch pass times ``t_f``,
    ``t_b`` (input gradients) and ``t_w`` (weight gradients)."""
    return get_schedule(schedule).bubble_time(pp, virtual_stages, t_f, t_b, t_w)
