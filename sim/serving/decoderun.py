"""Runs of decode-only iterations without the stepping loop: their time and their KV blocks.

A run is k decode steps of the same n sequences (no arrival, finish or block shortage in
between; see ``sim.serving.fastforward``). Two sums describe it:

* **Time.** In ``StepTimer``'s default (interpolated) mode a decode step of n sequences with
  total context S costs the bilinear interpolation of the grid corners around
  (n, S // n) (``StepTimer.step``). S grows by n per step, so the mean context is m0, m0+1,
  ...: inside one grid cell [lo, hi) of the mean the four corners are fixed, so a run is
  priced cell by cell with no lookup per step (``_Cell``, ``_at``: ``_bilinear``'s
  operations in its order, the same float). The run's end is the running sum of those
  step times, added one by one as SimPy's clock adds them when the engine steps, and the
  run is cut after the first step ending at or after the next arrival: timestamps equal
  stepping's bit for bit. (An arithmetic series per cell, used before, was a few ulps off
  per run; at 1M requests that drift reordered a near-tie between an arrival and a step end
  and the two engines' schedules parted: measured, so rejected.) Corners are priced
  exactly as the stepping path prices them (a cell's upper corners only when some step's
  mean lies strictly inside the cell).
* **Blocks.** A sequence whose context is a multiple of the block size starts a new block
  with its next token (vLLM's paged cache, Kwon et al. 2023, Sec. 4.1). With c_r sequences
  reaching a boundary r steps from now (0 <= r < bs), the blocks the next s steps need are
  (s // bs) n + P[s % bs] (P: prefix sums of c), so the longest run the free pool allows and
  the KV use summed over a run (for the mean utilisation) are integer formulas, exact. The
  batch keeps c as ``hits``: ``d2[j]`` sequences start a block at the steps k = j (mod bs),
  stored twice over (j < 2 bs) so that c_r = ``d2[k % bs + r]`` is a slice, beside
  ``e2[j] = j d2[j]``; a run's blocks are then two slice sums, with no per-run set-up
  (sum_{r < R} c_r (R - r) = (R + s0) sum c - sum e over the slice, s0 = k % bs).
"""

from __future__ import annotations

from array import array

import cython

from sim.serving.steptime import bracket as _bracket
from sim.serving.steptime import nearest as _nearest


@cython.cclass
class _Cell:
    """The grid cell lo <= m < hi of the mean context for n sequences: its corners at the
    grid counts xl <= n <= xh (weight fx of xh), l0 / h0 at lo and l1 / h1 at hi (the upper
    ones priced on first use: ``_upper``)."""

    def __init__(self, lo, hi, xl, xh, fx, l0, h0):
        self.lo, self.hi, self.has_upper = lo, hi, False
        self.xl, self.xh, self.fx = xl, xh, fx
        self.l0, self.h0, self.l1, self.h1 = l0, h0, 0.0, 0.0


