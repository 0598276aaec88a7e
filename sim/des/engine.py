"""The SimPy engine: GPUs with CUDA-like streams, the network, and the record of what ran.

A simulated ``Gpu`` has one compute stream (a ``simpy.Resource`` of capacity 1: kernels on
one stream run one after another) and named communication streams (``PriorityResource``s:
"tp", "dp", "pp", "ep", "cp"), so a gradient all-reduce on the "dp" stream overlaps the next
layer's backward on the compute stream exactly as two CUDA streams would; a lower priority
number is served first (ZeRO-3 parameter prefetch before gradient reduce-scatter). Its HBM is a
``Hbm`` container. ``Net`` wraps the cluster: paths, per-hop prices of rings and pairs, and the
``Fabric`` that shares link bandwidth between concurrent flows; ``Net.collective`` runs a
collective's step plan (``sim.des.collectives``) as flows. Everything is SimPy events,
processes and resources; there is no other event loop.

``Recorder`` keeps one tuple per executed interval (rank, stream, kind, name, start, end, bytes,
flops, microbatch, pass). A fused compute segment (several ops back to back on one stream) is
recorded once with its op list and expanded into per-op rows only when a DataFrame is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.des import collectives
from sim.des.memory import Hbm
from sim.des.network import Fabric

COMM_STREAMS = ("tp", "cp", "ep", "dp", "pp")


class Net:
    """The cluster as the engine sees it (cached lookups) plus the shared-link fabric."""

    def __init__(self, env, cluster, slow_links: dict | None = None,
                 choose_algorithm=None, block: int | None = None):
        self.env, self.cluster = env, cluster
        self.fabric = Fabric(env, bandwidth_of=cluster.link_bandwidth, slow_links=slow_links)
        self._paths: dict = {}
        self._prices: dict = {}
        self._plans: dict = {}
        self._choose = choose_algorithm  # (kind, nbytes, ranks) -> algorithm name
        # Symmetry for pricing: a group is priced as its translate into the first ``block``
        # ranks (one pipeline stage's slice), as the analytic backend prices group index 0.
        self.block = block

    def _offset(self, ranks: tuple) -> int:
        return (min(ranks) // self.block) * self.block if self.block else 0

    def path(self, a: int, b: int) -> tuple:
        key = (a, b)
        if key not in self._paths:
            self._paths[key] = tuple(self.cluster.path_links(a, b))
        return self._paths[key]

    def price(self, price: tuple) -> tuple[float, float]:
        """(bandwidth, latency) per hop for a step's price key."""
        if price not in self._prices:
            what, ranks = price
            c = self.cluster
            if what == "p2p":  # every translate of the pair sends at once (a pipeline
                # boundary: all ranks of stage s to stage s+1), so NIC sharing and spine
                # oversubscription apply: the pair's 2-rank ring figure, not one flow alone
                val = (c.ring_bandwidth(list(ranks)), c.latency(*ranks))
            elif what == "a2a":
                val = (c.all_to_all_bandwidth(list(ranks)), c.ring_latency(list(ranks)))
            else:
                val = (c.ring_bandwidth(list(ranks)), c.ring_latency(list(ranks)))
            self._prices[price] = val
        return self._prices[price]

    def plan(self, kind: str, nbytes: float, ranks: tuple, algorithm: str = "auto"):
        """Step plan of the canonical translate of ``ranks`` (add ``_offset`` to peers)."""
        off = self._offset(ranks)
        ranks = tuple(r - off for r in ranks)
        key = (kind, nbytes, ranks, algorithm)
        if key not in self._plans:
            alg = algorithm
            if alg == "auto":
                alg = self._choose(kind, nbytes, ranks) if self._choose else "ring"
            self._plans[key] = collectives.phases(kind, nbytes, ranks, alg, self.cluster.node_of)
        return self._plans[key]

    def ideal_time(self, kind: str, nbytes: float, ranks: tuple, algorithm: str = "auto"):
        steps = self.plan(kind, nbytes, ranks, algorithm)
        return collectives.ideal_time(steps, lambda p: self.price(p)[0],
                                      lambda p: self.price(p)[1])

    def call_time(self, kind: str, nbytes: float, ranks: tuple, algorithm: str = "auto"):
        """Uncontended seconds of one collective call: the step plan's wire time plus what the
        library adds (``library_overhead``), i.e. the analytic per-call time."""
        return (self.ideal_time(kind, nbytes, ranks, algorithm)
                + self.library_overhead(kind, nbytes, ranks, algorithm))

    def collective(self, kind: str, nbytes: float, ranks: tuple, algorithm: str = "auto"):
        """SimPy process body: run the step plan from ``ranks[0]``'s point of view."""
        rep, off = ranks[0], self._offset(ranks)
        for phase in self.plan(kind, nbytes, ranks, algorithm):
            flows = [self._flow(rep, step, off) for step in phase]
            if len(flows) == 1:
                yield from flows[0]
            else:
                yield self.env.all_of([self.env.process(f) for f in flows])
        extra = self.library_overhead(kind, nbytes, ranks, algorithm)
        if extra > 0:
            yield self.env.timeout(extra)

    def library_overhead(self, kind: str, nbytes: float, ranks: tuple,
                         algorithm: str = "auto") -> float:
        """What NCCL adds to the wire time of the step plan (its per-call floor, protocol
        efficiency, group-size share; ``sim.costs.nccl``): the analytic per-call time minus
        the plan's uncontended time, so an uncontended collective takes the analytic time and
        contention adds on top. 0 for links without an [nccl] model."""
        off = self._offset(ranks)
        canon = tuple(r - off for r in ranks)
        key = ("overhead", kind, nbytes, canon, algorithm)
        if key not in self._plans:
            from sim.costs.comm import collective_choice, uses_nccl

            extra = 0.0
            if uses_nccl(self.cluster, canon):
                alg = algorithm
                if alg == "auto":
                    alg = self._choose(kind, nbytes, canon) if self._choose else "ring"
                t = collective_choice(kind, nbytes, canon, self.cluster, alg)[0]
                extra = max(0.0, t - self.ideal_time(kind, nbytes, canon, algorithm))
            self._plans[key] = extra
        return self._plans[key]

    def _flow(self, rep: int, step, offset: int = 0):
        bw, lat = self.price(step.price)
        return self.fabric.transfer(step.nbytes, self.path(rep, step.peer + offset),
                                    latency=step.hops * lat, cap=bw)


