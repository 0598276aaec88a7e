"""Serving simulation: request streams through batching policies on model replicas.

A workload (``workload``) of requests arrives at a router (``engine``) that spreads them over
replicas; each replica (``replica``) runs a SimPy process whose every turn is one iteration of
the model, priced by the cost model (``steptime``) for that iteration's actual mix of prefill
and decode tokens. A batching policy (``policies``) picks each iteration's contents; the paged
KV cache (``kvcache``) is a hard memory limit. Results (``results``) are per-request records
and aggregates; ``simulate_serving`` (``api``) ties it together. See docs/design-serving.md.
"""

import importlib

from sim.serving.native import use_fresh_sources

use_fresh_sources()  # an edited lean.py runs as written, never a stale compiled build

_HOMES = {"ServingResult": "api", "run_simulation": "api", "simulate_serving": "api",
          "ServingConfig": "config", "ArrivalSpec": "workload", "LengthSpec": "workload",
          "Workload": "workload", "make_workload": "workload"}


def __getattr__(name: str):
    """Names are imported on first use (PEP 562), so ``import sim.serving.config`` (the CLI
    registering ``serve``) does not load the engine, numpy's random module or pandas."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"sim.serving.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'sim.serving' has no attribute {name!r}")


__all__ = ["ArrivalSpec", "LengthSpec", "ServingConfig", "ServingResult", "Workload",
           "make_workload", "run_simulation", "simulate_serving"]
