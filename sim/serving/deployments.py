"""Serving deployments: how replicas are laid out and what each one runs, as a registry.

A deployment builds its replicas (one batching-policy instance each), the router requests
enter through, and whatever moves requests between replicas. ``DEPLOYMENTS`` maps a name to
its class; adding a deployment is one class here plus its tests (see docs/CONTRACT.md).

* ``colocated``: every replica prefills and decodes under the chosen batching policy
  (``sim.serving.policies``), behind one router.
* ``disaggregated`` (Zhong et al. 2024, DistServe; Patel et al. 2024, Splitwise): a prefill
  pool runs continuous batching but only prefills; each prefilled request is routed to a
  decode replica, which pulls its KV over the cluster's links once it has blocks for it
  (``DecodeOnly``) and decodes with iteration-level batching. Every GPU of the prefill replica
  sends its shard to its peer at once, each a flow on the training engine's link fabric
  (``sim.des.network.Fabric``), so concurrent transfers share the topology's links.
"""

from __future__ import annotations

import itertools

from sim.serving.policies import POLICIES, Continuous
from sim.serving.replica import Replica


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


class Colocated:
    name = "colocated"

    @staticmethod
    def n_replicas(cfg) -> int:
        return cfg.replicas

    def __init__(self, sim, blocks: int):
        cfg = sim.cfg
        self.replicas = [Replica(sim, i, POLICIES[cfg.policy](cfg), blocks)
                         for i in range(cfg.replicas)]
        self.entry = Router(cfg.router, self.replicas)


class DecodeOnly(Continuous):
    """The decode pool's policy: pulls prefilled requests' KV in, then batches decodes."""

    name = "decode"

    def __init__(self, cfg, deployment):
        super().__init__(cfg)
        self.deployment = deployment

    def _pull(self, rep, room: int) -> int:
        """Start KV transfers of prefilled requests, oldest first, while blocks allow."""
        moved = rep.pool.take_while(rep.kv_wait, lambda r: rep.pool.blocks_for(r.todo),
                                    limit=max(room, 0))
        for req, blocks in moved:
            self.deployment.start_transfer(req, rep, blocks)
        return room - len(moved)


class Disaggregated:
    name = "disaggregated"

    @staticmethod
    def n_replicas(cfg) -> int:
        return cfg.prefill_replicas + cfg.decode_replicas

    def __init__(self, sim, blocks: int):
        from sim.des.network import Fabric

        cfg, self.sim = sim.cfg, sim
        pre = [Replica(sim, i, Continuous(cfg), blocks, hand_off=self.hand_off)
               for i in range(cfg.prefill_replicas)]
        dec = [Replica(sim, cfg.prefill_replicas + i, DecodeOnly(cfg, self), blocks)
               for i in range(cfg.decode_replicas)]
        self.fabric = Fabric(sim.env, bandwidth_of=sim.cluster.link_bandwidth)
        self.replicas, self.entry = pre + dec, Router(cfg.router, pre)
        self.decode_router = Router(cfg.router, dec)
        self._links: dict[tuple[int, int], list[tuple]] = {}

    def hand_off(self, req, src: Replica) -> None:
        src.outstanding -= 1
        dst = self.decode_router.pick()
        dst.outstanding += 1
        req.stage, req.src = "kv", src
        dst.inbox.put(req)

    def start_transfer(self, req, dst: Replica, blocks: int) -> None:
        dst.incoming += 1
        self.sim.env.process(self._transfer(req, req.src, dst, blocks))

    def _transfer(self, req, src: Replica, dst: Replica, blocks: int):
        """Every GPU of the prefill replica sends its KV shard to its peer in the decode
        replica at once, each a flow on the cluster's links shared with every other transfer
        in flight (``sim.des.network.Fabric``: latency, then the bottleneck fair share)."""
        env = self.sim.env
        start, nbytes = env.now, req.todo * self.sim.kv_bytes
        flows = [env.process(self.fabric.transfer(nbytes, links, latency))
                 for links, latency in self._paths(src.idx, dst.idx)]
        yield env.all_of(flows)
        self.sim.transfers.append((start, env.now - start))
        src.pool.give(req.blocks)
        src.pool.settle()
        src.inbox.put(None)  # wake the prefill replica: blocks came back
        req.blocks, req.stage = blocks, "ready"
        dst.inbox.put(req)

    def _paths(self, src: int, dst: int) -> list[tuple]:
        """(links, latency) from GPU i of replica ``src`` to GPU i of replica ``dst``."""
        key = (src, dst)
        if key not in self._links:
            cfg, cluster = self.sim.cfg, self.sim.cluster
            g, shard = cfg.gpus_per_replica, cfg.tp * cfg.pp
            pairs = [(src * g + i, dst * g + i) for i in range(shard)]
            self._links[key] = [(tuple(cluster.path_links(a, b)), cluster.latency(a, b))
                                for a, b in pairs]
        return self._links[key]


DEPLOYMENTS = {"colocated": Colocated, "disaggregated": Disaggregated}


def deployment_for(policy: str) -> str:
    """``--policy`` names a batching policy (colocated replicas) or a whole deployment."""
    return policy if policy in DEPLOYMENTS else "colocated"
