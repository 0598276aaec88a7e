"""Bandwidth of a collective when every group of the same shape runs at once.

A collective over a group (a TP group, a DP group...) never runs alone: the plan splits the
cluster into many groups of the same shape, and they all communicate at the same time. They
share NICs (two GPUs behind one NIC), leaf uplinks and the spine. The model is a fluid one:

1. *Family.* The concurrent groups are the translates ``group + t`` that tile the ranks: the
   group itself first, then greedily every uncovered rank r gets the translate starting at r if
   it fits and is disjoint (for Megatron layouts this is exactly the set of groups of that kind).
2. *Flows.* A ring over n ranks is n concurrent flows r_i -> r_(i+1); an all-to-all is the
   n (n - 1) flows of every ordered pair. Each flow follows its route (``hardware.routing``).
3. *Sharing.* A directed link of bandwidth B carrying L flows gives each B / L (equal share);
   a flow gets the share of its most loaded link (bottleneck fair share). For the all-to-all, where
   every flow carries the same bytes, the slowest flow sets the time, so the per-rank bandwidth is
   (n - 1) x min over the group's links of B / L.

Only groups with a member on one of the queried group's nodes or leaves can load its links, so
only those are enumerated (``relevant``); the answer is unchanged and big clusters stay fast.

Spine oversubscription enters through the leaf-uplink bandwidth (downlink capacity divided by
the oversubscription factor, ``ScaleOut``): when all ranks under a leaf send across the spine,
each gets its NIC rate / oversubscription. A ring in rank order leaves each leaf once per
direction, so it is slowed only when the uplink is below one NIC (oversubscription >
nodes_per_leaf on a rail leaf); cross-rail hops, far tree partners, all-to-all and pipeline
boundaries put many flows on the uplink and are (docs/design-hardware.md, "Oversubscription").
"""

from __future__ import annotations

import math

import numpy as np

from hardware.routing import LinkSpace


def family(ranks: np.ndarray, n_gpus: int) -> np.ndarray:
    """(T, n) array: ``ranks`` first, then its disjoint translates tiling 0..n_gpus-1."""
    offsets = ranks - ranks.min()
    covered = np.zeros(n_gpus, dtype=bool)
    covered[ranks] = True
    rows = [ranks]
    span = int(offsets.max())
    for start in range(n_gpus - span):
        if covered[start]:
            continue
        cand = start + offsets
        if not covered[cand].any():
            covered[cand] = True
            rows.append(cand)
    return np.stack(rows)


def relevant(space: LinkSpace, fam: np.ndarray) -> np.ndarray:
    """The rows of fam that can share a link with fam[0]: a flow only touches its endpoints'
    GPU, NIC and leaf links (the spine is non-blocking), so a group with no member on one of
    fam[0]'s nodes or leaves never loads fam[0]'s links. Exact, and 10-100x fewer flows."""
    nodes = fam // space.G
    leaves = space.leaf_of(fam)
    near = np.isin(nodes, nodes[0]).any(axis=1) | np.isin(leaves, leaves[0]).any(axis=1)
    return fam[near]


def ring_share(space: LinkSpace, fam: np.ndarray) -> float:
    """Per-hop bandwidth of the ring fam[0] (in its order) with every row of fam running."""
    fam = relevant(space, fam)
    src = fam.ravel()
    dst = np.roll(fam, -1, axis=1).ravel()
    links = space.hop_links(src, dst)
    return _min_share(space, links, links[: fam.shape[1]])


def ring_hop_latency(space: LinkSpace, ranks: np.ndarray) -> float:
    """Largest summed latency of one hop of the ring (the per-step alpha)."""
    links = space.hop_links(ranks, np.roll(ranks, -1))
    lat = np.where(links >= 0, space.latency_table[np.maximum(links, 0)], 0.0)
    return float(lat.sum(axis=1).max())


def all_to_all_share(space: LinkSpace, fam: np.ndarray) -> float:
    """Per-rank send bandwidth of an all-to-all over fam[0] with every row of fam running."""
    fam = relevant(space, fam)
    n = fam.shape[1]
    src, dst = _pairs(fam)
    if src.size <= 4_000_000:
        links = space.hop_links(src, dst)
        own = links[: n * (n - 1)]
        return (n - 1) * _min_share(space, links, own)
    return (n - 1) * _min_share_chunked(space, src, dst, n * (n - 1))


def _pairs(fam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a != b) inside every row, row 0 first."""
    n = fam.shape[1]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return fam[:, i].ravel(), fam[:, j].ravel()


def _loads(space: LinkSpace, links: np.ndarray) -> np.ndarray:
    used = links[links >= 0]
    return np.bincount(used, minlength=space.total)


def _min_share(space: LinkSpace, links: np.ndarray, own: np.ndarray) -> float:
    loads = _loads(space, links)
    return _share_of(space, loads, own)


def _share_of(space: LinkSpace, loads: np.ndarray, own: np.ndarray) -> float:
    used = np.unique(own[own >= 0])
    if used.size == 0:
        return math.inf
    return float((space.bandwidth_table[used] / loads[used]).min())


def _min_share_chunked(space: LinkSpace, src, dst, n_own: int) -> float:
    loads = np.zeros(space.total, dtype=np.int64)
    step = 2_000_000
    for lo in range(0, src.size, step):
        loads += _loads(space, space.hop_links(src[lo:lo + step], dst[lo:lo + step]))
    return _share_of(space, loads, space.hop_links(src[:n_own], dst[:n_own]))
