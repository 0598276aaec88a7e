"""Serving simulation: request streams through batching policies on model replicas.

A workload (``workload``) of requests arrives at a router (``engine``) that spreads them over
replicas; each replica (``replica``) runs a SimPy process whose every turn is one iteration of
the model, priced by the cost model (``steptime``) for that iteration's actual mix of prefill
and decode tokens. A batching policy (``policies``) picks each iteration's contents; the paged
KV cache (``kvcache``) is a hard memory limit. Results (``results``) are per-request records
and aggregates; ``simulate_serving`` (``api``) ties it together. See docs/design-serving.md.
"""

from sim.serving.api import ServingResult, run_simulation, simulate_serving
from sim.serving.config import ServingConfig
from sim.serving.workload import ArrivalSpec, LengthSpec, Workload, make_workload

__all__ = ["ArrivalSpec", "LengthSpec", "ServingConfig", "ServingResult", "Workload",
           "make_workload", "run_simulation", "simulate_serving"]
