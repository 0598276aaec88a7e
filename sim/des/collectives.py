"""Collectives executed as their algorithm's steps over the links they cross.

The engine simulates one representative rank of each group (symmetry): every rank of a group
does the same thing at the same time, so the representative's sends, over the links between it
and its peer, are the collective's critical path. An algorithm is written as *phases* run in
sequence; a phase is a set of concurrent sends ``Step(peer, nbytes, hops, price)`` from the
representative. Consecutive ring steps to the same peer are fused into one Step (``hops``
counts them; each hop pays the per-hop latency alpha) -- exact under the fabric's sharing model
because the flow crosses the same links, and it keeps the event count low. ``price`` names the
per-hop bandwidth/latency the cluster reports for the step: ``("ring", ranks)`` (a ring over
those ranks with every symmetric group running at once), ``("a2a", ranks)`` or ``("p2p", (a,
b))``, the same figures ``sim.costs.comm.collective_time`` uses, so with no other traffic a
simulated collective takes exactly the analytic time.

Algorithms (S = NCCL's "size", the full buffer per rank; n ranks; NCCL performance.md):
- ring all-reduce: reduce-scatter then all-gather, 2(n-1) steps of S/n to the next rank
  (Patarasuk & Yuan 2009): 2(n-1)/n * S/B + 2(n-1) * alpha. All-gather / reduce-scatter: n-1
  steps of S/n. Broadcast: pipelined ring, n-1 hops, S bytes.
- tree (Thakur, Rabenseifner & Gropp 2005, Sec. 4): recursive halving then doubling; step k
  talks to the partner 2^k ranks away and moves half the previous step's bytes, priced as that
  pair (all same-shaped pairs at once); ceil(log2 n) steps per phase, (n-1)/n * S per phase.
- hierarchical: intra-node ring reduce-scatter, ring all-reduce of S/g among the same-local-rank
  GPUs of the k nodes, intra-node ring all-gather (all-gather / reduce-scatter: two phases).
- all-to-all: pairwise exchange, n-1 sequential steps of S/n, one to each peer.
- send_recv: one send of S to ``ranks[1]`` over the pair's own path, priced as the pair's
  2-rank ring (every translate of the pair sends at once: a whole pipeline boundary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALGORITHMS = ("ring", "tree", "hierarchical")


@dataclass(frozen=True)
class Step:
    peer: int
    nbytes: float
    hops: int
    price: tuple  # ("ring" | "a2a" | "p2p", ranks): whose per-hop bandwidth/latency apply


def ring_phases(kind: str, nbytes: float, ranks: tuple[int, ...]) -> list[list[Step]]:
    n = len(ranks)
    if n < 2 or nbytes <= 0:
        return []
    price, nxt = ("ring", ranks), ranks[1]
    if kind == "all_reduce":
        return [[Step(nxt, 2 * (n - 1) / n * nbytes, 2 * (n - 1), price)]]
    if kind == "broadcast":
        return [[Step(nxt, nbytes, n - 1, price)]]
    if kind == "all_to_all":
        return [[Step(peer, nbytes / n, 1, ("a2a", ranks))] for peer in ranks[1:]]
    if kind == "send_recv":
        return [[Step(nxt, nbytes, 1, ("p2p", ranks[:2]))]]
    return [[Step(nxt, (n - 1) / n * nbytes, n - 1, price)]]  # all_gather, reduce_scatter


def _halving(nbytes: float, ranks: tuple[int, ...]) -> list[list[Step]]:
    """One recursive-halving (or doubling) pass: step k sends S/2^(k+1) to the partner 2^k
    away, priced as that pair with every same-shaped pair exchanging at once. For n not a
    power of two: ceil(log2 n) steps scaled to move (n-1)/n * S, at the group's ring price."""
    n = len(ranks)
    steps = math.ceil(math.log2(n))
    weights = [2.0 ** -(k + 1) for k in range(steps)]
    scale = (n - 1) / n * nbytes / sum(weights)
    power = n & (n - 1) == 0

    def price(k: int) -> tuple:
        return ("ring", (ranks[0], ranks[1 << k])) if power else ("ring", ranks)

    return [[Step(ranks[min(1 << k, n - 1)], w * scale, 1, price(k))]
            for k, w in enumerate(weights)]


def tree_phases(kind: str, nbytes: float, ranks: tuple[int, ...]) -> list[list[Step]]:
    if kind in ("all_to_all", "send_recv") or len(ranks) < 2 or nbytes <= 0:
        return ring_phases(kind, nbytes, ranks)
    if kind == "broadcast":  # binomial tree: log2 n hops of the whole message
        return [[Step(ranks[1], nbytes, math.ceil(math.log2(len(ranks))), ("ring", ranks))]]
    one = _halving(nbytes, ranks)
    return one + one[::-1] if kind == "all_reduce" else one


def hierarchical_phases(kind: str, nbytes: float, ranks: tuple[int, ...], node_of
                        ) -> list[list[Step]]:
    nodes: dict[int, list[int]] = {}
    for r in ranks:
        nodes.setdefault(node_of(r), []).append(r)
    local = tuple(nodes[node_of(ranks[0])])
    g, k = len(local), len(nodes)
    uniform = all(len(v) == g for v in nodes.values())
    if kind not in ("all_reduce", "all_gather", "reduce_scatter") or g < 2 or k < 2 \
            or not uniform:
        return ring_phases(kind, nbytes, ranks)
    leaders = tuple(v[0] for v in nodes.values())
    intra_rs = ring_phases("reduce_scatter", nbytes, local)
    inter = ring_phases(kind, nbytes / g, leaders)
    intra_ag = ring_phases("all_gather", nbytes, local)
    if kind == "all_reduce":
        return intra_rs + inter + intra_ag
    return inter + intra_ag if kind == "all_gather" else intra_rs + inter


def phases(kind: str, nbytes: float, ranks, algorithm: str, node_of) -> list[list[Step]]:
    """The step plan of a collective seen from ``ranks[0]``."""
    ranks = tuple(ranks)
    if algorithm == "tree":
        return tree_phases(kind, nbytes, ranks)
    if algorithm == "hierarchical":
        return hierarchical_phases(kind, nbytes, ranks, node_of)
    return ring_phases(kind, nbytes, ranks)


def ideal_time(plan: list[list[Step]], bandwidth, latency) -> float:
    """Time of a step plan with no other traffic: phases in sequence, the slowest send of a
    phase gates it; ``bandwidth(price)``/``latency(price)`` give the per-hop figures."""
    return sum(max(s.hops * latency(s.price) + s.nbytes / bandwidth(s.price) for s in phase)
               for phase in plan if phase)
