"""The lean serving engine: the SimPy engine's schedule, without SimPy or a per-request object.

For the configurations where it is exact (``supports``: colocated replicas, one or any number
behind the round-robin router, ``continuous`` or ``prefill-first`` batching, recompute preemption, no speculative decoding, interpolated
step times, ep = 1) this engine replays the SimPy engine's decisions (``sim.serving.replica``,
``sim.serving.policies``) in a plain loop: the next event is the next arrival or the end of
the iteration in flight, so there is no event queue; requests are indices into arrays drawn
by the workload; the decode batch is a dict of the few running requests with a heap of their
finishing steps; per-request results go straight into preallocated typed arrays (read as
numpy columns at the end). The loop keeps a replica's state in local variables (issue 18:
it runs ~4 times per request, so attribute and call overhead was most of its cost; see
docs/design-serving.md, "The engine's own cost"). Decode-only
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
from array import array
from collections import deque

import cython
import numpy as np

from sim.serving.admission import misfit, model_context
from sim.serving.decoderun import DecodeClock, Hits, run_blocks, run_fit
from sim.serving.fastforward import MAX_STEPS, MIN_STEPS
from sim.serving.iterlog import COLUMNS, IterLog
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
        self.limit = self.policy.prompt_limit(self) if self.first_policy else None
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
        # per-request state as typed arrays (8 bytes a value, no Python object per request:
        # a million requests stay inside issue 18's memory bound)
        self.prompt, self.output = _ints(prompt), _ints(output)
        self.gen, self.gbase, self.pre = _ints(np.zeros(n)), _ints(np.zeros(n)), [0] * n
        self.sched, self.first, self.finish = _nans(n), _nans(n), _nans(n)
        self.shift = max(n, 1).bit_length()  # heap entries: finishing step << shift | rid
        self.mask = (1 << self.shift) - 1
        rejected = self._door(prompt, output)
        times = np.maximum.accumulate(np.asarray(arrival, dtype=np.float64))  # arrival events
        ok = np.flatnonzero(rejected == "")
        replica = np.full(n, -1, dtype=np.int64)
        replica[ok] = np.arange(len(ok)) % self.cfg.replicas  # the round-robin cycle
        hints = times.tolist()
        for r in range(self.cfg.replicas):
            mine = ok[replica[ok] == r]
            self.log, self.waiting = IterLog(), deque()
            self._loop(hints, mine.tolist(), times[mine].tolist())
            self.replicas.append(_Replica(r, self.log, self.peak))
        served = ~np.isnan(np.frombuffer(self.finish))
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
        gen = np.frombuffer(self.gen, dtype=np.int64)
        cols = {"rid": np.arange(len(arrival), dtype=np.int64),
                "arrival": np.asarray(arrival, dtype=np.float64),
                "replica": replica,
                "prompt": prompt.astype(np.int64), "output": output.astype(np.int64),
                "generated": gen, "scheduled": np.frombuffer(self.sched),
                "first_token": np.frombuffer(self.first), "finish": np.frombuffer(self.finish),
                "preemptions": np.asarray(self.pre, dtype=np.int64),
                "rejected": rejected}
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        return cols

    # --- the event loop ------------------------------------------------------------------------
    @cython.locals(
        bs=cython.longlong, cap=cython.longlong, max_batch=cython.longlong,
        shift=cython.longlong, mask=cython.longlong, nkey=cython.longlong,
        t=cython.double, k=cython.longlong, n=cython.longlong, sum_base=cython.longlong,
        available=cython.longlong, peak=cython.longlong, iters=cython.longlong,
        h=cython.longlong, n_hints=cython.longlong, last_hint=cython.double,
        p=cython.longlong, n_ok=cython.longlong, nxt=cython.double,
        kv_sum=cython.longlong, to_finish=cython.longlong, key=cython.longlong,
        step_s=cython.double, gap=cython.double, horizon=cython.double,
        steps=cython.longlong, m=cython.longlong, used=cython.longlong, s0=cython.longlong,
        need=cython.longlong, need_sum=cython.longlong, i=cython.longlong,
        new=cython.longlong, tokens=cython.longlong, freed=cython.longlong,
        rid=cython.longlong, base=cython.longlong, j=cython.longlong, g=cython.longlong,
        todo=cython.longlong, blocks=cython.longlong, stepped=cython.bint,
        decode=cython.bint, first_policy=cython.bint, clock=DecodeClock,
        output=cython.longlong[:], gen=cython.longlong[:], gbase=cython.longlong[:],
        first=cython.double[:], finish=cython.double[:], d2=cython.longlong[:],
        e2=cython.longlong[:], hints=cython.double[:], arrive=cython.double[:],
        rows=cython.double[:], filled=cython.Py_ssize_t, width=cython.Py_ssize_t)
    def _loop(self, times: list, ok: list, ok_times: list) -> None:
        """Arrivals (``ok_times[p]``: when admitted request ``ok[p]`` reaches the replica)
        against iteration ends; ``times``: every request's arrival, for the horizon hint.

        One function with the replica's state in local variables (issue 18: this loop runs
        a few times per request; attribute and call overhead was most of its cost). The
        decode batch: ``running`` maps each running request to its base (context less the
        batch's step counter ``k``; insertion order is join order, so the newest is last),
        ``fins`` is a heap of ``finishing step << shift | rid`` holding exactly the running
        requests, ``d2``/``e2`` count when its sequences start new KV blocks
        (``decoderun.Hits``) and ``sum_base`` sums the bases (the batch's context is
        ``sum_base + n k``)."""
        bs, cap, max_batch, clock = self.bs, self.capacity, self.max_batch, self.clock
        output, gen, gbase, first, finish = (self.output, self.gen, self.gbase, self.first,
                                             self.finish)
        shift, mask, heappush, heappop = self.shift, self.mask, heapq.heappush, heapq.heappop
        first_policy, budget = self.first_policy, self.policy.token_budget
        width, filled = len(COLUMNS), 0  # the log's rows: ``table[:filled]``, row-major
        table = np.empty(width << 12)
        rows = table
        step_memo, nkey = {}, max_batch + 1  # one decode step's seconds by mean * nkey + n
        t, k, n, sum_base, available, peak, iters = 0.0, 0, 0, 0, cap, 0, 0
        hits = Hits(bs)
        d2, e2, running, fins, waiting = hits.d2, hits.e2, {}, [], self.waiting
        hints, h, last_hint = array("d", [*times, math.inf]), 0, _last_hint(times)
        arrive, p = array("d", [*ok_times, math.inf]), 0
        n_hints, n_ok, nxt = len(times), len(ok), arrive[0]
        while True:
            if filled + 2 * width > len(table):  # room for this pass's row (or two)
                table = _grown(table, filled)
                rows = table
            while nxt <= t:
                waiting.append(ok[p])
                p += 1
                nxt = arrive[p]
            stepped = False
            if not waiting:
                if not n:
                    if p == n_ok:
                        break
                    t = nxt  # idle: wake at the next arrival
                    continue
                # only decodes to run: a fast-forwarded run where ``fastforward.plan`` would
                # make one (same length bounds, so the same log rows), else one decode step
                # when its blocks fit, else the general schedule (a preemption)
                kv_sum = sum_base + n * k
                to_finish = (fins[0] >> shift) - k - 1
                step_s = -1.0  # not priced yet
                if to_finish >= MIN_STEPS:
                    key = kv_sum // n * nkey + n
                    got = step_memo.get(key)
                    if got is None:
                        got = step_memo[key] = clock.step(n, kv_sum)
                    step_s = got
                    while hints[h] <= t:  # ``Simulation.steps_until_arrival``
                        h += 1
                    gap = (last_hint if h == n_hints else hints[h]) - t
                    horizon = gap / step_s + 2 if gap >= 0 and step_s > 0 else math.inf
                    if horizon >= MIN_STEPS:
                        steps = min(to_finish, MAX_STEPS)
                        if horizon < steps:  # ``int(min(to_finish, MAX_STEPS, horizon))``
                            steps = int(horizon)
                        if available < n * (steps // bs + 1):  # the pool may cut the run
                            steps = run_fit(d2, k % bs, n, bs, steps, available)
                        if steps >= MIN_STEPS:  # ``fastforward.commit``: one log row
                            m, t = clock.advance(n, kv_sum // n, steps, t, nxt)
                            used = cap - available
                            s0 = k % bs
                            if m < bs:  # ``run_blocks`` within one block cycle
                                need = need_sum = 0
                                for i in range(s0, s0 + m):
                                    need += d2[i]
                                    need_sum -= e2[i]
                                need_sum += (m + s0) * need
                            else:
                                need, need_sum = run_blocks(d2, e2, s0, n, bs, m)
                            available -= need
                            if used + need > peak:
                                peak = used + need
                            k += m
                            iters += m
                            filled = _row(rows, filled, t, m, n, used + need,
                                          m * used + need_sum, 0, n * m)
                            continue
                new = d2[k % bs]
                if new <= available:  # one decode step, committed below
                    available -= new
                    if step_s < 0:
                        key = kv_sum // n * nkey + n
                        got = step_memo.get(key)
                        if got is None:
                            got = step_memo[key] = clock.step(n, kv_sum)
                        step_s = got
                    t += step_s
                    chunks, decode, stepped = (), True, True
            if not stepped:  # ``Continuous.schedule`` / ``PrefillFirst.schedule``
                if n and waiting and not first_policy and d2[k % bs] <= available:
                    available -= d2[k % bs]  # the decode step's blocks fit: admit after it
                    chunks, available = self._admit(
                        max_batch - n, None if budget is None else budget - n, False,
                        available, t)
                    decode = True
                else:
                    chunks, decode, available, n, sum_base, fins = self._schedule(
                        t, k, n, sum_base, available, hits, running, fins)
                if not chunks and not decode:  # nothing fits until something arrives
                    if p == n_ok:
                        break
                    t = max(t, nxt)
                    continue
                kv_sum = sum_base + n * k if decode else 0
                if chunks:
                    t += clock.mixed(len(chunks), self.tokens, n if decode else 0, kv_sum)
                else:
                    t += clock.step(n, kv_sum)
            if cap - available > peak:
                peak = cap - available
            # commit the iteration at its end ``t``
            tokens = 0
            if decode and n:
                tokens = n
                k += 1
                if fins[0] >> shift <= k:  # finishing decodes leave the batch
                    freed = 0
                    while fins and fins[0] >> shift <= k:
                        rid = heappop(fins) & mask
                        base = running.pop(rid)
                        gen[rid] = gbase[rid] + k
                        j = -base % bs
                        d2[j] -= 1
                        d2[j + bs] -= 1
                        e2[j] -= j
                        e2[j + bs] -= j + bs
                        n, sum_base, freed = n - 1, sum_base - base, freed - (-(base + k) // bs)
                        finish[rid] = t
                    available += freed
            for rid, todo, blocks in chunks:
                tokens += 1
                g = gen[rid]
                if not g:
                    first[rid] = t
                gen[rid] = g = g + 1
                if g >= output[rid]:
                    available += blocks
                    finish[rid] = t
                else:  # join the decode batch
                    base = todo - k
                    running[rid] = base
                    gbase[rid] = g - k
                    heappush(fins, (output[rid] - g + k) << shift | rid)
                    j = -base % bs  # ``Hits.add``
                    d2[j] += 1
                    d2[j + bs] += 1
                    e2[j] += j
                    e2[j + bs] += j + bs
                    n, sum_base = n + 1, sum_base + base
            iters += 1
            filled = _row(rows, filled, t, 1, n, cap - available, cap - available,
                          len(waiting), tokens)
        self.peak, self.log.iterations = peak, iters
        self.log.adopt(table[:filled])

    def _schedule(self, t, k, n, sum_base, available, hits, running, fins) -> tuple:
        """``Continuous.schedule`` / ``PrefillFirst.schedule`` at time ``t``: reserve the
        decode step's blocks (preempting the newest while they do not fit,
        ``Replica.reserve_decode``) and admit prompts. Returns (chunks, decode?, and the
        batch state it changed); ``self.tokens`` is the chunks' prompt tokens."""
        waiting, bs = self.waiting, self.bs
        if self.first_policy and waiting:
            chunks, available = self._admit(self.max_batch - n, self.limit, True, available, t)
            if chunks:
                return chunks, False, available, n, sum_base, fins
        while n:
            new = hits.d2[k % bs]
            if new <= available:
                available -= new
                break
            rid = next(reversed(running))  # the newest
            base, fins = running.pop(rid), self._evict(rid, fins, k)
            hits.add(base, -1)
            n, sum_base = n - 1, sum_base - base
            available += -(-(base + k) // bs)
        chunks = ()
        if waiting and not self.first_policy:  # once, after reserving
            budget = self.policy.token_budget
            chunks, available = self._admit(self.max_batch - n,
                                            None if budget is None else budget - n, not n,
                                            available, t)
        return chunks, n > 0, available, n, sum_base, fins

    def _admit(self, room: int, budget: int | None, force: bool, available: int, t: float
               ) -> tuple[list, int]:
        """``Replica.admit`` (FCFS while blocks and the token budget allow): the prefill
        chunks (rid, tokens, blocks) and the blocks left; ``self.tokens``: their tokens."""
        out, waiting, bs, prompt, gen, sched = (
            [], self.waiting, self.bs, self.prompt, self.gen, self.sched)
        tokens = 0
        while waiting and len(out) < room:
            rid = waiting[0]
            todo = prompt[rid] + gen[rid]
            if budget is not None:
                if todo > budget and not force:
                    break
                budget -= todo
                force = False
            need = -(-todo // bs)
            if need > available:
                break
            available -= need
            waiting.popleft()
            if not gen[rid]:
                sched[rid] = t
            out.append((rid, todo, need))
            tokens += todo
        self.tokens = tokens
        return out, available

    def _evict(self, rid: int, fins: list, k: int) -> list:
        """Preempt ``rid`` (recompute): requeue it first and drop its heap entry; returns
        the heap."""
        self.gen[rid] = self.gbase[rid] + k
        self.pre[rid] += 1
        self.preemptions += 1
        self.waiting.appendleft(rid)
        fins.remove((self.output[rid] - self.gbase[rid]) << self.shift | rid)
        heapq.heapify(fins)
        return fins


@cython.cfunc
@cython.inline
def _row(rows: cython.double[:], at: cython.Py_ssize_t, t: cython.double,
         steps: cython.longlong, batch: cython.longlong, used: cython.longlong,
         used_sum: cython.longlong, waiting: cython.longlong,
         tokens: cython.longlong) -> cython.Py_ssize_t:
    """Write one ``IterLog`` row (``COLUMNS``' order) at ``rows[at:]``; returns the next
    free index (as ``IterLog.add_run``, without a struct per row: ~0.5 us a row less)."""
    rows[at] = t
    rows[at + 1] = steps
    rows[at + 2] = batch
    rows[at + 3] = used
    rows[at + 4] = used_sum
    rows[at + 5] = waiting
    rows[at + 6] = tokens
    return at + 7


def _grown(table: np.ndarray, filled: int) -> np.ndarray:
    """A table twice the size holding ``table[:filled]`` (pages past it stay untouched,
    so unused room costs no memory)."""
    out = np.empty(2 * len(table))
    out[:filled] = table[:filled]
    return out


def _ints(values: np.ndarray) -> array:
    out = array("q")
    out.frombytes(np.asarray(values, dtype=np.int64).tobytes())
    return out


def _nans(n: int) -> array:
    return array("d", [math.nan]) * n


def _last_hint(times: list) -> float:
    """The last arrival the arrival process sleeps towards (inf if it never sleeps)."""
    for i in range(len(times) - 1, -1, -1):
        if times[i] > (times[i - 1] if i else 0.0):
            return times[i]
    return math.inf
