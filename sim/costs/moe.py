"""Mixture-of-Experts routing arithmetic: loads, capacity, drops, imbalance.

A MoE layer sends each of ``T`` tokens to ``k`` of ``E`` experts, so ``T*k`` expert slots are
filled. How they spread over the experts is an input: ``uniform`` (the balanced ideal), a given
per-expert share vector, or a Zipf(s) skew (``zipf_shares``; a stand-in for a router that
favours a few experts). Loads are split deterministically by largest remainder, or sampled
(multinomial over slots, a numpy ``Generator`` for reproducibility) when an ``rng`` is given.

Capacity (Lepikhin et al. 2020, GShard Sec. 2.2; Fedus et al. 2021, Switch Eq. 3):
``C = ceil(capacity_factor * T * k / E)`` slots per expert. A capacity-based kernel computes all
``E*C`` slots: padding when ``C`` exceeds an expert's load, and the overflow tokens beyond ``C``
are dropped (they skip the expert through the residual). Without a capacity factor the layer is
dropless (Gale et al. 2022, MegaBlocks) and computes exactly the routed slots.

Experts of a layer run in parallel on different GPUs under expert parallelism, so the layer
waits for the busiest one: the *pace* is the maximum computed load, and ``imbalance_factor =
max/mean`` is how much slower than balanced the layer is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import ConfigError
from sim.model.config import ModelConfig


def capacity(cf: float | None, tokens: int, top_k: int, n_experts: int) -> int | None:
    """Slots per expert, ``ceil(cf * T * k / E)`` (GShard Sec. 2.2); None when dropless."""
    if cf is None:
        return None
    if cf <= 0:
        raise ConfigError(f"capacity_factor={cf} must be positive (or None for dropless)")
    return math.ceil(cf * tokens * top_k / n_experts)


def uniform_shares(n_experts: int) -> np.ndarray:
    return np.full(n_experts, 1.0 / n_experts)


def zipf_shares(n_experts: int, s: float, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """Shares proportional to 1/rank^s (Zipf 1949); s=0 is uniform. With ``rng``, the ranking is
    assigned to experts in a random (seeded) order, otherwise expert 0 is the most popular."""
    if s < 0:
        raise ConfigError(f"zipf exponent s={s} must be >= 0")
    w = 1.0 / np.arange(1, n_experts + 1, dtype=float) ** s
    w /= w.sum()
    return w if rng is None else w[rng.permutation(n_experts)]


def _check_shares(shares: np.ndarray, n_experts: int) -> np.ndarray:
    shares = np.asarray(shares, dtype=float)
    if shares.shape != (n_experts,) or (shares < 0).any() or not shares.sum() > 0:
        raise ConfigError(f"expert shares must be {n_experts} non-negative numbers with a "
                          "positive sum (one per expert)")
    return shares / shares.sum()


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    raw = shares * total
    base = np.floor(raw).astype(np.int64)
    short = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")  # ties: lower expert index first
    base[order[:short]] += 1
    return base


def expert_loads(tokens: int, n_experts: int, top_k: int, shares=None, *,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Slots routed to each expert (int array summing to tokens*top_k)."""
    shares = uniform_shares(n_experts) if shares is None else _check_shares(shares, n_experts)
    slots = tokens * top_k
    if rng is None:
        return _largest_remainder(slots, shares)
    return rng.multinomial(slots, shares).astype(np.int64)


def dropped_fraction(loads: np.ndarray, cap: int | None) -> float:
    """Fraction of routed slots beyond capacity (Switch Transformer Sec. 2.2 token dropping)."""
    total = int(np.sum(loads))
    if cap is None or total == 0:
        return 0.0
    return float(np.maximum(np.asarray(loads) - cap, 0).sum()) / total


def imbalance_factor(loads: np.ndarray) -> float:
    """max/mean of the loads: how much longer the busiest expert runs than a balanced one."""
    loads = np.asarray(loads, dtype=float)
    mean = loads.mean()
    return float(loads.max() / mean) if mean > 0 else 1.0


@dataclass(frozen=True)
class Routing:
    """Outcome of routing ``tokens`` tokens through one MoE layer."""

    loads: tuple[int, ...]  # routed slots per expert
    capacity: int | None
    processed: int  # slots that reach an expert (routed minus dropped)
    computed: int  # slots the kernels compute (processed + padding)
    max_computed: int  # busiest expert's computed slots: sets the layer's pace
    dropped_fraction: float
    imbalance: float  # max/mean of routed loads

    @property
    def padding(self) -> int:
        return self.computed - self.processed


def route(model: ModelConfig, tokens: int, shares=None, *,
          rng: np.random.Generator | None = None,
          capacity_factor: float | None | str = "model") -> Routing:
    """Route ``tokens`` tokens through a MoE layer of ``model`` (capacity from the model unless
    ``capacity_factor`` is given; None forces dropless)."""
    m = model.moe
    if m is None:
        raise ConfigError(f"model '{model.name}' has no MoE layers to route")
    cf = m.capacity_factor if capacity_factor == "model" else capacity_factor
    loads = expert_loads(tokens, m.n_experts, m.top_k, shares, rng=rng)
    cap = capacity(cf, tokens, m.top_k, m.n_experts)
    processed = loads if cap is None else np.minimum(loads, cap)
    computed = processed if cap is None else np.full_like(loads, cap)
    return Routing(tuple(int(x) for x in loads), cap, int(processed.sum()), int(computed.sum()),
                   int(computed.max()), dropped_fraction(loads, cap), imbalance_factor(loads))


def expected_experts_touched(n_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit by ``tokens`` uniformly routed tokens:
    E * (1 - (1 - k/E)^T) (occupancy of E bins, each token choosing k distinct ones)."""
    if tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)