@cython.cclass
class DecodeClock:
    """Time of decode-only runs for one ``StepTimer`` (interpolated mode, ep = 1). Its
    attributes are typed in ``decoderun.pxd`` (the compiled build calls it from the lean
    engine's loop as C)."""

    def __init__(self, timer):
        self.timer = timer
        self._price = timer.corner
        self._cache = timer.cache  # priced corners (``_price`` fills it)
        self._cells = {}  # (n, lo) -> _Cell
        self._last = {}  # n -> the _Cell its last run used
        self._steps = {}  # (n, mean) -> one step's seconds
        self._near = {}  # x -> ``bracket(x, 0)``
        self._pairs = {}  # (n_p, x lo, x hi, n, mean) -> ``_pair``

    def step(self, n, kv_sum) -> float:
        """One decode step, exactly as the stepping engine prices it (``StepTimer.step``
        is a function of n and the mean context alone here, so it is memoised on them)."""
        key = (n, kv_sum // n)
        t = self._steps.get(key)
        if t is None:
            t = self._steps[key] = self.timer.step((), (), n, kv_sum, None, False)
        return t

    @cython.locals(n_p=cython.longlong, mean=cython.longlong, ml=cython.longlong,
                   mh=cython.longlong, xl=cython.longlong, xh=cython.longlong,
                   fm=cython.double, fx=cython.double, t=cython.double, low=cython.double,
                   high=cython.double)
    def mixed(self, prompts, tok, n, kv_sum) -> float:
        """An iteration prefilling ``prompts`` whole prompts of ``tok`` tokens in all beside
        ``n`` decodes holding ``kv_sum`` tokens: ``StepTimer.step``'s trilinear interpolation
        in (prompt tokens, decodes, mean context), the same operations in the same order (so
        the same float), without its general set-up."""
        n_p = min(prompts if prompts <= 8 else _nearest(prompts), tok)  # 0..8 on the grid
        mean = kv_sum // n if n else 0
        ml, mh, fm = self._bracket(mean)
        xl, xh, fx = self._bracket(tok)
        if xl < n_p:  # ``bracket(tok, n_p)``: exact below the floor
            xl, xh, fx = tok, tok, 0.0
        low, high = self._pair(n_p, xl, xh, n, ml)
        t = low + fx * (high - low) if fx else low  # ``StepTimer._bilinear``
        if fm:
            low, high = self._pair(n_p, xl, xh, n, mh)
            t += fm * ((low + fx * (high - low) if fx else low) - t)
        return t

    def _bracket(self, x) -> tuple:
        """``bracket(x, 0)``, memoised."""
        got = self._near.get(x)
        if got is None:
            got = self._near[x] = _bracket(x, 0)
        return got

    def _pair(self, n_p, xl, xh, n, m) -> tuple:
        """The corners at prompt tokens ``xl`` and ``xh`` (its grid bracket), each
        interpolated in the decode count ``n``, at mean context ``m`` (memoised: iterations
        repeat these far more often than they vary)."""
        key = (n_p, xl, xh, n, m)
        pair = self._pairs.get(key)
        if pair is None:
            low = self._row(n_p, xl, n, m)
            pair = self._pairs[key] = (low, self._row(n_p, xh, n, m) if xh != xl else low)
        return pair

    @cython.locals(fy=cython.double, low=cython.double)
    def _row(self, n_p, x, n, m) -> float:
        """The corners at prompt tokens ``x`` interpolated in the decode count ``n``."""
        yl, yh, fy = _bracket(n, 0)
        get, price = self._cache.get, self._price
        key = (n_p, x, 0, yl, m, False)
        low = get(key) or price(key)
        if fy:
            key = (n_p, x, 0, yh, m, False)
            low += fy * ((get(key) or price(key)) - low)
        return low

    @cython.locals(lo=cython.longlong, hi=cython.longlong, cell=_Cell, l0=cython.double,
                   h0=cython.double, fx=cython.double)
    def _cell(self, n, m) -> _Cell:
        """The grid cell of mean context ``m`` for ``n`` sequences (the last one used, or
        from the memo, or priced at its lower corners)."""
        cell = self._last.get(n)
        if cell is not None and cell.lo <= m < cell.hi:
            return cell
        lo, hi, _ = _bracket(m, 0)
        if hi == lo:  # m is a grid point: the cell runs to the next one
            hi = _bracket(m + 1, 0)[1]
        cell = self._cells.get((n, lo))
        if cell is None:
            xl, xh, fx = _bracket(n, 1)
            l0 = self._price((0, 0, 0, xl, lo, False))
            h0 = self._price((0, 0, 0, xh, lo, False)) if fx else l0
            cell = self._cells[(n, lo)] = _Cell(lo, hi, xl, xh, fx, l0, h0)
        self._last[n] = cell
        return cell

    def _upper(self, cell: _Cell) -> None:
        """Price a cell's upper corners (the stepping path prices them as soon as one
        step's mean lies strictly inside the cell)."""
        if not cell.has_upper:
            cell.l1 = self._price((0, 0, 0, cell.xl, cell.hi, False))
            cell.h1 = self._price((0, 0, 0, cell.xh, cell.hi, False)) if cell.fx else cell.l1
            cell.has_upper = True

    @cython.locals(fy=cython.double, low=cython.double, high=cython.double)
    def _at(self, cell: _Cell, m) -> float:
        """One step's seconds at mean context ``m`` inside ``cell`` (upper corners priced):
        ``StepTimer._bilinear``'s operations in its order, so the same float."""
        low, high = cell.l0, cell.h0
        if m != cell.lo:  # off the grid point (fy != 0): blend towards the upper corners
            fy = (m - cell.lo) / (cell.hi - cell.lo)
            low = low + fy * (cell.l1 - low)
            high = high + fy * (cell.h1 - high)
        return low + cell.fx * (high - low) if cell.fx else low

    @cython.locals(m=cython.longlong, end=cython.longlong, stop=cython.longlong,
                   done=cython.longlong, t=cython.double, cell=_Cell)
    def advance(self, n, m0, steps, t0, deadline) -> tuple:
        """Run up to ``steps`` steps from time ``t0``, mean context ``m0`` at the first; stop
        after the first step ending at or after ``deadline``. Returns (steps done, end):
        the end is the running sum of the step times, formed step by step as SimPy's clock
        forms it when the engine steps (so the two engines' timestamps are the same floats)."""
        m, end, t, done = m0, m0 + steps, t0, 0
        while m < end:
            cell = self._cell(n, m)
            stop = end if end < cell.hi else cell.hi
            if stop - 1 > cell.lo:
                self._upper(cell)
            while m < stop:
                t = t + self._at(cell, m)
                m += 1
                done += 1
                if t >= deadline:
                    self._price_rest(n, m, end)
                    return done, t
        return done, t

    @cython.locals(cell=_Cell, stop=cython.longlong)
    def _price_rest(self, n, m, end) -> None:
        """Price the corners of the steps planned beyond the cut (the stepping engine's
        fast-forward prices a whole planned run before an arrival ends it early)."""
        while m < end:
            cell = self._cell(n, m)
            stop = min(end, cell.hi)
            if stop - 1 > cell.lo:
                self._upper(cell)
            m = stop


class Hits:
    """The running set's block boundaries (module docstring): ``d2`` and ``e2``, each of
    2 bs counts. ``add(base, +1 / -1)`` as a sequence of base ``base`` (context less the step
    counter) joins or leaves; the lean engine applies the same four updates inline."""

    __slots__ = ("bs", "d2", "e2")

    def __init__(self, bs: int):
        self.bs, self.d2, self.e2 = bs, array("q", [0]) * (2 * bs), array("q", [0]) * (2 * bs)

    def add(self, base: int, sign: int) -> None:
        j = -base % self.bs  # its context base + k reaches a boundary at k = j (mod bs)
        self.d2[j] += sign
        self.d2[j + self.bs] += sign
        self.e2[j] += sign * j
        self.e2[j + self.bs] += sign * (j + self.bs)


@cython.locals(q=cython.longlong, rem=cython.longlong, r=cython.longlong, hit=cython.longlong)
def run_fit(d2, s0, n, bs, steps, free) -> int:
    """The longest run of at most ``steps`` steps (from a step counter = ``s0`` mod bs) whose
    blocks fit in ``free`` blocks (the caller skips this when n (steps // bs + 1) fit)."""
    q, rem = free // n, free % n  # whole cycles of bs steps, then P[r] <= rem boundaries
    r, hit = 0, 0
    while r < bs - 1 and hit + d2[s0 + r] <= rem:
        hit += d2[s0 + r]
        r += 1
    return min(steps, q * bs + r)


@cython.locals(q=cython.longlong, r=cython.longlong, i=cython.longlong, hit=cython.longlong,
               part=cython.longlong, full=cython.longlong, cycle=cython.longlong,
               whole=cython.longlong)
def run_blocks(d2, e2, s0, n, bs, m) -> tuple:
    """(blocks the next ``m`` steps take, those summed over steps 1..m)."""
    q, r = m // bs, m % bs
    hit = part = 0
    for i in range(s0, s0 + r):
        hit += d2[i]  # P[r]
        part -= e2[i]
    part += (r + s0) * hit  # P[0] + .. + P[r]
    if not q:
        return hit, part
    whole = bs * q * (q - 1) // 2 + q * (r + 1)
    full = cycle = 0
    for i in range(s0, s0 + bs - 1):
        full += d2[i]
        cycle -= e2[i]
    cycle += (bs - 1 + s0) * full  # P[0] + .. + P[bs - 1]
    return q * n + hit, n * whole + q * cycle + part
