"""The time of one serving iteration, priced by the cost model and cached by shape.

An iteration is a mix: prefill chunks (``len`` new prompt tokens on top of ``ctx`` tokens
already cached, compute-bound), decode sequences (one new token each against their KV cache,
memory-bound) and, with speculative decoding, verifications (k+1 positions per sequence in one
target pass, priced as a prefill chunk of k+1 tokens on top of the sequence's cache) plus the
draft model's k sequential decode steps. Every number comes from
``sim.costs.inference.forward_time``; this module only decides which shape to ask for.

Expert parallelism: ``forward_time`` with ``ep > 1`` prices one attention group's batch while
``ep`` groups run in lockstep sharing the experts, so a replica's batch is dealt round-robin
over the groups and group 0 (the largest share) is priced.

Caching. Long runs repeat shapes, but decode contexts move every iteration, so an exact cache
would almost never hit (and ``forward_time`` costs ~0.07 ms a call, O(sequences)). In the
default mode an iteration is reduced to a few numbers and priced by interpolating a cache of
grid points (0..8 exactly, then two points per octave, neighbours at most 41% apart, and both
sides of every 64-row GEMM tile boundary up to 1024, where the kernel model steps):

* decode-only: bilinear in (sequences n, mean context m); decode time is close to
  a + b n + c n m, which bilinear interpolation reproduces (measured within 1%);
* mixed (prefill chunks + decodes): trilinear in (total prefill tokens, n, m), the prefill
  context summed and rounded to 6 significant bits (``quantize``, <= 1.6%), the number of
  chunks exact up to 8 and the nearest grid count above.

Errors, measured against exact calls by ``tests/test_serving_steptime.py``:

* interpolation: the cost model has steps (GEMM tile and wave quantisation: one more token can
  cost a new wave), which interpolation smooths over, so one mixed iteration can be off by up
  to ~8% near a step (median ~0%); decode-only iterations stay within 1%. Over a whole run the
  errors average out: mean TTFT, TPOT and end-to-end latency within ~2% of exact pricing;
* even split: decode contexts are split evenly (exact for full attention, whose decode cost is
  linear in each context; sliding windows see min(mean, W) instead of mean(min(c, W)));
  prefill chunks are split evenly too, which changes only the causal-attention FLOPs
  (sum of len^2) when chunk lengths differ within one iteration.

``exact=True`` passes the true lists (used by tests that compare against closed forms).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from sim.serving.stackcost import iteration_time, ops_per_iteration


def quantize(x: int) -> int:
    """Round a non-negative integer to 6 significant bits (relative error <= 2^-6)."""
    shift = int(x).bit_length() - 6
    if shift <= 0:
        return int(x)
    return ((int(x) + (1 << (shift - 1))) >> shift) << shift


def _grid(per_octave: int) -> list[int]:
    """0..8 exactly, then ``per_octave`` points per octave, plus both sides of every GEMM
    row-tile boundary up to 1024 (64k and 64k+1: the tile model of sim.costs.kernels steps
    there, and interpolating across a step would smooth it away)."""
    tiles = {x for k in range(1, 17) for x in (64 * k, 64 * k + 1)}
    return sorted({*range(9), *tiles, *(round(2 ** (k / per_octave))
                                        for k in range(3 * per_octave, 25 * per_octave))})


COARSE = _grid(2)  # neighbours at most 41% apart


def _nearest(x: int, grid: list[int] = COARSE) -> int:
    """The grid point closest to x (x itself up to 8)."""
    i = bisect_right(grid, x) - 1
    lo = grid[i]
    return lo if lo == x or x - lo <= grid[i + 1] - x else grid[i + 1]


_NEIGHBOURS: dict[int, tuple[int, int, float]] = {}


def _bracket(x: int, floor: int) -> tuple[int, int, float]:
    """Grid neighbours lo <= x <= hi and the weight of hi; exact when lo < ``floor``."""
    got = _NEIGHBOURS.get(x)
    if got is None:
        got = _NEIGHBOURS[x] = _neighbours(x, COARSE)
    return (x, x, 0.0) if got[0] < floor else got


bracket = _bracket  # public names: sim.serving.decoderun prices runs on the same grid
nearest = _nearest


def _neighbours(x: int, grid: list[int]) -> tuple[int, int, float]:
    i = bisect_right(grid, x) - 1
    lo = grid[i]
    if lo == x:
        return x, x, 0.0
    hi = grid[i + 1]
    return lo, hi, (x - lo) / (hi - lo)


_GRID = np.asarray(COARSE, dtype=np.int64)


def _brackets(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_neighbours`` over an array: the grid index i of lo <= x (hi is i + 1) and the
    weight of hi (0 where x is a grid point)."""
    i = np.searchsorted(_GRID, xs, side="right") - 1
    lo = _GRID[i]
    on = lo == xs
    span = _GRID[np.minimum(i + 1, len(_GRID) - 1)] - lo
    return i, np.where(on, 0.0, (xs - lo) / np.where(on, 1, span))


