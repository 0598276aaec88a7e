"""A cluster: a system x a number of nodes, and the questions asked about its network.

``Cluster(system, n_nodes)`` (or ``Cluster.for_gpus(system, n_gpus)``, where fewer GPUs than
one node give a partial node) numbers GPUs rank-major by node: rank r lives on node
r // gpus_per_node as local GPU r % gpus_per_node. The network is the system's node fabric
(NVSwitch, or a GPU mesh), one NIC per ``gpus_per_node / nics_per_node`` GPUs, and a two-level
fat tree of leaf switches under a spine (``hardware.routing`` has the link table and routes).

Queries are closed-form on integer link ids, so constructing even a 16,384-GPU cluster is O(1)
and a contention query is one ``numpy.bincount``; ``graph`` builds the same topology as a
networkx DiGraph (lazily) for inspection, drawing and cross-checks, and its edges are exactly
the ``LinkKey``s that ``path_links`` returns; ``ring_links``/``all_to_all_links`` list the links a
collective crosses. ``bandwidth``/``latency`` are for one flow alone;
``ring_bandwidth``/``all_to_all_bandwidth`` for every group of that shape running at once
(``hardware.contention``).
"""

from __future__ import annotations

import math
import numbers
from functools import cached_property

import numpy as np

from hardware import contention
from hardware.loader import get_system
from hardware.routing import LinkSpace
from hardware.types import Accelerator, System
from sim.errors import HardwareError

LinkKey = tuple  # (from_vertex, to_vertex), e.g. (("gpu", 0, 3), ("nvsw", 0))


