"""A synthetic pipeline workload: fixed forward/backward times per virtual stage.

Used to check the schedules against their closed forms (bubble (p-1)/(m+p-1), live
activations) and to teach: it runs the same ``PipelineRun`` the real engine does, with each
virtual stage's forward taking ``t_fwd / v`` (a stage's layers split over its v chunks) and no
communication cost unless ``p2p_s`` is given.
"""

from __future__ import annotations

import math

import simpy

from sim.des import metrics
from sim.des.engine import Gpu, Recorder
from sim.des.pipeline import PipelineRun, Segment
from sim.des.schedules import build_schedule, get_schedule


class UniformWork:
    def __init__(self, p, m, v, t_fwd, t_bwd, t_w=0.0, act_bytes=1.0, split_w=False):
        self.n_virtual, self.n_microbatches = p * v, m
        self.times = {"F": t_fwd / v, "B": (t_bwd - t_w) / v if split_w else t_bwd / v,
                      "W": t_w / v}
        self.act = act_bytes
        self.frees_activations_at = "W" if split_w else "B"

    def activation_bytes(self, vs):
        return self.act

    def task_segments(self, vs, kind, mb, merged=False):
        name = f"{kind} vs{vs}"
        return [(vs, [Segment("compute", name, duration=self.times[kind])])]

    def grads_in(self, kind):
        return False

    def p2p_bytes(self, vs):
        return 0.0


class _FreeNet:
    """A network where every send takes a fixed time (no links)."""

    def __init__(self, env, seconds):
        self.env, self.seconds = env, seconds

    def collective(self, kind, nbytes, ranks, algorithm="auto"):
        if self.seconds > 0:
            yield self.env.timeout(self.seconds)


def run_uniform(schedule: str, p: int, m: int, v: int = 1, t_fwd: float = 1.0,
                t_bwd: float = 2.0, t_w: float = 0.0, p2p_s: float = 0.0):
    """Simulate one step of the synthetic pipeline; returns (records, gpus)."""
    env = simpy.Environment()
    gpus = [Gpu(env, s, s, math.inf) for s in range(p)]
    split_w = get_schedule(schedule).splits_weight_grad
    work = UniformWork(p, m, v, t_fwd, t_bwd, t_w, split_w=split_w)
    rec = Recorder()
    run = PipelineRun(env, _FreeNet(env, p2p_s), gpus, work, build_schedule(schedule, p, m, v),
                      rec)
    run.start()
    env.run()
    return rec, gpus


def bubble_fraction(schedule: str, p: int, m: int, v: int = 1, **kw) -> float:
    rec, _ = run_uniform(schedule, p, m, v, **kw)
    return metrics.bubble_fraction(metrics.intervals_frame(rec))