def _split(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)


def _seconds(cost) -> float:
    return float(cost.time_s)


class StepTimer:
    """Callable pricing of one iteration for a replica (model on tp x pp GPUs, ep for MoE).

    ``draft`` (a ModelConfig) and ``spec_k`` enable speculative decoding's cost: the draft's k
    sequential decode steps over the verified sequences, the draft's prefill of every prompt
    chunk, and the target's (k+1)-token verification.
    """

    def __init__(self, model, hw, *, tp=1, pp=1, ep=1, dtype="bf16", exact=False,
                 draft=None, spec_k=0, forward_time=None, stack=None):
        default = forward_time is None
        if default:
            from sim.costs.inference import forward_time
        self._fwd = forward_time
        self.stack = stack  # sim.stack.Stack of the engine (sim.serving.stackcost), or None
        self._n_ops = 0
        if stack is not None:
            self._n_ops = ops_per_iteration(model, tp, pp)
        self.model, self.hw, self.draft, self.spec_k = model, hw, draft, spec_k
        self.kw = {"tp": tp, "pp": pp, "ep": ep, "dtype": dtype}
        if default and stack is not None:  # the engine's attention kernel and collectives
            self.kw["stack"] = stack
        self.exact, self.groups = exact, ep
        self.cache: dict[tuple, float] = {}
        self.calls = 0

    # --- public ------------------------------------------------------------------------------
    def step(self, p_lens: Sequence[int], p_ctx: Sequence[int], n_dec: int, kv_sum: int,
             kv: np.ndarray | None = None, spec: bool = False) -> float:
        """Seconds for an iteration: prefill chunks of ``p_lens`` tokens on ``p_ctx`` cached
        ones, and ``n_dec`` decode (or, with ``spec``, verified) sequences holding ``kv_sum``
        KV tokens in all (``kv``, their contexts, is needed only in exact mode)."""
        if self.groups > 1:
            p_lens, p_ctx, n_dec, kv_sum, kv = self._group0(p_lens, p_ctx, n_dec, kv_sum, kv)
        if self.exact:
            kv_key = tuple(int(v) for v in kv) if n_dec else ()
            return self._cached((tuple(p_lens), tuple(p_ctx), kv_key, spec))
        mean = kv_sum // n_dec if n_dec else 0
        if not p_lens:
            return self._bilinear(n_dec, 1, mean, lambda a, b: (0, 0, 0, a, b, spec))
        # mixed: trilinear in (prefill tokens, decodes, mean decode context)
        n_p, ctx, tok = min(_nearest(len(p_lens)), sum(p_lens)), quantize(sum(p_ctx)), sum(p_lens)
        ml, mh, fm = _bracket(mean, 0)
        t = self._bilinear(tok, n_p, n_dec, lambda a, b: (n_p, a, ctx, b, ml, spec))
        if fm:
            high = self._bilinear(tok, n_p, n_dec, lambda a, b: (n_p, a, ctx, b, mh, spec))
            t += fm * (high - t)
        return t

    def decode_times(self, n_dec: int, kv_sums: np.ndarray, spec: bool = False,
                     contexts=None) -> np.ndarray:
        """``step((), (), n_dec, kv_sums[j], contexts(j), spec)`` for every j in one call:
        the step times of a run of decode-only iterations of the same ``n_dec`` sequences
        (fast-forward). Interpolated mode evaluates the same bilinear formula on arrays, so
        each element equals the scalar call bit for bit, and prices the same grid corners;
        exact mode prices step by step (``contexts(j)``: the j-th step's context array)."""
        if self.exact:
            return np.array([self.step((), (), n_dec, int(kv_sums[j]), contexts(j), spec)
                             for j in range(len(kv_sums))])
        kv = np.asarray(kv_sums, dtype=np.int64)
        n = n_dec
        if self.groups == 1 and len(kv) > 1 and kv[1] - kv[0] == n and \
                kv[-1] - kv[0] == n * (len(kv) - 1):  # plain decode: the mean grows by 1
            return self._consecutive(n, int(kv[0]) // n, len(kv), spec)
        if self.groups > 1:  # the same integer arithmetic as ``_group0``
            n = -(-n_dec // self.groups)
            kv = -(-kv * n // max(n_dec, 1))
        i, fy = _brackets(kv // n)
        xl, xh, fx = _bracket(n, 1)
        low = self._column(xl, i, fy, spec)
        if not fx:
            return low
        high = self._column(xh, i, fy, spec)
        return low + fx * (high - low)

    def _consecutive(self, n: int, first: int, steps: int, spec: bool) -> np.ndarray:
        """``decode_times`` when the mean context is first, first + 1, ...: grid cell by
        grid cell, the same bilinear arithmetic on slices (and the same corners priced)."""
        xl, xh, fx = _bracket(n, 1)
        out = np.empty(steps)
        m, end = first, first + steps
        while m < end:
            lo, hi, _ = _bracket(m, 0)
            stop = min(end, hi if hi > lo else m + 1)  # this cell: lo <= mean < hi
            cell = out[m - first: stop - first]
            low = self._cell(xl, lo, hi, m, stop, spec)
            if fx:
                low = low + fx * (self._cell(xh, lo, hi, m, stop, spec) - low)
            cell[:] = low
            m = stop
        return out

    def _cell(self, x: int, lo: int, hi: int, start: int, stop: int, spec: bool):
        """Bilinear low edge at column ``x`` for means start..stop-1 inside [lo, hi)."""
        c_lo = self._cached((0, 0, 0, x, lo, spec))
        if hi == lo or stop - 1 == lo:  # every mean is the grid point: fy = 0
            return np.full(stop - start, c_lo)
        fy = (np.arange(start, stop) - lo) / (hi - lo)
        low = c_lo + fy * (self._cached((0, 0, 0, x, hi, spec)) - c_lo)
        if start == lo:
            low[0] = c_lo  # fy == 0 there: the scalar path skips the blend
        return low

    def _column(self, x: int, i: np.ndarray, fy: np.ndarray, spec: bool) -> np.ndarray:
        """Linear interpolation in the mean context at grid column ``x``: the scalar path's
        ``low += fy * (C(x, hi) - low)`` where fy != 0, pricing the corners it would."""
        mid = fy != 0
        first = int(i.min())
        width = int(i.max()) - first + 2
        wanted = np.zeros(width, dtype=bool)
        wanted[i - first] = True
        wanted[i[mid] + 1 - first] = True
        table = np.zeros(width)
        for g in np.flatnonzero(wanted).tolist():
            table[g] = self._cached((0, 0, 0, x, COARSE[first + g], spec))
        c_lo = table[i - first]
        if not mid.any():
            return c_lo
        c_hi = table[i + 1 - first]
        return np.where(mid, c_lo + fy * (c_hi - c_lo), c_lo)

    def _bilinear(self, x: int, x_floor: int, y: int, key) -> float:
        """Interpolate the priced shape key(x, y) between grid neighbours of x and y."""
        xl, xh, fx = _bracket(x, x_floor)
        yl, yh, fy = _bracket(y, 0)
        low = self._cached(key(xl, yl))
        if fy:
            low += fy * (self._cached(key(xl, yh)) - low)
        if not fx:
            return low
        high = self._cached(key(xh, yl))
        if fy:
            high += fy * (self._cached(key(xh, yh)) - high)
        return low + fx * (high - low)

    def _cached(self, key: tuple) -> float:
        t = self.cache.get(key)
        if t is None:
            t = self.cache[key] = self._price(key)
        return t

    corner = _cached  # public name: the priced grid shape of a key (closed-form runs)

    def _group0(self, p_lens, p_ctx, n_dec, kv_sum, kv):
        """With ep > 1 the batch is spread round-robin over ``ep`` attention groups running
        in lockstep; group 0 gets the largest share and sets the pace."""
        g = self.groups
        share = -(-n_dec // g)
        kv0 = kv[::g] if kv is not None else None
        kv_sum0 = int(kv0.sum()) if kv0 is not None else -(-kv_sum * share // max(n_dec, 1))
        return list(p_lens)[::g], list(p_ctx)[::g], share, kv_sum0, kv0

    def prefill_time(self, length: int, ctx: int = 0) -> float:
        """One prefill chunk alone (batch 1), exact shape."""
        return self._target([length], [ctx], [])

    def decode_time(self, kv_lens: Sequence[int]) -> float:
        """One decode step of these sequences alone, exact shape."""
        return self._target([], [], list(kv_lens))

    # --- pricing -----------------------------------------------------------------------------
    def _price(self, key: tuple) -> float:
        """Price a shape: exact (lens, ctxs, contexts, spec) or grid (n_p, tokens, ctx,
        n_dec, mean context, spec) with totals split evenly."""
        if len(key) == 4:
            p_lens, p_ctx, kv, spec = list(key[0]), list(key[1]), list(key[2]), key[3]
        else:
            n_p, tok, ctx, n_d, mean, spec = key
            p_lens, p_ctx = (_split(tok, n_p), _split(ctx, n_p)) if n_p else ([], [])
            kv = [mean] * n_d
        if p_lens and self.stack is not None and self.stack.prefill_batching == "per-request":
            return self._per_request(p_lens, p_ctx, kv, spec)
        if not spec:
            return self._target(p_lens, p_ctx, kv)
        k = self.spec_k  # verification: k+1 positions per sequence on top of its cache
        t = self._target(p_lens + [k + 1] * len(kv), p_ctx + kv, [])
        return t + self._draft_time(p_lens, p_ctx, kv)

    def _per_request(self, p_lens, p_ctx, kv, spec) -> float:
        """The stack's ``prefill_batching = "per-request"``: one forward per joining prompt
        chunk (and its draft prefill), then the running sequences' iteration as priced
        without prompts; the scheduler's per-iteration time is paid once."""
        t = sum(self._call(self.model, [n], [c], [], scheduler=False)
                for n, c in zip(p_lens, p_ctx, strict=True))
        if spec:
            t += sum(self._call(self.draft, [n], [c], [], scheduler=False)
                     for n, c in zip(p_lens, p_ctx, strict=True))
        if kv:
            return t + self._price(((), (), tuple(kv), spec))
        return t + self.stack.scheduler_overhead_s

    def _draft_time(self, p_lens, p_ctx, kv) -> float:
        """Draft model: prefill the same prompt chunks, then k sequential decode steps."""
        t = 0.0
        if p_lens:
            t += self._call(self.draft, p_lens, p_ctx, [])
        for j in range(self.spec_k if kv else 0):
            t += self._call(self.draft, [], [], [c + j for c in kv])
        return t

    def _target(self, p_lens, p_ctx, kv) -> float:
        return self._call(self.model, p_lens, p_ctx, kv)

    def _call(self, model, p_lens, p_ctx, kv, scheduler: bool = True) -> float:
        if not p_lens and not kv:
            return 0.0
        self.calls += 1
        cost = self._fwd(model, self.hw, prefill_lens=p_lens, prefill_ctx=p_ctx,
                         decode_kv_lens=kv, **self.kw)
        if self.stack is None:
            return _seconds(cost)
        return iteration_time(_seconds(cost), self.stack, self._n_ops, scheduler)
