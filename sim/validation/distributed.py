"""Run a function in N local processes with torch.distributed on the gloo backend, and record
every collective each rank issues.

``spawn(fn, world, *args)`` starts ``world`` processes (``torch.multiprocessing`` spawn, a free
localhost port), calls ``fn(rank, world, *args)`` in each after ``init_process_group``, and
returns each rank's (JSON-able) return value. ``CollectiveRecorder`` wraps
``torch.distributed.all_reduce`` / ``all_gather_into_tensor`` / ``reduce_scatter_tensor`` /
``all_to_all_single`` / ``broadcast`` so every call's kind and byte count is logged; code under
test calls collectives through ``torch.distributed`` as usual. Bytes follow the lowering's
convention: the NCCL buffer size per rank (all-gather / reduce-scatter: the gathered buffer).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# torch.distributed function -> (clustersim collective kind, which argument holds the buffer)
WRAPPED = {
    "all_reduce": ("all_reduce", 0),
    "all_gather_into_tensor": ("all_gather", 0),
    "reduce_scatter_tensor": ("reduce_scatter", 1),
    "all_to_all_single": ("all_to_all", 1),
    "broadcast": ("broadcast", 0),
}


class CollectiveRecorder:
    """Context manager: while active, ``calls`` lists (kind, bytes) of every collective."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self._saved: dict = {}

    def _wrap(self, name: str, kind: str, arg: int):
        real = getattr(dist, name)

        def wrapper(*args, **kwargs):
            t = args[arg]
            self.calls.append((kind, t.numel() * t.element_size()))
            return real(*args, **kwargs)

        return real, wrapper

    def __enter__(self):
        for name, (kind, arg) in WRAPPED.items():
            self._saved[name], wrapper = self._wrap(name, kind, arg)
            setattr(dist, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, real in self._saved.items():
            setattr(dist, name, real)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, outdir: str, threads: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = fn(rank, world, *args)
    finally:
        dist.destroy_process_group()
    Path(outdir, f"rank{rank}.json").write_text(json.dumps(result))


def spawn(fn, world: int = 2, *args, threads: int = 1) -> list:
    """Run ``fn(rank, world, *args)`` in ``world`` gloo processes; their return values."""
    with tempfile.TemporaryDirectory() as outdir:
        mp.spawn(_entry, args=(world, free_port(), outdir, threads, fn, args), nprocs=world)
        return [json.loads(Path(outdir, f"rank{r}.json").read_text()) for r in range(world)]
