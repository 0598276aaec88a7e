"""One model replica as a SimPy process: the iteration loop every batching policy shares.

A replica owns an ``inbox`` (``simpy.Store``) the router and the KV-transfer processes put
requests into, a waiting queue (requests needing a prefill, preempted ones in front), the
requests admitted but still prefilling (they hold their prompt's KV blocks), the decode batch
(``RunningSet``) and its KV block pool. Each turn of the loop is one iteration:

1. move everything in the inbox to the right queue; with nothing to do, wait on the inbox;
2. ask the policy for the iteration (``policy.schedule``): which prefill chunks run, whether
   the decode batch steps, and the shape the cost model should price (static batching pads);
3. ``yield env.timeout(step time)`` -- the only place simulated time passes;
4. commit: tokens appear, sequences that reached their output length leave and free their
   blocks, finished prefills emit their first token and join the decode batch (or, in a
   disaggregated prefill pool, start their KV transfer); the KV Container is settled to the
   iteration's net allocation.

Decode bookkeeping is vectorised over the batch (see ``RunningSet``). Preemption (vLLM,
Kwon et al. 2023, Sec. 4.5) takes the most recently admitted sequence: ``recompute`` frees its
blocks and puts it back at the front of the queue to prefill prompt + generated tokens again;
``swap`` copies its blocks to host memory over PCIe and back when room returns.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sim.serving import fastforward
from sim.serving.iterlog import IterLog
from sim.serving.kvcache import BlockPool
from sim.serving.request import Request, RunningSet

_NOTHING = object()


@dataclass
class Iteration:
    chunks: list = field(default_factory=list)  # (request, tokens, ctx before the chunk)
    decode: bool = False  # the running set steps this iteration
    cost_kv: np.ndarray | None = None  # decode contexts to price (None: the running set's)
    cost_chunks: list | None = None  # (tokens, ctx) to price (None: the real chunks)
    extra_s: float = 0.0  # swap traffic etc.
    adv: np.ndarray | int = 1  # KV slots reserved per decoding sequence


class Replica:
    def __init__(self, sim, idx: int, policy, blocks: int = 0, hand_off=None):
        self.sim, self.env, self.idx, self.policy = sim, sim.env, idx, policy
        self.hand_off = hand_off  # None: decode here; else hand_off(req, rep) after prefill
        self.inbox = sim.store()
        self.waiting: deque[Request] = deque()
        self.kv_wait: deque[Request] = deque()  # disaggregated decode: KV to pull in
        self.swapped: deque[Request] = deque()
        self.prefilling: list[Request] = []
        self.run = RunningSet(sim.cfg.max_batch, sim.cfg.block_size)
        self.pool = BlockPool(self.env, blocks, sim.cfg.block_size)
        self.bs = sim.cfg.block_size
        self.dec_blocks = 0  # blocks held by the running set
        self.incoming = 0  # KV transfers in flight towards this replica
        self.outstanding = 0  # requests routed here and not yet finished or handed off
        self.log = IterLog()  # what each iteration (or fast-forwarded run) did
        self.rng = sim.rng(idx)  # speculative acceptance draws
        self.ff = sim.cfg.fast_forward and getattr(policy, "fast_forward", False)
        self.spec_steps = 0
        self.spec_tokens = 0
        self.env.process(self.loop())

    # --- the loop ----------------------------------------------------------------------------
    def loop(self):
        while True:
            self.drain()
            if not self.busy():
                self.accept((yield self.inbox.get()))
                continue
            if self.ff and self.steady():
                run = fastforward.plan(self)
                if run is not None:
                    yield from self.forward(run)
                    continue
            if self.policy.waits:
                yield from self.policy.wait(self)
            it = self.policy.schedule(self)
            if it is None:  # nothing can run until something arrives (e.g. memory held)
                self.accept((yield self.inbox.get()))
                continue
            yield self.env.timeout(self.price(it))
            self.commit(it)
            if self.policy.waits:
                self.policy.committed(self)
            self.pool.settle()

    def steady(self) -> bool:
        """Only the decode batch has work and nothing waits in the inbox: the next
        iterations are decode steps of the same sequences until an event (fast-forward)."""
        return bool(self.run.n and not (self.waiting or self.prefilling or self.swapped
                                        or self.kv_wait or self.inbox.items))

    def forward(self, run: fastforward.Run):
        """Wait out a fast-forwarded run, or up to the end of the step in flight when the
        inbox receives something first; commit the steps done."""
        env, now = self.env, self.env.now
        ends = np.cumsum(np.concatenate(([now], run.times)))[1:]  # SimPy's running sums
        get, end = self.inbox.get(), ends[-1]
        while True:  # one timeout, or two where SimPy cannot land on the end in one
            yield get | env.timeout(_delay_to(env.now, end))
            if get.triggered or env.now >= end:
                break
        m, item = len(ends), _NOTHING
        if get.triggered:
            item = get.value
            m = min(int(np.searchsorted(ends, env.now, side="left")) + 1, len(ends))
            while ends[m - 1] > env.now:
                yield env.timeout(_delay_to(env.now, ends[m - 1]))
        else:
            get.cancel()
        fastforward.commit(self, run, m, ends)
        self.pool.settle()
        if item is not _NOTHING:
            self.accept(item)

    def decode_times(self, kv_sums: np.ndarray, contexts) -> np.ndarray:
        """``price`` of decode-only iterations of the running set, for each total context
        in ``kv_sums`` (``contexts(j)``: step j's contexts, for exact pricing)."""
        spec = self.sim.spec_k > 0
        return self.sim.timer.decode_times(self.run.n, kv_sums, spec, contexts)

    def decode_time(self) -> float:
        """``price`` of one decode-only iteration of the running set as it is now."""
        run, timer = self.run, self.sim.timer
        kv = run.contexts() if timer.exact else None
        return timer.step((), (), run.n, run.kv_sum(), kv, self.sim.spec_k > 0)

    def busy(self) -> bool:
        return bool(self.run.n or self.waiting or self.prefilling or self.kv_wait
                    or self.swapped)

    def drain(self) -> None:
        """Take everything already in the inbox (the Store's items, without a get event each;
        an idle replica blocks on ``inbox.get()`` instead)."""
        items = self.inbox.items
        while items:
            self.accept(items.pop(0))

    def accept(self, req: Request | None) -> None:
        if req is None:  # a wake-up: blocks were freed elsewhere
            return
        if req.stage == "kv":
            self.kv_wait.append(req)
        elif req.stage == "ready":
            self.incoming -= 1
            self.join(req)
        else:
            req.todo = req.prompt + req.generated
            self.waiting.append(req)

    # --- pricing and commit ------------------------------------------------------------------
    def price(self, it: Iteration) -> float:
        timer, run = self.sim.timer, self.run
        if not it.chunks and it.cost_kv is None:  # decode-only
            kv = run.contexts() if timer.exact else None
            spec = self.sim.spec_k > 0
            return timer.step((), (), run.n, run.kv_sum(), kv, spec) + it.extra_s
        chunks = it.cost_chunks if it.cost_chunks is not None else [(c[1], c[2]) for c in it.chunks]
        if not it.decode:
            n, total, kv = 0, 0, None
        elif it.cost_kv is not None:
            n, total, kv = len(it.cost_kv), int(it.cost_kv.sum()), it.cost_kv
        else:
            n, total = run.n, run.kv_sum()
            kv = run.contexts() if timer.exact else None
        t = timer.step([c[0] for c in chunks], [c[1] for c in chunks], n, total, kv,
                       self.sim.spec_k > 0)  # the draft prefills every prompt chunk too
        return t + it.extra_s

    def commit(self, it: Iteration) -> None:
        now, tokens = self.env.now, 0
        if it.decode and self.run.n:
            tokens += self._advance()
        for req, n, _ in it.chunks:
            req.done_prefill += n
            if req.done_prefill == req.todo:
                tokens += 1
                self._prefilled(req, now)
        self.log.add(now, self.run.n + len(self.prefilling), self.pool.used,
                     len(self.waiting), tokens)

    def _advance(self) -> int:
        """Every decoding sequence produces 1 token (speculative: 1 + accepted drafts);
        finished ones leave and give their KV blocks back."""
        run, n = self.run, self.run.n
        if self.sim.spec_k:
            adv = self.sim.accepted(self.rng, run.acc[:n])
            self.spec_steps += n
            self.spec_tokens += int(adv.sum())
            adv = np.minimum(adv, run.left())  # a request stops at its output length
            produced = int(adv.sum())
            done = run.step_by(adv)
        else:
            produced, done = n, run.step()
        freed = 0
        for i in done[::-1]:
            freed += self.pool.blocks_for(run.ctx(int(i)))
            self.sim.finished(run.remove(int(i)), self)
        if len(done):
            run.refresh_min()
        if self.policy.paged:
            if self.sim.spec_k:  # give back slots reserved for rejected drafts too
                held = int(((run.contexts() + self.bs - 1) // self.bs).sum())
                freed = self.dec_blocks - held
            self.pool.give(freed)
            self.dec_blocks -= freed
        return produced

    def _prefilled(self, req: Request, now: float) -> None:
        """A prefill completed: it emits one token (the first, or the next after a
        recompute) and the request joins decoding, moves to the decode pool, or finishes."""
        self.prefilling.remove(req)
        req.generated += 1
        if req.first_token != req.first_token:  # NaN: first time
            req.first_token = now
        if req.generated >= req.output:
            self.free(req.blocks)
            req.blocks = 0
            self.sim.finished(req, self)
        elif self.hand_off is not None:  # a prefill pool: the deployment moves it on
            self.hand_off(req, self)
        else:
            self.join(req)

    def join(self, req: Request) -> None:
        self.dec_blocks += req.blocks
        req.blocks = 0
        self.run.add(req, req.todo)

    def free(self, blocks: int) -> None:
        if self.policy.paged:
            self.pool.give(blocks)

    # --- memory: reserve decode growth, preempt, swap, admit ----------------------------------
    def reserve_decode(self, adv: int) -> float:
        """Take the blocks this iteration's decode writes (``adv`` slots per sequence) need,
        preempting the newest sequences while they do not fit. Returns swap-out time."""
        extra, run = 0.0, self.run
        while run.n:
            if adv == 1:
                new = run.boundary()
            else:
                new = int(((run.contexts() + adv + self.bs - 1) // self.bs).sum()) - self.dec_blocks
            if new <= self.pool.available:
                self.pool.take(new)
                self.dec_blocks += new
                return extra
            extra += self.preempt(run.newest())
        return extra

    def preempt(self, i: int) -> float:
        ctx = self.run.ctx(i)
        req = self.run.remove(i)
        self.run.refresh_min()
        blocks = self.pool.blocks_for(ctx)
        self.dec_blocks -= blocks
        self.pool.give(blocks)
        req.preemptions += 1
        self.sim.preemptions += 1
        if self.sim.cfg.preemption == "swap":
            req.swapped_ctx = ctx
            self.swapped.append(req)
            return self.sim.swap_time(ctx)
        req.todo, req.done_prefill = req.prompt + req.generated, 0
        self.waiting.appendleft(req)
        return 0.0

    def swap_in(self, room: int, adv: int) -> tuple[float, int]:
        """Bring swapped sequences back (oldest first) while blocks and batch room allow."""
        t = 0.0
        back = self.pool.take_while(self.swapped, lambda r: self.pool.blocks_for(
            r.swapped_ctx + adv), limit=max(room, 0))  # with this step's write
        for req, blocks in back:
            self.dec_blocks += blocks
            self.run.add(req, req.swapped_ctx)
            t += self.sim.swap_time(req.swapped_ctx)
        return t, room - len(back)

    def admit(self, room: int, max_new: int | None = None, budget: int | None = None,
              force_first: bool = False) -> int:
        """Admit waiting requests FCFS while their prefill's blocks fit (head of line
        blocks the rest, as vLLM's FCFS scheduler does) and their whole prompts fit in
        ``budget`` tokens (``force_first``: the first may exceed it, so a recomputed
        sequence longer than the budget is not stuck). Returns the batch room left."""
        limit = max(room, 0) if max_new is None else max(min(room, max_new), 0)
        now = self.env.now
        allow = None if budget is None else TokenBudget(budget, force_first)
        for req, blocks in self.pool.take_while(
                self.waiting, lambda r: self.pool.blocks_for(r.todo), limit, allow):
            req.blocks, req.done_prefill = blocks, 0
            if req.scheduled != req.scheduled:
                req.scheduled = now
            self.prefilling.append(req)
            room -= 1
        return room


class TokenBudget:
    """``allow`` for ``BlockPool.take_while``: whole prompts while their tokens fit."""

    def __init__(self, budget: int, force_first: bool = False):
        self.left, self.force = budget, force_first

    def __call__(self, req: Request) -> bool:
        if req.todo > self.left and not self.force:
            return False
        self.left -= req.todo
        self.force = False
        return True


def _delay_to(now: float, at: float) -> float:
    """The delay that SimPy adds to ``now`` to land on ``at`` exactly (stepping reaches
    ``at`` as a running sum; ``at - now`` can miss it by an ulp), else the largest that
    stays below it: from there ``at - now`` is exact (Sterbenz), so a second hop lands."""
    delay = float(at) - now
    while now + delay > at:
        delay = math.nextafter(delay, -math.inf)
    up = math.nextafter(delay, math.inf)
    return up if now + up == at else delay
