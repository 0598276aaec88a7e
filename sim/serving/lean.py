"""The lean serving engine: the SimPy engine's schedule, without SimPy or a per-request object.

For the configurations where it is exact (``supports``: colocated replicas, one or any number
behind the round-robin router, ``continuous`` or ``prefill-first`` batching, recompute preemption, no speculative decoding, interpolated
step times, ep = 1) this engine replays the SimPy engine's decisions (``sim.serving.replica``,
``sim.serving.policies``) in a plain loop: the next event is the next arrival or the end of
the iteration in flight, so there is no event queue; requests are indices into arrays drawn
by the workload; the decode batch is a dict of the few running requests with a heap of their
finishing steps; per-request results go straight into preallocated numpy columns. Decode-only
runs between events are fast-forwarded in closed form (``sim.serving.decoderun``), segmented
as the SimPy engine's fast-forward segments them (``sim.serving.fastforward``: the same
MIN_STEPS, MAX_STEPS and arrival horizon), so the iteration log, and the timeline built from
it, are the same row for row.

Exactness against the SimPy engine (issue 18): identical counts (completed, rejected,
preemptions, tokens, iterations, KV blocks) and timestamps equal up to the rounding of the
closed-form run sums (relative 1e-13 or so; the tolerance is 1e-9). Both reserve a decode
step's blocks once per iteration, before admitting (a steady step that preempts requeues the
preempted sequence and then admits from the queue without reserving again). An
arrival and a step end at the very same instant are ordered arrival first (the SimPy engine
orders such ties by event id; with continuous time they do not occur).
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from sim.serving.decoderun import Boundaries, DecodeClock
from sim.serving.engine import misfit, model_context
from sim.serving.fastforward import MAX_STEPS, MIN_STEPS
from sim.serving.iterlog import IterLog
from sim.serving.policies import POLICIES

POLICIES_SUPPORTED = ("continuous", "prefill-first")


def supports(cfg, timer) -> bool:
    """Whether the lean engine reproduces the SimPy engine for this configuration."""
    return (cfg.fast_forward and cfg.deployment == "colocated"
            and (cfg.replicas == 1 or cfg.router == "round-robin")
            and cfg.policy in POLICIES_SUPPORTED and cfg.preemption == "recompute"
            and not cfg.speculative_tokens and not timer.exact and timer.groups == 1)


class _Pool:
    """What ``api`` reads of a replica's KV pool."""

    def __init__(self, peak: int):
        self.peak = peak


class _Replica:
    """What ``api`` reads of a replica: its index, iteration log and KV peak."""

    spec_steps = spec_tokens = 0

    def __init__(self, idx: int, log: IterLog, peak: int):
        self.idx, self.log, self.pool = idx, log, _Pool(peak)


