"""The serving simulation's SimPy world: arrivals, router, replicas, KV transfers.

One ``simpy.Environment`` holds every process: an arrival process that releases requests at
their times and routes them, one loop per replica (``sim.serving.replica``) and whatever the
deployment (``sim.serving.deployments``: its replicas, router and KV transfers between pools)
adds. The simulation ends when no event is left: every request has finished or was rejected
at the door.

Randomness inside the engine (speculative acceptance) comes from its own Generator seeded from
the configuration's seed, so the same inputs give the same records, byte for byte.
"""

from __future__ import annotations

import numpy as np
import simpy

from sim.serving.deployments import DEPLOYMENTS
from sim.serving.request import Request


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
        self.capacity = blocks
        self.deployment = DEPLOYMENTS[cfg.deployment](self, blocks)
        self.replicas, self.entry = self.deployment.replicas, self.deployment.entry

    def store(self) -> simpy.Store:
        return simpy.Store(self.env)

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
        bs = self.cfg.block_size
        if self.capacity == 0:
            return ("the weights leave no HBM for a KV cache; raise --tp/--pp, use a larger "
                    "GPU or --gpu-memory-utilization")
        paged = self.replicas[0].policy.paged  # paged pools also hold the k draft slots
        tokens = req.prompt + req.output + (self.spec_k if paged else 0)
        need = -(-tokens // bs)
        if need <= self.capacity:
            return ""
        return (f"needs {need} KV blocks ({req.prompt} prompt + {req.output} output tokens) but "
                f"a replica holds {self.capacity} blocks of {bs} tokens; shorten the request, "
                "raise --tp/--pp or use a GPU with more memory")

    def finished(self, req: Request, rep) -> None:
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
