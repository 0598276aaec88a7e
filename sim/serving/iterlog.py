"""What a replica did, iteration by iteration, stored run-length and columnar.

One row is a group of consecutive iterations of identical composition: one row per iteration
when the replica steps, one row per fast-forwarded run of decode steps (``steps`` > 1). A row
holds the end time of its last iteration, how many iterations it covers, the batch, the KV
blocks in use at its end and summed over its iterations, the queue length and the tokens it
produced. Columns are ``array.array`` (about 40 bytes a row), so a million-request run keeps
its record without a Python object per iteration.
"""

from __future__ import annotations

from array import array

import numpy as np

COLUMNS = ("t_s", "steps", "batch", "kv_blocks_used", "kv_used_sum", "waiting", "tokens")
_TYPES = ("d", "q", "q", "q", "q", "q", "q")


class IterLog:
    def __init__(self):
        self.cols = [array(t) for t in _TYPES]
        self.iterations = 0  # sum of ``steps``

    def add(self, t: float, batch: int, used: int, waiting: int, tokens: int) -> None:
        """One stepped iteration."""
        self.add_run(t, 1, batch, used, used, waiting, tokens)

    def add_run(self, t: float, steps: int, batch: int, used: int, used_sum: int,
                waiting: int, tokens: int) -> None:
        """``steps`` iterations ending at ``t``; ``used_sum`` sums KV use over them."""
        for col, v in zip(self.cols, (t, steps, batch, used, used_sum, waiting, tokens),
                          strict=True):
            col.append(v)
        self.iterations += steps

    def __len__(self) -> int:
        return len(self.cols[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.frombuffer(col, dtype=np.float64 if t == "d" else np.int64)
                if len(col) else np.zeros(0, np.float64 if t == "d" else np.int64)
                for name, col, t in zip(COLUMNS, self.cols, _TYPES, strict=True)}
