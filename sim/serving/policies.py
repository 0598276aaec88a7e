"""Batching policies: small classes with three hooks, chosen by name from ``POLICIES``.

* ``wait(rep)``: a generator that may hold the replica before it schedules (static batching
  waits for a full batch or its timeout);
* ``schedule(rep) -> Iteration | None``: what runs in the next iteration;
* ``committed(rep)``: after the iteration's tokens are counted.

``static`` (the FasterTransformer / HF ``generate`` way): up to B requests form a batch once B
are waiting or the oldest has waited ``batch_timeout``; the batch reserves KV for
B x (longest prompt + longest output) contiguous slots, prefills padded to its longest
prompt and decodes every slot until its longest request finishes; finished slots stay idle
but are still computed (they are padding in the same tensor).

``continuous`` (Yu et al. 2022, Orca, Sec. 3.1 iteration-level scheduling, with vLLM's paged
KV cache): every iteration the finished sequences leave and waiting ones join, their whole
prompts prefilled alongside the decodes.

``chunked`` (Agrawal et al. 2024, Sarathi-Serve, Sec. 4.1 stall-free batching): a token budget
per iteration; decodes go first, the rest of the budget is filled with prompt chunks, so one
long prompt never stalls the decodes for its whole prefill.

``disaggregated`` (Zhong et al. 2024, DistServe; Patel et al. 2024, Splitwise): prefill
replicas only prefill; decode replicas pull each request's KV (``DecodeOnly``) over the
cluster's links once they have blocks for it, then decode with iteration-level batching.
"""

from __future__ import annotations

import numpy as np

from sim.serving.replica import Iteration


class Continuous:
    name = "continuous"
    paged = True
    waits = False  # ``wait`` and ``committed`` do nothing; the replica skips them

    def __init__(self, cfg):
        self.max_batch = cfg.max_batch

    def wait(self, rep):
        return
        yield  # a generator with nothing to wait for

    def committed(self, rep) -> None:
        return None

    def _pull(self, rep, room: int) -> int:
        return room

    def _memory(self, rep) -> tuple[float, int]:
        """Reserve decode growth (preempting if needed), then swap back what fits."""
        adv = rep.sim.spec_k + 1
        extra = rep.reserve_decode(adv)
        room = self.max_batch - rep.run.n - len(rep.prefilling) - rep.incoming
        t, room = rep.swap_in(room, adv)
        return extra + t, room

    def schedule(self, rep) -> Iteration | None:
        if not (rep.waiting or rep.prefilling or rep.swapped or rep.kv_wait):
            extra = rep.reserve_decode(rep.sim.spec_k + 1)  # steady state: decodes only
            if not (rep.waiting or rep.swapped):
                return Iteration(decode=True, extra_s=extra) if rep.run.n else None
        extra, room = self._memory(rep)
        room = self._pull(rep, room)
        if not rep.swapped:  # swapped sequences go before new ones (vLLM)
            rep.admit(room)
        chunks = [(r, r.todo - r.done_prefill, r.done_prefill) for r in rep.prefilling]
        if not chunks and not rep.run.n:
            return None
        return Iteration(chunks, decode=rep.run.n > 0, extra_s=extra)


class Chunked(Continuous):
    name = "chunked"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.budget = cfg.chunk_tokens

    def schedule(self, rep) -> Iteration | None:
        extra, room = self._memory(rep)
        budget = self.budget - rep.run.n * (rep.sim.spec_k + 1)  # decodes first
        chunks = []
        for r in rep.prefilling:
            if budget <= 0:
                break
            n = min(r.todo - r.done_prefill, budget)
            chunks.append((r, n, r.done_prefill))
            budget -= n
        while budget > 0 and room > 0 and not rep.swapped:
            before = len(rep.prefilling)
            room = rep.admit(room, max_new=1)
            if len(rep.prefilling) == before:
                break
            r = rep.prefilling[-1]
            n = min(r.todo, budget)
            chunks.append((r, n, 0))
            budget -= n
        if not chunks and not rep.run.n:
            return None
        return Iteration(chunks, decode=rep.run.n > 0, extra_s=extra)


class DecodeOnly(Continuous):
    """The decode pool of a disaggregated deployment: pulls KV in, then batches decodes."""

    name = "decode"

    def _pull(self, rep, room: int) -> int:
        """Start KV transfers of prefilled requests, oldest first, while blocks allow."""
        while rep.kv_wait and room > 0:
            req = rep.kv_wait[0]
            blocks = rep.pool.blocks_for(req.todo)
            if blocks > rep.pool.available:
                break
            rep.kv_wait.popleft()
            rep.pool.take(blocks)
            rep.sim.start_transfer(req, rep, blocks)
            room -= 1
        return room


class Static:
    name = "static"
    paged = False
    waits = True  # the replica calls ``wait`` and ``committed``

    def __init__(self, cfg):
        self.max_batch, self.timeout = cfg.max_batch, cfg.batch_timeout_s
        self.state: dict[int, dict] = {}

    def _st(self, rep) -> dict:
        return self.state.setdefault(rep.idx, {"reserved": 0, "slots": 0, "pad": 0})

    def wait(self, rep):
        """Hold until B requests wait or the oldest has waited ``batch_timeout_s``."""
        if rep.run.n or rep.prefilling:
            return
        env = rep.env
        deadline = rep.waiting[0].arrival + self.timeout
        while len(rep.waiting) < self.max_batch and env.now < deadline:
            get = rep.inbox.get()
            yield get | env.timeout(deadline - env.now)
            if get.triggered:
                rep.accept(get.value)
            else:
                get.cancel()

    def schedule(self, rep) -> Iteration | None:
        st = self._st(rep)
        if rep.run.n or rep.prefilling:
            top = int(rep.run.gbase[: rep.run.n].max()) + rep.run.k  # the longest's context
            return Iteration(decode=True, cost_kv=np.full(st["slots"], st["pad"] + top - 1))
        batch = self._form(rep, st)
        if not batch:
            return None
        return Iteration([(r, r.todo, 0) for r in batch], cost_chunks=[(st["pad"], 0)] * len(batch))

    def _form(self, rep, st) -> list:
        """FIFO requests while B x (longest prompt + longest output) slots fit in memory."""
        batch, p, o = [], 0, 0
        for req in list(rep.waiting)[: self.max_batch]:
            p2, o2 = max(p, req.todo), max(o, req.output - req.generated)
            blocks = rep.pool.blocks_for((len(batch) + 1) * (p2 + o2))
            if blocks > rep.pool.available:
                break
            batch.append(req)
            p, o, st["reserved"] = p2, o2, blocks
        for req in batch:
            rep.waiting.popleft()
            req.scheduled, req.done_prefill = rep.env.now, 0
            rep.prefilling.append(req)
        rep.pool.take(st["reserved"] if batch else 0)
        st["slots"], st["pad"] = len(batch), p
        return batch

    def committed(self, rep) -> None:
        st = self._st(rep)
        if st["reserved"] and not rep.run.n and not rep.prefilling:
            rep.pool.give(st["reserved"])
            st["reserved"] = 0


POLICIES = {"static": Static, "continuous": Continuous, "chunked": Chunked}