class LeanSimulation:
    """Colocated replicas serving a workload; ``run`` returns the per-request columns.
    Round-robin routing does not depend on the replicas' state, and replicas share nothing
    else (the horizon hint is every request's arrival), so each replica's requests are
    simulated in turn by the same loop."""

    def __init__(self, cfg, timer, blocks: int):
        self.cfg, self.timer, self.capacity = cfg, timer, blocks
        self.policy = POLICIES[cfg.policy](cfg)
        self.first_policy = cfg.policy == "prefill-first"
        self.clock = DecodeClock(timer)
        self.bs, self.max_batch = cfg.block_size, cfg.max_batch
        self.context = model_context(getattr(timer, "model", None))
        # what api reads of a Simulation
        self.replicas: list[_Replica] = []
        self.spec_k = self.preemptions = 0
        self.transfers: list = []

    # --- workload in, columns out ------------------------------------------------------------
    def run(self, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> dict:
        n = len(arrival)
        self.prompt, self.output = prompt.tolist(), output.tolist()
        self.gen = [0] * n
        self.sched = np.full(n, math.nan)
        self.first = np.full(n, math.nan)
        self.finish = np.full(n, math.nan)
        self.pre = np.zeros(n, np.int64)
        rejected = self._door(prompt, output)
        times = np.maximum.accumulate(np.asarray(arrival, dtype=np.float64))  # arrival events
        ok = np.flatnonzero(rejected == "")
        replica = np.full(n, -1, dtype=np.int64)
        replica[ok] = np.arange(len(ok)) % self.cfg.replicas  # the round-robin cycle
        hints = times.tolist()
        for r in range(self.cfg.replicas):
            mine = ok[replica[ok] == r]
            self.log = IterLog()
            self._loop(hints, mine.tolist(), times[mine].tolist())
            self.replicas.append(_Replica(r, self.log, self.peak))
        served = ~np.isnan(self.finish)
        return self._columns(arrival, prompt, output, rejected, served, replica)

    def _door(self, prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The rejection reason of every request ('' for those admitted at the door)."""
        limit = self.policy.prompt_limit(self)
        bad = (-(-(prompt + output) // self.bs) > self.capacity) | (self.capacity == 0)
        if limit is not None:
            bad |= prompt > limit
        if self.context is not None:
            bad |= prompt + output > self.context
        reasons = np.full(len(prompt), "", dtype=object)
        for i in np.flatnonzero(bad).tolist():
            reasons[i] = misfit(self.prompt[i], self.output[i], capacity=self.capacity,
                                block_size=self.bs, extra_tokens=0, limit=limit,
                                context=self.context)
        return reasons

    def _columns(self, arrival, prompt, output, rejected, served, replica) -> dict:
        keep = served | (rejected != "")  # a request stuck in the queue has no record
        gen = np.asarray(self.gen, dtype=np.int64)
        cols = {"rid": np.arange(len(arrival), dtype=np.int64),
                "arrival": np.asarray(arrival, dtype=np.float64),
                "replica": replica,
                "prompt": prompt.astype(np.int64), "output": output.astype(np.int64),
                "generated": gen, "scheduled": self.sched, "first_token": self.first,
                "finish": self.finish, "preemptions": self.pre, "rejected": rejected}
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        return cols

    # --- the event loop ------------------------------------------------------------------------
    def _loop(self, times: list, ok: list, ok_times: list) -> None:
        """Arrivals (``ok_times[p]``: when admitted request ``ok[p]`` reaches the replica)
        against iteration ends; ``times``: every request's arrival, for the horizon hint."""
        self.t, self.k, self.n, self.sum_base = 0.0, 0, 0, 0
        self.res = [0] * self.bs
        self.running: dict[int, list] = {}
        self.fins: list = []
        self.tick, self.available, self.peak, self.dec_blocks = 0, self.capacity, 0, 0
        self.waiting: deque[int] = deque()
        self.times, self.hint_at, self.last_hint = times, 0, _last_hint(times)
        p, total = 0, len(ok)
        waiting = self.waiting
        while True:
            t = self.t
            while p < total and ok_times[p] <= t:
                waiting.append(ok[p])
                p += 1
            if not (self.n or waiting):
                if p == total:
                    return
                self.t = max(t, ok_times[p])  # idle: wake at the next arrival
                continue
            if not waiting and self._steady(ok_times[p] if p < total else math.inf):
                continue
            chunks, decode = self._schedule()
            if not chunks and not decode:  # nothing fits until something arrives
                if p == total:
                    return
                self.t = max(t, ok_times[p])
                continue
            self.t = t + self._price(chunks, decode)
            self._commit(chunks, decode)

    def _steady(self, nxt: float) -> bool:
        """Only decodes to run: a fast-forwarded run where ``fastforward.plan`` would make
        one (same length bounds, so the same log rows), else one decode step when its blocks
        fit; False when the general schedule must decide (a preemption)."""
        n, k = self.n, self.k
        kv_sum = self.sum_base + n * k
        step_s = None
        to_finish = self._min_fin() - k - 1
        if to_finish >= MIN_STEPS:
            step_s = self.clock.step(n, kv_sum)
            horizon = self._horizon(step_s)
            if horizon >= MIN_STEPS:
                steps = int(min(to_finish, MAX_STEPS, horizon))
                blocks = Boundaries(self.res, k, n, self.bs)
                steps = min(steps, blocks.longest(self.available))
                if steps >= MIN_STEPS:
                    self._forward(blocks, steps, kv_sum // n, nxt)
                    return True
        new = self.res[-k % self.bs]
        if new > self.available:
            return False
        self._take(new)
        self.dec_blocks += new
        self.t += self.clock.step(n, kv_sum) if step_s is None else step_s
        self.k = k + 1
        if self.fins[0][0] <= k + 1:
            self._finish_decodes()
        self.log.add(self.t, self.n, self.capacity - self.available, 0, n)
        return True

    # --- fast-forward ----------------------------------------------------------------------------
    def _forward(self, blocks: Boundaries, steps: int, mean: int, nxt: float) -> None:
        """Run up to ``steps`` decode steps, cut by the arrival at ``nxt`` (the step in
        flight then completes), and commit them as one log row (``fastforward.commit``)."""
        n = self.n
        m, end = self.clock.advance(n, mean, steps, self.t, nxt)
        used0 = self.capacity - self.available
        need = blocks.need(m)
        self.available -= need
        self.dec_blocks += need
        self.peak = max(self.peak, used0 + need)
        self.k += m
        self.log.add_run(end, m, n, used0 + need, m * used0 + blocks.need_sum(m), 0, n * m)
        self.t = end

    def _horizon(self, step_s: float) -> float:
        """``Simulation.steps_until_arrival``: the next arrival the arrival process waits
        for (any request, rejected ones too), in steps of ``step_s``, plus 2."""
        times, i, t = self.times, self.hint_at, self.t
        while i < len(times) and times[i] <= t:
            i += 1
        self.hint_at = i
        hint = times[i] if i < len(times) else self.last_hint
        gap = hint - t
        return gap / step_s + 2 if gap >= 0 and step_s > 0 else math.inf

    def _min_fin(self) -> float:
        fins, running = self.fins, self.running
        while fins:
            fin, tick, rid = fins[0]
            seq = running.get(rid)
            if seq is not None and seq[3] == tick:
                return fin
            heapq.heappop(fins)
        return math.inf

    # --- one iteration -------------------------------------------------------------------------
    def _schedule(self) -> tuple[list, bool]:
        """``Continuous.schedule`` / ``PrefillFirst.schedule``: (prefill chunks, decode?)."""
        if self.first_policy:
            if self.waiting:
                chunks = self._admit(self.max_batch - self.n,
                                     self.policy.prompt_limit(self), True)
                if chunks:
                    return chunks, False
            self._reserve_decode()
            return [], self.n > 0
        self._reserve_decode()  # once, before admitting (a preemption requeues the newest)
        if not self.waiting:
            return [], True
        budget = self.policy.token_budget
        chunks = self._admit(self.max_batch - self.n,
                             None if budget is None else budget - self.n, not self.n)
        return chunks, self.n > 0

    def _price(self, chunks: list, decode: bool) -> float:
        n, kv = (self.n, self.sum_base + self.n * self.k) if decode else (0, 0)
        if not chunks:
            return self.clock.step(n, kv)
        return self.clock.mixed([c[1] for c in chunks], n, kv)

    def _admit(self, room: int, budget: int | None, force: bool) -> list:
        """``Replica.admit`` (FCFS while blocks and the token budget allow): returns the
        prefill chunks (rid, tokens, blocks)."""
        out, waiting, bs, prompt, gen = [], self.waiting, self.bs, self.prompt, self.gen
        while waiting and len(out) < room:
            rid = waiting[0]
            todo = prompt[rid] + gen[rid]
            if budget is not None:
                if todo > budget and not force:
                    break
                budget -= todo
                force = False
            need = -(-todo // bs)
            if need > self.available:
                break
            self._take(need)
            waiting.popleft()
            if not gen[rid]:
                self.sched[rid] = self.t
            out.append((rid, todo, need))
        return out

    def _take(self, blocks: int) -> None:
        self.available -= blocks
        used = self.capacity - self.available
        if used > self.peak:
            self.peak = used

    def _reserve_decode(self) -> None:
        """Blocks for the decode step's new tokens; preempt the newest while they do not
        fit (``Replica.reserve_decode``)."""
        while self.n:
            new = self.res[-self.k % self.bs]
            if new <= self.available:
                self._take(new)
                self.dec_blocks += new
                return
            self._preempt(max(self.running, key=lambda r: self.running[r][3]))

    def _preempt(self, rid: int) -> None:
        ctx = self._remove(rid)
        blocks = -(-ctx // self.bs)
        self.dec_blocks -= blocks
        self.available += blocks
        self.pre[rid] += 1
        self.preemptions += 1
        self.waiting.appendleft(rid)

    def _remove(self, rid: int) -> int:
        """Take ``rid`` out of the decode batch; returns its context."""
        base, gbase, _, _ = self.running.pop(rid)
        self.gen[rid] = gbase + self.k
        self.res[base % self.bs] -= 1
        self.sum_base -= base
        self.n -= 1
        return base + self.k

    def _commit(self, chunks: list, decode: bool) -> None:
        tokens = 0
        if decode and self.n:
            tokens = self.n
            self.k += 1
            self._finish_decodes()
        for rid, todo, blocks in chunks:
            tokens += 1
            gen = self.gen[rid]
            if not gen:
                self.first[rid] = self.t
            self.gen[rid] = gen = gen + 1
            if gen >= self.output[rid]:
                self.available += blocks
                self.finish[rid] = self.t
            else:
                self.dec_blocks += blocks
                self._join(rid, todo, gen)
        self.log.add(self.t, self.n, self.capacity - self.available, len(self.waiting), tokens)

    def _finish_decodes(self) -> None:
        fins, k, freed = self.fins, self.k, 0
        while fins and fins[0][0] <= k:
            _, tick, rid = heapq.heappop(fins)
            seq = self.running.get(rid)
            if seq is None or seq[3] != tick:
                continue
            freed += -(-self._remove(rid) // self.bs)
            self.finish[rid] = self.t
        self.available += freed
        self.dec_blocks -= freed

    def _join(self, rid: int, ctx: int, gen: int) -> None:
        k = self.k
        base, fin = ctx - k, k + self.output[rid] - gen
        self.running[rid] = [base, gen - k, fin, self.tick]
        heapq.heappush(self.fins, (fin, self.tick, rid))
        self.tick += 1
        self.res[base % self.bs] += 1
        self.sum_base += base
        self.n += 1


def _last_hint(times: list) -> float:
    """The last arrival the arrival process sleeps towards (inf if it never sleeps)."""
    for i in range(len(times) - 1, -1, -1):
        if times[i] > (times[i - 1] if i else 0.0):
            return times[i]
    return math.inf
