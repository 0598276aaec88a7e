"""From records to pandas DataFrames and the per-rank time accounting.

Per rank, the step ``[0, T]`` is split into four disjoint parts:

- ``compute_s``: time the compute stream is busy (union of its intervals);
- ``comm_exposed_s``: time some communication runs while the compute stream is idle;
- ``bubble_s``: the rest of the *pipeline phase* ``[0, T_pipe]``, where ``T_pipe`` is the end of
  the last forward/backward task on any stage of the rank's replica -- waiting for a
  neighbour stage;
- ``idle_s``: the rest of ``[T_pipe, T]`` (waiting for the slowest stage's gradient sync,
  optimizer step, or a straggler).

``bubble_fraction`` is the mean over ranks of ``bubble_s / T_pipe``; with equal stages and free
sends it is (p-1)/(m+p-1) for GPipe and 1F1B (Narayanan et al. 2021, Sec. 2.2).
The accounting works on *intervals* (fused segments split only into their compute and
communication runs); ``ops_frame`` expands every op for export and charts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OP_COLUMNS = ["rank", "stream", "kind", "name", "start", "end", "bytes", "flops", "mb", "pass"]
IV_COLUMNS = ["rank", "compute", "stream", "start", "end", "pass"]
PIPELINE_PASSES = ("F", "B", "W")


def ops_frame(recorder) -> pd.DataFrame:
    """One row per op (fused compute segments expanded), sorted by start time."""
    df = pd.DataFrame(list(recorder.rows()), columns=OP_COLUMNS)
    return df.sort_values(["start", "rank", "stream"], kind="stable").reset_index(drop=True)


class Intervals:
    """Busy intervals as numpy columns: rank, stream code (0 = compute), start, end, and
    whether the interval belongs to a pipeline task (F/B/W)."""

    def __init__(self, cols: dict):
        self.rank, self.stream = cols["rank"].astype(int), cols["stream"].astype(int)
        self.start, self.end, self.pipe = cols["start"], cols["end"], cols["pipe"].astype(bool)

    def select(self, mask) -> Intervals:
        return Intervals({"rank": self.rank[mask], "stream": self.stream[mask],
                          "start": self.start[mask], "end": self.end[mask],
                          "pipe": self.pipe[mask]})

    @property
    def compute(self):
        return self.stream == 0


def intervals_frame(recorder) -> Intervals:
    return Intervals(recorder.interval_arrays())


def _union(starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """Merged, sorted intervals of the union (vectorised sweep)."""
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    if starts.size == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(s.size, bool)
    new[1:] = s[1:] > reach[:-1]
    idx = np.flatnonzero(new)
    return s[idx], np.maximum.reduceat(e, idx)


def _length(iv, lo: float = -np.inf, hi: float = np.inf) -> float:
    s, e = iv
    return float(np.clip(np.minimum(e, hi) - np.maximum(s, lo), 0, None).sum())


def _minus(a, b) -> float:
    """Length of union ``a`` minus union ``b``."""
    both = _union(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))
    return _length(both) - _length(b)


def _iv(iv: Intervals):
    return _union(iv.start, iv.end)


def pipeline_end(iv: Intervals) -> float:
    mask = iv.compute & iv.pipe
    return float(iv.end[mask].max()) if mask.any() else 0.0


def per_rank(iv: Intervals, step_time: float, peaks: dict[int, float],
             replicas: list[list[int]] | None = None) -> pd.DataFrame:
    """Per-rank accounting; ``replicas`` groups ranks whose pipeline phase ends together (a
    replica that waits for a straggler replica is idle, not in a bubble)."""
    replicas = replicas or [list(np.unique(iv.rank))]
    ends = {r: pipeline_end(iv.select(np.isin(iv.rank, grp))) for grp in replicas for r in grp}
    rows = []
    for rank in np.unique(iv.rank):
        t_pipe = ends[int(rank)]
        g = iv.select(iv.rank == rank)
        c_iv, m_iv = _iv(g.select(g.compute)), _iv(g.select(~g.compute))
        busy = _iv(g)
        compute, exposed = _length(c_iv), _minus(m_iv, c_iv)
        bubble = t_pipe - _length(busy, 0.0, t_pipe)
        rows.append({"rank": int(rank), "compute_s": compute, "comm_exposed_s": exposed,
                     "bubble_s": bubble,
                     "idle_s": max(0.0, step_time - compute - exposed - bubble),
                     "peak_memory_bytes": float(peaks.get(int(rank), 0.0))})
    return pd.DataFrame(rows)


def bubble_fraction(iv: Intervals) -> float:
    t_pipe = pipeline_end(iv)
    if t_pipe <= 0:
        return 0.0
    ranks = per_rank(iv, t_pipe, {})
    return float((ranks.bubble_s / t_pipe).mean())


def exposed(iv: Intervals, stream: str) -> float:
    """Seconds ``stream`` runs while the compute stream of the same rank is idle."""
    from sim.des.engine import STREAM_CODE

    comm = iv.select(iv.stream == STREAM_CODE[stream])
    if comm.start.size == 0:
        return 0.0
    return _minus(_iv(comm), _iv(iv.select(iv.compute)))


def issued(iv: Intervals, stream: str) -> float:
    """Seconds ``stream`` is busy on the ranks of ``iv`` (union of its intervals)."""
    from sim.des.engine import STREAM_CODE

    comm = iv.select(iv.stream == STREAM_CODE[stream])
    return _length(_iv(comm)) if comm.start.size else 0.0
