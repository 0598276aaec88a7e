"""Communication costs: which ranks form a parallel group, and how long a collective takes.

Rank layout (Megatron-LM's ``initialize_model_parallel`` order, innermost first):
``rank = tp_i + tp * (cp_i + cp * (dp_i + dp * pp_i))``. Tensor-parallel peers are adjacent
ranks (so a TP group of <= 8 sits inside one NVLink node), then context-parallel, then
data-parallel, and pipeline stages are the outermost, slowest-varying dimension.
Expert-parallel groups are carved out of the data-parallel dimension: the ``ep`` ranks with the
same (tp, cp, pp) coordinates and consecutive dp indices ``[j*ep, (j+1)*ep)`` form one EP group;
the ranks that hold the same expert shard (stride ``ep`` in dp) form the expert-data-parallel
group ``edp``. Dense gradients are reduced over ``dp_cp`` (CP ranks hold identical weights).

Collective time is an alpha-beta (Hockney) model: ``t = steps * alpha + volume / B`` with the
NCCL bus-bandwidth conventions (NCCL docs, performance.md, "bus bandwidth"): for a buffer of
S bytes per rank over n ranks, all-reduce moves 2(n-1)/n * S per rank, all-gather,
reduce-scatter and all-to-all (n-1)/n * S, where S is the full (unsharded) buffer. ``B`` and
``alpha`` are the cluster's per-hop bottleneck bandwidth and latency of a ring over the ranks
with every group of the same shape running at once (``Cluster.ring_bandwidth`` /
``ring_latency``), so NIC sharing and spine oversubscription slow the groups they affect.

Algorithms: ``ring`` (Patarasuk & Yuan 2009: bandwidth-optimal, 2(n-1) latency steps for an
all-reduce), ``tree`` (Thakur, Rabenseifner & Gropp 2005: recursive halving/doubling, log2(n)
latency steps per phase, each step priced on the path to its partner at distance 2^k, so a
step that leaves the node pays the network for its share only), ``hierarchical`` (intra-node reduce-scatter,
inter-node all-reduce of the 1/g shard among same-local-rank GPUs, intra-node all-gather) and
``auto`` (the fastest of those, as NCCL's tuner picks by its own cost model).
Bandwidth/latency lookups are cached per (cluster, group shape), so a sweep pays them once.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sim.errors import PlanError

ALGORITHMS = ("auto", "ring", "tree", "hierarchical", "nvls")
KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv", "broadcast")
_DIMS = ("tp", "cp", "dp", "pp")


# --- rank layout ------------------------------------------------------------------------------
def _coords_to_rank(coords: dict[str, int], sizes: dict[str, int]) -> int:
    rank, stride = 0, 1
    for d in _DIMS:  # Megatron order, innermost first
        rank += coords[d] * stride
        stride *= sizes[d]
    return rank


def _group_over(sizes: dict[str, int], dims: tuple[str, ...], index: int,
                blocks: dict[str, tuple[int, int]] | None = None) -> list[int]:
    """Ranks varying over ``dims`` (inner dims first) with the other coordinates fixed by
    ``index`` (enumerated innermost-first). ``blocks[d] = (size, stride)`` restricts a dim to
    a sub-block (``size`` members spaced ``stride`` apart) whose choice is part of the index."""
    blocks = blocks or {}
    free = [(d, sizes[d] // blocks[d][0] if d in blocks else sizes[d])
            for d in _DIMS if d not in dims or d in blocks]
    n_groups = math.prod(n for _, n in free)
    if not 0 <= index < n_groups:
        raise PlanError(f"group index {index} out of range 0..{n_groups - 1}")
    base: dict[str, int] = {}
    for d, n in free:
        base[d], index = index % n, index // n
    members = [dict.fromkeys(_DIMS, 0)]
    for d in dims:
        size, stride = blocks.get(d, (sizes[d], 1))
        members = [{**m, d: k * stride} for k in range(size) for m in members]
    return sorted(_coords_to_rank(_offset(m, base, blocks, sizes), sizes) for m in members)


def _offset(member: dict[str, int], base: dict[str, int], blocks, sizes) -> dict[str, int]:
    out = dict(member)
    for d, b in base.items():
        if d in blocks:
            size, stride = blocks[d]
            # block j of a contiguous split (stride 1) starts at j*size; of a strided split at j
            out[d] += b * size if stride == 1 else b
        else:
            out[d] = b
    return out


def group_ranks(plan, group: str, index: int = 0) -> list[int]:
    """Global ranks of the ``index``-th ``group`` ("tp", "cp", "dp", "pp", "ep", "edp",
    "dp_cp", "world") of ``plan`` under Megatron's rank layout (module docstring)."""
    return list(_group_ranks(plan.tp, plan.cp, plan.dp, plan.pp, plan.ep, group, index))


