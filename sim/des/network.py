"""Links as shared resources: flow-level bandwidth sharing on the cluster's topology.

A transfer is a *flow* of ``nbytes`` over a path of links (``cluster.path_links(a, b)``). It
takes its latency (alpha, the summed per-hop latency) and then streams; it is counted on its
links from the start (holding a link during the few microseconds of alpha is the one
approximation, and saves an event per transfer). While it streams it has a rate, recomputed
whenever a flow joins or leaves one of its links:

    rate_i = min(cap_i, min over links l on i's path of  bandwidth_l / n_l)

where ``n_l`` is the number of flows streaming on link l (equal sharing per link, each flow
limited by its most crowded link: the "bottleneck fair share" of flow-level network
simulators, a one-pass approximation of max-min fairness), and ``cap_i`` is an optional
per-flow ceiling — collectives pass the per-hop bandwidth the cluster reports for a ring when
every symmetric group runs at once (``cluster.ring_bandwidth``), which accounts for the many
identical ranks that the engine does not simulate (symmetry).

On every rate change each affected flow's progress is advanced to ``now`` and its completion is
rescheduled as a SimPy timeout; a stale timeout is ignored by comparing a version counter. This
is exact for piecewise-constant rates and costs O(flows sharing a link) per change, which
matters because a step of a large model starts tens of thousands of flows.

Rejected: a per-link ``simpy.Resource`` with chunked transfers (FIFO chunks approximate fair
sharing only as chunks shrink, and the event count grows with bytes/chunk); a single fabric
process that wakes on every change (same maths, more events).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import simpy

LinkKey = Hashable


@dataclass(eq=False)
class Flow:
    nbytes: float
    links: tuple[LinkKey, ...]
    cap: float
    done: simpy.Event
    remaining: float = 0.0
    latency: float = 0.0  # latency still to elapse before the bytes move
    rate: float = 0.0
    since: float = 0.0
    version: int = 0
    seq: int = 0
    tag: Any = None
    meta: dict = field(default_factory=dict)


class Fabric:
    """The set of links and the flows currently streaming on them."""

    def __init__(self, env: simpy.Environment, bandwidth: dict[LinkKey, float] | None = None,
                 bandwidth_of=None, slow_links: dict[LinkKey, float] | None = None):
        self.env = env
        self._bw = dict(bandwidth or {})
        self._bw_of = bandwidth_of  # callable(key) -> bytes/s for links not in the dict
        self._slow = dict(slow_links or {})  # key -> slowdown factor (straggler link)
        self.on_link: dict[LinkKey, set[Flow]] = defaultdict(set)
        self.bytes_moved: dict[LinkKey, float] = defaultdict(float)
        self._seq = 0

    def slow_down(self, key: LinkKey, factor: float) -> None:
        """Divide a link's bandwidth by ``factor`` (a straggler link)."""
        self._slow[key] = factor

    @property
    def slow_links(self) -> set:
        return set(self._slow)

    def bandwidth(self, key: LinkKey) -> float:
        if key not in self._bw:
            self._bw[key] = float(self._bw_of(key)) if self._bw_of else math.inf
        return self._bw[key] / self._slow.get(key, 1.0)

    def transfer(self, nbytes: float, links, latency: float = 0.0, cap: float = math.inf,
                 tag: Any = None):
        """SimPy process body: ``latency`` then ``nbytes`` over ``links`` at the shared rate."""
        links = tuple(links)
        if nbytes <= 0 or (not links and math.isinf(cap)):
            if latency > 0:
                yield self.env.timeout(latency)
            return
        self._seq += 1
        flow = Flow(nbytes, links, cap, self.env.event(), remaining=nbytes, latency=latency,
                    seq=self._seq, tag=tag)
        self._join(flow)
        yield flow.done

    # --- bookkeeping -------------------------------------------------------------------------
    def _join(self, flow: Flow) -> None:
        flow.since = self.env.now
        for key in flow.links:
            self.on_link[key].add(flow)
        self._reschedule(self._neighbours(flow) | {flow})

    def _leave(self, flow: Flow) -> None:
        for key in flow.links:
            self.on_link[key].discard(flow)
            self.bytes_moved[key] += flow.nbytes
        self._reschedule(self._neighbours(flow))

    def _neighbours(self, flow: Flow) -> set[Flow]:
        out: set[Flow] = set()
        for key in flow.links:
            out |= self.on_link[key]
        out.discard(flow)
        return out

    def _rate(self, flow: Flow) -> float:
        share = min((self.bandwidth(k) / len(self.on_link[k]) for k in flow.links),
                    default=math.inf)
        return min(flow.cap, share)

    def _reschedule(self, flows: set[Flow]) -> None:
        now = self.env.now
        for flow in sorted(flows, key=lambda f: f.seq):  # deterministic event order
            _advance(flow, now)
            flow.since, flow.rate = now, self._rate(flow)
            flow.version += 1
            eta = flow.latency + (0.0 if math.isinf(flow.rate)
                                  else max(flow.remaining, 0.0) / flow.rate)
            timer = self.env.timeout(eta)
            timer.callbacks.append(self._finisher(flow, flow.version))

    def _finisher(self, flow: Flow, version: int):
        def finish(_event) -> None:
            if flow.version != version or flow.done.triggered:
                return
            flow.remaining = 0.0
            self._leave(flow)
            flow.done.succeed()
        return finish


def _advance(flow: Flow, now: float) -> None:
    """Spend the time since the last change: latency first, then bytes at the old rate."""
    dt = now - flow.since
    if dt <= 0:
        return
    lat = min(flow.latency, dt)
    flow.latency -= lat
    if dt > lat and flow.rate > 0:
        flow.remaining -= flow.rate * (dt - lat)
