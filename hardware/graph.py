"""The cluster topology as a networkx DiGraph, built from the same link table the queries use.

Full graph: vertices ("gpu", node, i), ("nvsw", node) for switched nodes, ("nic", node, k),
("leaf", l) and ("spine",) when there is more than one leaf. Every directed link a route can use
is one edge, keyed exactly like ``Cluster.path_links`` returns it, with ``bandwidth`` (bytes/s in
that direction), ``latency`` (s) and ``kind`` (the link class of ``hardware.routing``).

Compact graph (what ``Cluster.graph`` gives for big clusters, so it stays small): node 0 in full
detail, the other nodes of each leaf group folded into one vertex ("nodes", unit) joined to the
unit's leaves (bandwidth = all the NICs they have on that leaf). Queries never need the graph: they are closed-form
on link ids (``hardware.routing``).
"""

from __future__ import annotations

import networkx as nx

from hardware.routing import LinkSpace

COMPACT_ABOVE_GPUS = 2048  # Cluster.graph is compact above this many GPUs


def _attrs(space: LinkSpace, cls: str, bandwidth: float | None = None) -> dict:
    bw = space.class_bandwidth.get(cls) if bandwidth is None else bandwidth
    return {"bandwidth": float(bw), "latency": float(space.class_latency[cls]), "kind": cls}


def _both(g: nx.DiGraph, pairs: list, up: dict, down: dict) -> None:
    g.add_edges_from(pairs, **up)
    g.add_edges_from(((v, u) for u, v in pairs), **down)


def _add_node_detail(g: nx.DiGraph, space: LinkSpace, node: int) -> None:
    G = space.G
    gpus = [r % G for r in range(node * G, min((node + 1) * G, space.n_gpus))]
    gv = {i: ("gpu", node, i) for i in gpus}
    g.add_nodes_from(gv.values(), kind="gpu")
    if space.mesh:
        link_bw = space.system.intra_link.bandwidth
        for i, j, ports in space.mesh_edges:
            if i in gv and j in gv:
                g.add_edge(gv[i], gv[j], **_attrs(space, "MESH", link_bw * ports))
    else:
        _both(g, [(gv[i], ("nvsw", node)) for i in gpus], _attrs(space, "UP"),
              _attrs(space, "DOWN"))
    _both(g, [(gv[i], ("nic", node, space.nic_of_local(i))) for i in gpus],
          _attrs(space, "G2N"), _attrs(space, "N2G"))
    nics = sorted({space.nic_of_local(i) for i in gpus})
    leaf = {k: space.leaf_of_nic(node, k) for k in nics}
    _both(g, [(("nic", node, k), ("leaf", leaf[k])) for k in nics], _attrs(space, "NUP"),
          _attrs(space, "NDN"))


def _add_spine(g: nx.DiGraph, space: LinkSpace) -> None:
    if space.n_leaves < 2:
        return
    leaves = sorted(v[1] for v in g.nodes if v[0] == "leaf")
    _both(g, [(("leaf", leaf), ("spine",)) for leaf in leaves], _attrs(space, "LUP"),
          _attrs(space, "LDN"))


def _new(space: LinkSpace, compact: bool) -> nx.DiGraph:
    return nx.DiGraph(system=space.system.name, n_nodes=space.n_nodes, n_gpus=space.n_gpus,
                      compact=compact)


def build_graph(space: LinkSpace) -> nx.DiGraph:
    """Every GPU, switch, NIC and link of the cluster."""
    g = _new(space, compact=False)
    for node in range(space.n_nodes):
        _add_node_detail(g, space, node)
    _add_spine(g, space)
    _kinds(g)
    return g


def build_compact_graph(space: LinkSpace) -> nx.DiGraph:
    """Node 0 in detail; the other nodes of each leaf group (scalable unit) folded into one
    vertex ("nodes", unit) joined to each of the unit's leaves by the NIC bandwidth they have
    there, so the graph grows with the number of leaves, not of GPUs."""
    g = _new(space, compact=True)
    _add_node_detail(g, space, 0)
    nic, npl = space.system.nic_link.bandwidth, space.npl
    for unit in range((space.n_nodes + npl - 1) // npl):
        nodes = [n for n in range(unit * npl, min((unit + 1) * npl, space.n_nodes)) if n]
        if not nodes:
            continue
        leaves = [space.leaf_of_nic(unit * npl, k) for k in range(space.K)]
        for leaf in sorted(set(leaves)):
            bw = len(nodes) * leaves.count(leaf) * nic
            _both(g, [(("nodes", unit), ("leaf", leaf))], _attrs(space, "NUP", bw),
                  _attrs(space, "NDN", bw))
        g.nodes[("nodes", unit)]["n_nodes"] = len(nodes)
    _add_spine(g, space)
    _kinds(g)
    return g


def _kinds(g: nx.DiGraph) -> None:
    for v, data in g.nodes(data=True):
        data.setdefault("kind", v[0])
