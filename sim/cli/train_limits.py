"""How much work a DES training step is, estimated before it starts.

The engine simulates one pipeline per simulated data-parallel replica (one, or two with a
straggler); each of its ``n_microbatches`` microbatches runs every layer's forward and
backward ops on its stage, and each op is a few SimPy events (request, timeout, record),
collectives a few more per ring step. ``EVENTS_PER_LAYER_PASS`` was measured on this tree
(``simulated_events`` of llama3-8b and mixtral-8x7b plans divided by microbatches x layers;
see tests/test_fuzz_properties.py for the check that the estimate stays an upper bound).
"""

from __future__ import annotations

from sim.limits import check_events

EVENTS_PER_LAYER_PASS = 400  # upper bound over the measured plans (dense ~60-120, MoE ~150-250)


def estimate_des_events(model, plan, replicas: int = 2) -> float:
    """Simulated events of one DES step (upper bound)."""
    # every layer runs once per microbatch, however the stages are interleaved
    return float(plan.n_microbatches) * model.n_layers * EVENTS_PER_LAYER_PASS * replicas + 1e4


def check_des_work(model, plan, args) -> None:
    """Refuse a DES step above the machine's event budget, naming the flag that shrinks it."""
    check_events(estimate_des_events(model, plan), "this DES training step",
                 "--global-batch (or raise --micro-batch / --dp, or use --engine analytic)")