@lru_cache(maxsize=65536)
def _group_ranks(tp, cp, dp, pp, ep, group, index) -> tuple[int, ...]:
    return tuple(_group_ranks_uncached({"tp": tp, "cp": cp, "dp": dp, "pp": pp}, ep, group,
                                       index))


def _group_ranks_uncached(sizes: dict[str, int], ep: int, group: str, index: int) -> list[int]:
    if group in _DIMS:
        return _group_over(sizes, (group,), index)
    if group == "dp_cp":
        return _group_over(sizes, ("cp", "dp"), index)
    if group == "world":
        return _group_over(sizes, _DIMS, index)
    dp = sizes["dp"]
    if ep < 1 or dp % ep:
        raise PlanError(f"ep={ep} must divide dp={dp} (EP groups are carved from DP)")
    if group == "ep":
        return _group_over(sizes, ("dp",), index, {"dp": (ep, 1)})
    if group == "edp":
        return _group_over(sizes, ("dp",), index, {"dp": (dp // ep, ep)})
    raise PlanError(f"unknown group '{group}'; use tp, cp, dp, pp, ep, edp, dp_cp or world")


# --- link parameters, cached per (cluster, group shape); a Cluster hashes as one object -------


@lru_cache(maxsize=65536)
def _ring_params(cluster, ranks: tuple[int, ...]) -> tuple[float, float]:
    return cluster.ring_bandwidth(list(ranks)), cluster.ring_latency(list(ranks))


@lru_cache(maxsize=65536)
def _p2p_params(cluster, a: int, b: int) -> tuple[float, float]:
    # Every pair at the same boundary sends at once (pipeline stages, CP neighbours), so a
    # message gets the concurrent-pair share of NICs and spine, as the DES prices it too.
    return cluster.ring_bandwidth([a, b]), cluster.latency(a, b)


@lru_cache(maxsize=65536)
def _a2a_params(cluster, ranks: tuple[int, ...]) -> tuple[float, float]:
    return cluster.all_to_all_bandwidth(list(ranks)), cluster.ring_latency(list(ranks))


@lru_cache(maxsize=65536)
def _split_by_node(cluster, ranks: tuple[int, ...]):
    """(one node's ranks, same-local-index ranks across nodes) when the group is uniform
    over its nodes, else None (hierarchical then does not apply)."""
    nodes: dict[int, list[int]] = {}
    for r in ranks:
        nodes.setdefault(cluster.node_of(r), []).append(r)
    per_node = {len(v) for v in nodes.values()}
    if len(nodes) < 2 or len(per_node) != 1 or per_node == {1}:
        return None
    groups = list(nodes.values())
    return tuple(groups[0]), tuple(g[0] for g in groups)


# --- algorithms ---------------------------------------------------------------------------------
# (latency steps, bandwidth factor) per kind for a ring over n ranks; Patarasuk & Yuan 2009 Sec. 3
# and NCCL performance.md: all-reduce = reduce-scatter + all-gather, each (n-1) steps of S/n.
def _ring_terms(kind: str, n: int) -> tuple[float, float]:
    if kind == "all_reduce":
        return 2 * (n - 1), 2 * (n - 1) / n
    if kind == "broadcast":
        return n - 1, 1.0  # pipelined ring broadcast: busbw == algbw (NCCL performance.md)
    return n - 1, (n - 1) / n  # all_gather, reduce_scatter, all_to_all


# Thakur et al. 2005 Sec. 4: recursive doubling (all-gather), halving (reduce-scatter),
# Rabenseifner all-reduce = both (2 log2 p alpha + 2 (p-1)/p n beta); binomial-tree broadcast.
def _tree_terms(kind: str, n: int) -> tuple[float, float]:
    steps = math.ceil(math.log2(n))
    if kind == "all_reduce":
        return 2 * steps, 2 * (n - 1) / n
    if kind == "broadcast":
        return steps, 1.0
    return steps, (n - 1) / n


def _alpha_beta(kind: str, size: float, n: int, bw: float, alpha: float, tree: bool) -> float:
    steps, factor = (_tree_terms if tree else _ring_terms)(kind, n)
    return steps * alpha + factor * size / bw  # Hockney alpha-beta model


def _flat(kind, size, ranks, cluster, tree):
    bw, alpha = _ring_params(cluster, ranks)
    return _alpha_beta(kind, size, len(ranks), bw, alpha, tree)


def _hierarchical(kind, size, ranks, cluster) -> float | None:
    split = _split_by_node(cluster, ranks)
    if split is None or kind not in ("all_reduce", "all_gather", "reduce_scatter"):
        return None
    intra, inter = split
    g = len(intra)
    t_intra = _flat("reduce_scatter", size, intra, cluster, False)  # same cost as all-gather
    t_inter = _flat(kind, size / g, inter, cluster, False)  # each GPU's 1/g shard, over its rail
    if kind == "all_reduce":  # intra RS + inter AR + intra AG
        return 2 * t_intra + t_inter
    return t_intra + t_inter  # AG: inter AG then intra AG; RS: intra RS then inter RS


def collective_time(kind: str, bytes_per_rank: float, ranks, cluster,
                    algorithm: str = "auto") -> float:
    """Seconds for one collective of ``kind`` over ``ranks`` (global rank ids on ``cluster``).

    ``bytes_per_rank`` is NCCL's "size" S: each rank's full buffer (the all-reduce buffer, the
    all-gather output, the reduce-scatter input, the all-to-all send buffer, the message of a
    send_recv between ``ranks[0]`` and ``ranks[1]``)."""
    return collective_choice(kind, bytes_per_rank, ranks, cluster, algorithm)[0]


def collective_choice(kind: str, bytes_per_rank: float, ranks, cluster,
                      algorithm: str = "auto") -> tuple[float, str]:
    """(seconds, algorithm used) of one collective; see ``collective_time``. Links whose
    catalog entry has an ``[nccl]`` table are priced as NCCL runs them (``sim.costs.nccl``:
    protocol regimes, per-call floor, the algorithms NCCL offers for the kind)."""
    if kind not in KINDS:
        raise PlanError(f"unknown collective '{kind}'; use one of {', '.join(KINDS)}")
    if algorithm not in ALGORITHMS:
        raise PlanError(f"unknown algorithm '{algorithm}'; use one of {', '.join(ALGORITHMS)}")
    ranks = tuple(ranks)
    n, size = len(ranks), float(bytes_per_rank)
    if n < 2 or size <= 0:
        return 0.0, "none"
    nccl = _nccl_model(cluster, ranks)
    if nccl is not None:
        return _nccl_choice(kind, size, ranks, cluster, algorithm, *nccl)
    if algorithm == "auto" and kind not in ("send_recv", "all_to_all"):
        times = {a: _alpha_beta_time(kind, size, ranks, cluster, a)
                 for a in ("ring", "tree", "hierarchical")}
        if _split_by_node(cluster, ranks) is None:
            del times["hierarchical"]
        name = min(times, key=times.__getitem__)
        return times[name], name
    return _alpha_beta_time(kind, size, ranks, cluster, algorithm), algorithm


def _alpha_beta_time(kind, size, ranks, cluster, algorithm) -> float:
    n = len(ranks)
    if kind == "send_recv":
        bw, alpha = _p2p_params(cluster, ranks[0], ranks[1])
        return alpha + size / bw
    if kind == "all_to_all":
        bw, alpha = _a2a_params(cluster, ranks)
        return (n - 1) * alpha + (n - 1) / n * size / bw  # pairwise exchange, NCCL a2a busbw
    return _by_algorithm(kind, size, ranks, cluster, algorithm)


@lru_cache(maxsize=65536)
def _hypercube_steps(cluster, ranks: tuple[int, ...]) -> tuple[tuple[float, float], ...]:
    """(bandwidth, latency) of each exchange step k, partner at distance 2^k (nearest first),
    with every same-shaped pair exchanging at once (the cluster's contention model)."""
    steps, d = [], 1
    while d < len(ranks):
        steps.append(_ring_params(cluster, (ranks[0], ranks[d])))
        d *= 2
    return tuple(steps)


def _tree(kind: str, size: float, ranks: tuple[int, ...], cluster) -> float:
    """Thakur et al. 2005, Sec. 4: recursive halving (reduce-scatter) sends S/2, S/4, ... to
    partners at distance 1, 2, 4, ...; recursive doubling (all-gather) mirrors it; all-reduce
    = both (Rabenseifner). Broadcast (pipelined binomial tree: log2 n latencies, S once) and
    non-powers of two use the aggregate form with the ring's bandwidth."""
    n = len(ranks)
    if n & (n - 1) or kind not in ("all_reduce", "all_gather", "reduce_scatter"):
        return _flat(kind, size, ranks, cluster, True)
    steps = _hypercube_steps(cluster, ranks)
    half = sum(alpha + size / 2 ** (k + 1) / bw for k, (bw, alpha) in enumerate(steps))
    return 2 * half if kind == "all_reduce" else half


def _by_algorithm(kind, size, ranks, cluster, algorithm) -> float:
    if algorithm == "ring":
        return _flat(kind, size, ranks, cluster, False)
    if algorithm == "tree":
        return _tree(kind, size, ranks, cluster)
    hier = _hierarchical(kind, size, ranks, cluster)
    if algorithm == "hierarchical":
        return hier if hier is not None else _flat(kind, size, ranks, cluster, False)
    options = [_flat(kind, size, ranks, cluster, False), _tree(kind, size, ranks, cluster)]
    return min(options + ([hier] if hier is not None else []))


# --- NCCL-priced links (sim.costs.nccl) ---------------------------------------------------------
@lru_cache(maxsize=65536)
def _nccl_model(cluster, ranks: tuple[int, ...]):
    """(NcclModel, nodes spanned) for a group, or None when its links carry no [nccl] table.
    A group inside one node uses the node fabric's model; one that spans nodes the NIC link's.
    No catalog NIC has one (the measured inter-node rows are of an undocumented fabric), so
    groups across nodes keep the alpha-beta model at the NIC's line rate."""
    system = getattr(cluster, "system", None)
    if system is None:  # a bare topology (tests' stand-ins): alpha-beta
        return None
    nodes = len({cluster.node_of(r) for r in ranks})
    model = system.intra_link.nccl if nodes == 1 else system.nic_link.nccl
    return None if model is None else (model, nodes)


def uses_nccl(cluster, ranks) -> bool:
    """Whether a group over ``ranks`` is priced by the NCCL model (its link has [nccl])."""
    return len(ranks) > 1 and _nccl_model(cluster, tuple(ranks)) is not None


def _nccl_params(cluster, kind, ranks):
    """(bandwidth, path latency) of the group's bottleneck hop."""
    if kind == "send_recv":
        return _p2p_params(cluster, ranks[0], ranks[1])
    if kind == "all_to_all":
        return _a2a_params(cluster, ranks)
    return _ring_params(cluster, ranks)


def _nccl_choice(kind, size, ranks, cluster, algorithm, nccl, nodes) -> tuple[float, str]:
    """Inside a node the fitted step latency already holds the NVLink hop; across nodes the
    path latency is added to every step."""
    from sim.costs.nccl import algorithm_times

    if kind == "send_recv":
        ranks = ranks[:2]
    bw, alpha = _nccl_params(cluster, kind, ranks)
    extra = alpha if nodes > 1 else 0.0
    times = algorithm_times(kind, size, len(ranks), nodes, bw, nccl, extra)
    hier = _nccl_hierarchical(kind, size, ranks, cluster) if nodes > 1 else None
    if hier is not None:
        times["hierarchical"] = hier
    if algorithm != "auto":
        if algorithm in times:
            return times[algorithm], algorithm
        name = "ring" if "ring" in times else next(iter(times))
        return times[name], name  # the asked algorithm does not apply: NCCL's default
    name = min(times, key=times.__getitem__)
    return times[name], name


def _nccl_hierarchical(kind, size, ranks, cluster) -> float | None:
    """Intra-node reduce-scatter, inter-node pass on each GPU's 1/g shard over its rail,
    intra-node all-gather, each priced as its own NCCL call."""
    split = _split_by_node(cluster, ranks)
    if split is None or kind not in ("all_reduce", "all_gather", "reduce_scatter"):
        return None
    intra, inter = split
    g = len(intra)
    t_intra = collective_choice("reduce_scatter", size, intra, cluster, "ring")[0]
    t_inter = collective_choice(kind, size / g, inter, cluster, "ring")[0]
    return (2 * t_intra if kind == "all_reduce" else t_intra) + t_inter