class Cluster:
    def __init__(self, system: System | str, n_nodes: int, n_gpus: int | None = None):
        self.system: System = get_system(system) if isinstance(system, str) else system
        G = self.system.gpus_per_node
        if not isinstance(n_nodes, numbers.Integral) or n_nodes < 1:
            raise HardwareError(f"a cluster needs a whole number of nodes >= 1, got {n_nodes!r}")
        self.n_nodes = n_nodes = int(n_nodes)
        self.n_gpus = n_nodes * G if n_gpus is None else n_gpus
        if n_gpus is not None and not (n_nodes == 1 and 1 <= n_gpus <= G):
            raise HardwareError("n_gpus may only be given for a single partial node")
        if n_nodes > 1 and self.system.scale_out.topology == "none":
            raise HardwareError(f"system '{self.system.name}' has no scale-out network "
                                f"(scale_out.topology = 'none'); use one node")
        self._space = LinkSpace(self.system, n_nodes, self.n_gpus)
        self._families: dict[tuple[int, ...], np.ndarray] = {}
        self._paths: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def for_gpus(cls, system: System | str, n_gpus: int) -> Cluster:
        system = get_system(system) if isinstance(system, str) else system
        G = system.gpus_per_node
        if not isinstance(n_gpus, numbers.Integral) or n_gpus < 1:
            raise HardwareError(f"n_gpus must be a positive integer, got {n_gpus!r}")
        n_gpus = int(n_gpus)
        if n_gpus < G:
            return cls(system, 1, n_gpus)
        if n_gpus % G:
            lo, hi = n_gpus // G * G, (n_gpus // G + 1) * G
            raise HardwareError(f"n_gpus={n_gpus} is not a whole number of {system.name} nodes "
                                f"({G} GPUs each); use {lo} or {hi}")
        return cls(system, n_gpus // G)

    def __repr__(self) -> str:
        return f"Cluster({self.system.name!r}, n_nodes={self.n_nodes}, n_gpus={self.n_gpus})"

    # --- layout -------------------------------------------------------------------------------
    @property
    def accelerator(self) -> Accelerator:
        return self.system.accelerator

    @property
    def gpus_per_node(self) -> int:
        return self.system.gpus_per_node

    @property
    def n_leaves(self) -> int:
        return self._space.n_leaves

    def _rank(self, r) -> int:
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer)) or not (
                0 <= r < self.n_gpus):
            raise HardwareError(f"rank {r!r} is not in this cluster (0..{self.n_gpus - 1})")
        return int(r)

    def node_of(self, rank: int) -> int:
        return self._rank(rank) // self.gpus_per_node

    def leaf_of(self, rank: int) -> int:
        """Leaf switch of the rank's NIC (per rail for rail-optimised networks)."""
        return int(self._space.leaf_of(self._rank(rank)))

    # --- links --------------------------------------------------------------------------------
    def path_links(self, a: int, b: int) -> list[LinkKey]:
        """Directed links a message from rank a to rank b crosses, in order."""
        return [self._space.key(i) for i in self._ids(a, b)]

    def link_bandwidth(self, key: LinkKey) -> float:
        """Bytes/s in the link's direction."""
        return float(self._space.bandwidth_table[self._space.link_id(key)])

    def link_latency(self, key: LinkKey) -> float:
        return float(self._space.latency_table[self._space.link_id(key)])

    def ring_links(self, ranks) -> dict[LinkKey, int]:
        """Links a ring over ``ranks`` (in that order) crosses -> how many of its hops use each,
        in order of first use."""
        ranks = [self._rank(r) for r in ranks]
        return self._count_links(ranks, ranks[1:] + ranks[:1]) if len(ranks) > 1 else {}

    def all_to_all_links(self, ranks) -> dict[LinkKey, int]:
        """Links an all-to-all over ``ranks`` crosses -> how many of its n (n - 1) flows use each."""
        ranks = [self._rank(r) for r in ranks]
        pairs = [(a, b) for a in ranks for b in ranks if a != b]
        return self._count_links([a for a, _ in pairs], [b for _, b in pairs])

    def _count_links(self, src: list[int], dst: list[int]) -> dict[LinkKey, int]:
        counts: dict[LinkKey, int] = {}
        for row in self._space.hop_links(src, dst):
            for i in row[row >= 0]:
                key = self._space.key(i)
                counts[key] = counts.get(key, 0) + 1
        return counts

    # --- point to point (one flow alone) ------------------------------------------------------
    def _ids(self, a: int, b: int) -> np.ndarray:
        pair = (self._rank(a), self._rank(b))
        if pair not in self._paths:
            if len(self._paths) > 1_000_000:  # bound the cache on huge all-pairs sweeps
                self._paths.clear()
            ids = self._space.hop_links([pair[0]], [pair[1]])[0]
            self._paths[pair] = ids[ids >= 0]
        return self._paths[pair]

    def bandwidth(self, a: int, b: int) -> float:
        """Bottleneck per-direction bandwidth of the path a -> b (inf for a == b)."""
        ids = self._ids(a, b)
        return float(self._space.bandwidth_table[ids].min()) if ids.size else math.inf

    def latency(self, a: int, b: int) -> float:
        """Summed link latency of the path a -> b (0 for a == b)."""
        return float(self._space.latency_table[self._ids(a, b)].sum())

    # --- collectives (every group of the same shape at once) ----------------------------------
    def _family(self, ranks) -> np.ndarray:
        key = tuple(self._rank(r) for r in ranks)
        if len(set(key)) != len(key):
            raise HardwareError(f"ranks of a group must be distinct, got {list(key)}")
        if key not in self._families:
            self._families[key] = contention.family(np.array(key, dtype=np.int64),
                                                    self.n_gpus)
        return self._families[key]

    def ring_bandwidth(self, ranks) -> float:
        """Per-hop bandwidth of a ring over ``ranks`` (in that order), every translate of the
        group communicating at once (NIC sharing, spine oversubscription). inf for < 2 ranks."""
        if len(ranks) < 2:
            return math.inf
        return contention.ring_share(self._space, self._family(ranks))

    def ring_latency(self, ranks) -> float:
        """Largest one-hop latency of the ring over ``ranks`` (0 for < 2 ranks)."""
        if len(ranks) < 2:
            return 0.0
        ranks = np.array([self._rank(r) for r in ranks], dtype=np.int64)
        return contention.ring_hop_latency(self._space, ranks)

    def all_to_all_bandwidth(self, ranks) -> float:
        """Bytes/s each rank sends to the others in an all-to-all over ``ranks`` with every
        translate of the group running at once. inf for < 2 ranks."""
        if len(ranks) < 2:
            return math.inf
        return contention.all_to_all_share(self._space, self._family(ranks))

    # --- graph --------------------------------------------------------------------------------
    @cached_property
    def graph(self):
        """networkx.DiGraph of GPUs, NVSwitches, NICs, leaves and spine; each edge has
        ``bandwidth`` (bytes/s, that direction), ``latency`` (s) and ``kind`` (link class).
        Above ``hardware.graph.COMPACT_ABOVE_GPUS`` GPUs it is compact (node 0 in detail,
        other nodes one vertex each; ``graph.graph["compact"]`` says which); ``full_graph()``
        always has every link."""
        from hardware.graph import COMPACT_ABOVE_GPUS, build_compact_graph

        if self.n_gpus > COMPACT_ABOVE_GPUS:
            return build_compact_graph(self._space)
        return self.full_graph()

    def full_graph(self):
        """Every GPU, switch, NIC and directed link; edges == the keys of ``path_links``."""
        from hardware.graph import build_graph

        return build_graph(self._space)