class Gpu:
    def __init__(self, env: simpy.Environment, rank: int, stage: int, hbm_bytes: float,
                 speed: float = 1.0):
        self.env, self.rank, self.stage = env, rank, stage
        self.compute = simpy.Resource(env, capacity=1)
        self.streams = {name: simpy.PriorityResource(env, capacity=1) for name in COMM_STREAMS}
        self.hbm = Hbm(env, rank, hbm_bytes)
        self.slowdown = speed  # >1: a straggler; compute durations are multiplied by it


@dataclass(frozen=True)
class Record:
    rank: int
    stream: str
    kind: str
    name: str
    start: float
    end: float
    nbytes: float
    flops: float
    mb: int
    pass_: str
    ops: tuple = ()  # ((op, nominal seconds), ...) for a fused segment
    slowdown: float = 1.0  # compute ops of the segment ran this much slower (straggler)


class Recorder:
    def __init__(self):
        self.records: list[Record] = []

    def add(self, rank, stream, kind, name, start, end, nbytes=0.0, flops=0.0, mb=-1,
            pass_="", ops=(), slowdown=1.0):
        self.records.append(Record(rank, stream, kind, name, start, end, nbytes, flops, mb,
                                   pass_, ops, slowdown))

    def rows(self):
        """Per-op rows: fused segments expanded into their ops, back to back."""
        for r in self.records:
            if not r.ops:
                yield (r.rank, r.stream, r.kind, r.name, r.start, r.end, r.nbytes, r.flops,
                       r.mb, r.pass_)
                continue
            t = r.start
            for op, dur in r.ops:
                end = t + (dur if op.is_comm else dur * r.slowdown)
                yield (r.rank, op.group if op.is_comm else r.stream, op.kind, op.name, t, end,
                       op.total_bytes, op.total_flops, r.mb, r.pass_)
                t = end

    def interval_arrays(self) -> dict:
        """Columns (numpy) of (rank, stream code, start, end, pipeline pass?) with fused
        segments split into their compute and communication runs; stream codes index
        ``STREAMS``. Cheaper than per-op rows: a fused segment's runs are computed once."""
        runs: dict = {}
        simple: list[tuple] = []
        fused: dict[str, list] = {"rank": [], "stream": [], "start": [], "end": [], "pipe": []}
        for r in self.records:
            pipe = r.pass_ in ("F", "B", "W")
            if r.ops and any(op.is_comm for op, _ in r.ops):
                key = (id(r.ops), r.slowdown)
                if key not in runs:
                    runs[key] = (r.ops, *_runs(r.ops, r.slowdown))
                _, rel_s, rel_e, codes = runs[key]
                fused["start"].append(r.start + rel_s)
                fused["end"].append(r.start + rel_e)
                fused["stream"].append(codes)
                fused["rank"].append(np.full(codes.size, r.rank))
                fused["pipe"].append(np.full(codes.size, pipe))
            else:
                simple.append((r.rank, STREAM_CODE.get(r.stream, 0), r.start, r.end, pipe))
        cols = dict(zip(("rank", "stream", "start", "end", "pipe"),
                        (np.array(c) for c in zip(*simple, strict=True)), strict=True)) \
            if simple else {k: np.array([]) for k in fused}
        return {k: np.concatenate([cols[k]] + fused[k]) for k in fused}


STREAMS = ("compute",) + COMM_STREAMS
STREAM_CODE = {name: i for i, name in enumerate(STREAMS)}


def _runs(ops, slowdown: float):
    """Relative (start, end, stream code) of the compute/comm runs of a fused segment."""
    starts, ends, codes, t = [], [], [], 0.0
    for op, dur in ops:
        code = STREAM_CODE.get(op.group, 0) if op.is_comm else 0
        end = t + (dur if op.is_comm else dur * slowdown)
        if codes and codes[-1] == code == 0:
            ends[-1] = end
        else:
            starts.append(t), ends.append(end), codes.append(code)
        t = end
    return np.array(starts), np.array(ends), np.array(codes)
