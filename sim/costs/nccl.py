"""Collectives as NCCL runs them: protocol regimes, a per-call floor, and the algorithms NCCL
offers per collective kind.

NCCL's tuner (src/graph/tuning.cc) prices every (algorithm, protocol) pair as a base latency
plus a latency per pipeline step plus bytes over a bandwidth that is the link's times a
per-protocol efficiency, and runs the fastest. We keep two protocol regimes per link class
(``hardware.kernel_models.NcclModel``, fitted to nccl-tests and profiler tables):

    t_p = latency_p + steps * step_p + factor * S / (B * bandwidth_p * n / (n + group_half))

- ``ll`` (LL/LL128: flag-carrying lines, low latency, lower bandwidth) wins for small S;
  ``simple`` (bulk copies, higher setup) for large S; the minimum over both gives the
  size-dependent achieved bus bandwidth (the protocol switch of nccl-tests curves).
- ``steps`` and ``factor`` are the algorithm's (NCCL performance.md bus-bandwidth factors):
  ring all-reduce 2(n-1) steps moving 2(n-1)/n S; ring all-gather / reduce-scatter (n-1)
  steps moving (n-1)/n S (so a ring over many ranks pays (n-1) step latencies); NCCL's tree
  all-reduce is a chain inside a node and a binary tree across nodes:
  2((g-1) + ceil(log2 N)) steps; NVLink SHARP (NVLS, all-reduce on NVSwitch gen 3, NCCL
  >= 2.17) reduces in the switch: each GPU sends and receives S once at ``nvls_bandwidth``.
- ``group_half`` is fitted: small groups reach a lower share of the per-GPU NVSwitch bandwidth
  (measured bus bandwidth at 256 MiB on H100 rises from ~300 GB/s at n=2 to ~410 at n=8).
- send/recv is not a ring: NCCL runs it on the p2p transport (src/transport/p2p.cc), one copy
  to one peer with no ring steps and no group share, so where the link's model has the p2p
  terms it is ``min(LL, p2p_latency + S / (B * p2p_bandwidth))`` (fitted on send/recv rows:
  ~76% of the per-direction NVLink rate at 64 MiB on A100 and H100, against ~65% for a ring).
- ``B`` is the per-hop bottleneck bandwidth of the group (``Cluster.ring_bandwidth``); groups
  that leave the node add the cluster's per-hop path latency to every step.
"""

from __future__ import annotations

import math

from hardware.kernel_models import NcclModel


def ring_terms(kind: str, n: int) -> tuple[float, float]:
    """(latency steps, bus-bandwidth factor) of a ring (NCCL performance.md)."""
    if kind == "all_reduce":
        return 2 * (n - 1), 2 * (n - 1) / n
    if kind == "broadcast":
        return n - 1, 1.0
    if kind == "send_recv":
        return 1, 1.0
    return n - 1, (n - 1) / n  # all_gather, reduce_scatter, all_to_all (pairwise exchange)


def tree_terms(n: int, nodes: int) -> tuple[float, float]:
    """NCCL all-reduce tree: intra-node chain of g = n/nodes ranks, binary tree over nodes."""
    g = max(1, n // max(nodes, 1))
    return 2 * ((g - 1) + math.ceil(math.log2(max(nodes, 1)))), 2 * (n - 1) / n


def protocol_time(nccl: NcclModel, steps: float, factor: float, size: float, n: int,
                  bw: float, extra_step_s: float = 0.0) -> float:
    """Fastest of the two protocol regimes for one pass (module docstring)."""
    share = n / (n + nccl.group_half) if nccl.group_half > 0 else 1.0
    ll = (nccl.ll_latency_s + steps * (nccl.ll_step_s + extra_step_s)
          + factor * size / (bw * nccl.ll_bandwidth * share))
    simple = (nccl.simple_latency_s + steps * (nccl.simple_step_s + extra_step_s)
              + factor * size / (bw * nccl.simple_bandwidth * share))
    return min(ll, simple)


def p2p_time(nccl: NcclModel, size: float, bw: float, extra_step_s: float = 0.0) -> float | None:
    """send/recv on the p2p transport (module docstring); None when the link has no p2p terms."""
    if nccl.p2p_bandwidth <= 0:
        return None
    ll = nccl.ll_latency_s + nccl.ll_step_s + extra_step_s + size / (bw * nccl.ll_bandwidth)
    return min(ll, nccl.p2p_latency_s + extra_step_s + size / (bw * nccl.p2p_bandwidth))


def nvls_time(nccl: NcclModel, size: float, n: int, bw: float) -> float | None:
    """NVLink SHARP all-reduce (NVSwitch multicast + in-switch reduction): S out and S back
    per GPU; None when the link has no NVLS."""
    if nccl.nvls_bandwidth <= 0:
        return None
    return nccl.nvls_latency_s + size / (bw * nccl.nvls_bandwidth)


def algorithm_times(kind: str, size: float, n: int, nodes: int, bw: float, nccl: NcclModel,
                    extra_step_s: float = 0.0) -> dict[str, float]:
    """Seconds of each algorithm NCCL offers for ``kind`` over n ranks on ``nodes`` nodes."""
    steps, factor = ring_terms(kind, n)
    out = {"ring": protocol_time(nccl, steps, factor, size, n, bw, extra_step_s)}
    if kind == "all_to_all":
        return {"pairwise": out["ring"]}
    if kind == "send_recv":
        p2p = p2p_time(nccl, size, bw, extra_step_s)
        return {"p2p": out["ring"] if p2p is None else p2p}
    if kind == "all_reduce":
        if nodes > 1:
            t_steps, t_factor = tree_terms(n, nodes)
            out["tree"] = protocol_time(nccl, t_steps, t_factor, size, n, bw, extra_step_s)
        nv = nvls_time(nccl, size, n, bw) if nodes == 1 else None
        if nv is not None:
            out["nvls"] = nv
    return out
