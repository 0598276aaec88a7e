"""Discrete-event training simulation in SimPy (see docs/design-des.md).

``simulate_train(model, plan, cluster, seed=..., straggler=...)`` simulates one training
step: pipeline schedules (``sim.schedules``), streams, shared links, collectives as algorithm
steps, HBM over time. The cost model (``sim.costs``) prices every op; this package only
schedules them and returns records (``DesResult.ops``/``memory``); writing a trace
(``sim.des.trace``) or drawing a timeline (``sim.plots.timeline``) is the caller's job.
"""

from sim.des.simulate import DesResult, simulate_train
from sim.des.train import Straggler

__all__ = ["DesResult", "Straggler", "simulate_train"]
