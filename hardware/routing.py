"""Links of a cluster as integer ids, and the route between any two GPUs, vectorised.

The topology is never walked as a graph to answer a query: every directed link has an integer
id computed from its place (node, GPU, NIC, leaf), and the route between two ranks is a closed
form of their node, local index, NIC and leaf. This keeps a 16,384-GPU cluster O(1) to build and
lets contention queries count link loads with ``numpy.bincount`` over all concurrent hops.

Link classes (each directed, so each direction is its own shared resource):

=====  =============================  ===========================================  ==========
class  from -> to                     bandwidth (bytes/s, per direction)           latency
=====  =============================  ===========================================  ==========
UP     GPU -> NVSwitch                intra_link.bandwidth x intra_links_per_gpu    intra/2
DOWN   NVSwitch -> GPU                same                                          intra/2
MESH   GPU i -> GPU j (mesh systems)  intra_link.bandwidth x ports(i, j)            intra
G2N    GPU -> its NIC (PCIe)          nic_link.bandwidth (never the bottleneck)     0
N2G    NIC -> GPU                     same                                          0
NUP    NIC -> leaf switch             nic_link.bandwidth                            nic/2
NDN    leaf switch -> NIC             nic_link.bandwidth                            nic/2
LUP    leaf -> spine                  leaf downlink capacity / oversubscription     switch
LDN    spine -> leaf                  same                                          switch
=====  =============================  ===========================================  ==========

Routes: same GPU -> no link; same node -> UP, DOWN (switch) or the fewest-hop, widest mesh path;
other node -> G2N, NUP, [LUP, LDN if the two NICs sit on different leaves], NDN, N2G. GPU i uses
NIC ``i * nics_per_node // gpus_per_node``. A fat-tree leaf serves ``nodes_per_leaf`` whole nodes;
a rail-optimised scalable unit of ``nodes_per_leaf`` nodes has one leaf per rail (NIC index), so
traffic between different rails goes through the spine (NCCL's PXN, which would first hop over
NVLink to the right rail, is not modelled).
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import numpy as np

from hardware.types import System
from sim.errors import HardwareError

CLASSES = ("UP", "DOWN", "MESH", "G2N", "N2G", "NUP", "NDN", "LUP", "LDN")
SLOTS = 6  # the longest route: G2N NUP LUP LDN NDN N2G (mesh routes are at most 6 hops too)


class LinkSpace:
    """Integer ids of every directed link of ``system`` x ``n_nodes`` and routes between ranks."""

    def __init__(self, system: System, n_nodes: int, n_gpus: int):
        self.system, self.n_nodes, self.n_gpus = system, n_nodes, n_gpus
        self.G, self.K = system.gpus_per_node, system.nics_per_node
        so = system.scale_out
        self.rail = so.topology == "rail-optimized"
        self.npl = so.nodes_per_leaf
        self.mesh = system.intra_topology != "switch"
        sizes = {"UP": 0 if self.mesh else n_nodes * self.G, "MESH": 0,
                 "G2N": n_nodes * self.G, "NUP": n_nodes * self.K, "LUP": self.n_leaves}
        if self.mesh:
            sizes["MESH"] = n_nodes * self.G * self.G
        sizes.update(DOWN=sizes["UP"], N2G=sizes["G2N"], NDN=sizes["NUP"], LDN=sizes["LUP"])
        self.offset, total = {}, 0
        for cls in CLASSES:
            self.offset[cls] = total
            total += sizes[cls]
        self.size, self.total = sizes, total

    # --- places -------------------------------------------------------------------------------
    @property
    def n_leaves(self) -> int:
        units = math.ceil(self.n_nodes / self.npl)
        return units * self.K if self.rail else units

    def nic_of_local(self, local):
        return local * self.K // self.G

    def leaf_of(self, ranks):
        """Leaf switch id of each rank's NIC (numpy-vectorised)."""
        node, local = np.divmod(np.asarray(ranks), self.G)
        unit = node // self.npl
        return unit * self.K + self.nic_of_local(local) if self.rail else unit

    def leaf_of_nic(self, node: int, nic: int) -> int:
        """Leaf switch id of NIC ``nic`` of ``node`` (plain ints, no numpy)."""
        unit = node // self.npl
        return unit * self.K + nic if self.rail else unit

    @cached_property
    def mesh_edges(self) -> list[tuple[int, int, int]]:
        """(i, j, ports) for every ordered local GPU pair joined directly."""
        return [(i, j, int(self.mesh_ports[i, j])) for i in range(self.G) for j in range(self.G)
                if self.mesh_ports[i, j]]

    # --- link properties ----------------------------------------------------------------------
    @cached_property
    def class_bandwidth(self) -> dict[str, float]:
        s = self.system
        nic = s.nic_link.bandwidth
        down_ports = self.npl * (1 if self.rail else self.K)  # NIC ports under one leaf
        uplink = down_ports * nic / s.scale_out.oversubscription  # ScaleOut docstring: down/up
        return {"UP": s.intra_node_bandwidth, "DOWN": s.intra_node_bandwidth, "G2N": nic,
                "N2G": nic, "NUP": nic, "NDN": nic, "LUP": uplink, "LDN": uplink}

    @cached_property
    def class_latency(self) -> dict[str, float]:
        s = self.system
        half_intra, half_nic = s.intra_link.latency / 2, s.nic_link.latency / 2
        return {"UP": half_intra, "DOWN": half_intra, "MESH": s.intra_link.latency, "G2N": 0.0,
                "N2G": 0.0, "NUP": half_nic, "NDN": half_nic,
                "LUP": s.scale_out.switch_latency, "LDN": s.scale_out.switch_latency}

    @cached_property
    def mesh_ports(self) -> np.ndarray:
        """ports[i, j]: intra-node links between local GPUs i and j (mesh systems)."""
        G, s = self.G, self.system
        ports = np.zeros((G, G), dtype=np.int64)
        if s.intra_topology == "full-mesh":
            ports[:] = s.intra_links_per_gpu // max(G - 1, 1)
            np.fill_diagonal(ports, 0)
        for a, b, n in s.intra_mesh:
            ports[a, b] = ports[b, a] = n
        return ports

    @cached_property
    def bandwidth_table(self) -> np.ndarray:
        """Bandwidth of every link id (bytes/s)."""
        bw = np.empty(self.total)
        for cls in CLASSES:
            lo = self.offset[cls]
            if cls == "MESH" and self.mesh:
                per_node = (self.mesh_ports * self.system.intra_link.bandwidth).ravel()
                bw[lo:lo + self.size[cls]] = np.tile(per_node, self.n_nodes)
            elif cls != "MESH":
                bw[lo:lo + self.size[cls]] = self.class_bandwidth[cls]
        return bw

    @cached_property
    def latency_table(self) -> np.ndarray:
        lat = np.empty(self.total)
        for cls in CLASSES:
            lo = self.offset[cls]
            lat[lo:lo + self.size[cls]] = self.class_latency[cls]
        return lat

    # --- mesh routes --------------------------------------------------------------------------
    @cached_property
    def mesh_routes(self) -> np.ndarray:
        """routes[i, j, m]: local edge id (a*G+b) of hop m from GPU i to GPU j, -1 padded.
        Fewest hops first, then the widest bottleneck, then lexicographic (deterministic)."""
        G, ports = self.G, self.mesh_ports
        routes = np.full((G, G, SLOTS), -1, dtype=np.int64)
        for i, j in itertools.permutations(range(G), 2):
            path = _widest_shortest(ports, i, j)
            if path is None:
                raise HardwareError(f"system '{self.system.name}': GPUs {i} and {j} are not "
                                    f"connected by the intra-node mesh; fix intra_node.mesh")
            for m, (a, b) in enumerate(zip(path, path[1:], strict=False)):
                routes[i, j, m] = a * G + b
        return routes

    # --- routes -------------------------------------------------------------------------------
    def hop_links(self, src, dst) -> np.ndarray:
        """(len(src), SLOTS) link ids of the route src[h] -> dst[h], -1 padded."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        out = np.full((src.size, SLOTS), -1, dtype=np.int64)
        na, la = np.divmod(src, self.G)
        nb, lb = np.divmod(dst, self.G)
        intra = (na == nb) & (src != dst)
        self._intra(out, intra, na, la, lb)
        self._inter(out, na != nb, na, la, nb, lb, src, dst)
        return out

    def _intra(self, out, sel, node, la, lb) -> None:
        o = self.offset
        if self.mesh:
            steps = self.mesh_routes[la[sel], lb[sel]]
            ids = o["MESH"] + node[sel, None] * self.G * self.G + steps
            out[sel] = np.where(steps >= 0, ids, -1)
        else:
            out[sel, 0] = o["UP"] + node[sel] * self.G + la[sel]
            out[sel, 1] = o["DOWN"] + node[sel] * self.G + lb[sel]

    def _inter(self, out, sel, na, la, nb, lb, src, dst) -> None:
        o, G, K = self.offset, self.G, self.K
        leaf_a, leaf_b = self.leaf_of(src[sel]), self.leaf_of(dst[sel])
        cross = leaf_a != leaf_b
        out[sel, 0] = o["G2N"] + na[sel] * G + la[sel]
        out[sel, 1] = o["NUP"] + na[sel] * K + self.nic_of_local(la[sel])
        out[sel, 2] = np.where(cross, o["LUP"] + leaf_a, -1)
        out[sel, 3] = np.where(cross, o["LDN"] + leaf_b, -1)
        out[sel, 4] = o["NDN"] + nb[sel] * K + self.nic_of_local(lb[sel])
        out[sel, 5] = o["N2G"] + nb[sel] * G + lb[sel]

    # --- ids <-> readable keys ----------------------------------------------------------------
    def class_of(self, link_id: int) -> str:
        for cls in reversed(CLASSES):
            if self.size[cls] and link_id >= self.offset[cls]:
                return cls
        raise HardwareError(f"link id {link_id} out of range")

    def key(self, link_id: int) -> tuple:
        """Readable LinkKey (from_vertex, to_vertex), the edge of ``Cluster.graph``."""
        cls = self.class_of(int(link_id))
        i = int(link_id) - self.offset[cls]
        if cls == "MESH":
            node, rest = divmod(i, self.G * self.G)
            a, b = divmod(rest, self.G)
            return ("gpu", node, a), ("gpu", node, b)
        if cls in ("LUP", "LDN"):
            pair = (("leaf", i), ("spine",))
        elif cls in ("NUP", "NDN"):
            node, k = divmod(i, self.K)
            pair = (("nic", node, k), ("leaf", self.leaf_of_nic(node, k)))
        else:
            node, g = divmod(i, self.G)
            other = ("nvsw", node) if cls in ("UP", "DOWN") else ("nic", node,
                                                                   self.nic_of_local(g))
            pair = (("gpu", node, g), other)
        return pair if cls in ("UP", "G2N", "NUP", "LUP") else pair[::-1]

    def link_id(self, key) -> int:
        """Inverse of ``key``; raises HardwareError for a link this cluster does not have."""
        try:
            (kind_a, *ia), (kind_b, *ib) = key
            return self._id_of(kind_a, ia, kind_b, ib)
        except (TypeError, ValueError, KeyError):
            raise HardwareError(f"no link {key!r} in this cluster; use keys from "
                                f"Cluster.path_links() or Cluster.graph.edges") from None

    def _id_of(self, kind_a, ia, kind_b, ib) -> int:
        o, G, K = self.offset, self.G, self.K
        kinds = (kind_a, kind_b)
        table = {
            ("gpu", "nvsw"): ("UP", lambda: ia[0] * G + ia[1]),
            ("nvsw", "gpu"): ("DOWN", lambda: ib[0] * G + ib[1]),
            ("gpu", "gpu"): ("MESH", lambda: ia[0] * G * G + ia[1] * G + ib[1]),
            ("gpu", "nic"): ("G2N", lambda: ia[0] * G + ia[1]),
            ("nic", "gpu"): ("N2G", lambda: ib[0] * G + ib[1]),
            ("nic", "leaf"): ("NUP", lambda: ia[0] * K + ia[1]),
            ("leaf", "nic"): ("NDN", lambda: ib[0] * K + ib[1]),
            ("leaf", "spine"): ("LUP", lambda: ia[0]),
            ("spine", "leaf"): ("LDN", lambda: ib[0]),
        }
        cls, index = table[kinds]
        i = index()
        if not 0 <= i < self.size[cls] or self.key(o[cls] + i) != (
                (kind_a, *ia), (kind_b, *ib)):
            raise KeyError(kinds)
        return o[cls] + i


def _widest_shortest(ports: np.ndarray, src: int, dst: int) -> list[int] | None:
    """BFS layers from src; among fewest-hop paths pick the widest (max of min ports)."""
    G = len(ports)
    best = {src: (float("inf"), [src])}
    frontier = [src]
    while frontier and dst not in best:
        nxt: dict[int, tuple[float, list[int]]] = {}
        for u in frontier:
            for v in range(G):
                if ports[u, v] and v not in best:
                    width = min(best[u][0], ports[u, v])
                    cand = (width, best[u][1] + [v])
                    if v not in nxt or (-cand[0], cand[1]) < (-nxt[v][0], nxt[v][1]):
                        nxt[v] = cand
        best.update(nxt)
        frontier = sorted(nxt)
    return best[dst][1] if dst in best else None
