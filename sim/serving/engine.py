"""The serving simulation's SimPy world: arrivals, router, replicas, KV transfers.

One ``simpy.Environment`` holds every process: an arrival process that releases requests at
their times and routes them, one loop per replica (``sim.serving.replica``) and, for
disaggregated serving, one short process per KV transfer whose flows run on the training
engine's link fabric (``sim.des.network.Fabric``), so concurrent transfers share the
topology's links instead of each getting full bandwidth. The simulation ends when no event is left: every request has
finished or was rejected at the door.

Randomness inside the engine (speculative acceptance) comes from its own Generator seeded from
the configuration's seed, so the same inputs give the same records, byte for byte.
"""

from __future__ import annotations

import itertools

import numpy as np
import simpy

from sim.serving.policies import POLICIES, DecodeOnly
from sim.serving.replica import Replica
from sim.serving.request import Request


class Router:
    """Picks a replica for a request: ``round-robin`` or ``least-outstanding`` (fewest
    requests routed there and not finished; ties go to the lowest index)."""

    def __init__(self, kind: str, replicas: list[Replica]):
        self.kind, self.replicas = kind, replicas
        self._cycle = itertools.cycle(replicas)

    def pick(self) -> Replica:
        if self.kind == "round-robin":
            return next(self._cycle)
        return min(self.replicas, key=lambda r: (r.outstanding, r.idx))


class Simulation:
    def __init__(self, cfg, timer, blocks: int, kv_bytes_per_gpu_token: float, cluster=None):
        self.cfg, self.timer, self.cluster = cfg, timer, cluster
        self.env = simpy.Environment()
        self.rng = np.random.default_rng([cfg.seed, 1])
        self.spec_k = cfg.speculative_tokens
        self.kv_bytes = kv_bytes_per_gpu_token
        self.done: list[Request] = []
        self.rejected: list[Request] = []
        self.preemptions = 0
        self.transfers: list[tuple[float, float]] = []  # (start, seconds) per KV transfer
        self._links: dict[tuple[int, int], list[tuple]] = {}
        self._build(blocks)

    def store(self) -> simpy.Store:
        return simpy.Store(self.env)

    def _build(self, blocks: int) -> None:
        cfg = self.cfg
        if cfg.policy == "disaggregated":
            pre = [Replica(self, i, POLICIES["continuous"](cfg), "prefill", blocks)
                   for i in range(cfg.prefill_replicas)]
            dec = [Replica(self, cfg.prefill_replicas + i, DecodeOnly(cfg), "decode", blocks)
                   for i in range(cfg.decode_replicas)]
            from sim.des.network import Fabric

            self.fabric = Fabric(self.env, bandwidth_of=self.cluster.link_bandwidth)
            self.replicas, self.entry = pre + dec, Router(cfg.router, pre)
            self.decode_router = Router(cfg.router, dec)
        else:
            policy = POLICIES[cfg.policy](cfg)  # one instance: policies keep per-replica state
            self.replicas = [Replica(self, i, policy, "both", blocks) for i in range(cfg.replicas)]
            self.entry = Router(cfg.router, self.replicas)
        self.capacity = blocks

    # --- requests in and out -----------------------------------------------------------------
    def run(self, requests: list[Request]) -> None:
        self.env.process(self._arrivals(requests))
        self.env.run()

    def _arrivals(self, requests: list[Request]):
        for req in requests:
            if req.arrival > self.env.now:
                yield self.env.timeout(req.arrival - self.env.now)
            reason = self.misfit(req)
            if reason:
                req.rejected = reason
                self.rejected.append(req)
                continue
            rep = self.entry.pick()
            rep.outstanding += 1
            req.replica = rep.idx
            rep.inbox.put(req)

    def misfit(self, req: Request) -> str:
        """Why a request can never fit a replica's KV cache ('' if it can)."""
        cfg, bs = self.cfg, self.cfg.block_size
        if self.capacity == 0:
            return ("the weights leave no HBM for a KV cache; raise --tp/--pp, use a larger "
                    "GPU or --gpu-memory-utilization")
        tokens = req.prompt + req.output + self.spec_k
        if cfg.policy == "static":
            tokens = req.prompt + req.output
        need = -(-tokens // bs)
        if need <= self.capacity:
            return ""
        return (f"needs {need} KV blocks ({req.prompt} prompt + {req.output} output tokens) but "
                f"a replica holds {self.capacity} blocks of {bs} tokens; shorten the request, "
                "raise --tp/--pp or use a GPU with more memory")

    def finished(self, req: Request, rep: Replica) -> None:
        req.finish = self.env.now
        rep.outstanding -= 1
        self.done.append(req)

    # --- speculative decoding and swapping ---------------------------------------------------
    def accepted(self, acc: np.ndarray) -> np.ndarray:
        """Tokens one verification yields per sequence: drafts are accepted one by one with
        probability a until the first rejection (at most k), plus the target's own token
        (Leviathan et al. 2023, Sec. 3.4: E = (1 - a^(k+1)) / (1 - a) emerges from this)."""
        failures = self.rng.geometric(1.0 - np.minimum(acc, 1 - 1e-12)) - 1
        return np.minimum(failures, self.spec_k) + 1

    def swap_time(self, tokens: int) -> float:
        """Copy a sequence's KV between HBM and host; every GPU moves its shard in parallel."""
        return tokens * self.kv_bytes / self.cfg.swap_bandwidth

    # --- disaggregated prefill -> decode -----------------------------------------------------
    def hand_off(self, req: Request, src: Replica) -> None:
        src.outstanding -= 1
        dst = self.decode_router.pick()
        dst.outstanding += 1
        req.stage, req.src = "kv", src
        dst.inbox.put(req)

    def start_transfer(self, req: Request, dst: Replica, blocks: int) -> None:
        dst.incoming += 1
        self.env.process(self._transfer(req, req.src, dst, blocks))

    def _transfer(self, req: Request, src: Replica, dst: Replica, blocks: int):
        """Every GPU of the prefill replica sends its KV shard to its peer in the decode
        replica at once, each a flow on the cluster's links shared with every other transfer
        in flight (``sim.des.network.Fabric``: latency, then the bottleneck fair share)."""
        start, nbytes = self.env.now, req.todo * self.kv_bytes
        flows = [self.env.process(self.fabric.transfer(nbytes, links, latency))
                 for links, latency in self._paths(src.idx, dst.idx)]
        yield self.env.all_of(flows)
        self.transfers.append((start, self.env.now - start))
        src.pool.give(req.blocks)
        src.pool.settle()
        src.inbox.put(None)  # wake the prefill replica: blocks came back
        req.blocks, req.stage = blocks, "ready"
        dst.inbox.put(req)

    def _paths(self, src: int, dst: int) -> list[tuple]:
        """(links, latency) from GPU i of replica ``src`` to GPU i of replica ``dst``."""
        key = (src, dst)
        if key not in self._links:
            g, shard = self.cfg.gpus_per_replica, self.cfg.tp * self.cfg.pp
            pairs = [(src * g + i, dst * g + i) for i in range(shard)]
            self._links[key] = [(tuple(self.cluster.path_links(a, b)), self.cluster.latency(a, b))
                                for a, b in pairs]
        return self._links[key]
