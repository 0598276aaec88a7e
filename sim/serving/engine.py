"""The serving simulation's SimPy world: arrivals, router, replicas, KV transfers.

One ``simpy.Environment`` holds every process: an arrival process that releases requests at
their times and routes them, one loop per replica (``sim.serving.replica``) and whatever the
deployment (``sim.serving.deployments``: its replicas, router and KV transfers between pools)
adds. The simulation ends when no event is left: every request has finished or was rejected
at the door.

Randomness inside the engine (speculative acceptance) comes from one Generator per replica
seeded from the configuration's seed, so the same inputs give the same records, byte for byte.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from sim.serving.admission import misfit, model_context
from sim.serving.deployments import DEPLOYMENTS
from sim.serving.request import Request


class Simulation:
    def __init__(self, cfg, timer, blocks: int, kv_bytes_per_gpu_token: float, cluster=None):
        self.cfg, self.timer, self.cluster = cfg, timer, cluster
        self.env = simpy.Environment()
        self.spec_k = cfg.speculative_tokens
        self.kv_bytes = kv_bytes_per_gpu_token
        self.done: list[Request] = []
        self.rejected: list[Request] = []
        self.preemptions = 0
        self.transfers: list[tuple[float, float]] = []  # (start, seconds) per KV transfer
        self.capacity = blocks
        self.context = model_context(getattr(timer, "model", None))
        self.next_arrival = math.inf
        self.deployment = DEPLOYMENTS[cfg.deployment](self, blocks)
        self.replicas, self.entry = self.deployment.replicas, self.deployment.entry

    def store(self) -> simpy.Store:
        return simpy.Store(self.env)

    # --- requests in and out -----------------------------------------------------------------
    def run(self, requests: list[Request]) -> None:
        self.env.process(self._arrivals(requests))
        self.env.run()

    def steps_until_arrival(self, step_s: float) -> float:
        """About how many steps of ``step_s`` fit before the next request enters (inf when
        none is left): a bound on how far fast-forward plans, never on correctness."""
        gap = self.next_arrival - self.env.now
        return gap / step_s + 2 if gap >= 0 and step_s > 0 else math.inf

    def _arrivals(self, requests: list[Request]):
        for req in requests:
            if req.arrival > self.env.now:
                self.next_arrival = req.arrival  # bounds fast-forward planning (a hint)
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
        policy = self.replicas[0].policy
        extra = self.spec_k if policy.paged else 0  # paged pools also hold the k draft slots
        return misfit(req.prompt, req.output, capacity=self.capacity,
                      block_size=self.cfg.block_size, extra_tokens=extra,
                      limit=policy.prompt_limit(self), context=self.context)

    def finished(self, req: Request, rep) -> None:
        req.finish = self.env.now
        rep.outstanding -= 1
        self.done.append(req)

    # --- speculative decoding and swapping ---------------------------------------------------
    def rng(self, replica: int) -> np.random.Generator:
        """A replica's own acceptance stream (replica 0 keeps the historical one), so the
        draws a replica makes do not depend on how other replicas interleave with it."""
        return np.random.default_rng([self.cfg.seed, 1] + ([replica] if replica else []))

    def accepted(self, rng: np.random.Generator, acc: np.ndarray) -> np.ndarray:
        """Tokens one verification yields per sequence: drafts are accepted one by one with
        probability a until the first rejection (at most k), plus the target's own token
        (Leviathan et al. 2023, Sec. 3.4: E = (1 - a^(k+1)) / (1 - a) emerges from this)."""
        failures = rng.geometric(1.0 - np.minimum(acc, 1 - 1e-12)) - 1
        return np.minimum(failures, self.spec_k) + 1

    def swap_time(self, tokens: int) -> float:
        """Copy a sequence's KV between HBM and host; every GPU moves its shard in parallel."""
        return tokens * self.kv_bytes / self.cfg.swap_bandwidth
