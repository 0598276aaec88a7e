"""Fast-forward: a run of decode-only iterations of an unchanged batch in one timeout.

Between two events that can change a replica's batch (a request or KV transfer reaching its
inbox, a sequence finishing, a step needing a KV block the pool does not have), continuous
batching is deterministic: the same n sequences each gain one token per step (speculative:
1 + accepted drafts, drawn from the replica's generator), contexts grow by known amounts, and
each step's time is the step-time function of (n, total context). ``plan`` computes the whole
run at once: its length (steps before the first completion or block shortage), the KV blocks
each step reserves, and every step's time in one vectorised call
(``StepTimer.decode_times``). The replica waits for the run's end *or* its inbox, whichever
comes first; on an arrival it finishes the step in flight (an iteration is never cut; the
stepping loop would also see the arrival only at that step's end) and commits the steps done.

Exactness: step end times are the same running sums SimPy forms step by step (and the
replica's timeouts land on them exactly: ``replica._delay_to``); block counts,
tokens and log rows are integer sums of the per-step values; speculative acceptance is drawn
as one (steps x n) block from the same Generator, which fills arrays in C order, so the
first m rows equal m successive draws of n and the generator is re-drawn to exactly the
committed steps. Requests receive no timestamps inside a run (runs end before completions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STEPS = 4  # shorter runs step normally (the vector set-up costs more than it saves)
MAX_STEPS = 1 << 14  # plain runs: bound the arrays; a longer run continues as a new one
MAX_SPEC_STEPS = 512  # speculative runs draw (steps x batch) acceptances up front


@dataclass
class Run:
    times: np.ndarray  # seconds of each step
    held: np.ndarray  # blocks the running set holds after each step
    reserved: np.ndarray  # blocks it holds during each step (speculative: k+1 slots ahead)
    tokens: np.ndarray  # tokens produced by each step
    gained: np.ndarray | None = None  # speculative: tokens per sequence after each step
    p: np.ndarray | None = None  # speculative: geometric success probabilities

    def __len__(self) -> int:
        return len(self.times)


def plan(rep) -> Run | None:
    """The run the replica's current decode batch can make, or None (step normally). It is
    planned no further than about the next arrival (``steps_until_arrival``): a run cut
    short there ends early and the next is planned then, so the bound costs no exactness."""
    run = rep.run
    if not rep.sim.spec_k and run.min_fin - run.k - 1 < MIN_STEPS:  # a finish is next
        return None
    horizon = rep.sim.steps_until_arrival(rep.decode_time())
    if horizon < MIN_STEPS:
        return None
    return _speculative(rep, horizon) if rep.sim.spec_k else _plain(rep, horizon)


def _plain(rep, horizon: float) -> Run | None:
    run, pool, bs = rep.run, rep.pool, rep.bs
    steps = int(min(run.min_fin - run.k - 1, MAX_STEPS, horizon))  # then a finish
    if steps < MIN_STEPS:
        return None
    j = np.arange(steps, dtype=np.int64)
    need = np.cumsum(np.asarray(run.res, dtype=np.int64)[(-(run.k + j)) % bs])  # boundary()
    steps = int(np.searchsorted(need, pool.available, side="right"))
    if steps < MIN_STEPS:
        return None
    j, need = j[:steps], need[:steps]
    kv_sums = run.sum_base + run.n * (run.k + j)
    times = rep.decode_times(kv_sums, lambda i: run.contexts() + i)
    held = rep.dec_blocks + need
    return Run(times, held, held, np.full(steps, run.n, dtype=np.int64))


def _speculative(rep, horizon: float) -> Run | None:
    run, pool, bs, sim = rep.run, rep.pool, rep.bs, rep.sim
    n, adv = run.n, sim.spec_k + 1
    left = run.left()
    steps = int(min(left.min(), MAX_SPEC_STEPS, horizon))
    if steps < MIN_STEPS:
        return None
    p = 1.0 - np.minimum(run.acc[:n], 1 - 1e-12)  # as ``Simulation.accepted``
    state = rep.rng.bit_generator.state
    draws = rep.rng.geometric(np.broadcast_to(p, (steps, n)))
    rep.rng.bit_generator.state = state  # re-drawn for the committed steps only
    gained = np.cumsum(np.minimum(draws - 1, sim.spec_k) + 1, axis=0)
    finishing = np.flatnonzero((gained >= left).any(axis=1))
    steps = int(finishing[0]) if len(finishing) else steps
    ctx0 = run.contexts()
    before = ctx0 + np.vstack([np.zeros((1, n), np.int64), gained[: steps - 1]])[:steps]
    reserved = ((before + adv + bs - 1) // bs).sum(axis=1)
    total = pool.available + rep.dec_blocks  # what the running set may hold during the run
    over = np.flatnonzero(reserved > total)
    steps = int(over[0]) if len(over) else steps
    if steps < MIN_STEPS:
        return None
    before, gained = before[:steps], gained[:steps]
    held = ((ctx0 + gained + bs - 1) // bs).sum(axis=1)
    tokens = np.diff(gained.sum(axis=1), prepend=0)
    times = rep.decode_times(before.sum(axis=1), lambda i: before[i])
    return Run(times, held, reserved[:steps], tokens, gained, p)


def commit(rep, r: Run, m: int, ends: np.ndarray) -> None:
    """Apply the first ``m`` steps of ``r`` (ending at ``ends[:m]``) to the replica."""
    run, pool = rep.run, rep.pool
    base_used = pool.used - rep.dec_blocks  # blocks held outside the running set
    if r.gained is None:
        run.skip(m)
    else:
        rep.rng.geometric(np.broadcast_to(r.p, (m, run.n)))  # advance the stream
        rep.spec_steps += run.n * m
        rep.spec_tokens += int(r.gained[m - 1].sum())
        run.skip(m, r.gained[m - 1] - m)
    pool.hold(base_used + int(r.reserved[:m].max()), base_used + int(r.held[m - 1]))
    rep.dec_blocks = int(r.held[m - 1])
    used = base_used + r.held[:m]
    rep.log.add_run(float(ends[m - 1]), m, run.n, int(used[-1]), int(used.sum()), 0,
                    int(r.tokens[:m].sum()))
