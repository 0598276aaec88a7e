"""How much work a DES training step is, estimated before it starts.

The engine simulates one pipeline per simulated data-parallel replica (one, or two with a
straggler); each of its ``n_microbatches`` microbatches runs every layer's forward and
backward ops on its stage, and each op is a few SimPy events (request, timeout, record),
collectives a few more per ring step. ``EVENTS_PER_LAYER_PASS`` bounds what was measured on
this tree: ``simulated_events`` / (microbatches x layers) = 16 (llama3-8b tp2 pp2), 35
(mixtral-8x7b pp2 ep4), 28 (deepseek-v2-lite tp2 pp4 ep2), seq 1024, dgx-h100;
tests/test_flags.py checks the estimate stays above the count.
"""

from __future__ import annotations

from sim.limits import check_events

EVENTS_PER_LAYER_PASS = 100  # ~3x the largest measured (35, MoE), see the module docstring


def estimate_des_events(model, plan, replicas: int = 2) -> float:
    """Simulated events of one DES step (upper bound)."""
    # every layer runs once per microbatch, however the stages are interleaved
    return float(plan.n_microbatches) * model.n_layers * EVENTS_PER_LAYER_PASS * replicas + 1e4


def check_des_work(model, plan, args) -> None:
    """Refuse a DES step above the machine's event budget, naming the flag that shrinks it."""
    check_events(estimate_des_events(model, plan), "this DES training step",
                 "--global-batch (or raise --micro-batch / --dp, or use --engine analytic)")
