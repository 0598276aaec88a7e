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

Each replica gets its own policy instance (state such as static batching's reservation lives
on ``self``); deployments (``sim.serving.deployments``) choose which policy each pool runs.
"""

from __future__ import annotations

import numpy as np

from sim.serving.replica import Iteration


class Continuous:
    name = "continuous"
    paged = True
    waits = False  # ``wait`` and ``committed`` do nothing; the replica skips them
    fast_forward = True  # a decode-only batch steps as ``sim.serving.fastforward`` computes

    def __init__(self, cfg):
        self.max_batch = cfg.max_batch
        self.token_budget = cfg.max_batched_tokens  # None: no per-iteration token cap

    def prompt_limit(self, sim) -> int | None:
        """Longest prompt this policy can ever prefill (whole prompts: the token budget)."""
        return self.token_budget

    def _prefill_budget(self, rep) -> int | None:
        """Prompt tokens the iteration may add: the budget less the decodes' tokens."""
        if self.token_budget is None:
            return None
        busy = rep.run.n * (rep.sim.spec_k + 1) + sum(r.todo - r.done_prefill
                                                      for r in rep.prefilling)
        return self.token_budget - busy

    def wait(self, rep):
        return
        yield  # a generator with nothing to wait for

    def committed(self, rep) -> None:
        return None

    def _pull(self, rep, room: int) -> int:
        return room

    def _memory(self, rep, reserved: float | None = None) -> tuple[float, int]:
        """Reserve decode growth (preempting if needed) unless this iteration already did
        (``reserved``: its swap-out time), then swap back what fits."""
        adv = rep.sim.spec_k + 1
        extra = rep.reserve_decode(adv) if reserved is None else reserved
        room = self.max_batch - rep.run.n - len(rep.prefilling) - rep.incoming
        t, room = rep.swap_in(room, adv)
        return extra + t, room

    def schedule(self, rep) -> Iteration | None:
        reserved = None
        if not (rep.waiting or rep.prefilling or rep.swapped or rep.kv_wait):
            reserved = rep.reserve_decode(rep.sim.spec_k + 1)  # steady state: decodes only
            if not (rep.waiting or rep.swapped):
                return Iteration(decode=True, extra_s=reserved) if rep.run.n else None
        extra, room = self._memory(rep, reserved)  # a preemption above: reserved once only
        room = self._pull(rep, room)
        if not rep.swapped:  # swapped sequences go before new ones (vLLM)
            rep.admit(room, budget=self._prefill_budget(rep),
                      force_first=not (rep.run.n or rep.prefilling))
        chunks = [(r, r.todo - r.done_prefill, r.done_prefill) for r in rep.prefilling]
        if not chunks and not rep.run.n:
            return None
        return Iteration(chunks, decode=rep.run.n > 0, extra_s=extra)


class Chunked(Continuous):
    name = "chunked"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.budget = min(cfg.chunk_tokens, cfg.max_batched_tokens or cfg.chunk_tokens)

    def prompt_limit(self, sim) -> int | None:
        return None  # prompts are split into chunks

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


class Static:
    name = "static"
    paged = False
    waits = True  # the replica calls ``wait`` and ``committed``
    fast_forward = False  # padded slots: steps stay explicit

    def __init__(self, cfg):
        self.max_batch, self.timeout = cfg.max_batch, cfg.batch_timeout_s
        self.token_budget = cfg.max_batched_tokens  # padded prompt tokens per batch
        self.reserved = self.slots = self.pad = 0  # this replica's current batch

    def prompt_limit(self, sim) -> int | None:
        return self.token_budget

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
        if rep.run.n or rep.prefilling:
            top = int(rep.run.gbase[: rep.run.n].max()) + rep.run.k  # the longest's context
            return Iteration(decode=True, cost_kv=np.full(self.slots, self.pad + top - 1))
        batch = self._form(rep)
        if not batch:
            return None
        return Iteration([(r, r.todo, 0) for r in batch], cost_chunks=[(self.pad, 0)] * len(batch))

    def _form(self, rep) -> list:
        """FIFO requests while B x (longest prompt + longest output) slots fit in memory."""
        allow = None if self.token_budget is None else _PaddedTokens(self.token_budget)
        taken = rep.pool.take_while(rep.waiting, _PaddedBatch(rep.pool), self.max_batch, allow)
        batch = [r for r, _ in taken]
        for req in batch:
            req.scheduled, req.done_prefill = rep.env.now, 0
            rep.prefilling.append(req)
        self.reserved = sum(b for _, b in taken)
        self.slots, self.pad = len(batch), max((r.todo for r in batch), default=0)
        return batch

    def committed(self, rep) -> None:
        if self.reserved and not rep.run.n and not rep.prefilling:
            rep.pool.give(self.reserved)
            self.reserved = 0


class _PaddedBatch:
    """``need`` for ``BlockPool.take_while`` when a batch pads every slot to its longest
    prompt + longest output: the extra blocks the next request costs. Each call after the
    first means the previous candidate was taken (take_while stops at the first refusal)."""

    def __init__(self, pool):
        self.pool = pool
        self.held = (0, 0, 0, 0)  # requests, longest prompt, longest output, blocks
        self.pending: tuple | None = None

    def __call__(self, req) -> int:
        if self.pending is not None:
            self.held = self.pending
        n, p, o, blocks = self.held
        p2, o2 = max(p, req.todo), max(o, req.output - req.generated)
        total = self.pool.blocks_for((n + 1) * (p2 + o2))
        self.pending = (n + 1, p2, o2, total)
        return total - blocks


class _PaddedTokens:
    """``allow`` for a padded batch: (requests) x (longest prompt) within the budget."""

    def __init__(self, budget: int):
        self.budget, self.n, self.longest = budget, 0, 0

    def __call__(self, req) -> bool:
        longest = max(self.longest, req.todo)
        if self.n and (self.n + 1) * longest > self.budget:
            return False
        self.n, self.longest = self.n + 1, longest
        return True


class PrefillFirst(Continuous):
    """vLLM's scheduler before chunked prefill (Kwon et al. 2023; vLLM v0.x
    ``Scheduler._schedule_default``): when waiting requests can be admitted, the iteration
    prefills only them (whole prompts, at most ``max_num_batched_tokens`` tokens in all)
    and the running decodes pause; otherwise the decode batch steps. Without
    ``--max-batched-tokens`` the budget is vLLM's default max(max_model_len, 2048)
    (``SchedulerConfig`` with chunked prefill off)."""

    name = "prefill-first"

    def prompt_limit(self, sim) -> int:
        if self.token_budget is not None:
            return self.token_budget
        return max(sim.timer.model.position.max_positions, 2048)

    def schedule(self, rep) -> Iteration | None:
        if rep.waiting and not rep.swapped and not rep.prefilling:
            room = self.max_batch - rep.run.n - rep.incoming
            rep.admit(room, budget=self.prompt_limit(rep.sim), force_first=True)
            if rep.prefilling:  # a prefill-only iteration: decodes wait
                return Iteration([(r, r.todo, 0) for r in rep.prefilling])
        extra, room = self._memory(rep)
        if not rep.run.n:
            return None
        return Iteration(decode=True, extra_s=extra)


POLICIES = {"static": Static, "continuous": Continuous, "chunked": Chunked,
            "prefill-first": PrefillFirst}
