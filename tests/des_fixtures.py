"""A small stand-in cluster for the DES tests: the real system's accelerator with a simple
two-level network (per-GPU NVLink port, per-node NIC). Used only where the test needs exact,
hand-checkable bandwidths; the end-to-end tests use ``hardware.Cluster`` when present."""

from __future__ import annotations

import hardware

NVLINK, NIC, ALPHA_NV, ALPHA_IB = 450e9, 50e9, 1e-6, 5e-6


class SimpleCluster:
    def __init__(self, n_gpus: int, system: str = "dgx-h100", gpus_per_node: int = 8):
        self.system = hardware.get_system(system)
        self.accelerator = self.system.accelerator
        self.n_gpus, self.gpus_per_node = n_gpus, gpus_per_node
        self.n_nodes = max(1, n_gpus // gpus_per_node)

    def node_of(self, rank):
        return rank // self.gpus_per_node

    def path_links(self, a, b):
        if self.node_of(a) == self.node_of(b):
            return [("nv_out", a), ("nv_in", b)]
        return [("nic_out", a), ("nic_in", b)]

    def link_bandwidth(self, key):
        return NVLINK if key[0].startswith("nv") else NIC

    def _inter(self, ranks):
        return len({self.node_of(r) for r in ranks}) > 1

    def ring_bandwidth(self, ranks):
        return NIC if self._inter(ranks) else NVLINK

    def ring_latency(self, ranks):
        return ALPHA_IB if self._inter(ranks) else ALPHA_NV

    all_to_all_bandwidth = ring_bandwidth

    def bandwidth(self, a, b):
        return self.ring_bandwidth([a, b])

    def latency(self, a, b):
        return self.ring_latency([a, b])
