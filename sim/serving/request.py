"""A request's life and the running batch of one replica.

``Request`` is mutable progress plus timestamps (NaN until they happen). The replica's decode
batch is a ``RunningSet``: numpy arrays indexed by slot (tokens in the KV cache, tokens still
to produce, tokens produced, speculative acceptance rate, admission order) with the Request
objects beside them, so one iteration updates every sequence with a few vector operations
instead of a Python loop over the batch. Removing a slot moves the last slot into the hole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAN = math.nan


@dataclass(eq=False, slots=True)
class Request:
    rid: int
    arrival: float
    prompt: int
    output: int
    accept: float = 0.0  # speculative decoding acceptance rate of this request
    replica: int = -1
    todo: int = 0  # tokens the next prefill must process (prompt, or prompt+generated)
    done_prefill: int = 0  # of ``todo``, tokens already prefilled (chunked prefill)
    blocks: int = 0  # KV blocks held while not in the running set
    generated: int = 0
    scheduled: float = NAN  # first time it entered an iteration
    first_token: float = NAN
    finish: float = NAN
    preemptions: int = 0
    swapped_ctx: int = 0  # tokens held in host memory while swapped out
    rejected: str = ""  # why it can never fit (empty: admitted)
    stage: str = "new"  # "new" (needs prefill), "kv" (KV waiting to move in), "ready"
    src: object = None  # disaggregated: the prefill replica holding its KV


class RunningSet:
    """Sequences in the decode phase of one replica.

    Every sequence gains one token per step, so progress is stored relative to the replica's
    step counter ``k``: a slot's context is ``base + k``, its tokens produced ``gbase + k``, and
    it finishes once ``k`` reaches ``fin``. A plain step is then O(1): bump ``k``; the KV
    blocks it needs are the sequences sitting on a block boundary, counted by residue class
    of ``base`` modulo the block size. Speculative steps (a different number of tokens per
    sequence) shift ``base``/``gbase``/``fin`` with vector operations instead.
    """

    FIELDS = ("base", "gbase", "fin", "acc", "order")

    def __init__(self, capacity: int, block_size: int):
        self.reqs: list[Request] = []
        self.base = np.zeros(capacity, np.int64)
        self.gbase = np.zeros(capacity, np.int64)
        self.fin = np.zeros(capacity, np.int64)
        self.acc = np.zeros(capacity, np.float64)  # acceptance rate (speculative decoding)
        self.order = np.zeros(capacity, np.int64)  # admission counter (preemption priority)
        self.bs = block_size
        self.res = [0] * block_size  # how many slots have base % bs == r
        self.n = self.k = self.sum_base = self._tick = 0
        self.min_fin = math.inf

    # --- views ---------------------------------------------------------------------------------
    def ctx(self, i: int) -> int:
        return int(self.base[i]) + self.k

    def contexts(self) -> np.ndarray:
        return self.base[: self.n] + self.k

    def kv_sum(self) -> int:
        return self.sum_base + self.n * self.k

    def boundary(self) -> int:
        """Sequences whose next token starts a new KV block (context a multiple of bs)."""
        return self.res[-self.k % self.bs]

    def newest(self) -> int:
        """Slot of the most recently admitted sequence (vLLM preempts it first)."""
        return int(np.argmax(self.order[: self.n]))

    # --- membership ----------------------------------------------------------------------------
    def add(self, req: Request, ctx: int) -> None:
        i = self.n
        if i == len(self.base):
            self._grow()
        self.reqs.append(req)
        b = ctx - self.k
        fin = self.k + req.output - req.generated
        self.base[i], self.gbase[i], self.fin[i] = b, req.generated - self.k, fin
        self.acc[i], self.order[i] = req.accept, self._tick
        self.res[b % self.bs] += 1
        self.sum_base += b
        self.min_fin = min(self.min_fin, fin)
        self._tick += 1
        self.n += 1

    def remove(self, i: int) -> Request:
        """Take slot ``i`` out, writing its progress back to the Request."""
        req = self.reqs[i]
        req.generated = int(self.gbase[i]) + self.k
        b = int(self.base[i])
        self.res[b % self.bs] -= 1
        self.sum_base -= b
        last = self.n - 1
        if i != last:
            self.reqs[i] = self.reqs[last]
            for name in self.FIELDS:
                a = getattr(self, name)
                a[i] = a[last]
        self.reqs.pop()
        self.n = last
        return req

    # --- steps ---------------------------------------------------------------------------------
    def step(self) -> np.ndarray:
        """Every sequence gains one token; returns the slots that are now finished."""
        self.k += 1
        if self.k < self.min_fin:
            return _NONE
        return np.flatnonzero(self.fin[: self.n] <= self.k)

    def step_by(self, adv: np.ndarray) -> np.ndarray:
        """Sequence i gains adv[i] tokens (speculative decoding)."""
        n, extra = self.n, adv - 1
        self.base[:n] += extra
        self.gbase[:n] += extra
        self.fin[:n] -= extra
        self.k += 1
        self.sum_base = int(self.base[:n].sum())
        self.res = np.bincount(self.base[:n] % self.bs, minlength=self.bs).tolist()
        return np.flatnonzero(self.fin[:n] <= self.k)

    def skip(self, m: int, extra: np.ndarray | None = None) -> None:
        """``m`` steps in which nobody finishes (fast-forward); ``extra``: tokens each
        sequence gained beyond one per step (speculative decoding)."""
        if extra is not None:
            n = self.n
            self.base[:n] += extra
            self.gbase[:n] += extra
            self.fin[:n] -= extra
            self.sum_base = int(self.base[:n].sum())
            self.res = np.bincount(self.base[:n] % self.bs, minlength=self.bs).tolist()
            self.min_fin = int(self.fin[:n].min())
        self.k += m

    def left(self) -> np.ndarray:
        return self.fin[: self.n] - self.k

    def refresh_min(self) -> None:
        self.min_fin = int(self.fin[: self.n].min()) if self.n else math.inf

    def _grow(self) -> None:
        for name in self.FIELDS:
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros_like(a)]))


_NONE = np.zeros(0, np.int64)
