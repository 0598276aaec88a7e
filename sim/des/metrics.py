"""From records to pandas DataFrames and the per-rank time accounting.

Per rank, the step ``[0, T]`` is split into four disjoint parts:

- ``compute_s``: time the compute stream is busy (union of its intervals);
- ``comm_exposed_s``: time some communication runs while the compute stream is idle;
- ``bubble_s``: the rest of the *pipeline phase* ``[0, T_pipe]``, where ``T_pipe`` is the end of
  the last forward/backward task on any stage -- waiting for a neighbour stage;
- ``idle_s``: the rest of ``[T_pipe, T]`` (waiting for the slowest stage's gradient sync,
  optimizer step, or a straggler).

``bubble_fraction`` is the mean over ranks of ``bubble_s / T_pipe``; with equal stages and free
sends it is (p-1)/(m+p-1) for GPipe and 1F1B (Narayanan et al. 2021, Sec. 2.2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OP_COLUMNS = ["rank", "stream", "kind", "name", "start", "end", "bytes", "flops", "mb", "pass"]
PIPELINE_PASSES = ("F", "B", "W")


def ops_frame(recorder) -> pd.DataFrame:
    """One row per op (fused compute segments expanded), sorted by start time."""
    df = pd.DataFrame(list(recorder.rows()), columns=OP_COLUMNS)
    return df.sort_values(["start", "rank", "stream"], kind="stable").reset_index(drop=True)


def _union(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    order = np.argsort(starts, kind="stable")
    merged: list[list[float]] = []
    for s, e in zip(starts[order], ends[order], strict=True):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(a, b) for a, b in merged]


def _length(intervals, lo: float = -np.inf, hi: float = np.inf) -> float:
    return float(sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals))


def _minus(a_ivs, b_ivs) -> float:
    """Length of the union ``a`` minus the union ``b``."""
    both = _union(np.array([x for x, _ in a_ivs + b_ivs]), np.array([y for _, y in a_ivs + b_ivs]))
    return _length(both) - _length(b_ivs)


def pipeline_end(ops: pd.DataFrame) -> float:
    pipe = ops[(ops.stream == "compute") & ops["pass"].isin(PIPELINE_PASSES)]
    return float(pipe.end.max()) if len(pipe) else 0.0


def per_rank(ops: pd.DataFrame, step_time: float, peaks: dict[int, float]) -> pd.DataFrame:
    t_pipe = pipeline_end(ops)
    rows = []
    for rank, g in ops.groupby("rank", sort=True):
        comp = g[g.stream == "compute"]
        comm = g[g.stream != "compute"]
        c_iv = _union(comp.start.to_numpy(), comp.end.to_numpy()) if len(comp) else []
        m_iv = _union(comm.start.to_numpy(), comm.end.to_numpy()) if len(comm) else []
        busy = _union(np.array([a for a, _ in c_iv + m_iv]), np.array([b for _, b in c_iv + m_iv]))
        compute, exposed = _length(c_iv), _minus(m_iv, c_iv)
        bubble = t_pipe - _length(busy, 0.0, t_pipe)
        rows.append({"rank": int(rank), "compute_s": compute, "comm_exposed_s": exposed,
                     "bubble_s": bubble, "idle_s": max(0.0, step_time - compute - exposed - bubble),
                     "peak_memory_bytes": float(peaks.get(int(rank), 0.0))})
    return pd.DataFrame(rows)


def bubble_fraction(ops: pd.DataFrame) -> float:
    t_pipe = pipeline_end(ops)
    if t_pipe <= 0:
        return 0.0
    ranks = per_rank(ops, t_pipe, {})
    return float((ranks.bubble_s / t_pipe).mean())
