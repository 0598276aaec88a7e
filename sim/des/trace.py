"""Chrome trace / Perfetto JSON export of a simulated step.

The Trace Event Format (Google, "Trace Event Format" document; what ``chrome://tracing``,
Perfetto and PyTorch's profiler use): one complete event (``"ph": "X"``) per op with
microsecond ``ts``/``dur``, ``pid`` = the simulated rank, ``tid`` = its stream (named by
``thread_name`` metadata, compute first), and a counter track (``"ph": "C"``) of HBM in use, so
the simulated step opens in the same viewer as a real profile. Events are written in a fixed
order with sorted keys, so the same simulation gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.des.engine import STREAMS

US = 1e6


def trace_events(ops: pd.DataFrame, memory: dict) -> list[dict]:
    events: list[dict] = []
    for rank in sorted({int(r) for r in ops["rank"]} | set(memory)):
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                       "args": {"name": f"rank {rank}"}})
        for tid, stream in enumerate(STREAMS):
            events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": tid,
                           "args": {"name": stream}})
    tid_of = {s: i for i, s in enumerate(STREAMS)}
    for row in ops.rename(columns={"pass": "pass_"}).itertuples(index=False):
        events.append({
            "ph": "X", "name": row.name, "cat": f"{row.kind},{row.pass_}",
            "pid": int(row.rank), "tid": tid_of.get(row.stream, len(STREAMS)),
            "ts": row.start * US, "dur": (row.end - row.start) * US,
            "args": {"bytes": float(row.bytes), "flops": float(row.flops), "mb": int(row.mb),
                     "pass": row.pass_}})
    for rank, samples in sorted(memory.items()):
        for t, level, _what in samples:
            events.append({"ph": "C", "name": "HBM", "pid": rank, "tid": 0, "ts": t * US,
                           "args": {"GiB": level / 2**30}})
    return events


def write_chrome_trace(ops: pd.DataFrame, memory: dict, path: str | Path) -> Path:
    from sim.fileio import atomic_write_text

    path = Path(path)
    doc = {"traceEvents": trace_events(ops, memory), "displayTimeUnit": "ms"}
    atomic_write_text(path, json.dumps(doc, sort_keys=True, separators=(",", ":")))
    return path
